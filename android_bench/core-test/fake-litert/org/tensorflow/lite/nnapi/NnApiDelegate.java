package org.tensorflow.lite.nnapi;

import org.tensorflow.lite.Delegate;

/** Test double: applies fine. */
public final class NnApiDelegate implements Delegate {
    @Override
    public void close() {}
}
