package com.blitzmask.bench;

/** Monotonic millisecond timing on {@link System#nanoTime()} (plain Java). */
public final class Timer {
    private long startNs;

    private Timer() {
        startNs = System.nanoTime();
    }

    /** A timer started now. */
    public static Timer start() {
        return new Timer();
    }

    /** Milliseconds since start (or the last {@link #lapMs()}). */
    public double elapsedMs() {
        return (System.nanoTime() - startNs) / 1e6;
    }

    /** Milliseconds since start (or the last lap), then restart. */
    public double lapMs() {
        long now = System.nanoTime();
        double ms = (now - startNs) / 1e6;
        startNs = now;
        return ms;
    }

    /** Sleep until {@code deadlineNs} on the nanoTime clock (returns at once when it has passed). */
    public static void sleepUntil(long deadlineNs) throws InterruptedException {
        long left = deadlineNs - System.nanoTime();
        if (left > 0) {
            Thread.sleep(left / 1000000L, (int) (left % 1000000L));
        }
    }
}
