package com.blitzmask.bench;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.lang.reflect.Field;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Host tests of the plain-Java core (no JUnit here): {@code java CoreTests MODE TMPDIR} with MODE core,
 * runtime-missing (no LiteRT on the class path) or fake-runtime (the fake LiteRT of core-test/fake-litert on it).
 * Prints "PASS name" / "FAIL name: why" per test and "JSON name <one line>" for the pytest to parse; exit 1 on
 * any failure.
 */
public final class CoreTests {
    private static int failures;
    private static int passes;
    private static File tmp;

    private interface Case {
        void run() throws Exception;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: CoreTests core|runtime-missing|fake-runtime TMPDIR");
            System.exit(2);
        }
        tmp = new File(args[1]);
        Map<String, Case> cases = new LinkedHashMap<String, Case>();
        if (args[0].equals("core")) {
            coreCases(cases);
        } else if (args[0].equals("runtime-missing")) {
            missingCases(cases);
        } else if (args[0].equals("fake-runtime")) {
            fakeCases(cases);
        } else {
            System.err.println("unknown mode " + args[0]);
            System.exit(2);
        }
        for (Map.Entry<String, Case> c : cases.entrySet()) {
            try {
                c.getValue().run();
                passes++;
                System.out.println("PASS " + c.getKey());
            } catch (Throwable t) {
                failures++;
                System.out.println("FAIL " + c.getKey() + ": " + t);
            }
        }
        System.out.println(passes + " passed, " + failures + " failed");
        System.exit(failures == 0 ? 0 : 1);
    }

    // ---- assertions ------------------------------------------------------------------------------------------

    static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    static void eq(Object expected, Object actual, String what) {
        if (expected == null ? actual != null : !expected.equals(actual)) {
            throw new AssertionError(what + ": expected <" + expected + "> got <" + actual + ">");
        }
    }

    static void near(double expected, double actual, double tol, String what) {
        if (Math.abs(expected - actual) > tol) {
            throw new AssertionError(what + ": expected " + expected + " ± " + tol + " got " + actual);
        }
    }

    static void raises(Class<? extends Throwable> type, Case c, String what) {
        try {
            c.run();
        } catch (Throwable t) {
            if (type.isInstance(t)) {
                return;
            }
            throw new AssertionError(what + ": expected " + type.getSimpleName() + " got " + t);
        }
        throw new AssertionError(what + ": expected " + type.getSimpleName() + ", nothing thrown");
    }

    static Map<String, String> extras(String... kv) {
        Map<String, String> m = new HashMap<String, String>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put(kv[i], kv[i + 1]);
        }
        return m;
    }

    static void write(File f, String text) throws IOException {
        f.getParentFile().mkdirs();
        Files.write(f.toPath(), text.getBytes(StandardCharsets.UTF_8));
    }

    static void emit(String name, String json) {
        System.out.println("JSON " + name + " " + json);
    }

    // ---- a fake sysfs tree -----------------------------------------------------------------------------------

    static SysFs fakeSys(String name) throws IOException {
        File root = new File(tmp, name);
        write(new File(root, "thermal/thermal_zone0/type"), "cpu-0\n");
        write(new File(root, "thermal/thermal_zone0/temp"), "45000\n");
        write(new File(root, "thermal/thermal_zone1/type"), "cpu-0\n");
        write(new File(root, "thermal/thermal_zone1/temp"), "47500\n");
        write(new File(root, "thermal/thermal_zone10/type"), "battery\n");
        write(new File(root, "thermal/thermal_zone10/temp"), "30\n");
        write(new File(root, "thermal/thermal_zone2/type"), "no-temp\n");
        write(new File(root, "thermal/cooling_device0/type"), "fan\n");
        write(new File(root, "cpu/cpu0/cpufreq/scaling_cur_freq"), "1800000\n");
        write(new File(root, "cpu/cpu2/cpufreq/scaling_cur_freq"), "2400000\n");
        write(new File(root, "cpu/cpu1/online"), "0\n");
        write(new File(root, "cpu/cpufreq/policy0/scaling_cur_freq"), "1\n");
        write(new File(root, "gpuclk"), "585000000\n");
        write(new File(root, "status"), "Name:\tjava\nVmPeak:\t  9000 kB\nVmHWM:\t   4321 kB\nVmRSS:\t 1000 kB\n");
        return sysAt(root);
    }

    static SysFs sysAt(File root) {
        return new SysFs(new File(root, "thermal"), new File(root, "cpu"), new File(root, "gpuclk"),
                new File(root, "status"));
    }

    // ---- core ----------------------------------------------------------------------------------------------

    static void coreCases(Map<String, Case> cases) {
        cases.put("args_defaults", new Case() {
            public void run() throws Exception {
                BenchArgs a = BenchArgs.parse(extras("model", "/data/m.tflite", "class", "ignored"));
                eq("/data/m.tflite", a.model, "model");
                eq("xnnpack", a.delegate, "delegate");
                eq(4, a.threads, "threads");
                eq(10, a.warmup, "warmup");
                eq(100, a.runs, "runs");
                eq(null, a.cooldownC, "cooldown");
                near(0, a.sustainedS, 0, "sustained");
                near(30, a.targetFps, 0, "fps");
                eq(null, a.out, "out");
            }
        });
        cases.put("args_full", new Case() {
            public void run() throws Exception {
                BenchArgs a = BenchArgs.parse(extras("model", " m.tflite ", "delegate", "GPU", "threads", "2",
                        "warmup", "0", "runs", "7", "cooldown_c", "41.5", "sustained_s", "3", "target_fps", "15",
                        "out", "/r/x.json"));
                eq("m.tflite", a.model, "model trimmed");
                eq("gpu", a.delegate, "delegate lower-cased");
                eq(2, a.threads, "threads");
                eq(0, a.warmup, "warmup");
                eq(7, a.runs, "runs");
                near(41.5, a.cooldownC, 0, "cooldown");
                near(3, a.sustainedS, 0, "sustained");
                near(15, a.targetFps, 0, "fps");
                eq("/r/x.json", a.out, "out");
            }
        });
        cases.put("args_errors", new Case() {
            public void run() throws Exception {
                String[][] bad = {
                    {"delegate", "cpu"},
                    {"model", "  "},
                    {"model", "m", "delegate", "tpu"},
                    {"model", "m", "threads", "0"},
                    {"model", "m", "threads", "four"},
                    {"model", "m", "runs", "0"},
                    {"model", "m", "runs", "20001"},
                    {"model", "m", "warmup", "-1"},
                    {"model", "m", "cooldown_c", "hot"},
                    {"model", "m", "target_fps", "0"},
                    {"model", "m", "sustained_s", "NaN"},
                };
                for (final String[] kv : bad) {
                    raises(BenchArgs.BadArgs.class, new Case() {
                        public void run() throws Exception {
                            BenchArgs.parse(extras(kv));
                        }
                    }, Arrays.toString(kv));
                }
                try {
                    BenchArgs.parse(extras("model", "m", "threads", "four"));
                } catch (BenchArgs.BadArgs e) {
                    check(e.getMessage().contains("threads") && e.getMessage().contains("four"), e.getMessage());
                }
            }
        });
        cases.put("args_accuracy", new Case() {
            public void run() throws Exception {
                BenchArgs a = BenchArgs.parse(extras("model", "m", "mode", " Accuracy ", "inputs", " /in ", "outputs",
                        "/out", "delegate", "gpu", "threads", "2"));
                check(a.accuracy(), "accuracy mode");
                eq("/in", a.inputs, "inputs");
                eq("/out", a.outputs, "outputs");
                eq("gpu", a.delegate, "delegate");
                BenchArgs t = BenchArgs.parse(extras("model", "m", "inputs", "/in"));
                check(!t.accuracy() && t.mode.equals("timing"), "timing by default");
                eq(null, t.inputs, "inputs unused in timing mode");
                String[][] bad = {
                    {"model", "m", "mode", "accuracy", "outputs", "/o"},
                    {"model", "m", "mode", "accuracy", "inputs", "/i"},
                    {"model", "m", "mode", "fast"},
                };
                for (final String[] kv : bad) {
                    raises(BenchArgs.BadArgs.class, new Case() {
                        public void run() throws Exception {
                            BenchArgs.parse(extras(kv));
                        }
                    }, Arrays.toString(kv));
                }
            }
        });
        cases.put("npy_round_trip", new Case() {
            public void run() throws Exception {
                File dir = new File(tmp, "npy");
                dir.mkdirs();
                Map<String, Object> written = new LinkedHashMap<String, Object>();
                for (int k = 0; k < Npy.DTYPES.size(); k++) {
                    String dtype = Npy.DTYPES.get(k);
                    int[] shape = NPY_SHAPES[k];
                    byte[] data = pattern(npyBytes(dtype, shape), k);
                    File f = new File(dir, dtype.toLowerCase() + ".npy");
                    writeNpy(f, dtype, shape, data);
                    Npy.Array back = Npy.parse(Files.readAllBytes(f.toPath()));
                    eq(dtype, back.dtype, "dtype");
                    check(Arrays.equals(shape, back.shape), "shape " + Arrays.toString(back.shape));
                    byte[] got = new byte[back.data.remaining()];
                    back.data.get(got);
                    check(Arrays.equals(data, got), dtype + " bytes");
                    check(Files.size(f.toPath()) % 64 == data.length % 64, "header aligned to 64 bytes");
                    written.put(dtype.toLowerCase(), f.getPath());
                }
                raises(IOException.class, new Case() {
                    public void run() throws Exception {
                        Npy.write(new ByteArrayOutputStream(), "INT64", new int[] {1}, ByteBuffer.allocate(8));
                    }
                }, "int64 not written");
                raises(IOException.class, new Case() {
                    public void run() throws Exception {
                        Npy.write(new ByteArrayOutputStream(), "INT8", new int[] {3}, ByteBuffer.allocate(2));
                    }
                }, "size mismatch");
                emit("npy_files", Json.write(written));
            }
        });
        cases.put("npy_reads_other_writers", new Case() {
            public void run() throws Exception {
                Npy.Array a = Npy.parse(npyFile("{'shape':(2,3),'fortran_order':False,'descr':'<i1'}\n",
                        new byte[] {1, 2, 3, -4, 5, 6}));
                eq("INT8", a.dtype, "'<i1' is int8");
                check(Arrays.equals(new int[] {2, 3}, a.shape), "shape");
                eq(-4, (int) a.data.get(3), "data");
                Npy.Array scalar = Npy.parse(npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n",
                        new byte[] {0, 0, (byte) 0x80, 0x3f}));
                eq(0, scalar.shape.length, "scalar");
                near(1.0, scalar.data.getFloat(0), 0, "little-endian 1.0f");
            }
        });
        cases.put("npy_rejects_bad_files", new Case() {
            public void run() throws Exception {
                String ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
                final byte[][] bad = {
                    "not numpy at all".getBytes(StandardCharsets.US_ASCII),
                    withVersion(npyFile(ok, new byte[8]), 2),
                    npyFile(ok.replace("False", "True"), new byte[8]),
                    npyFile(ok.replace("<f4", ">f4"), new byte[8]),
                    npyFile(ok.replace("<f4", "<f8"), new byte[16]),
                    npyFile(ok.replace("<f4", "|O"), new byte[8]),
                    npyFile(ok, new byte[7]),
                    npyFile(ok, new byte[9]),
                    npyFile(ok.replace("(2,)", "(2, x)"), new byte[8]),
                    npyFile("{'descr': '<f4'}\n", new byte[8]),
                };
                String[] why = {"not a .npy", "version 2.0", "Fortran", "'>f4'", "'<f8'", "'|O'", "header says",
                    "header says", "bad .npy shape", "'fortran_order'"};
                for (int i = 0; i < bad.length; i++) {
                    try {
                        Npy.parse(bad[i]);
                        throw new AssertionError("accepted bad file " + i);
                    } catch (IOException e) {
                        check(e.getMessage().contains(why[i]), i + ": " + e.getMessage());
                    }
                }
            }
        });
        cases.put("pack_round_trip", new Case() {
            public void run() throws Exception {
                File f = new File(tmp, "pack/t.pack");
                f.getParentFile().mkdirs();
                Pack.Writer w = new Pack.Writer(f, PACK_NAMES.length);
                for (int k = 0; k < PACK_NAMES.length; k++) {
                    String dtype = Npy.DTYPES.get(k);
                    w.add(PACK_NAMES[k], dtype, NPY_SHAPES[k], ByteBuffer.wrap(pattern(npyBytes(dtype, NPY_SHAPES[k]), k))
                            .asReadOnlyBuffer());  // read-only, as LiteRT's outputs are
                }
                w.finish();
                w.close();
                Pack.Reader r = new Pack.Reader(f);
                eq(PACK_NAMES.length, r.count, "count");
                for (int k = 0; k < PACK_NAMES.length; k++) {
                    Pack.Entry e = r.next();
                    eq(PACK_NAMES[k], e.name, "name");
                    eq(Npy.DTYPES.get(k), e.array.dtype, "dtype");
                    check(Arrays.equals(NPY_SHAPES[k], e.array.shape), "shape");
                    byte[] got = new byte[e.array.data.remaining()];
                    e.array.data.get(got);
                    check(Arrays.equals(pattern(npyBytes(e.array.dtype, e.array.shape), k), got), "bytes " + k);
                }
                eq(null, r.next(), "no more");
                r.close();
                Map<String, Object> files = new LinkedHashMap<String, Object>();
                files.put("pack", f.getPath());
                emit("pack_file", Json.write(files));
            }
        });
        cases.put("pack_rejects_bad_packs", new Case() {
            public void run() throws Exception {
                File good = new File(tmp, "pack/good.pack");
                Pack.Writer w = new Pack.Writer(good, 2);
                w.add("a", "INT8", new int[] {2}, ByteBuffer.wrap(new byte[] {1, 2}));
                w.add("b", "INT8", new int[] {3}, ByteBuffer.wrap(new byte[] {3, 4, 5}));
                w.finish();
                w.close();
                byte[] ok = Files.readAllBytes(good.toPath());
                byte[] version = ok.clone();
                version[7] = 2;
                byte[] count = ok.clone();
                count[8] = 3;
                byte[] name = ok.clone();
                name[14] = '$';
                byte[][] bad = {"garbage".getBytes(StandardCharsets.US_ASCII), version, Arrays.copyOf(ok, ok.length - 1),
                    Arrays.copyOf(ok, ok.length + 1), count, name};
                String[] why = {"bad0.pack: not a tensor pack", "bad1.pack: tensor pack version 2",
                    "bad2.pack: record 1 (b): holds 2 data bytes; its header says 3",
                    "bad3.pack: bytes after its 2 records", "bad4.pack: record 2: truncated", "bad5.pack: record 0: "};
                for (int i = 0; i < bad.length; i++) {
                    File f = new File(tmp, "pack/bad" + i + ".pack");
                    Files.write(f.toPath(), bad[i]);
                    try {
                        Pack.Reader r = new Pack.Reader(f);
                        while (r.next() != null) {
                            continue;
                        }
                        throw new AssertionError("accepted bad pack " + i);
                    } catch (IOException e) {
                        check(e.getMessage().startsWith(why[i]), i + ": " + e.getMessage());
                    }
                }
                final Pack.Writer short1 = new Pack.Writer(new File(tmp, "pack/short.pack"), 2);
                short1.add("x", "INT8", new int[] {1}, ByteBuffer.wrap(new byte[1]));
                raises(IOException.class, new Case() {
                    public void run() throws Exception {
                        short1.finish();
                    }
                }, "fewer tensors than announced");
                raises(IOException.class, new Case() {
                    public void run() throws Exception {
                        short1.add("x y", "INT8", new int[] {1}, ByteBuffer.wrap(new byte[1]));
                    }
                }, "a name the driver cannot take");
                short1.add("y", "INT8", new int[] {1}, ByteBuffer.wrap(new byte[1]));
                raises(IOException.class, new Case() {
                    public void run() throws Exception {
                        short1.add("z", "INT8", new int[] {1}, ByteBuffer.wrap(new byte[1]));
                    }
                }, "more tensors than announced");
                short1.close();
            }
        });
        cases.put("stats_nearest_rank", new Case() {
            public void run() {
                double[] v = new double[100];
                for (int i = 0; i < 100; i++) {
                    v[i] = 100 - i;  // 100 .. 1, unsorted on purpose
                }
                Stats s = Stats.of(v);
                near(50, s.p50, 0, "p50");
                near(90, s.p90, 0, "p90");
                near(99, s.p99, 0, "p99");
                near(50.5, s.mean, 1e-12, "mean");
                near(Math.sqrt((100.0 * 100 - 1) / 12.0), s.std, 1e-9, "population std");
                near(1, s.min, 0, "min");
                near(100, s.max, 0, "max");
                near(100, v[0], 0, "input not sorted in place");
                Stats small = Stats.of(new double[] {5, 1, 3});
                near(3, small.p50, 0, "p50 of 3");
                near(5, small.p90, 0, "p90 of 3");
                near(3, small.mean, 0, "mean of 3");
                Stats one = Stats.of(new double[] {2.5});
                near(2.5, one.p99, 0, "single");
                near(0, one.std, 0, "single std");
                raises(IllegalArgumentException.class, new Case() {
                    public void run() {
                        Stats.of(new double[0]);
                    }
                }, "empty");
                raises(IllegalArgumentException.class, new Case() {
                    public void run() {
                        Stats.percentile(new double[] {1}, 0);
                    }
                }, "p0");
            }
        });
        cases.put("json_writer", new Case() {
            public void run() {
                Map<String, Object> m = new LinkedHashMap<String, Object>();
                m.put("s", "a\"b\\c\nd\te\u0001f/é€");
                m.put("i", 42);
                m.put("l", 1234567890123L);
                m.put("d", 1.25);
                m.put("tiny", 1e-7);
                m.put("nan", Double.NaN);
                m.put("inf", Double.POSITIVE_INFINITY);
                m.put("t", true);
                m.put("n", null);
                m.put("list", Arrays.asList(1, "x", null, Arrays.asList()));
                m.put("arr", new double[] {0.5, 2});
                m.put("obj", new LinkedHashMap<String, Object>());
                String json = Json.write(m);
                check(!json.contains("\n"), "one line");
                check(json.startsWith("{\"s\":\"a\\\"b\\\\c\\nd\\te\\u0001f/é€\",\"i\":42,"), json);
                check(json.contains("\"nan\":null,\"inf\":null"), json);
                emit("json_writer", json);
            }
        });
        cases.put("result_builder", new Case() {
            public void run() {
                ResultBuilder r = new ResultBuilder("m.tflite", "gpu", 4, 10, 3);
                r.runsMs(new double[] {1.23456, 2.0004, 3});
                eq(Arrays.asList(1.235, 2.0, 3.0), r.get("runs_ms"), "rounded to µs");
                r.fail("unsupported_delegate", "no gpu\nhere");
                eq("no gpu here", r.get("error"), "one line");
                eq("unsupported_delegate", r.status(), "status");
                raises(IllegalArgumentException.class, new Case() {
                    public void run() {
                        new ResultBuilder("m", "cpu", 1, 1, 1).set("p50", 1.0);
                    }
                }, "unknown key");
                raises(IllegalArgumentException.class, new Case() {
                    public void run() {
                        new ResultBuilder("m", "cpu", 1, 1, 1).set("status", "fine");
                    }
                }, "bad status");
                r.sustained(2, 30, 60, 29.5, true, 0.5);
                emit("result_builder", r.toJson());
            }
        });
        cases.put("sysfs_fake_tree", new Case() {
            public void run() throws Exception {
                SysFs s = fakeSys("sys1");
                Map<String, Double> t = s.thermal();
                eq(Arrays.asList("cpu-0", "cpu-0@thermal_zone1", "battery"), new ArrayList<String>(t.keySet()),
                        "zones in numeric order, repeated type suffixed");
                near(45.0, t.get("cpu-0"), 1e-9, "millidegrees");
                near(47.5, t.get("cpu-0@thermal_zone1"), 1e-9, "dup");
                near(30.0, t.get("battery"), 1e-9, "degrees kept");
                near(47.5, s.hottest(), 1e-9, "hottest");
                Map<String, Long> c = s.clocks();
                eq(Arrays.asList("cpu0", "cpu2", "gpu"), new ArrayList<String>(c.keySet()), "clock keys");
                eq(1800000L, c.get("cpu0"), "cpu0 kHz");
                eq(585000L, c.get("gpu"), "gpu Hz → kHz");
                eq(4321L, s.peakMemoryKb(), "VmHWM");
                SysFs none = sysAt(new File(tmp, "does-not-exist"));
                check(none.thermal().isEmpty(), "no zones");
                eq(null, none.hottest(), "no hottest");
                check(none.clocks().containsKey("gpu") && none.clocks().get("gpu") == null, "gpu null");
                eq(null, none.peakMemoryKb(), "no status");
                eq(null, SysFs.celsius("n/a"), "garbage temp");
            }
        });
        cases.put("sysfs_real_proc", new Case() {
            public void run() {
                Long kb = new SysFs(null, null, null, new File("/proc/self/status")).peakMemoryKb();
                check(kb != null && kb > 1000, "VmHWM of this JVM: " + kb);
            }
        });
        cases.put("timer", new Case() {
            public void run() throws Exception {
                Timer t = Timer.start();
                Thread.sleep(20);
                double lap = t.lapMs();
                check(lap >= 19 && lap < 2000, "lap " + lap);
                check(t.elapsedMs() < lap, "lap restarts");
                long before = System.nanoTime();
                Timer.sleepUntil(before + 15000000L);
                check(System.nanoTime() - before >= 15000000L, "sleepUntil");
                Timer.sleepUntil(before);  // past: returns at once
            }
        });
        cases.put("clock_ratio", new Case() {
            public void run() {
                Map<String, Long> base = new HashMap<String, Long>();
                base.put("cpu0", 1000L);
                base.put("cpu4", 2000L);
                base.put("gpu", 500L);
                Map<String, Long> now = new HashMap<String, Long>(base);
                now.put("cpu4", 1500L);
                near(0.75, BenchRunner.clockRatio(base, now, false), 1e-12, "fastest cpu");
                now.put("gpu", 250L);
                near(0.5, BenchRunner.clockRatio(base, now, true), 1e-12, "gpu counted with gpu delegate");
                near(0.75, BenchRunner.clockRatio(base, now, false), 1e-12, "gpu ignored otherwise");
                eq(null, BenchRunner.clockRatio(new HashMap<String, Long>(), now, false), "nothing readable");
            }
        });
        cases.put("write_result", new Case() {
            public void run() throws Exception {
                File f = new File(tmp, "out/deeper/r.json");
                check(BenchRunner.writeResult(f.getPath(), "{\"a\":1}"), "written");
                eq("{\"a\":1}\n", new String(Files.readAllBytes(f.toPath()), StandardCharsets.UTF_8), "content");
                write(new File(tmp, "plainfile"), "x");
                check(!BenchRunner.writeResult(new File(tmp, "plainfile/r.json").getPath(), "{}"), "parent is a file");
            }
        });
        cases.put("fill_patterns", new Case() {
            public void run() {
                ByteBuffer f = ByteBuffer.allocate(12).order(java.nio.ByteOrder.nativeOrder());
                LiteRt.fill(f, "FLOAT32");
                near(0, f.getFloat(0), 0, "f0");
                near(37 / 255f, f.getFloat(4), 1e-7, "f1");
                ByteBuffer i8 = ByteBuffer.allocate(3);
                LiteRt.fill(i8, "INT8");
                eq(-128, (int) i8.get(0), "int8 first");
                eq(-91, (int) i8.get(1), "int8 second");
                eq(0, i8.position(), "rewound");
                ByteBuffer h = ByteBuffer.allocate(4).order(java.nio.ByteOrder.nativeOrder());
                LiteRt.fill(h, "FLOAT16");
                eq((short) 0, h.getShort(0), "half 0");
                eq((short) 0x3c00, LiteRt.halfOf(1f), "half 1.0");
                eq((short) 0x3800, LiteRt.halfOf(0.5f), "half 0.5");
                raises(IllegalArgumentException.class, new Case() {
                    public void run() {
                        LiteRt.fill(ByteBuffer.allocate(4), "STRING");
                    }
                }, "string input");
            }
        });
    }

    // ---- .npy files -----------------------------------------------------------------------------------------

    static final int[][] NPY_SHAPES = {{2, 3, 4}, {5}, {1, 4, 4, 3}, {}, {3, 2}};
    /** The names of CoreTests.pack_round_trip's tensors, one per dtype (NPY_SHAPES, pattern(k)). */
    static final String[] PACK_NAMES = {"img.7", "b", "x_1", "s-0", "Last.2"};

    static int npyBytes(String dtype, int[] shape) {
        int n = dtype.equals("FLOAT32") || dtype.equals("INT32") ? 4 : dtype.equals("FLOAT16") ? 2 : 1;
        for (int d : shape) {
            n *= d;
        }
        return n;
    }

    /** {@code n} bytes of a pattern that differs per {@code seed}. */
    static byte[] pattern(int n, int seed) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 37 + seed * 11 + 5);
        }
        return b;
    }

    /** A .npy file of version 1.0 with a header written by hand (no alignment) and {@code data}. */
    static byte[] npyFile(String header, byte[] data) {
        byte[] h = header.getBytes(StandardCharsets.ISO_8859_1);
        byte[] out = new byte[10 + h.length + data.length];
        byte[] magic = {(byte) 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (byte) h.length, (byte) (h.length >>> 8)};
        System.arraycopy(magic, 0, out, 0, 10);
        System.arraycopy(h, 0, out, 10, h.length);
        System.arraycopy(data, 0, out, 10 + h.length, data.length);
        return out;
    }

    static byte[] withVersion(byte[] file, int major) {
        file[6] = (byte) major;
        return file;
    }

    static void writeNpy(File f, String dtype, int[] shape, byte[] data) throws IOException {
        f.getParentFile().mkdirs();
        OutputStream out = new FileOutputStream(f);
        try {
            Npy.write(out, dtype, shape, ByteBuffer.wrap(data));
        } finally {
            out.close();
        }
    }

    /** A pack of INT8 (1, 4, 4, 3) inputs named {@code names}, each the pattern of its name's first letter. */
    static File inputPack(File f, String... names) throws IOException {
        f.getParentFile().mkdirs();
        Pack.Writer w = new Pack.Writer(f, names.length);
        for (String name : names) {
            w.add(name, "INT8", new int[] {1, 4, 4, 3}, ByteBuffer.wrap(pattern(48, name.charAt(0))));
        }
        w.finish();
        w.close();
        return f;
    }

    // ---- without a runtime ---------------------------------------------------------------------------------

    static BenchRunner runner(SysFs sys, double cooldownMaxS) {
        Map<String, Object> device = new LinkedHashMap<String, Object>();
        device.put("fingerprint", "host/test:1/T:user/keys");
        device.put("model", "host-jvm");
        return new BenchRunner(sys, CoreTests.class.getClassLoader(), device, null, cooldownMaxS);
    }

    static void missingCases(Map<String, Case> cases) {
        cases.put("runtime_missing", new Case() {
            public void run() throws Exception {
                File model = new File(tmp, "m.tflite");
                write(model, "inputs=FLOAT32:1x2;outputs=FLOAT32:1x2");
                ResultBuilder r = runner(fakeSys("sysm"), 5).run(extras("model", model.getPath(), "delegate", "gpu"));
                eq("runtime_missing", r.status(), "status");
                check(((String) r.get("error")).contains("LITERT_AAR"), "error says how to fix: " + r.get("error"));
                eq(null, r.get("delegate_applied"), "nothing applied");
                eq(4321L, r.get("peak_memory_kb"), "memory still reported");
                emit("runtime_missing", r.toJson());
            }
        });
        cases.put("accuracy_runtime_missing", new Case() {
            public void run() throws Exception {
                File model = new File(tmp, "m.tflite");
                write(model, "inputs=INT8:1x4;outputs=INT8:1x4");
                ResultBuilder r = runner(fakeSys("sysam"), 5).run(extras("model", model.getPath(), "mode",
                        "accuracy", "inputs", new File(tmp, "none").getPath(), "outputs",
                        new File(tmp, "out").getPath(), "delegate", "xnnpack", "threads", "2"));
                eq("runtime_missing", r.status(), "status");
                check(((String) r.get("error")).contains("LITERT_AAR"), "error says how to fix: " + r.get("error"));
                eq(0, r.get("samples"), "nothing run");
                emit("accuracy_runtime_missing", r.toJson());
            }
        });
        cases.put("accuracy_bad_args", new Case() {
            public void run() throws Exception {
                ResultBuilder r = runner(fakeSys("sysab"), 5).run(extras("model", "m", "mode", "accuracy",
                        "inputs", "/in", "threads", "x"));
                eq("error", r.status(), "status");
                emit("accuracy_bad_args", r.toJson());
            }
        });
        cases.put("bad_args_result", new Case() {
            public void run() throws Exception {
                ResultBuilder r = runner(fakeSys("sysb"), 5).run(extras("model", "m", "threads", "many"));
                eq("error", r.status(), "status");
                check(((String) r.get("error")).contains("threads"), "names the argument");
                emit("bad_args", r.toJson());
            }
        });
    }

    // ---- with the fake runtime -------------------------------------------------------------------------------

    static Object fakeStatic(String cls, String field) throws Exception {
        Field f = Class.forName(cls).getField(field);
        return f.get(null);
    }

    static ResultBuilder fakeRun(String sysName, String delegate, String modelText, String... more) throws Exception {
        File model = new File(tmp, sysName + ".tflite");
        write(model, modelText);
        List<String> kv = new ArrayList<String>(Arrays.asList("model", model.getPath(), "delegate", delegate,
                "threads", "3", "warmup", "2", "runs", "5"));
        kv.addAll(Arrays.asList(more));
        return runner(fakeSys(sysName), 10).run(extras(kv.toArray(new String[0])));
    }

    static final String MODEL = "inputs=FLOAT32:1x8x8x3,INT8:1x4;outputs=FLOAT32:1x10,UINT8:1x3;busy_us=1000";
    static final String ACC_MODEL = "inputs=INT8:1x4x4x3:images;outputs=FLOAT32:1x2x2x2:heat,INT8:1x5:box,UINT8:3";

    static ResultBuilder accuracyRun(String name, String delegate, String modelText, File inputs, File outputs)
            throws Exception {
        File model = new File(tmp, name + ".tflite");
        write(model, modelText);
        return runner(fakeSys(name), 10).run(extras("model", model.getPath(), "mode", "accuracy", "inputs",
                inputs.getPath(), "outputs", outputs.getPath(), "delegate", delegate, "threads", "2"));
    }

    static void fakeCases(Map<String, Case> cases) {
        cases.put("cpu_ok", new Case() {
            public void run() throws Exception {
                ResultBuilder r = fakeRun("cpu", "cpu", MODEL);
                eq("ok", r.status(), "status (" + r.get("error") + ")");
                eq("cpu", r.get("delegate_applied"), "applied");
                eq(false, r.get("fallback"), "fallback");
                eq("fake-2.16.1", r.get("runtime_version"), "version");
                List<?> runs = (List<?>) r.get("runs_ms");
                eq(5, runs.size(), "every timed run");
                for (Object v : runs) {
                    check((Double) v >= 0.9, "a run takes the model's 1 ms: " + v);
                }
                check((Double) r.get("init_ms") >= 0, "init");
                check((Double) r.get("first_inference_ms") >= 0.9, "first");
                Object opts = fakeStatic("org.tensorflow.lite.Interpreter", "lastOptions");
                eq(3, opts.getClass().getField("threads").get(opts), "threads passed");
                eq(false, opts.getClass().getField("xnnpack").get(opts), "XNNPACK off for cpu");
                check(!((Map<?, ?>) r.get("thermal_before")).isEmpty(), "thermal");
                // inputs: FLOAT32 pattern(i)/255 (sum of bytes is fixed) and INT8 pattern - 128
                long sum = (Long) fakeStatic("org.tensorflow.lite.Interpreter", "lastChecksum");
                ResultBuilder again = fakeRun("cpu2", "cpu", MODEL);
                eq(sum, fakeStatic("org.tensorflow.lite.Interpreter", "lastChecksum"), "deterministic inputs");
                check(sum > 0, "inputs filled");
                eq("ok", again.status(), "again");
                emit("cpu_ok", r.toJson());
            }
        });
        cases.put("xnnpack_ok", new Case() {
            public void run() throws Exception {
                ResultBuilder r = fakeRun("xnn", "xnnpack", MODEL);
                eq("ok", r.status(), "status");
                eq("xnnpack", r.get("delegate_applied"), "applied");
                Object opts = fakeStatic("org.tensorflow.lite.Interpreter", "lastOptions");
                eq(true, opts.getClass().getField("xnnpack").get(opts), "XNNPACK on");
            }
        });
        cases.put("gpu_falls_back", new Case() {
            public void run() throws Exception {
                int closedBefore = (Integer) fakeStatic("org.tensorflow.lite.gpu.GpuDelegate", "closed");
                ResultBuilder r = fakeRun("gpu", "gpu", MODEL);
                eq("ok", r.status(), "status");
                eq("cpu", r.get("delegate_applied"), "applied");
                eq(true, r.get("fallback"), "fallback");
                eq(5, ((List<?>) r.get("runs_ms")).size(), "still measured on CPU");
                eq(closedBefore + 1, fakeStatic("org.tensorflow.lite.gpu.GpuDelegate", "closed"), "delegate freed");
                emit("gpu_fallback", r.toJson());
            }
        });
        cases.put("nnapi_applied", new Case() {
            public void run() throws Exception {
                ResultBuilder r = fakeRun("nnapi", "nnapi", MODEL);
                eq("ok", r.status(), "status");
                eq("nnapi", r.get("delegate_applied"), "applied");
                eq(false, r.get("fallback"), "no fallback");
                Object opts = fakeStatic("org.tensorflow.lite.Interpreter", "lastOptions");
                eq(1, ((List<?>) opts.getClass().getField("delegates").get(opts)).size(), "delegate added");
            }
        });
        cases.put("qnn_unsupported", new Case() {
            public void run() throws Exception {
                ResultBuilder r = fakeRun("qnn", "qnn", MODEL);
                eq("unsupported_delegate", r.status(), "status");
                check(((String) r.get("error")).contains("com.qualcomm.qti.QnnDelegate"), "names the class");
                eq(0, ((List<?>) r.get("runs_ms")).size(), "nothing measured");
                emit("qnn_unsupported", r.toJson());
            }
        });
        cases.put("bad_model", new Case() {
            public void run() throws Exception {
                int closed = (Integer) fakeStatic("org.tensorflow.lite.Interpreter", "closed");
                ResultBuilder r = fakeRun("bad", "gpu", "bad model");
                eq("error", r.status(), "status");
                check(((String) r.get("error")).contains("Flatbuffer"), "says why: " + r.get("error"));
                eq(closed, fakeStatic("org.tensorflow.lite.Interpreter", "closed"), "nothing to close");
                ResultBuilder missing = runner(fakeSys("nofile"), 1).run(
                        extras("model", new File(tmp, "nope.tflite").getPath(), "delegate", "cpu"));
                eq("error", missing.status(), "missing model");
                check(((String) missing.get("error")).contains("model not found"), "missing model message");
                ResultBuilder str = fakeRun("str", "cpu", "inputs=STRING:1x4;outputs=FLOAT32:1");
                eq("error", str.status(), "string input");
                check(((String) str.get("error")).contains("STRING"), "names the dtype");
            }
        });
        cases.put("native_library_missing", new Case() {
            public void run() throws Exception {
                ResultBuilder r = fakeRun("nolib", "gpu", "nolib");
                eq("runtime_missing", r.status(), "status");
                check(((String) r.get("error")).contains("libtensorflowlite_jni.so"), "names the library");
            }
        });
        cases.put("accuracy_end_to_end", new Case() {
            public void run() throws Exception {
                File in = inputPack(new File(tmp, "acc/in.pack"), "b", "c.1", "a");
                File out = new File(tmp, "acc/out/o.pack");
                ResultBuilder r = accuracyRun("acc", "cpu", ACC_MODEL, in, out);
                eq("ok", r.status(), "status (" + r.get("error") + ")");
                eq(3, r.get("samples"), "every input");
                eq(3, ((List<?>) r.get("samples_ms")).size(), "ms per sample");
                eq("cpu", r.get("delegate_applied"), "applied");
                Object opts = fakeStatic("org.tensorflow.lite.Interpreter", "lastOptions");
                eq(2, opts.getClass().getField("threads").get(opts), "threads passed");
                Pack.Reader outputs = new Pack.Reader(out);
                List<String> names = new ArrayList<String>();
                Map<String, Npy.Array> byName = new HashMap<String, Npy.Array>();
                for (Pack.Entry e = outputs.next(); e != null; e = outputs.next()) {
                    names.add(e.name);
                    byName.put(e.name, e.array);
                }
                outputs.close();
                eq(Arrays.asList("b.0", "b.1", "b.2", "c.1.0", "c.1.1", "c.1.2", "a.0", "a.1", "a.2"), names,
                        "one tensor per input and output, in the input pack's order");
                Npy.Array heat = byName.get("a.0");
                eq("FLOAT32", heat.dtype, "output dtype");
                check(Arrays.equals(new int[] {1, 2, 2, 2}, heat.shape), "output shape");
                byte[] input = pattern(48, 'a');
                for (int j = 0; j < 32; j++) {
                    eq((byte) (input[j] + 1), heat.data.get(j), "output 0 byte " + j);
                }
                eq((byte) (input[2] + 3), byName.get("a.2").data.get(2), "output 2");
                // the last input run was the pack's last (a), not the last by name (c.1)
                long sum = 0;
                for (byte x : input) {
                    sum += x & 0xff;
                }
                eq(sum, fakeStatic("org.tensorflow.lite.Interpreter", "lastChecksum"), "in pack order");
                Map<String, Object> files = new LinkedHashMap<String, Object>();
                files.put("inputs", in.getPath());
                files.put("outputs", out.getPath());
                emit("accuracy_files", Json.write(files));
                emit("accuracy_ok", r.toJson());
            }
        });
        cases.put("accuracy_gpu_falls_back", new Case() {
            public void run() throws Exception {
                File in = inputPack(new File(tmp, "accg/in.pack"), "x");
                File out = new File(tmp, "accg/out.pack");
                ResultBuilder r = accuracyRun("accg", "gpu", ACC_MODEL, in, out);
                eq("ok", r.status(), "status");
                eq("cpu", r.get("delegate_applied"), "applied");
                eq(true, r.get("fallback"), "fallback");
                Pack.Reader outputs = new Pack.Reader(out);
                eq(3, outputs.count, "outputs written on the CPU");
                outputs.close();
                ResultBuilder qnn = accuracyRun("accq", "qnn", ACC_MODEL, in, new File(tmp, "accq/out.pack"));
                eq("unsupported_delegate", qnn.status(), "qnn");
            }
        });
        cases.put("accuracy_mismatch_names_the_input", new Case() {
            public void run() throws Exception {
                File in = new File(tmp, "accm/in.pack");
                in.getParentFile().mkdirs();
                Pack.Writer w = new Pack.Writer(in, 2);
                w.add("a", "INT8", new int[] {1, 4, 4, 3}, ByteBuffer.wrap(pattern(48, 1)));
                w.add("b_float", "FLOAT32", new int[] {1, 4, 4, 3}, ByteBuffer.wrap(pattern(192, 2)));
                w.finish();
                w.close();
                ResultBuilder r = accuracyRun("accm", "cpu", ACC_MODEL, in, new File(tmp, "accm/out.pack"));
                eq("error", r.status(), "status");
                String error = (String) r.get("error");
                check(error.equals("b_float: float32 (1, 4, 4, 3) does not match the model's input int8 (1, 4, 4, 3)"),
                        error);
                eq(1, r.get("samples"), "stopped at the bad input");
                File shape = new File(tmp, "accs/in.pack");
                shape.getParentFile().mkdirs();
                Pack.Writer s3 = new Pack.Writer(shape, 1);
                s3.add("s", "INT8", new int[] {4, 4, 3}, ByteBuffer.wrap(pattern(48, 1)));
                s3.finish();
                s3.close();
                String e2 = (String) accuracyRun("accs", "cpu", ACC_MODEL, shape, new File(tmp, "accs/out.pack"))
                        .get("error");
                check(e2.startsWith("s: int8 (4, 4, 3) does not match"), e2);
                emit("accuracy_mismatch", r.toJson());
            }
        });
        cases.put("accuracy_bad_packs", new Case() {
            public void run() throws Exception {
                File out = new File(tmp, "accb/out.pack");
                String missing = (String) accuracyRun("accb1", "cpu", ACC_MODEL, new File(tmp, "nope.pack"), out)
                        .get("error");
                check(missing.startsWith("input pack not found: "), missing);
                File empty = new File(tmp, "accb/empty.pack");
                empty.getParentFile().mkdirs();
                new Pack.Writer(empty, 0).close();
                String none = (String) accuracyRun("accb2", "cpu", ACC_MODEL, empty, out).get("error");
                check(none.equals("0 inputs in empty.pack: 1 to 20000 per request"), none);
                File corrupt = new File(tmp, "accb/broken.pack");
                write(corrupt, "garbage");
                String bad = (String) accuracyRun("accb3", "cpu", ACC_MODEL, corrupt, out).get("error");
                check(bad.equals("broken.pack: not a tensor pack"), bad);
                File in = inputPack(new File(tmp, "accb/in.pack"), "a", "b");
                byte[] whole = Files.readAllBytes(in.toPath());
                File cut = new File(tmp, "accb/cut.pack");
                Files.write(cut.toPath(), Arrays.copyOf(whole, whole.length - 5));
                ResultBuilder truncated = accuracyRun("accb4", "cpu", ACC_MODEL, cut, out);
                String cutError = (String) truncated.get("error");
                check(cutError.startsWith("cut.pack: record 1 (b): holds 43 data bytes"), cutError);
                eq(1, truncated.get("samples"), "the first input ran");
                write(new File(tmp, "accb/file"), "x");
                String blocked = (String) accuracyRun("accb5", "cpu", ACC_MODEL, in, new File(tmp, "accb/file/o.pack"))
                        .get("error");
                check(blocked.contains("cannot create the folder of the output pack"), blocked);
                String two = (String) accuracyRun("accb6", "cpu", MODEL, in, out).get("error");
                check(two.contains("one input") && two.contains("has 2"), two);
                String i64 = (String) accuracyRun("accb7", "cpu", "inputs=INT8:1x4x4x3;outputs=INT64:2:ids", in, out)
                        .get("error");
                check(i64.contains("output 0 (ids) is INT64"), i64);
            }
        });
        cases.put("sustained_steady", new Case() {
            public void run() throws Exception {
                ResultBuilder r = fakeRun("sus", "cpu", MODEL, "sustained_s", "1", "target_fps", "40");
                eq("ok", r.status(), "status");
                Map<?, ?> s = (Map<?, ?>) r.get("sustained");
                int frames = (Integer) s.get("frames");
                // Paced: never above 40 fps although a frame takes 1 ms; the lower bound leaves room for a busy box.
                check(frames >= 15 && frames <= 42, "at most 40 frames in 1 s: " + frames);
                double fps = (Double) s.get("achieved_fps");
                check(fps >= 15 && fps <= 42, "paced at the target: " + fps);
                eq(false, s.get("throttled"), "steady clocks");
                near(1.0, (Double) s.get("clocks_min_ratio"), 1e-12, "ratio");
                emit("sustained", r.toJson());
            }
        });
        cases.put("sustained_throttled", new Case() {
            public void run() throws Exception {
                final File freq = new File(tmp, "thr/cpu/cpu2/cpufreq/scaling_cur_freq");
                final File freq0 = new File(tmp, "thr/cpu/cpu0/cpufreq/scaling_cur_freq");
                Thread slow = new Thread(new Runnable() {
                    public void run() {
                        try {
                            Thread.sleep(700);
                            write(freq, "1200000\n");
                            write(freq0, "1000000\n");
                        } catch (Exception e) {
                            throw new RuntimeException(e);
                        }
                    }
                });
                File model = new File(tmp, "thr.tflite");
                write(model, MODEL);
                SysFs sys = fakeSys("thr");
                slow.start();
                ResultBuilder r = runner(sys, 5).run(extras("model", model.getPath(), "delegate", "cpu", "warmup",
                        "0", "runs", "1", "sustained_s", "2.2", "target_fps", "30"));
                slow.join();
                Map<?, ?> s = (Map<?, ?>) r.get("sustained");
                eq(true, s.get("throttled"), "throttled");
                near(0.5, (Double) s.get("clocks_min_ratio"), 1e-12, "fastest core 2.4 GHz → 1.2 GHz");
            }
        });
        cases.put("cooldown_waits", new Case() {
            public void run() throws Exception {
                final File hot = new File(tmp, "cool/thermal/thermal_zone1/temp");
                SysFs sys = fakeSys("cool");
                write(hot, "80000\n");
                Thread cool = new Thread(new Runnable() {
                    public void run() {
                        try {
                            Thread.sleep(1200);
                            write(hot, "39000\n");
                        } catch (Exception e) {
                            throw new RuntimeException(e);
                        }
                    }
                });
                File model = new File(tmp, "cool.tflite");
                write(model, MODEL);
                long t0 = System.nanoTime();
                cool.start();
                ResultBuilder r = runner(sys, 20).run(extras("model", model.getPath(), "delegate", "cpu", "runs",
                        "1", "cooldown_c", "46"));
                double waited = (System.nanoTime() - t0) / 1e9;
                cool.join();
                eq("ok", r.status(), "status");
                check(waited >= 1.2 && waited < 10, "waited for the zone to cool: " + waited);
                near(45.0, ((Map<?, ?>) r.get("thermal_before")).get("cpu-0") == null ? -1
                        : (Double) ((Map<?, ?>) r.get("thermal_before")).get("cpu-0"), 1e-9, "measured after");
                near(39.0, (Double) ((Map<?, ?>) r.get("thermal_before")).get("cpu-0@thermal_zone1"), 1e-9,
                        "cooled zone");
                long t1 = System.nanoTime();
                write(hot, "90000\n");
                ResultBuilder capped = runner(sys, 1).run(extras("model", model.getPath(), "delegate", "cpu", "runs",
                        "1", "cooldown_c", "46"));
                double waited2 = (System.nanoTime() - t1) / 1e9;
                eq("ok", capped.status(), "measures anyway after the limit");
                check(waited2 >= 1 && waited2 < 5, "capped wait: " + waited2);
            }
        });
    }
}
