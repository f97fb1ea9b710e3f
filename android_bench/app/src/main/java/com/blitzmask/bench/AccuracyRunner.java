package com.blitzmask.bench;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Accuracy mode: every {@code .npy} input tensor of a folder, sorted by name, run through the model with the
 * requested delegate; each output tensor written raw, in the model's dtype, to
 * {@code OUTPUTS/<input stem>.<output index>.npy} (plain Java, so it runs on the host JVM against a fake runtime).
 */
public final class AccuracyRunner {
    /** Most input files per request: every sample's ms travels in one binder transaction (the status line). */
    public static final int MAX_SAMPLES = 20000;

    /** A bad inputs or outputs folder, or a file that does not fit the model; the message names it. */
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

    /** Run every input file of {@code a.inputs}; a missing runtime or a bad file is a status, never a throw. */
    public ResultBuilder run(BenchArgs a) {
        ResultBuilder r = ResultBuilder.accuracy(a.model, a.delegate, a.threads, a.inputs, a.outputs);
        r.set("device", device);
        LiteRt.Session session = null;
        try {
            LiteRt rt = LiteRt.load(loader);
            r.set("runtime_version", rt.version());
            File model = new File(a.model);
            if (!model.isFile() || !model.canRead()) {
                throw new BadInput("model not found or unreadable: " + a.model);
            }
            List<File> inputs = inputFiles(new File(a.inputs));
            File outputs = outputFolder(new File(a.outputs));
            Timer t = Timer.start();
            session = rt.open(model, a.delegate, a.threads, nativeLibDir);
            r.set("init_ms", ResultBuilder.roundUs(t.lapMs()));
            r.set("delegate_applied", session.delegateApplied);
            r.set("fallback", session.fallback);
            if (session.fallback) {
                System.err.println("blitzmask: " + session.fallbackReason);
            }
            r.set("output_tensors", describe(session.outputInfo()));
            checkModel(session, a.model);
            List<Double> ms = new ArrayList<Double>();
            for (File input : inputs) {
                ms.add(runOne(session, input, outputs));
                r.set("samples", ms.size());
                r.set("samples_ms", ms);
            }
            r.set("status", "ok");
        } catch (BadInput e) {
            r.fail("error", e.getMessage());
        } catch (Throwable e) {
            BenchRunner.fail(r, e);
        } finally {
            if (session != null) {
                session.close();
            }
        }
        r.set("peak_memory_kb", sys.peakMemoryKb());
        return r;
    }

    /** The .npy files of {@code dir}, sorted by name. */
    static List<File> inputFiles(File dir) throws BadInput {
        if (!dir.isDirectory()) {
            throw new BadInput("inputs folder not found: " + dir);
        }
        File[] all = dir.listFiles();
        if (all == null) {
            throw new BadInput("cannot list the inputs folder " + dir);
        }
        List<File> files = new ArrayList<File>();
        for (File f : all) {
            if (f.isFile() && f.getName().endsWith(".npy") && f.getName().length() > 4) {
                files.add(f);
            }
        }
        if (files.isEmpty()) {
            throw new BadInput("no .npy files in the inputs folder " + dir);
        }
        if (files.size() > MAX_SAMPLES) {
            throw new BadInput(files.size() + " input files in " + dir + ": at most " + MAX_SAMPLES + " per request");
        }
        Collections.sort(files, new Comparator<File>() {
            @Override
            public int compare(File x, File y) {
                return x.getName().compareTo(y.getName());
            }
        });
        return files;
    }

    private static File outputFolder(File dir) throws BadInput {
        if (!dir.isDirectory() && !dir.mkdirs()) {
            throw new BadInput("cannot create the outputs folder " + dir);
        }
        if (!dir.canWrite()) {
            throw new BadInput("cannot write the outputs folder " + dir);
        }
        return dir;
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

    /** Run one input file and write its outputs → the inference's ms. */
    private static double runOne(LiteRt.Session session, File input, File outputs) throws Exception {
        Npy.Array x;
        try {
            x = Npy.read(input);
        } catch (IOException e) {
            throw new BadInput(input.getName() + ": " + e.getMessage());
        }
        LiteRt.TensorInfo want = session.inputInfo().get(0);
        if (!x.dtype.equals(want.dtype) || !Arrays.equals(x.shape, want.shape)) {
            throw new BadInput(input.getName() + ": " + Npy.describe(x.dtype, x.shape)
                    + " does not match the model's input " + Npy.describe(want.dtype, want.shape));
        }
        session.setInput(0, x.data);
        Timer t = Timer.start();
        session.run();
        double ms = ResultBuilder.roundUs(t.lapMs());
        String stem = input.getName().substring(0, input.getName().length() - ".npy".length());
        List<LiteRt.TensorInfo> outs = session.outputInfo();
        for (int i = 0; i < outs.size(); i++) {
            File out = new File(outputs, stem + "." + i + ".npy");
            try {
                Npy.write(out, outs.get(i).dtype, outs.get(i).shape, session.output(i));
            } catch (IOException e) {
                throw new BadInput("cannot write " + out + ": " + e.getMessage());
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
