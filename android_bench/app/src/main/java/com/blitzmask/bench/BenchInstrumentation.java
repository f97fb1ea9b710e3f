package com.blitzmask.bench;

import android.app.Activity;
import android.app.Instrumentation;
import android.os.Build;
import android.os.Bundle;
import android.os.Debug;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * {@code am instrument -w -r -e model PATH -e delegate D [-e mode accuracy -e inputs PACK -e outputs PACK] …
 * com.blitzmask.bench/.BenchInstrumentation}: runs one benchmark cell (or, in accuracy mode, a pack of input
 * tensors), reports the result JSON as the status key {@code blitzmask_result}, writes it to {@code -e out}, and
 * finishes with {@code status=<ok|runtime_missing|unsupported_delegate|error>}.
 */
public class BenchInstrumentation extends Instrumentation {
    /** Longest wait for {@code -e cooldown_c} before measuring anyway. */
    private static final double COOLDOWN_MAX_S = 300;

    private Bundle arguments = new Bundle();

    @Override
    public void onCreate(Bundle args) {
        super.onCreate(args);
        if (args != null) {
            arguments = args;
        }
        start();
    }

    @Override
    public void onStart() {
        super.onStart();
        Map<String, String> extras = new HashMap<String, String>();
        for (String key : arguments.keySet()) {
            Object v = arguments.get(key);
            if (v != null) {
                extras.put(key, v.toString());
            }
        }
        ResultBuilder r;
        try {
            String libDir = getContext().getApplicationInfo().nativeLibraryDir;
            BenchRunner runner = new BenchRunner(SysFs.device(), getClass().getClassLoader(), deviceInfo(), libDir,
                    COOLDOWN_MAX_S);
            r = runner.run(extras);
        } catch (Throwable t) {
            r = ResultBuilder.forRequest(extras);
            r.fail("error", "app crashed: " + t);
        }
        if (r.get("peak_memory_kb") == null) {
            r.set("peak_memory_kb", Debug.getPss());
        }
        String json = r.toJson();
        String out = extras.get("out");
        if (out != null && !out.trim().isEmpty()) {
            BenchRunner.writeResult(out.trim(), json);
        }
        Bundle status = new Bundle();
        status.putString("blitzmask_result", json);
        sendStatus(0, status);
        Bundle result = new Bundle();
        result.putString("status", r.status());
        finish(Activity.RESULT_OK, result);
    }

    /** The "device" object of the result, from android.os.Build. */
    static Map<String, Object> deviceInfo() {
        Map<String, Object> d = new LinkedHashMap<String, Object>();
        d.put("fingerprint", Build.FINGERPRINT);
        d.put("model", Build.MODEL);
        d.put("manufacturer", Build.MANUFACTURER);
        d.put("soc", soc());
        d.put("android", Build.VERSION.RELEASE);
        d.put("sdk", Build.VERSION.SDK_INT);
        String[] abis = Build.SUPPORTED_ABIS;
        d.put("abi", abis != null && abis.length > 0 ? abis[0] : null);
        return d;
    }

    /** Build.SOC_MODEL (API 31+, read by reflection: this app compiles against API 23), else Build.HARDWARE. */
    private static String soc() {
        try {
            Object model = Build.class.getField("SOC_MODEL").get(null);
            if (model != null && !"unknown".equalsIgnoreCase(model.toString())) {
                return model.toString();
            }
        } catch (ReflectiveOperationException | RuntimeException e) {
            // older Android: fall through
        }
        return Build.HARDWARE;
    }
}
