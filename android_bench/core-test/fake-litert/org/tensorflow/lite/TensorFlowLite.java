package org.tensorflow.lite;

/** Test double of LiteRT's version holder. */
public final class TensorFlowLite {
    private TensorFlowLite() {}

    public static String runtimeVersion() {
        return "fake-2.16.1";
    }
}
