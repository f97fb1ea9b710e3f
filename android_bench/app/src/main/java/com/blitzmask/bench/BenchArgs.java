package com.blitzmask.bench;

import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;

/** Benchmark arguments from the {@code am instrument -e key value} extras, parsed and validated (plain Java). */
public final class BenchArgs {
    /** Delegates the app understands. */
    public static final List<String> DELEGATES =
            Collections.unmodifiableList(Arrays.asList("cpu", "xnnpack", "gpu", "nnapi", "qnn"));

    /** Modes: "timing" (the default) measures speed, "accuracy" writes the outputs of a pack of inputs. */
    public static final List<String> MODES = Collections.unmodifiableList(Arrays.asList("timing", "accuracy"));

    /** Most timed runs per cell: every run's ms travels in one binder transaction (the status line). */
    public static final int MAX_RUNS = 20000;

    /** Thrown for a missing or malformed argument; the message is one line naming the argument. */
    public static final class BadArgs extends Exception {
        public BadArgs(String message) {
            super(message);
        }
    }

    public final String mode;
    public final String model;
    public final String delegate;
    public final int threads;
    public final int warmup;
    public final int runs;
    /** Wait until the hottest zone is below this many °C before measuring; null: no wait. */
    public final Double cooldownC;
    /** Seconds of sustained camera-rate running after the timed runs; 0: off. */
    public final double sustainedS;
    public final double targetFps;
    /** Where to write the result JSON; null: status line only. */
    public final String out;
    /** Accuracy mode: the pack of input tensors and the pack the outputs go to (null in timing mode). */
    public final String inputs;
    public final String outputs;

    private BenchArgs(Map<String, String> a) throws BadArgs {
        mode = a.containsKey("mode") ? a.get("mode").trim().toLowerCase() : "timing";
        if (!MODES.contains(mode)) {
            throw new BadArgs("mode must be one of " + MODES + ", got '" + mode + "'");
        }
        model = required(a, "model");
        delegate = a.containsKey("delegate") ? a.get("delegate").trim().toLowerCase() : "xnnpack";
        if (!DELEGATES.contains(delegate)) {
            throw new BadArgs("delegate must be one of " + DELEGATES + ", got '" + delegate + "'");
        }
        threads = intArg(a, "threads", 4, 1, 64);
        warmup = intArg(a, "warmup", 10, 0, 100000);
        runs = intArg(a, "runs", 100, 1, MAX_RUNS);
        cooldownC = a.containsKey("cooldown_c") ? doubleArg(a, "cooldown_c", 0, 0.0, 150.0) : null;
        sustainedS = doubleArg(a, "sustained_s", 0, 0.0, 86400.0);
        targetFps = doubleArg(a, "target_fps", 30, 0.1, 1000.0);
        String o = a.get("out");
        out = o == null || o.trim().isEmpty() ? null : o.trim();
        inputs = accuracy() ? required(a, "inputs") : null;
        outputs = accuracy() ? required(a, "outputs") : null;
    }

    /** Whether this is an accuracy-mode request. */
    public boolean accuracy() {
        return mode.equals("accuracy");
    }

    /** Parse the extras; unknown keys are ignored (am may add its own). */
    public static BenchArgs parse(Map<String, String> extras) throws BadArgs {
        return new BenchArgs(extras);
    }

    private static String required(Map<String, String> a, String key) throws BadArgs {
        String v = a.get(key);
        if (v == null || v.trim().isEmpty()) {
            throw new BadArgs("missing argument -e " + key);
        }
        return v.trim();
    }

    private static int intArg(Map<String, String> a, String key, int dflt, int min, int max) throws BadArgs {
        String v = a.get(key);
        if (v == null) {
            return dflt;
        }
        int n;
        try {
            n = Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new BadArgs(key + " must be an integer, got '" + v + "'");
        }
        if (n < min || n > max) {
            throw new BadArgs(key + " must be in [" + min + ", " + max + "], got " + n);
        }
        return n;
    }

    private static double doubleArg(Map<String, String> a, String key, double dflt, double min, double max)
            throws BadArgs {
        String v = a.get(key);
        if (v == null) {
            return dflt;
        }
        double x;
        try {
            x = Double.parseDouble(v.trim());
        } catch (NumberFormatException e) {
            throw new BadArgs(key + " must be a number, got '" + v + "'");
        }
        if (Double.isNaN(x) || x < min || x > max) {
            throw new BadArgs(key + " must be in [" + min + ", " + max + "], got " + v.trim());
        }
        return x;
    }
}
