package org.tensorflow.lite;

/** Package-private like LiteRT's TensorImpl: reflection must go through the public Tensor interface. */
final class FakeTensor implements Tensor {
    private final String name;
    private final DataType type;
    private final int[] shape;

    /** {@code TYPE:DxDx…[:name]}; without a name it is called {@code defaultName}. */
    FakeTensor(String spec, String defaultName) {
        String[] parts = spec.split(":");
        name = parts.length > 2 ? parts[2] : defaultName;
        type = DataType.valueOf(parts[0]);
        String[] dims = parts[1].split("x");
        shape = new int[dims.length];
        for (int i = 0; i < dims.length; i++) {
            shape[i] = Integer.parseInt(dims[i]);
        }
    }

    @Override
    public String name() {
        return name;
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
