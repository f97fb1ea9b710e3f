package com.blitzmask.bench;

import java.io.File;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The LiteRT Java API ({@code org.tensorflow.lite.*}) reached by reflection, so the APK builds and runs without
 * it and reports "runtime missing" instead of crashing (plain Java). Methods are looked up on the public API
 * classes, never on implementation classes.
 */
public final class LiteRt {
    static final String INTERPRETER = "org.tensorflow.lite.Interpreter";
    static final String OPTIONS = "org.tensorflow.lite.Interpreter$Options";
    static final String TENSOR = "org.tensorflow.lite.Tensor";
    static final String VERSION = "org.tensorflow.lite.TensorFlowLite";
    static final String GPU = "org.tensorflow.lite.gpu.GpuDelegate";
    static final String NNAPI = "org.tensorflow.lite.nnapi.NnApiDelegate";
    static final String QNN = "com.qualcomm.qti.QnnDelegate";

    /** The runtime is not in the APK (or not on the class path). */
    public static final class Missing extends Exception {
        Missing(String message) {
            super(message);
        }
    }

    /** The requested delegate's classes are not in the APK. */
    public static final class UnsupportedDelegate extends Exception {
        UnsupportedDelegate(String message) {
            super(message);
        }
    }

    private final ClassLoader loader;
    private final Class<?> interpreterClass;
    private final Class<?> optionsClass;
    private final Class<?> tensorClass;

    private LiteRt(ClassLoader loader) throws ClassNotFoundException {
        this.loader = loader;
        interpreterClass = Class.forName(INTERPRETER, true, loader);
        optionsClass = Class.forName(OPTIONS, true, loader);
        tensorClass = Class.forName(TENSOR, true, loader);
    }

    /** The runtime from {@code loader}; {@link Missing} with a one-line explanation when absent. */
    public static LiteRt load(ClassLoader loader) throws Missing {
        try {
            return new LiteRt(loader);
        } catch (ClassNotFoundException | LinkageError e) {
            throw new Missing("LiteRT runtime not in the APK (" + e + "); rebuild it with "
                    + "LITERT_AAR=/path/to/litert.aar bash android_bench/build_apk.sh");
        }
    }

    /** TensorFlowLite.runtimeVersion(), or null when the runtime does not say. */
    public String version() {
        try {
            Object v = Class.forName(VERSION, true, loader).getMethod("runtimeVersion").invoke(null);
            return v == null ? null : v.toString();
        } catch (ReflectiveOperationException | LinkageError | RuntimeException e) {
            return null;
        }
    }

    /**
     * An interpreter for {@code model} with {@code delegate} (cpu|xnnpack|gpu|nnapi|qnn). A delegate whose classes
     * exist but that fails to apply falls back to plain CPU ({@link Session#fallback}); absent classes throw
     * {@link UnsupportedDelegate}; any other failure (bad model) is thrown as is.
     */
    public Session open(File model, String delegate, int threads, String nativeLibDir) throws Exception {
        if (delegate.equals("cpu") || delegate.equals("xnnpack")) {
            boolean xnn = delegate.equals("xnnpack");
            if (xnn && findMethod(optionsClass, "setUseXNNPACK", boolean.class) == null) {
                throw new UnsupportedDelegate("this LiteRT has no Interpreter.Options.setUseXNNPACK");
            }
            try {
                return new Session(newInterpreter(model, threads, xnn, null), null, delegate, false, null);
            } catch (Exception e) {
                if (!xnn) {
                    throw e;
                }
                Object interp = newInterpreter(model, threads, false, null);
                return new Session(interp, null, "cpu", true, message(e));
            }
        }
        Object d;
        try {
            d = newDelegate(delegate, nativeLibDir);
        } catch (UnsupportedDelegate e) {
            throw e;
        } catch (Throwable e) {
            Object interp = newInterpreter(model, threads, false, null);
            return new Session(interp, null, "cpu", true, delegate + " delegate could not be created: " + message(e));
        }
        try {
            return new Session(newInterpreter(model, threads, false, d), d, delegate, false, null);
        } catch (Throwable e) {
            closeQuietly(d);
            Object interp = newInterpreter(model, threads, false, null);
            return new Session(interp, null, "cpu", true, delegate + " delegate failed to apply: " + message(e));
        }
    }

    private Object newInterpreter(File model, int threads, boolean xnnpack, Object delegate) throws Exception {
        Object options = optionsClass.getConstructor().newInstance();
        optionsClass.getMethod("setNumThreads", int.class).invoke(options, threads);
        Method xnn = findMethod(optionsClass, "setUseXNNPACK", boolean.class);
        if (xnn != null) {
            xnn.invoke(options, xnnpack);
        }
        if (delegate != null) {
            Method add = null;
            for (Method m : optionsClass.getMethods()) {
                if (m.getName().equals("addDelegate") && m.getParameterTypes().length == 1
                        && m.getParameterTypes()[0].isInstance(delegate)) {
                    add = m;
                }
            }
            if (add == null) {
                throw new IllegalStateException("Interpreter.Options.addDelegate does not accept " + delegate.getClass());
            }
            add.invoke(options, delegate);
        }
        Constructor<?> ctor = interpreterClass.getConstructor(File.class, optionsClass);
        try {
            return ctor.newInstance(model, options);
        } catch (InvocationTargetException e) {
            throw unwrap(e);
        }
    }

    private Object newDelegate(String delegate, String nativeLibDir) throws Exception {
        String name = delegate.equals("gpu") ? GPU : delegate.equals("nnapi") ? NNAPI : QNN;
        Class<?> cls;
        try {
            cls = Class.forName(name, true, loader);
        } catch (ClassNotFoundException | LinkageError e) {
            throw new UnsupportedDelegate(delegate + " delegate not in the APK: " + name + " not found");
        }
        try {
            if (!delegate.equals("qnn")) {
                return cls.getConstructor().newInstance();
            }
            Class<?> opts = Class.forName(QNN + "$Options", true, loader);
            Object o = opts.getConstructor().newInstance();
            Class<?> backend = Class.forName(QNN + "$Options$BackendType", true, loader);
            Method setBackend = findMethod(opts, "setBackendType", backend);
            if (setBackend != null) {
                setBackend.invoke(o, backend.getField("HTP_BACKEND").get(null));
            }
            Method skel = findMethod(opts, "setSkelLibraryDir", String.class);
            if (skel != null && nativeLibDir != null) {
                skel.invoke(o, nativeLibDir);
            }
            return cls.getConstructor(opts).newInstance(o);
        } catch (InvocationTargetException e) {
            throw unwrap(e);
        }
    }

    /** Name, LiteRT dtype (DataType name) and shape of one model tensor. */
    public static final class TensorInfo {
        /** The tensor's name in the model; null when this LiteRT does not expose it. */
        public final String name;
        public final String dtype;
        public final int[] shape;

        TensorInfo(String name, String dtype, int[] shape) {
            this.name = name;
            this.dtype = dtype;
            this.shape = shape;
        }
    }

    /** One loaded model with deterministic inputs and preallocated outputs. */
    public final class Session {
        /** The delegate actually in use: "cpu", "xnnpack", "gpu", "nnapi" or "qnn". */
        public final String delegateApplied;
        /** True when the requested delegate could not be used and the model runs on plain CPU. */
        public final boolean fallback;
        /** Why it fell back (null when it did not). */
        public final String fallbackReason;

        private final Object interpreter;
        private final Object delegate;
        private final Object[] inputs;
        private final Map<Integer, Object> outputs = new HashMap<Integer, Object>();
        private final List<TensorInfo> inputInfo = new ArrayList<TensorInfo>();
        private final List<TensorInfo> outputInfo = new ArrayList<TensorInfo>();
        private final Method runMethod;

        Session(Object interpreter, Object delegate, String applied, boolean fallback, String reason)
                throws Exception {
            this.interpreter = interpreter;
            this.delegate = delegate;
            this.delegateApplied = applied;
            this.fallback = fallback;
            this.fallbackReason = reason;
            try {
                runMethod = interpreterClass.getMethod("runForMultipleInputsOutputs", Object[].class, Map.class);
                inputs = prepare();
            } catch (Exception e) {
                close();
                throw e;
            }
        }

        private Object[] prepare() throws Exception {
            int nIn = (Integer) interpreterClass.getMethod("getInputTensorCount").invoke(interpreter);
            Object[] ins = new Object[nIn];
            Method inTensor = interpreterClass.getMethod("getInputTensor", int.class);
            for (int i = 0; i < nIn; i++) {
                Object t = inTensor.invoke(interpreter, i);
                ByteBuffer b = buffer(t);
                fill(b, dataType(t));
                ins[i] = b;
                inputInfo.add(info(t));
            }
            int nOut = (Integer) interpreterClass.getMethod("getOutputTensorCount").invoke(interpreter);
            Method outTensor = interpreterClass.getMethod("getOutputTensor", int.class);
            for (int i = 0; i < nOut; i++) {
                Object t = outTensor.invoke(interpreter, i);
                outputs.put(i, buffer(t));
                outputInfo.add(info(t));
            }
            return ins;
        }

        /** The model's input tensors, in input index order. */
        public List<TensorInfo> inputInfo() {
            return Collections.unmodifiableList(inputInfo);
        }

        /** The model's output tensors, in output index order. */
        public List<TensorInfo> outputInfo() {
            return Collections.unmodifiableList(outputInfo);
        }

        /** Replace input {@code i} with the remaining bytes of {@code data} (exactly the tensor's size). */
        public void setInput(int i, ByteBuffer data) {
            ByteBuffer b = (ByteBuffer) inputs[i];
            if (data.remaining() != b.capacity()) {
                throw new IllegalArgumentException("input " + i + " takes " + b.capacity() + " bytes, got "
                        + data.remaining());
            }
            b.clear();
            b.put(data.duplicate());
            b.rewind();
        }

        /** The bytes of output {@code i} after the last {@link #run()} (a read-only view, position 0). */
        public ByteBuffer output(int i) {
            ByteBuffer b = ((ByteBuffer) outputs.get(i)).asReadOnlyBuffer();
            b.clear();
            return b;
        }

        /** One inference on the fixed inputs. */
        public void run() throws Exception {
            for (Object b : inputs) {
                ((ByteBuffer) b).rewind();
            }
            for (Object b : outputs.values()) {
                ((ByteBuffer) b).rewind();
            }
            try {
                runMethod.invoke(interpreter, inputs, outputs);
            } catch (InvocationTargetException e) {
                throw unwrap(e);
            }
        }

        /** The input buffers (deterministic content), for tests. */
        public Object[] inputs() {
            return inputs.clone();
        }

        /** Free the interpreter and the delegate. */
        public void close() {
            closeQuietly(interpreter);
            closeQuietly(delegate);
        }
    }

    private ByteBuffer buffer(Object tensor) throws Exception {
        int bytes = (Integer) tensorClass.getMethod("numBytes").invoke(tensor);
        if (bytes <= 0) {
            throw new IllegalStateException("tensor with dynamic or empty shape (" + bytes + " bytes)");
        }
        return ByteBuffer.allocateDirect(bytes).order(ByteOrder.nativeOrder());
    }

    private TensorInfo info(Object tensor) throws Exception {
        Method name = findMethod(tensorClass, "name");
        Object n = name == null ? null : name.invoke(tensor);
        int[] shape = (int[]) tensorClass.getMethod("shape").invoke(tensor);
        return new TensorInfo(n == null ? null : n.toString(), dataType(tensor), shape);
    }

    private String dataType(Object tensor) throws Exception {
        Object dt = tensorClass.getMethod("dataType").invoke(tensor);
        return dt instanceof Enum ? ((Enum<?>) dt).name() : String.valueOf(dt);
    }

    /** Fill {@code b} with a deterministic pattern of the given LiteRT DataType name. */
    static void fill(ByteBuffer b, String dtype) {
        b.clear();
        int i = 0;
        if (dtype.equals("FLOAT32")) {
            while (b.remaining() >= 4) {
                b.putFloat(pattern(i++) / 255f);
            }
        } else if (dtype.equals("FLOAT16")) {
            while (b.remaining() >= 2) {
                b.putShort(halfOf(pattern(i++) / 255f));
            }
        } else if (dtype.equals("INT8")) {
            while (b.hasRemaining()) {
                b.put((byte) (pattern(i++) - 128));
            }
        } else if (dtype.equals("UINT8")) {
            while (b.hasRemaining()) {
                b.put((byte) pattern(i++));
            }
        } else if (dtype.equals("BOOL")) {
            while (b.hasRemaining()) {
                b.put((byte) (i++ % 2));
            }
        } else if (dtype.equals("INT16")) {
            while (b.remaining() >= 2) {
                b.putShort((short) pattern(i++));
            }
        } else if (dtype.equals("INT32")) {
            while (b.remaining() >= 4) {
                b.putInt(pattern(i++));
            }
        } else if (dtype.equals("INT64")) {
            while (b.remaining() >= 8) {
                b.putLong(pattern(i++));
            }
        } else {
            throw new IllegalArgumentException("input dtype " + dtype + " is not supported");
        }
        b.rewind();
    }

    /** 0..254, spread over the range: element i of every input. */
    static int pattern(int i) {
        return (int) ((i * 37L) % 255L);
    }

    /** IEEE half-precision bits of a float in [0, 1] (normal and zero values only). */
    static short halfOf(float f) {
        if (f == 0f) {
            return 0;
        }
        int bits = Float.floatToIntBits(f);
        int exp = ((bits >>> 23) & 0xff) - 127 + 15;
        int mant = (bits >>> 13) & 0x3ff;
        if (exp <= 0) {
            return 0;
        }
        return (short) ((exp << 10) | mant);
    }

    private static Method findMethod(Class<?> cls, String name, Class<?>... params) {
        try {
            return cls.getMethod(name, params);
        } catch (NoSuchMethodException e) {
            return null;
        }
    }

    /** The exception a reflective call threw; Errors (e.g. UnsatisfiedLinkError) are rethrown as they are. */
    private static Exception unwrap(InvocationTargetException e) {
        Throwable c = e.getCause();
        if (c instanceof Error) {
            throw (Error) c;
        }
        return c instanceof Exception ? (Exception) c : e;
    }

    private static String message(Throwable e) {
        if (e instanceof InvocationTargetException && e.getCause() != null) {
            e = e.getCause();
        }
        String m = e.getMessage();
        return (m == null ? e.getClass().getSimpleName() : m).replace('\n', ' ');
    }

    private static void closeQuietly(Object o) {
        if (o == null) {
            return;
        }
        try {
            o.getClass().getMethod("close").invoke(o);
        } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
            // best effort: a leak in a benchmark process that ends right after
        }
    }
}
