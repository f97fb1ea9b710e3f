package com.blitzmask.bench;

import java.util.Arrays;

/** Latency summary of the timed runs: nearest-rank percentiles, mean, population std, min, max (plain Java). */
public final class Stats {
    public final int count;
    public final double p50;
    public final double p90;
    public final double p99;
    public final double mean;
    public final double std;
    public final double min;
    public final double max;

    private Stats(double[] values) {
        if (values.length == 0) {
            throw new IllegalArgumentException("no values");
        }
        double[] s = values.clone();
        Arrays.sort(s);
        count = s.length;
        p50 = percentile(s, 50);
        p90 = percentile(s, 90);
        p99 = percentile(s, 99);
        double sum = 0;
        for (double v : s) {
            sum += v;
        }
        mean = sum / count;
        double sq = 0;
        for (double v : s) {
            sq += (v - mean) * (v - mean);
        }
        std = Math.sqrt(sq / count);
        min = s[0];
        max = s[count - 1];
    }

    /** Summarise a non-empty array (IllegalArgumentException when empty). */
    public static Stats of(double[] values) {
        return new Stats(values);
    }

    /** Nearest-rank percentile of sorted values: the ceil(p/100·n)-th smallest (1-based), p in (0, 100]. */
    public static double percentile(double[] sorted, double p) {
        if (sorted.length == 0 || p <= 0 || p > 100) {
            throw new IllegalArgumentException("percentile " + p + " of " + sorted.length + " values");
        }
        int rank = (int) Math.ceil(p / 100.0 * sorted.length);
        return sorted[Math.max(rank, 1) - 1];
    }

    @Override
    public String toString() {
        return String.format(
                java.util.Locale.ROOT,
                "n=%d p50=%.3f p90=%.3f p99=%.3f mean=%.3f std=%.3f min=%.3f max=%.3f ms",
                count, p50, p90, p99, mean, std, min, max);
    }
}
