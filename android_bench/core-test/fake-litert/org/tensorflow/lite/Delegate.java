package org.tensorflow.lite;

/** Test double of LiteRT's Delegate interface. */
public interface Delegate extends AutoCloseable {
    @Override
    void close();
}
