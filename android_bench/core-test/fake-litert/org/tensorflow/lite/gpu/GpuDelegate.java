package org.tensorflow.lite.gpu;

import org.tensorflow.lite.Delegate;

/** Test double: exists, but the fake Interpreter refuses to apply it (like a phone without OpenCL). */
public final class GpuDelegate implements Delegate {
    public static volatile int closed;

    @Override
    public void close() {
        closed++;
    }
}
