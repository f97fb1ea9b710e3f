package org.tensorflow.lite;

/** Package-private like LiteRT's TensorImpl: reflection must go through the public Tensor interface. */
final class FakeTensor implements Tensor {
    private final DataType type;
    private final int[] shape;

    FakeTensor(String spec) {
        String[] parts = spec.split(":");
        type = DataType.valueOf(parts[0]);
        String[] dims = parts[1].split("x");
        shape = new int[dims.length];
        for (int i = 0; i < dims.length; i++) {
            shape[i] = Integer.parseInt(dims[i]);
        }
    }

    @Override
    public DataType dataType() {
        return type;
    }

    @Override
    public int[] shape() {
        return shape.clone();
    }

    @Override
    public int numElements() {
        int n = 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }

    @Override
    public int numBytes() {
        return numElements() * type.byteSize();
    }
}
