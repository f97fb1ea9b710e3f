"""The Android benchmark app: its plain-Java core on the host JVM, and the Gradle-free APK build."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from blitzmask_deploy.bench.protocol import APP_VERSION, APP_VERSION_CODE, PACKAGE, read_pack, write_pack
from tests.support.emulated.apk import read_apk_info

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "android_bench"
SRC = APP / "app" / "src" / "main" / "java" / "com" / "blitzmask" / "bench"
CORE_TEST = APP / "core-test"
TOOLS = ROOT / ".cache" / "android-tools" / "root"

# The schema-1 result keys of docs/benchmarking.md, in the app's output order: timing mode, accuracy mode.
RESULT_KEYS = [
    "schema", "status", "error", "model", "delegate_requested", "delegate_applied", "fallback", "fallback_ops",
    "threads", "warmup", "runs", "init_ms", "first_inference_ms", "runs_ms", "peak_memory_kb", "thermal_before",
    "thermal_after", "clocks_before", "clocks_after", "sustained", "runtime", "runtime_version", "app_version",
    "device",
]  # fmt: skip
ACCURACY_KEYS = [
    "schema", "mode", "status", "error", "model", "inputs", "outputs", "delegate_requested", "delegate_applied",
    "fallback", "threads", "init_ms", "samples", "samples_ms", "output_tensors", "peak_memory_kb", "runtime",
    "runtime_version", "app_version", "device",
]  # fmt: skip

pytestmark = pytest.mark.skipif(shutil.which("javac") is None, reason="no JDK (javac) on this machine")


def _core_sources() -> list[Path]:
    """The app's sources that do not import android.* (the host-testable core)."""
    return [p for p in sorted(SRC.glob("*.java")) if "import android." not in p.read_text()]


@pytest.fixture(scope="module")
def jvm_classes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Compile the core, CoreTests and the fake LiteRT runtime (one javac), then split off the fake."""
    out = tmp_path_factory.mktemp("java")
    core, fake = out / "core", out / "fake"
    sources = [*_core_sources(), *sorted((CORE_TEST / "src").rglob("*.java"))]
    sources += sorted((CORE_TEST / "fake-litert").rglob("*.java"))
    javac = ["javac", "--release", "8", "-Xlint:all,-serial", "-Werror", "-encoding", "UTF-8", "-d", str(core)]
    subprocess.run([*javac, *map(str, sources)], check=True, timeout=300)
    fake.mkdir()
    shutil.move(core / "org", fake / "org")
    return {"core": core, "fake": fake, "tmp": out}


def _run_core_tests(classes: dict[str, Path], mode: str, with_fake: bool = False) -> dict[str, dict]:
    cp = f"{classes['core']}{os.pathsep}{classes['fake']}" if with_fake else str(classes["core"])
    work = classes["tmp"] / mode
    work.mkdir(exist_ok=True)
    proc = subprocess.run(
        ["java", "-cp", cp, "com.blitzmask.bench.CoreTests", mode, str(work)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FAIL" not in proc.stdout
    emitted = {}
    for line in proc.stdout.splitlines():
        if line.startswith("JSON "):
            _, name, text = line.split(" ", 2)
            emitted[name] = json.loads(text)
    return emitted


def _check_schema(result: dict) -> None:
    assert list(result) == (ACCURACY_KEYS if result.get("mode") == "accuracy" else RESULT_KEYS)
    assert result["schema"] == 1 and result["app_version"] == APP_VERSION and result["runtime"] == "litert"
    assert result["status"] in ("ok", "runtime_missing", "unsupported_delegate", "error")


def test_core_has_no_android_imports_except_the_instrumentation() -> None:
    android = sorted(p.name for p in SRC.glob("*.java") if "import android." in p.read_text())
    assert android == ["BenchInstrumentation.java"]
    names = {p.name for p in _core_sources()}
    assert {"BenchArgs.java", "Stats.java", "Timer.java", "Json.java", "ResultBuilder.java", "SysFs.java", "Npy.java",
            "Pack.java", "AccuracyRunner.java"} <= names  # fmt: skip


@pytest.fixture(scope="module")
def core_results(jvm_classes: dict[str, Path]) -> dict[str, dict]:
    """The plain-Java units (arguments, stats, JSON, .npy, sysfs) on the host JVM."""
    return _run_core_tests(jvm_classes, "core")


def test_core_units(core_results: dict[str, dict]) -> None:
    emitted = core_results
    # The Java writer's output parsed by Python's json: escapes, non-finite numbers, nesting.
    assert emitted["json_writer"] == {
        "s": 'a"b\\c\nd\te\u0001f/é€',
        "i": 42,
        "l": 1234567890123,
        "d": 1.25,
        "tiny": 1e-7,
        "nan": None,
        "inf": None,
        "t": True,
        "n": None,
        "list": [1, "x", None, []],
        "arr": [0.5, 2.0],
        "obj": {},
    }
    result = emitted["result_builder"]
    _check_schema(result)
    assert result["runs_ms"] == [1.235, 2.0, 3.0]
    assert result["sustained"] == {
        "seconds": 2.0, "target_fps": 30.0, "frames": 60, "achieved_fps": 29.5, "throttled": True,
        "clocks_min_ratio": 0.5,
    }  # fmt: skip


# The shapes and byte pattern of CoreTests.npy_round_trip, per dtype.
NPY_SHAPES = {"float32": (2, 3, 4), "float16": (5,), "int8": (1, 4, 4, 3), "uint8": (), "int32": (3, 2)}


def _pattern(n: int, seed: int) -> bytes:
    """CoreTests.pattern: byte i is i·37 + seed·11 + 5 (mod 256)."""
    return bytes((i * 37 + seed * 11 + 5) % 256 for i in range(n))


def test_npy_files_of_the_app_are_numpys(core_results: dict[str, dict], jvm_classes: dict[str, Path]) -> None:
    """The app's .npy writer: what numpy.load reads (no pickle), byte for byte what numpy.save writes."""
    files = core_results["npy_files"]
    assert list(files) == list(NPY_SHAPES)
    for seed, (dtype, shape) in enumerate(NPY_SHAPES.items()):
        path = jvm_classes["tmp"] / "core" / "npy" / f"{dtype}.npy"
        array = np.load(path, allow_pickle=False)
        assert (array.dtype.name, array.shape) == (dtype, shape)
        assert array.tobytes() == _pattern(array.nbytes, seed)
        path_np = path.with_suffix(".numpy.npy")
        np.save(path_np, array)
        assert path.read_bytes() == path_np.read_bytes()


# CoreTests.PACK_NAMES: the tensors of CoreTests.pack_round_trip, one per dtype of NPY_SHAPES.
PACK_NAMES = ["img.7", "b", "x_1", "s-0", "Last.2"]


def test_packs_of_the_app_are_the_drivers(core_results: dict[str, dict], tmp_path: Path) -> None:
    """The app's pack writer: what protocol.read_pack reads, byte for byte what protocol.write_pack writes."""
    written = Path(core_results["pack_file"]["pack"])
    tensors = list(read_pack(written))
    assert [name for name, _ in tensors] == PACK_NAMES
    for seed, ((_, array), (dtype, shape)) in enumerate(zip(tensors, NPY_SHAPES.items(), strict=True)):
        assert (array.dtype.name, array.shape) == (dtype, shape)
        assert array.tobytes() == _pattern(array.nbytes, seed)
    write_pack(tmp_path / "python.pack", len(tensors), iter(tensors))
    assert (tmp_path / "python.pack").read_bytes() == written.read_bytes()


def test_without_runtime_reports_runtime_missing(jvm_classes: dict[str, Path]) -> None:
    emitted = _run_core_tests(jvm_classes, "runtime-missing")
    missing = emitted["runtime_missing"]
    _check_schema(missing)
    assert missing["status"] == "runtime_missing"
    assert "org.tensorflow.lite.Interpreter" in missing["error"] and "LITERT_AAR" in missing["error"]
    assert missing["device"]["model"] == "host-jvm"
    bad = emitted["bad_args"]
    _check_schema(bad)
    assert bad["status"] == "error" and "threads" in bad["error"]
    assert bad["threads"] is None and bad["model"] == "m"
    accuracy = emitted["accuracy_runtime_missing"]
    _check_schema(accuracy)
    assert accuracy["status"] == "runtime_missing" and accuracy["samples"] == 0 and accuracy["threads"] == 2
    bad_accuracy = emitted["accuracy_bad_args"]
    _check_schema(bad_accuracy)
    assert bad_accuracy["status"] == "error" and bad_accuracy["inputs"] == "/in" and bad_accuracy["threads"] is None


@pytest.fixture(scope="module")
def fake_runtime_results(jvm_classes: dict[str, Path]) -> dict[str, dict]:
    """The whole benchmark flow against the fake LiteRT of core-test/fake-litert (~8 s: sustained, cool-down)."""
    return _run_core_tests(jvm_classes, "fake-runtime", with_fake=True)


def test_benchmark_flow_with_fake_runtime(fake_runtime_results: dict[str, dict]) -> None:
    emitted = fake_runtime_results
    ok = emitted["cpu_ok"]
    _check_schema(ok)
    assert ok["status"] == "ok" and ok["delegate_applied"] == "cpu" and ok["fallback"] is False
    assert len(ok["runs_ms"]) == ok["runs"] == 5
    assert all(ms >= 0.9 for ms in ok["runs_ms"])  # the fake model busy-waits 1 ms per run
    assert ok["thermal_before"] == {"cpu-0": 45.0, "cpu-0@thermal_zone1": 47.5, "battery": 30.0}
    assert ok["clocks_after"] == {"cpu0": 1800000, "cpu2": 2400000, "gpu": 585000}
    assert ok["peak_memory_kb"] == 4321
    fallback = emitted["gpu_fallback"]
    assert (fallback["status"], fallback["delegate_applied"], fallback["fallback"]) == ("ok", "cpu", True)
    unsupported = emitted["qnn_unsupported"]
    assert unsupported["status"] == "unsupported_delegate" and unsupported["runs_ms"] == []
    sustained = emitted["sustained"]["sustained"]
    assert 15 <= sustained["frames"] <= 42 and sustained["throttled"] is False  # paced at 40 fps, 1 ms frames


def test_accuracy_mode_with_fake_runtime(fake_runtime_results: dict[str, dict]) -> None:
    """Accuracy mode on packs: one output tensor per input and output, named <input>.<index> in the input pack's
    order, that the driver reads as the fake runtime computed them (byte j of output k = byte j mod n of the input
    + k + 1)."""
    ok = fake_runtime_results["accuracy_ok"]
    _check_schema(ok)
    assert (ok["status"], ok["samples"], len(ok["samples_ms"]), ok["delegate_applied"]) == ("ok", 3, 3, "cpu")
    assert ok["output_tensors"] == [
        {"index": 0, "name": "heat", "dtype": "float32", "shape": [1, 2, 2, 2]},
        {"index": 1, "name": "box", "dtype": "int8", "shape": [1, 5]},
        {"index": 2, "name": "out2", "dtype": "uint8", "shape": [3]},
    ]
    packs = fake_runtime_results["accuracy_files"]
    inputs = dict(read_pack(Path(packs["inputs"])))
    outputs = list(read_pack(Path(packs["outputs"])))
    assert list(inputs) == ["b", "c.1", "a"]
    assert [name for name, _ in outputs] == [f"{stem}.{i}" for stem in inputs for i in range(3)]
    for name, out in outputs:
        stem, _, index = name.rpartition(".")
        spec = ok["output_tensors"][int(index)]
        x = inputs[stem]
        assert (x.dtype, x.shape) == (np.int8, (1, 4, 4, 3))
        assert (out.dtype.name, list(out.shape)) == (spec["dtype"], spec["shape"])
        raw = x.view(np.uint8).ravel()
        expected = (raw[np.arange(out.nbytes) % raw.size].astype(int) + spec["index"] + 1) % 256
        assert out.view(np.uint8).ravel().tolist() == expected.tolist()
    mismatch = fake_runtime_results["accuracy_mismatch"]
    _check_schema(mismatch)
    assert mismatch["error"] == "b_float: float32 (1, 4, 4, 3) does not match the model's input int8 (1, 4, 4, 3)"


def test_results_parse_with_the_driver(fake_runtime_results: dict[str, dict]) -> None:
    """What the app prints is what the driver's protocol parser accepts (status line and file are one JSON)."""
    protocol = pytest.importorskip("blitzmask_deploy.bench.protocol")
    assert len(fake_runtime_results) >= 4
    for result in (r for r in fake_runtime_results.values() if "schema" in r):
        line = f"INSTRUMENTATION_STATUS: blitzmask_result={json.dumps(result)}\n"
        text = line + f"INSTRUMENTATION_STATUS_CODE: 0\nINSTRUMENTATION_RESULT: status={result['status']}\n"
        parsed, status = protocol.parse_instrument_output(text + "INSTRUMENTATION_CODE: -1\n")
        assert parsed == result and status == result["status"]


# ---- the APK ---------------------------------------------------------------------------------------------------


# What scripts/fetch_debs.sh / apt print when the Debian packages cannot be had (no network, no mirror).
FETCH_FAILURES = (
    "could not download",
    "no Debian mirror",
    "dpkg not found",
    "Failed to fetch",
    "Could not resolve",
    "Temporary failure",
    "Unable to connect",
    "still missing after the fetch",
)


def _build(build_dir: Path, **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["bash", str(APP / "build_apk.sh")],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "BUILD_DIR": str(build_dir), **env},
    )
    if proc.returncode != 0 and any(sign in proc.stderr for sign in FETCH_FAILURES):
        why = proc.stderr.strip().splitlines()[-1]
        print(f"skipping: the Debian Android tools cannot be fetched here: {why}")
        pytest.skip(f"Debian Android tools cannot be fetched here: {why}")
    assert proc.returncode == 0, proc.stderr
    return proc


def _apksigner() -> list[str]:
    if shutil.which("apksigner"):
        return ["apksigner"]
    jars = [TOOLS / "usr/share/java/apksigner.jar", TOOLS / "usr/share/java/apksig.jar"]
    return ["java", "-cp", os.pathsep.join(map(str, jars)), "com.android.apksigner.ApkSignerTool"]


def _fake_aar(path: Path, fake_classes: Path) -> Path:
    """An AAR-shaped zip: the fake LiteRT classes as classes.jar and one native library."""
    with zipfile.ZipFile(path.with_suffix(".jar"), "w") as jar:
        for cls in fake_classes.rglob("*.class"):
            jar.write(cls, cls.relative_to(fake_classes).as_posix())
    with zipfile.ZipFile(path, "w") as aar:
        aar.write(path.with_suffix(".jar"), "classes.jar")
        aar.writestr("jni/arm64-v8a/libtensorflowlite_jni.so", b"\x7fELF fake")
        aar.writestr("AndroidManifest.xml", "<manifest package='org.tensorflow.lite'/>")
    return path


@pytest.mark.slow
@pytest.mark.e2e
def test_build_apk_signed_and_verified(tmp_path: Path, jvm_classes: dict[str, Path]) -> None:
    out = tmp_path / "plain"
    proc = _build(out)
    apk = out / "blitzmask-bench.apk"
    assert proc.stdout.strip().endswith(str(apk))
    verify = subprocess.run([*_apksigner(), "verify", "-v", str(apk)], capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0 and "Verified using v2 scheme (APK Signature Scheme v2): true" in verify.stdout
    sidecar = json.loads((out / "blitzmask-bench.apk.json").read_text())
    assert sidecar == {
        "package": PACKAGE,
        "version_name": APP_VERSION,
        "version_code": APP_VERSION_CODE,
        "sha256": hashlib.sha256(apk.read_bytes()).hexdigest(),
        "litert_bundled": False,
    }
    with zipfile.ZipFile(apk) as z:
        names = set(z.namelist())
        dex = z.read("classes.dex")
    assert {"AndroidManifest.xml", "classes.dex"} <= names
    assert dex.startswith(b"dex\n035")
    assert b"Lcom/blitzmask/bench/BenchInstrumentation;" in dex
    assert b"Lorg/tensorflow/lite/Interpreter;" not in dex
    info = read_apk_info(apk)  # what the driver and the emulated `pm` read from the binary manifest
    assert (info.package, info.version_code, info.version_name) == (PACKAGE, APP_VERSION_CODE, APP_VERSION)

    # With a (fake) runtime AAR: its classes are dexed in and its native library lands in lib/<abi>/.
    aar = _fake_aar(tmp_path / "fake-litert.aar", jvm_classes["fake"])
    bundled = tmp_path / "bundled"
    _build(bundled, LITERT_AAR=str(aar))
    apk2 = bundled / "blitzmask-bench.apk"
    assert subprocess.run([*_apksigner(), "verify", str(apk2)], timeout=120).returncode == 0
    with zipfile.ZipFile(apk2) as z:
        assert "lib/arm64-v8a/libtensorflowlite_jni.so" in z.namelist()
        assert b"Lorg/tensorflow/lite/Interpreter;" in z.read("classes.dex")
    assert json.loads((bundled / "blitzmask-bench.apk.json").read_text())["litert_bundled"] is True
