package org.tensorflow.lite;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Test double of LiteRT's Interpreter. The "model" is a text file:
 * {@code inputs=FLOAT32:1x8x8x3,INT8:1x4;outputs=FLOAT32:1x10:heat;busy_us=300} (a tensor's optional third field
 * is its name); a file starting with "bad" is rejected like a corrupt flatbuffer, one starting with "nolib" fails
 * like a missing native library. The GPU delegate always fails to apply; NNAPI applies. Byte j of output k is
 * byte (j mod n) of input 0 plus k + 1 (mod 256), n the input's size: outputs are a deterministic function of the
 * input.
 */
public final class Interpreter implements AutoCloseable {
    /** Settings of the last interpreter built, for assertions. */
    public static volatile Options lastOptions;
    /** Sum of all input bytes of the last run (inputs must be fully readable from position 0). */
    public static volatile long lastChecksum;
    public static volatile int closed;

    /** Test double of Interpreter.Options. */
    public static class Options {
        public int threads = -1;
        public boolean xnnpack = true;
        public final List<Delegate> delegates = new ArrayList<Delegate>();

        public Options setNumThreads(int n) {
            threads = n;
            return this;
        }

        public Options setUseXNNPACK(boolean use) {
            xnnpack = use;
            return this;
        }

        public Options addDelegate(Delegate d) {
            delegates.add(d);
            return this;
        }
    }

    private final List<Tensor> inputs = new ArrayList<Tensor>();
    private final List<Tensor> outputs = new ArrayList<Tensor>();
    private final long busyNs;

    public Interpreter(File model, Options options) throws IOException {
        String text = new String(Files.readAllBytes(model.toPath()), StandardCharsets.UTF_8).trim();
        if (text.startsWith("nolib")) {
            throw new UnsatisfiedLinkError("dlopen failed: library \"libtensorflowlite_jni.so\" not found");
        }
        if (text.startsWith("bad")) {
            throw new IllegalArgumentException("The model is not a valid Flatbuffer file");
        }
        for (Delegate d : options.delegates) {
            if (d.getClass().getName().endsWith("GpuDelegate")) {
                throw new IllegalArgumentException("Internal error: Failed to apply delegate: OpenCL library not loaded");
            }
        }
        long busy = 0;
        for (String field : text.split(";")) {
            String[] kv = field.split("=", 2);
            if (kv[0].equals("inputs") || kv[0].equals("outputs")) {
                List<Tensor> list = kv[0].equals("inputs") ? inputs : outputs;
                for (String spec : kv[1].split(",")) {
                    list.add(new FakeTensor(spec, (list == inputs ? "in" : "out") + list.size()));
                }
            } else if (kv[0].equals("busy_us")) {
                busy = Long.parseLong(kv[1]) * 1000L;
            }
        }
        busyNs = busy;
        lastOptions = options;
    }

    public int getInputTensorCount() {
        return inputs.size();
    }

    public int getOutputTensorCount() {
        return outputs.size();
    }

    public Tensor getInputTensor(int i) {
        return inputs.get(i);
    }

    public Tensor getOutputTensor(int i) {
        return outputs.get(i);
    }

    public void runForMultipleInputsOutputs(Object[] in, Map<Integer, Object> out) {
        long sum = 0;
        byte[] first = null;
        for (int i = 0; i < in.length; i++) {
            ByteBuffer b = (ByteBuffer) in[i];
            if (b.remaining() != inputs.get(i).numBytes()) {
                throw new IllegalArgumentException("input " + i + " has " + b.remaining() + " bytes left");
            }
            byte[] bytes = new byte[b.remaining()];
            b.get(bytes);
            first = first == null ? bytes : first;
            for (byte x : bytes) {
                sum += x & 0xff;
            }
        }
        for (Map.Entry<Integer, Object> e : out.entrySet()) {
            ByteBuffer b = (ByteBuffer) e.getValue();
            int k = e.getKey();
            for (int j = 0; j < outputs.get(k).numBytes(); j++) {
                b.put((byte) (first[j % first.length] + k + 1));
            }
        }
        long end = System.nanoTime() + busyNs;
        while (System.nanoTime() < end) {
            sum += 0;
        }
        lastChecksum = sum;
    }

    @Override
    public void close() {
        closed++;
    }
}
