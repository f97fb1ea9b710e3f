package com.blitzmask.bench;

import java.io.BufferedReader;
import java.io.File;
import java.io.FileInputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Temperatures, clocks and peak memory from sysfs/procfs under configurable roots, so host tests can point it
 * at a fake tree (plain Java). Unreadable files are skipped, never fatal.
 */
public final class SysFs {
    private final File thermalRoot;
    private final File cpuRoot;
    private final File gpuClock;
    private final File procStatus;

    public SysFs(File thermalRoot, File cpuRoot, File gpuClock, File procStatus) {
        this.thermalRoot = thermalRoot;
        this.cpuRoot = cpuRoot;
        this.gpuClock = gpuClock;
        this.procStatus = procStatus;
    }

    /** The real device paths. */
    public static SysFs device() {
        return new SysFs(
                new File("/sys/class/thermal"),
                new File("/sys/devices/system/cpu"),
                new File("/sys/class/kgsl/kgsl-3d0/gpuclk"),
                new File("/proc/self/status"));
    }

    /** {zone type: °C} of every readable thermal_zoneN (a repeated type gets "@thermal_zoneN" appended). */
    public Map<String, Double> thermal() {
        Map<String, Double> temps = new LinkedHashMap<String, Double>();
        for (File zone : numbered(thermalRoot, "thermal_zone")) {
            Double c = celsius(readLine(new File(zone, "temp")));
            if (c == null) {
                continue;
            }
            String type = readLine(new File(zone, "type"));
            String name = type == null || type.isEmpty() ? zone.getName() : type;
            if (temps.containsKey(name)) {
                name = name + "@" + zone.getName();
            }
            temps.put(name, c);
        }
        return temps;
    }

    /** The hottest zone in °C, or null when no zone is readable. */
    public Double hottest() {
        Double max = null;
        for (Double c : thermal().values()) {
            if (max == null || c > max) {
                max = c;
            }
        }
        return max;
    }

    /** {"cpu0": kHz, ..., "gpu": kHz or null}: scaling_cur_freq per CPU, kgsl gpuclk (Hz) in kHz. */
    public Map<String, Long> clocks() {
        Map<String, Long> clocks = new LinkedHashMap<String, Long>();
        for (File cpu : numbered(cpuRoot, "cpu")) {
            Long khz = parseLong(readLine(new File(cpu, "cpufreq/scaling_cur_freq")));
            if (khz != null) {
                clocks.put(cpu.getName(), khz);
            }
        }
        Long hz = parseLong(readLine(gpuClock));
        clocks.put("gpu", hz == null ? null : hz / 1000L);
        return clocks;
    }

    /** Peak resident set size (VmHWM) in kB from /proc/self/status, or null. */
    public Long peakMemoryKb() {
        for (String line : readLines(procStatus)) {
            if (line.startsWith("VmHWM:")) {
                return parseLong(line.substring(6).replace("kB", ""));
            }
        }
        return null;
    }

    /** A sysfs temperature (millidegrees, or degrees on some drivers) in °C; null if not a number. */
    public static Double celsius(String raw) {
        if (raw == null) {
            return null;
        }
        try {
            double v = Double.parseDouble(raw.trim());
            return Math.abs(v) >= 200 ? v / 1000.0 : v;
        } catch (NumberFormatException e) {
            return null;
        }
    }

    /** Sub-directories named prefix + digits, in numeric order. */
    static List<File> numbered(File root, final String prefix) {
        List<File> out = new ArrayList<File>();
        File[] children = root == null ? null : root.listFiles();
        if (children == null) {
            return out;
        }
        for (File f : children) {
            String n = f.getName();
            if (n.startsWith(prefix) && n.length() > prefix.length() && isDigits(n.substring(prefix.length()))) {
                out.add(f);
            }
        }
        Collections.sort(out, new Comparator<File>() {
            @Override
            public int compare(File a, File b) {
                return Long.compare(index(a, prefix), index(b, prefix));
            }
        });
        return out;
    }

    private static long index(File f, String prefix) {
        return Long.parseLong(f.getName().substring(prefix.length()));
    }

    private static boolean isDigits(String s) {
        if (s.length() > 9) {
            return false;
        }
        for (int i = 0; i < s.length(); i++) {
            if (!Character.isDigit(s.charAt(i))) {
                return false;
            }
        }
        return true;
    }

    private static Long parseLong(String s) {
        if (s == null) {
            return null;
        }
        try {
            return Long.parseLong(s.trim());
        } catch (NumberFormatException e) {
            return null;
        }
    }

    private static String readLine(File f) {
        List<String> lines = readLines(f);
        return lines.isEmpty() ? null : lines.get(0).trim();
    }

    private static List<String> readLines(File f) {
        List<String> lines = new ArrayList<String>();
        if (f == null) {
            return lines;
        }
        BufferedReader r = null;
        try {
            r = new BufferedReader(new InputStreamReader(new FileInputStream(f), "UTF-8"));
            String line;
            while ((line = r.readLine()) != null) {
                lines.add(line);
            }
        } catch (IOException | SecurityException e) {
            lines.clear();
        } finally {
            if (r != null) {
                try {
                    r.close();
                } catch (IOException ignored) {
                    // nothing to do
                }
            }
        }
        return lines;
    }
}
