package com.blitzmask.bench;

import java.io.Closeable;
import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Accuracy mode: every tensor of the input pack, in pack order, run through the model with the requested delegate;
 * each output tensor written raw, in the model's dtype, into the output pack as {@code <input name>.<output index>}
 * (plain Java, so it runs on the host JVM against a fake runtime).
 */
public final class AccuracyRunner {
    /** Most inputs per request: every sample's ms travels in one binder transaction (the status line). */
    public static final int MAX_SAMPLES = 20000;

    /** A bad input or output pack, or an input that does not fit the model; the message names it. */
    static final class BadInput extends Exception {
        BadInput(String message) {
            super(message);
        }
    }

    private final SysFs sys;
    private final ClassLoader loader;
    private final Map<String, Object> device;
    private final String nativeLibDir;

    /**
     * @param device       the "device" object of the result (fingerprint, model, …)
     * @param nativeLibDir the app's native library directory (QNN skel libraries), may be null
     */
    public AccuracyRunner(SysFs sys, ClassLoader loader, Map<String, Object> device, String nativeLibDir) {
        this.sys = sys;
        this.loader = loader;
        this.device = device;
        this.nativeLibDir = nativeLibDir;
    }

    /** Run every input of the pack {@code a.inputs}; a missing runtime or a bad input is a status, never a throw. */
    public ResultBuilder run(BenchArgs a) {
        ResultBuilder r = ResultBuilder.accuracy(a.model, a.delegate, a.threads, a.inputs, a.outputs);
        r.set("device", device);
        LiteRt.Session session = null;
        Pack.Reader inputs = null;
        Pack.Writer outputs = null;
        try {
            LiteRt rt = LiteRt.load(loader);
            r.set("runtime_version", rt.version());
            File model = new File(a.model);
            if (!model.isFile() || !model.canRead()) {
                throw new BadInput("model not found or unreadable: " + a.model);
            }
            inputs = openInputs(new File(a.inputs));
            Timer t = Timer.start();
            session = rt.open(model, a.delegate, a.threads, nativeLibDir);
            r.opened(session, t.lapMs());
            r.set("output_tensors", describe(session.outputInfo()));
            checkModel(session, a.model);
            outputs = openOutputs(new File(a.outputs), inputs.count * session.outputInfo().size());
            List<Double> ms = new ArrayList<Double>();
            for (Pack.Entry x = next(inputs); x != null; x = next(inputs)) {
                ms.add(runOne(session, x, outputs, a.outputs));
                r.set("samples", ms.size());
                r.set("samples_ms", ms);
            }
            try {
                outputs.finish();
            } catch (IOException e) {
                throw new BadInput("cannot write the output pack " + a.outputs + ": " + e.getMessage());
            }
            r.set("status", "ok");
        } catch (BadInput e) {
            r.fail("error", e.getMessage());
        } catch (Throwable e) {
            BenchRunner.fail(r, e);
        } finally {
            closeQuietly(inputs);
            closeQuietly(outputs);
            if (session != null) {
                session.close();
            }
        }
        r.set("peak_memory_kb", sys.peakMemoryKb());
        return r;
    }

    /** The input pack, its header read: 1 to MAX_SAMPLES tensors. */
    static Pack.Reader openInputs(File pack) throws BadInput {
        if (!pack.isFile()) {
            throw new BadInput("input pack not found: " + pack);
        }
        Pack.Reader reader;
        try {
            reader = new Pack.Reader(pack);
        } catch (IOException e) {
            throw new BadInput(e.getMessage());
        }
        if (reader.count < 1 || reader.count > MAX_SAMPLES) {
            closeQuietly(reader);
            throw new BadInput(reader.count + " inputs in " + pack.getName() + ": 1 to " + MAX_SAMPLES
                    + " per request");
        }
        return reader;
    }

    private static Pack.Entry next(Pack.Reader inputs) throws BadInput {
        try {
            return inputs.next();
        } catch (IOException e) {
            throw new BadInput(e.getMessage());
        }
    }

    /** The output pack for {@code count} tensors (its folder made when missing). */
    private static Pack.Writer openOutputs(File pack, int count) throws BadInput {
        File folder = pack.getAbsoluteFile().getParentFile();
        if (folder != null && !folder.isDirectory() && !folder.mkdirs()) {
            throw new BadInput("cannot create the folder of the output pack " + pack);
        }
        try {
            return new Pack.Writer(pack, count);
        } catch (IOException e) {
            throw new BadInput("cannot write the output pack " + pack + ": " + e.getMessage());
        }
    }

    private static void closeQuietly(Closeable c) {
        if (c == null) {
            return;
        }
        try {
            c.close();
        } catch (IOException e) {
            // the status already says what went wrong, or the pack was finished
        }
    }

    /** One input tensor, and every output tensor a .npy writer can hold. */
    private static void checkModel(LiteRt.Session session, String model) throws BadInput {
        if (session.inputInfo().size() != 1) {
            throw new BadInput("accuracy mode needs a model with one input; " + model + " has "
                    + session.inputInfo().size());
        }
        List<LiteRt.TensorInfo> outs = session.outputInfo();
        for (int i = 0; i < outs.size(); i++) {
            if (!Npy.supports(outs.get(i).dtype)) {
                throw new BadInput("output " + i + " (" + outs.get(i).name + ") is " + outs.get(i).dtype
                        + ", which accuracy mode cannot write (supported: " + Npy.DTYPES + ")");
            }
        }
    }

    /** Run one input tensor and append its outputs to the output pack → the inference's ms. */
    private static double runOne(LiteRt.Session session, Pack.Entry x, Pack.Writer outputs, String path)
            throws Exception {
        LiteRt.TensorInfo want = session.inputInfo().get(0);
        if (!x.array.dtype.equals(want.dtype) || !Arrays.equals(x.array.shape, want.shape)) {
            throw new BadInput(x.name + ": " + Npy.describe(x.array.dtype, x.array.shape)
                    + " does not match the model's input " + Npy.describe(want.dtype, want.shape));
        }
        session.setInput(0, x.array.data);
        Timer t = Timer.start();
        session.run();
        double ms = ResultBuilder.roundUs(t.lapMs());
        List<LiteRt.TensorInfo> outs = session.outputInfo();
        for (int i = 0; i < outs.size(); i++) {
            try {
                outputs.add(x.name + "." + i, outs.get(i).dtype, outs.get(i).shape, session.output(i));
            } catch (IOException e) {
                throw new BadInput("cannot write the output pack " + path + ": " + e.getMessage());
            }
        }
        return ms;
    }

    /** [{index, name, dtype (numpy name), shape}] of the output tensors. */
    private static List<Map<String, Object>> describe(List<LiteRt.TensorInfo> tensors) {
        List<Map<String, Object>> list = new ArrayList<Map<String, Object>>();
        for (int i = 0; i < tensors.size(); i++) {
            LiteRt.TensorInfo t = tensors.get(i);
            Map<String, Object> m = new LinkedHashMap<String, Object>();
            m.put("index", i);
            m.put("name", t.name);
            m.put("dtype", t.dtype.toLowerCase(Locale.ROOT));
            List<Integer> shape = new ArrayList<Integer>();
            for (int d : t.shape) {
                shape.add(d);
            }
            m.put("shape", shape);
            list.add(m);
        }
        return list;
    }
}
