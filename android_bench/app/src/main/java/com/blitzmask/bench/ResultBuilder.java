package com.blitzmask.bench;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The schema-1 result JSON of one request, timing or accuracy mode: every key of its mode always present (plain
 * Java).
 */
public final class ResultBuilder {
    public static final int SCHEMA = 1;
    public static final String APP_VERSION = "0.3.0";
    public static final List<String> STATUSES =
            Collections.unmodifiableList(Arrays.asList("ok", "runtime_missing", "unsupported_delegate", "error"));
    /** Every key of a schema-1 result, in output order. */
    public static final List<String> KEYS = Collections.unmodifiableList(Arrays.asList(
            "schema", "status", "error", "model", "delegate_requested", "delegate_applied", "fallback",
            "fallback_ops", "threads", "warmup", "runs", "init_ms", "first_inference_ms", "runs_ms",
            "peak_memory_kb", "thermal_before", "thermal_after", "clocks_before", "clocks_after", "sustained",
            "runtime", "runtime_version", "app_version", "device"));
    /** Every key of an accuracy-mode result, in output order. */
    public static final List<String> ACCURACY_KEYS = Collections.unmodifiableList(Arrays.asList(
            "schema", "mode", "status", "error", "model", "inputs", "outputs", "delegate_requested",
            "delegate_applied", "fallback", "threads", "init_ms", "samples", "samples_ms", "output_tensors",
            "peak_memory_kb", "runtime", "runtime_version", "app_version", "device"));

    private final List<String> keys;
    private final Map<String, Object> r = new LinkedHashMap<String, Object>();

    /** A timing result with status "error", nothing measured, and the request's settings filled in. */
    public ResultBuilder(String model, String delegate, Integer threads, Integer warmup, Integer runs) {
        keys = KEYS;
        r.put("schema", SCHEMA);
        r.put("status", "error");
        r.put("error", null);
        r.put("model", model);
        r.put("delegate_requested", delegate);
        r.put("delegate_applied", null);
        r.put("fallback", false);
        r.put("fallback_ops", new ArrayList<String>());
        r.put("threads", threads);
        r.put("warmup", warmup);
        r.put("runs", runs);
        r.put("init_ms", null);
        r.put("first_inference_ms", null);
        r.put("runs_ms", new ArrayList<Double>());
        r.put("peak_memory_kb", null);
        r.put("thermal_before", new LinkedHashMap<String, Double>());
        r.put("thermal_after", new LinkedHashMap<String, Double>());
        r.put("clocks_before", new LinkedHashMap<String, Long>());
        r.put("clocks_after", new LinkedHashMap<String, Long>());
        r.put("sustained", null);
        r.put("runtime", "litert");
        r.put("runtime_version", null);
        r.put("app_version", APP_VERSION);
        r.put("device", new LinkedHashMap<String, Object>());
    }

    private ResultBuilder(List<String> keys) {
        this.keys = keys;
    }

    /** An accuracy result with status "error", nothing run, and the request's settings filled in. */
    public static ResultBuilder accuracy(String model, String delegate, Integer threads, String inputs,
            String outputs) {
        ResultBuilder b = new ResultBuilder(ACCURACY_KEYS);
        Map<String, Object> r = b.r;
        r.put("schema", SCHEMA);
        r.put("mode", "accuracy");
        r.put("status", "error");
        r.put("error", null);
        r.put("model", model);
        r.put("inputs", inputs);
        r.put("outputs", outputs);
        r.put("delegate_requested", delegate);
        r.put("delegate_applied", null);
        r.put("fallback", false);
        r.put("threads", threads);
        r.put("init_ms", null);
        r.put("samples", 0);
        r.put("samples_ms", new ArrayList<Double>());
        r.put("output_tensors", new ArrayList<Object>());
        r.put("peak_memory_kb", null);
        r.put("runtime", "litert");
        r.put("runtime_version", null);
        r.put("app_version", APP_VERSION);
        r.put("device", new LinkedHashMap<String, Object>());
        return b;
    }

    /** The result of a request that did not parse or crashed: its mode's keys, its settings as given. */
    public static ResultBuilder forRequest(Map<String, String> extras) {
        String mode = extras.get("mode");
        if (mode != null && mode.trim().equalsIgnoreCase("accuracy")) {
            return accuracy(extras.get("model"), extras.get("delegate"), intOrNull(extras.get("threads")),
                    extras.get("inputs"), extras.get("outputs"));
        }
        return new ResultBuilder(extras.get("model"), extras.get("delegate"), intOrNull(extras.get("threads")),
                intOrNull(extras.get("warmup")), intOrNull(extras.get("runs")));
    }

    private static Integer intOrNull(String s) {
        try {
            return s == null ? null : Integer.valueOf(s.trim());
        } catch (NumberFormatException e) {
            return null;
        }
    }

    /** Record an opened session: its init time, the delegate it applied and whether it fell back (why: stderr). */
    public ResultBuilder opened(LiteRt.Session session, double initMs) {
        set("init_ms", roundUs(initMs));
        set("delegate_applied", session.delegateApplied);
        set("fallback", session.fallback);
        if (session.fallback) {
            System.err.println("blitzmask: " + session.fallbackReason);
        }
        return this;
    }

    /** Set one key; unknown keys and bad statuses are programming errors (IllegalArgumentException). */
    public ResultBuilder set(String key, Object value) {
        if (!keys.contains(key)) {
            throw new IllegalArgumentException("not a schema-1 key: " + key);
        }
        if (key.equals("status") && !STATUSES.contains(value)) {
            throw new IllegalArgumentException("bad status: " + value);
        }
        r.put(key, value);
        return this;
    }

    /** Mark the cell failed with a status and one-line message. */
    public ResultBuilder fail(String status, String error) {
        set("status", status);
        return set("error", error == null ? status : error.replace('\n', ' '));
    }

    public Object get(String key) {
        return r.get(key);
    }

    public String status() {
        return (String) r.get("status");
    }

    /** Timed runs in ms, rounded to the microsecond. */
    public ResultBuilder runsMs(double[] runs) {
        List<Double> list = new ArrayList<Double>(runs.length);
        for (double v : runs) {
            list.add(roundUs(v));
        }
        return set("runs_ms", list);
    }

    /** {seconds, target_fps, frames, achieved_fps, throttled, clocks_min_ratio} of the sustained mode. */
    public ResultBuilder sustained(double seconds, double targetFps, int frames, double achievedFps,
            boolean throttled, Double clocksMinRatio) {
        Map<String, Object> s = new LinkedHashMap<String, Object>();
        s.put("seconds", seconds);
        s.put("target_fps", targetFps);
        s.put("frames", frames);
        s.put("achieved_fps", achievedFps);
        s.put("throttled", throttled);
        s.put("clocks_min_ratio", clocksMinRatio);
        return set("sustained", s);
    }

    /** The result as one line of JSON. */
    public String toJson() {
        return Json.write(r);
    }

    /** ms rounded to 3 decimals (µs resolution). */
    public static double roundUs(double ms) {
        return Math.round(ms * 1000.0) / 1000.0;
    }
}
