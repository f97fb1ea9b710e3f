package org.tensorflow.lite;

/** Test double of LiteRT's Tensor interface (the real one is implemented by a package-private class). */
public interface Tensor {
    String name();

    DataType dataType();

    int[] shape();

    int numElements();

    int numBytes();
}
