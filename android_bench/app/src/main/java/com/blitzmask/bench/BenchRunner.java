package com.blitzmask.bench;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.util.Map;

/**
 * One benchmark cell end to end — arguments, cool-down, model load, first inference, warm-up, timed runs,
 * optional sustained camera-rate mode, temperatures/clocks/memory — as a schema-1 result (plain Java, so the
 * whole flow runs on the host JVM against a fake runtime).
 */
public final class BenchRunner {
    private final SysFs sys;
    private final ClassLoader loader;
    private final Map<String, Object> device;
    private final String nativeLibDir;
    private final double cooldownMaxS;

    /**
     * @param device       the "device" object of the result (fingerprint, model, …)
     * @param nativeLibDir the app's native library directory (QNN skel libraries), may be null
     * @param cooldownMaxS longest wait for {@code cooldown_c} before measuring anyway
     */
    public BenchRunner(SysFs sys, ClassLoader loader, Map<String, Object> device, String nativeLibDir,
            double cooldownMaxS) {
        this.sys = sys;
        this.loader = loader;
        this.device = device;
        this.nativeLibDir = nativeLibDir;
        this.cooldownMaxS = cooldownMaxS;
    }

    /**
     * Parse the extras and run them in their mode (timing, or accuracy through {@link AccuracyRunner}); bad
     * arguments give status "error" with a one-line message.
     */
    public ResultBuilder run(Map<String, String> extras) {
        BenchArgs args;
        try {
            args = BenchArgs.parse(extras);
        } catch (BenchArgs.BadArgs e) {
            ResultBuilder r = ResultBuilder.forRequest(extras);
            r.set("device", device);
            return r.fail("error", e.getMessage());
        }
        if (args.accuracy()) {
            return new AccuracyRunner(sys, loader, device, nativeLibDir).run(args);
        }
        return run(args);
    }

    /** Run one cell. */
    public ResultBuilder run(BenchArgs a) {
        ResultBuilder r = new ResultBuilder(a.model, a.delegate, a.threads, a.warmup, a.runs);
        r.set("device", device);
        LiteRt.Session session = null;
        try {
            LiteRt rt = LiteRt.load(loader);
            r.set("runtime_version", rt.version());
            File model = new File(a.model);
            if (!model.isFile() || !model.canRead()) {
                return finish(r.fail("error", "model not found or unreadable: " + a.model));
            }
            if (a.cooldownC != null) {
                coolDown(a.cooldownC);
            }
            r.set("thermal_before", sys.thermal());
            r.set("clocks_before", sys.clocks());
            Timer t = Timer.start();
            session = rt.open(model, a.delegate, a.threads, nativeLibDir);
            r.opened(session, t.lapMs());
            session.run();
            r.set("first_inference_ms", ResultBuilder.roundUs(t.lapMs()));
            for (int i = 0; i < a.warmup; i++) {
                session.run();
            }
            double[] runs = new double[a.runs];
            for (int i = 0; i < a.runs; i++) {
                t.lapMs();
                session.run();
                runs[i] = t.lapMs();
            }
            r.runsMs(runs);
            System.err.println("blitzmask: " + Stats.of(runs));
            if (a.sustainedS > 0) {
                sustained(session, a, r);
            }
            r.set("status", "ok");
        } catch (Throwable e) {
            fail(r, e);
        } finally {
            if (session != null) {
                session.close();
            }
        }
        return finish(r);
    }

    /** Record what stopped a run: runtime missing, delegate unsupported, or any other error. */
    static void fail(ResultBuilder r, Throwable e) {
        if (e instanceof LiteRt.Missing) {
            r.fail("runtime_missing", e.getMessage());
        } else if (e instanceof UnsatisfiedLinkError) {
            r.fail("runtime_missing", "LiteRT native library missing for this ABI: " + e.getMessage());
        } else if (e instanceof LiteRt.UnsupportedDelegate) {
            r.fail("unsupported_delegate", e.getMessage());
        } else if (e instanceof InterruptedException) {
            Thread.currentThread().interrupt();
            r.fail("error", "interrupted");
        } else {
            r.fail("error", e.getClass().getSimpleName() + ": " + e.getMessage());
        }
    }

    private ResultBuilder finish(ResultBuilder r) {
        r.set("thermal_after", sys.thermal());
        r.set("clocks_after", sys.clocks());
        r.set("peak_memory_kb", sys.peakMemoryKb());
        return r;
    }

    /** Wait (polling every second) until the hottest zone is below {@code limitC} or cooldownMaxS passed. */
    private void coolDown(double limitC) throws InterruptedException {
        long end = System.nanoTime() + (long) (cooldownMaxS * 1e9);
        Double hot = sys.hottest();
        while (hot != null && hot >= limitC && System.nanoTime() < end) {
            Thread.sleep(1000);
            hot = sys.hottest();
        }
    }

    /**
     * Run at {@code target_fps} for {@code sustained_s}: each frame starts on its deadline (no catching up after
     * a slow frame). Clocks are sampled every second; clocks_min_ratio is the lowest ratio of the fastest CPU
     * clock (and the GPU clock when the GPU delegate runs) to the same clock at the start, sampled every second and
     * at the end; throttled when < 0.9.
     */
    private void sustained(LiteRt.Session session, BenchArgs a, ResultBuilder r) throws Exception {
        long period = (long) (1e9 / a.targetFps);
        Map<String, Long> base = sys.clocks();
        Double minRatio = null;
        long start = System.nanoTime();
        long end = start + (long) (a.sustainedS * 1e9);
        long next = start;
        long nextSample = start + 1000000000L;
        int frames = 0;
        while (System.nanoTime() < end) {
            session.run();
            frames++;
            long now = System.nanoTime();
            if (now >= nextSample) {
                Double ratio = clockRatio(base, sys.clocks(), "gpu".equals(session.delegateApplied));
                if (ratio != null && (minRatio == null || ratio < minRatio)) {
                    minRatio = ratio;
                }
                nextSample += 1000000000L;
            }
            next = Math.max(next + period, now);
            Timer.sleepUntil(Math.min(next, end));
        }
        Double last = clockRatio(base, sys.clocks(), "gpu".equals(session.delegateApplied));
        if (last != null && (minRatio == null || last < minRatio)) {
            minRatio = last;
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        r.sustained(a.sustainedS, a.targetFps, frames, frames / seconds, minRatio != null && minRatio < 0.9,
                minRatio);
    }

    /** min(max CPU kHz now / at base, GPU kHz now / at base when withGpu); null when nothing is readable. */
    static Double clockRatio(Map<String, Long> base, Map<String, Long> now, boolean withGpu) {
        Double ratio = null;
        long b = maxCpu(base);
        long n = maxCpu(now);
        if (b > 0 && n > 0) {
            ratio = (double) n / b;
        }
        Long gb = base.get("gpu");
        Long gn = now.get("gpu");
        if (withGpu && gb != null && gn != null && gb > 0) {
            double g = (double) gn / gb;
            ratio = ratio == null ? g : Math.min(ratio, g);
        }
        return ratio;
    }

    private static long maxCpu(Map<String, Long> clocks) {
        long max = 0;
        for (Map.Entry<String, Long> e : clocks.entrySet()) {
            if (e.getKey().startsWith("cpu") && e.getValue() != null) {
                max = Math.max(max, e.getValue());
            }
        }
        return max;
    }

    /** Write {@code json} to {@code path} (parents created); false (and a line on stderr) when it cannot. */
    public static boolean writeResult(String path, String json) {
        File f = new File(path);
        File parent = f.getAbsoluteFile().getParentFile();
        if (parent != null && !parent.isDirectory() && !parent.mkdirs()) {
            System.err.println("blitzmask: cannot create " + parent);
            return false;
        }
        OutputStream out = null;
        try {
            out = new FileOutputStream(f);
            out.write((json + "\n").getBytes("UTF-8"));
            return true;
        } catch (IOException | SecurityException e) {
            System.err.println("blitzmask: cannot write " + path + ": " + e.getMessage());
            return false;
        } finally {
            if (out != null) {
                try {
                    out.close();
                } catch (IOException ignored) {
                    // the write itself already succeeded or was reported
                }
            }
        }
    }
}
