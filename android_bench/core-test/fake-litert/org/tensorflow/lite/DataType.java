package org.tensorflow.lite;

/** Test double of LiteRT's DataType. */
public enum DataType {
    FLOAT32(4), INT32(4), UINT8(1), INT64(8), STRING(1), BOOL(1), INT16(2), INT8(1), FLOAT16(2);

    private final int size;

    DataType(int size) {
        this.size = size;
    }

    public int byteSize() {
        return size;
    }
}
