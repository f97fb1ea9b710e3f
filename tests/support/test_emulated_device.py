"""The emulated adb device: adbutils sees a phone (props, shell v2, sync, pm, am instrument, thermal, unplug)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import adbutils
import numpy as np
import pytest

from blitzmask_deploy.bench.protocol import (
    APP_VERSION_CODE,
    PACKAGE,
    base_result,
    instrument_command,
    parse_instrument_output,
    parse_result,
    read_pack,
    write_pack,
)
from blitzmask_deploy.bench.thermal import read_thermal_zones
from tests.support.emulated import device as emulated
from tests.support.emulated import faults as emulated_faults
from tests.support.emulated.apk import ApkError, read_apk_info
from tests.support.emulated.device import EmulatedDevice
from tests.support.emulated.worker import DeviceServices, _parse_instrument
from tests.support.fake_apk import write_apk

REPO = Path(__file__).resolve().parents[2]
MODEL = "/data/local/tmp/blitzmask/models/" + "ab" * 32 + ".tflite"
RESULT = "/data/local/tmp/blitzmask/results/" + "cd" * 32 + ".json"


@pytest.fixture
def device(emulated_device: EmulatedDevice) -> adbutils.AdbDevice:
    return adbutils.AdbClient(host="127.0.0.1", port=emulated_device.adb_port).device(emulated_device.serial)


@pytest.fixture
def installed_app(device: adbutils.AdbDevice, tmp_path: Path) -> str:
    device.uninstall(PACKAGE)
    device.install(str(write_apk(tmp_path / "app.apk", PACKAGE, 1, "0.1.0")), nolaunch=True, silent=True)
    return PACKAGE


# --- without a device ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("binary", "utf8"), [(True, False), (True, True), (False, False)])
def test_apk_info_binary_and_text_manifest(tmp_path: Path, binary: bool, utf8: bool) -> None:
    info = read_apk_info(write_apk(tmp_path / "x.apk", "org.example.ä", 42, "4.2.0-é", binary=binary, utf8=utf8))
    assert (info.package, info.version_code, info.version_name) == ("org.example.ä", 42, "4.2.0-é")


def test_apk_info_rejects_non_apk(tmp_path: Path) -> None:
    bad = tmp_path / "bad.apk"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ApkError, match="not an APK"):
        read_apk_info(bad)


def test_host_path_stays_in_device_state(tmp_path: Path) -> None:
    services = DeviceServices(tmp_path, {}, runner=dict)
    assert services.host_path("m.tflite", "/data/local/tmp") == tmp_path / "data" / "local" / "tmp" / "m.tflite"
    with pytest.raises(ValueError):
        services.host_path("/data/../etc/passwd")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "escape").symlink_to("/")
    with pytest.raises(ValueError, match="out of the device"):
        services.host_path("/data/escape/etc/passwd")


def test_old_rootfs_versions_go_once_no_device_holds_them(tmp_path: Path) -> None:
    current = tmp_path / f"rootfs-{emulated._scripts_digest()[:16]}"
    held_old, free_old = tmp_path / "rootfs-0000", tmp_path / "rootfs-1111"
    for rootfs in (current, held_old, free_old):
        rootfs.mkdir()
        (rootfs / emulated.IN_USE).touch()
    with open(held_old / emulated.IN_USE) as holder:
        fcntl.flock(holder, fcntl.LOCK_SH)  # a running device of an older version
        rootfs, hold = emulated.acquire_rootfs(tmp_path)
        hold.close()
        assert rootfs == current and held_old.exists() and not free_old.exists()
    emulated.acquire_rootfs(tmp_path)[1].close()
    assert not held_old.exists() and current.exists()


def test_parse_instrument_args() -> None:
    extras, component = _parse_instrument(["-w", "-r", "-e", "model", "/m x", "-e", "runs", "5", "p/.R"])
    assert extras == {"model": "/m x", "runs": "5"} and component == "p/.R"


# --- accuracy mode and faults on the host side of the shims ------------------------------------------------------
ACC_IN, ACC_OUT = "/data/local/tmp/blitzmask/inputs/x.pack", "/data/local/tmp/blitzmask/outputs/y.pack"


def _services(state: Path, **faults: str) -> DeviceServices:
    """The shims' host side for a device whose state is `state`, with the benchmark app installed."""
    services = DeviceServices(state, {"ro.product.model": "BlitzMask Emulated"}, runner=dict, faults=faults)
    (state / "data" / "system").mkdir(parents=True, exist_ok=True)
    (state / "data" / "system" / "packages.json").write_text(json.dumps({PACKAGE: {"version_code": APP_VERSION_CODE}}))
    return services


def _accuracy(services: DeviceServices, model: Path, delegate: str = "xnnpack", **extras: str) -> tuple[dict, str]:
    """`am instrument` in accuracy mode through the shim → (result JSON, status)."""
    remote = "/data/local/tmp/m.tflite"
    if not services.host_path(remote).exists():
        services.host_path(remote).write_bytes(model.read_bytes())
    args = {"model": remote, "delegate": delegate, "threads": "1", "mode": "accuracy", "inputs": ACC_IN,
            "outputs": ACC_OUT, **extras}  # fmt: skip
    argv = ["am", "instrument", "-w", "-r"] + [x for k, v in args.items() for x in ("-e", k, v)]
    out, code = services.handle("/", [*argv, f"{PACKAGE}/.BenchInstrumentation"])
    assert code == 0, out
    result, status = parse_instrument_output(out)
    assert result["status"] == status
    return result, status


def _acc_inputs(services: DeviceServices, n: int = 2) -> None:
    pack = services.host_path(ACC_IN)
    pack.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    write_pack(pack, n, ((f"img{i}", rng.random((1, 64, 64, 3), dtype=np.float32)) for i in range(n)))


def _acc_outputs(services: DeviceServices) -> dict[str, np.ndarray]:
    return dict(read_pack(services.host_path(ACC_OUT)))


def test_am_instrument_accuracy_mode_runs_on_the_host(tmp_path: Path, bench_tflite: Path) -> None:
    services = _services(tmp_path)
    _acc_inputs(services)
    result, status = _accuracy(services, bench_tflite)
    assert status == "ok" and result["samples"] == 2 and result["mode"] == "accuracy"
    assert (result["model"], result["inputs"], result["outputs"]) == ("/data/local/tmp/m.tflite", ACC_IN, ACC_OUT)
    assert result["device"]["model"] == "BlitzMask Emulated"
    assert list(_acc_outputs(services)) == ["img0.0", "img1.0"]
    gone, _ = _accuracy(services, bench_tflite, inputs="/data/local/tmp/nowhere.pack")
    assert gone["error"] == "input pack not found: /data/local/tmp/nowhere.pack"  # the device's path, not the host's
    assert _accuracy(services, bench_tflite, delegate="gpu")[1] == "unsupported_delegate"
    no_outputs, _ = _accuracy(services, bench_tflite, outputs="")
    assert no_outputs["status"] == "error" and "-e outputs" in no_outputs["error"]
    outside, _ = _accuracy(services, bench_tflite, outputs="/system/out")
    assert "only /data, /sys and /tmp" in outside["error"]
    assert "mode must be one of" in _accuracy(services, bench_tflite, mode="fast")[0]["error"]


@pytest.mark.parametrize("kind", ["fp16", "noise", "zero"])
def test_faults_change_that_delegates_outputs_only(tmp_path: Path, bench_tflite: Path, kind: str) -> None:
    clean = _services(tmp_path / "clean")
    faulty = _services(tmp_path / "faulty", xnnpack=kind)
    for services in (clean, faulty):
        _acc_inputs(services)
        assert _accuracy(services, bench_tflite)[1] == "ok"
    want, got = _acc_outputs(clean), _acc_outputs(faulty)
    assert list(want) == list(got) and all(got[k].dtype == want[k].dtype for k in want)
    for name, expected in want.items():
        diff = np.abs(got[name] - expected)
        if kind == "zero":
            assert not got[name].any()
        elif kind == "noise":  # N(0, NOISE_STD · the tensor's spread)
            sigma = emulated_faults.NOISE_STD * expected.std()
            noise = got[name] - expected
            assert 0.8 * sigma < noise.std() < 1.2 * sigma and diff.max() < 6 * sigma, (noise.std(), sigma)
        else:  # fp16 inputs: the float outputs move a little
            assert 0 < diff.max() < 0.01 * np.abs(expected).max(), diff.max()
    assert _accuracy(faulty, bench_tflite, delegate="cpu")[1] == "ok"  # another delegate computes right
    cpu = _acc_outputs(faulty)
    _accuracy(clean, bench_tflite, delegate="cpu")
    assert all(np.array_equal(cpu[k], v) for k, v in _acc_outputs(clean).items())
    assert _accuracy(faulty, bench_tflite)[1] == "ok"
    again = _acc_outputs(faulty)
    assert all(np.array_equal(again[k], v) for k, v in got.items())  # seeded: the same every run


def test_noise_on_integer_outputs_moves_them_by_whole_steps() -> None:
    heads = np.array([[-128, -1, 0, 5, 127] * 40], dtype=np.int8)
    noisy = emulated_faults._FAULTS["noise"]("s.1", heads)
    sigma = emulated_faults.NOISE_STD * heads.std()  # ≈ 24 steps
    steps = noisy.astype(int) - heads
    assert noisy.dtype == np.int8 and (steps != 0).any() and np.abs(steps).max() <= 6 * sigma
    assert np.array_equal(emulated_faults._FAULTS["zero"]("s.1", heads), heads)  # zero: only output 0
    assert not emulated_faults._FAULTS["zero"]("s.0", heads).any()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fault", "tpu=noise"], "unknown delegate 'tpu'"),
        (["--fault", "gpu=wobble"], "unknown fault 'wobble'"),
        (["--fault", "gpu"], "DELEGATE=KIND"),
    ],
)
def test_script_refuses_bad_faults(argv: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    from tests.support.emulated.__main__ import main

    with pytest.raises(SystemExit) as info:
        main(["start", "/nonexistent/emu", *argv])
    assert info.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown fault"):
        EmulatedDevice(Path("/nonexistent"), faults={"xnnpack": "fp64"})


def _serve_relay(port: int, sock: Path) -> subprocess.Popen:
    relay = subprocess.Popen(
        [sys.executable, str(emulated.SCRIPTS / "forward.py"), f"tcp:127.0.0.1:{port}", f"unix:{sock}"],
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not emulated._listens(relay.pid, port):
        assert relay.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    return relay


def test_leftovers_of_a_dead_run_are_reaped_and_a_live_run_is_left_alone(tmp_path: Path) -> None:
    port, _ = emulated.free_port_pair(5901, 5437)
    relay = _serve_relay(port, tmp_path / "adbd.sock")
    try:
        assert not emulated._listens(os.getpid(), port)  # the port is open, but not ours
        owners = tmp_path / "owners"
        owners.mkdir()
        record = owners / f"{port}.json"
        entry = {"pids": [[relay.pid, "forward.py"]], "adb_port": 1, "adb_server": False}
        record.write_text(json.dumps({"owner": os.getpid(), **entry}))
        (owners / "garbage.json").write_text("{")
        assert emulated.reap_stale(tmp_path) == [] and relay.poll() is None and record.exists()
        assert not (owners / "garbage.json").exists()
        dead = subprocess.Popen(["true"])
        dead.wait()
        record.write_text(json.dumps({"owner": dead.pid, **entry}))
        assert emulated.reap_stale(tmp_path) == [str(port)]
        assert relay.wait(timeout=10) == -signal.SIGKILL and not record.exists()
        assert not emulated._port_open(port)
    finally:
        relay.kill()
        relay.wait()


# --- on the device ---------------------------------------------------------------------------------------------
def test_adbutils_sees_a_phone(emulated_device: EmulatedDevice, device: adbutils.AdbDevice) -> None:
    client = adbutils.AdbClient(host="127.0.0.1", port=emulated_device.adb_port)
    assert emulated_device.serial in [d.serial for d in client.device_list()]
    assert device.get_state() == "device"
    assert device.prop.model == "BlitzMask Emulated"
    assert device.shell(["getprop", "ro.build.version.sdk"]) == "34"
    assert device.getprop("ro.product.cpu.abi") == "arm64-v8a"
    assert "abb_exec" not in device.get_features().split(",")  # hidden: adbd cannot serve it


@pytest.mark.parametrize("code", [0, 3, 255])
def test_shell_v2_exit_codes(device: adbutils.AdbDevice, code: int) -> None:
    ret = device.shell2(f"echo out; echo err >&2; exit {code}", v2=True)
    assert (ret.returncode, ret.stdout, ret.stderr) == (code, "out\n", "err\n")


def test_push_pull_hostile_name(device: adbutils.AdbDevice, tmp_path: Path) -> None:
    name = "a b$(touch pwned);'\"`x`\n.bin"
    remote = f"/data/local/tmp/{name}"
    payload = bytes(range(256)) * 1000
    local = tmp_path / "in.bin"
    local.write_bytes(payload)
    device.sync.push(local, remote)
    assert name in [f.path for f in device.sync.list("/data/local/tmp")]
    device.sync.pull(remote, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == payload
    digest = device.shell(["sha256sum", remote]).split()[0]
    assert digest == hashlib.sha256(payload).hexdigest()
    device.shell(["rm", remote])
    assert device.shell2("ls /data/local/tmp/pwned /pwned", v2=True).returncode != 0


def test_install_list_and_downgrade(device: adbutils.AdbDevice, tmp_path: Path) -> None:
    device.uninstall(PACKAGE)
    assert PACKAGE not in device.list_packages()
    device.install(str(write_apk(tmp_path / "v3.apk", PACKAGE, 3, "0.3.0")), nolaunch=True, silent=True)
    assert f"package:{PACKAGE} versionCode:3" in device.shell(["pm", "list", "packages", "--show-versioncode"])
    assert "versionName=0.3.0" in device.shell(["dumpsys", "package", PACKAGE])
    with pytest.raises(adbutils.AdbInstallError, match="VERSION_DOWNGRADE"):
        device.install(str(write_apk(tmp_path / "v2.apk", PACKAGE, 2, "0.2.0")), nolaunch=True, silent=True)
    device.uninstall(PACKAGE)
    assert PACKAGE not in device.list_packages()


def test_adb_install_command_line(emulated_device: EmulatedDevice, device: adbutils.AdbDevice, tmp_path: Path) -> None:
    """`adb install` streams through `cmd package install -S` (abb_exec is hidden)."""
    device.uninstall(PACKAGE)
    apk = write_apk(tmp_path / "app.apk", PACKAGE, 7, "0.7.0")
    cmd = [adbutils.adb_path(), "-P", str(emulated_device.adb_port), "-s", emulated_device.serial, "install", str(apk)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Success" in proc.stdout, proc.stdout + proc.stderr
    assert device.shell(["pm", "path", PACKAGE]) == f"package:/data/app/{PACKAGE}/base.apk"
    device.uninstall(PACKAGE)


def test_am_instrument_without_app_fails(device: adbutils.AdbDevice) -> None:
    device.uninstall(PACKAGE)
    out = device.shell2(instrument_command(MODEL, delegate="cpu", threads=1, warmup=0, runs=1, out=RESULT), v2=True)
    assert out.returncode != 0
    assert "Unable to find instrumentation info" in out.output
    assert f"INSTRUMENTATION_FAILED: {PACKAGE}/{PACKAGE}.BenchInstrumentation" in out.output


def test_am_instrument_round_trip(
    emulated_device: EmulatedDevice, device: adbutils.AdbDevice, installed_app: str, monkeypatch, tmp_path: Path
) -> None:
    seen = {}

    def fake_runner(model: Path, **kwargs) -> dict:
        seen.update(kwargs, model_bytes=model.read_bytes())
        settings = {k: kwargs[k] for k in ("delegate", "threads", "warmup", "runs")}
        result = base_result(str(model), **settings)
        zones = read_thermal_zones(kwargs["thermal_root"])
        result.update(status="ok", runs_ms=[1.5] * kwargs["runs"], thermal_before=zones, device=kwargs["device"])
        return result

    monkeypatch.setattr(emulated_device.services, "runner", fake_runner)
    device.sync.push(b"fake tflite bytes", MODEL)
    emulated_device.set_temperature(0, 55500)
    cmd = instrument_command(MODEL, delegate="xnnpack", threads=2, warmup=1, runs=4, out=RESULT, cooldown_c=45.0)
    out = device.shell2(cmd, v2=True, timeout=60)
    assert out.returncode == 0
    result, status = parse_instrument_output(out.output)
    assert status == "ok" and result["runs_ms"] == [1.5] * 4 and result["model"] == MODEL
    assert result["thermal_before"]["cpu-thermal"] == pytest.approx(55.5)
    assert result["device"]["model"] == "BlitzMask Emulated" and result["device"]["sdk"] == 34
    assert seen["model_bytes"] == b"fake tflite bytes" and seen["cooldown_c"] == 45.0 and seen["threads"] == 2
    assert parse_result(device.sync.read_text(RESULT)) == result
    emulated_device.set_temperature(0, 38000)


@pytest.mark.e2e
def test_am_instrument_runs_litert(device: adbutils.AdbDevice, installed_app: str, bench_tflite: Path) -> None:
    device.sync.push(bench_tflite, MODEL)
    cmd = instrument_command(MODEL, delegate="xnnpack", threads=1, warmup=1, runs=5, out=RESULT)
    result, status = parse_instrument_output(device.shell2(cmd, v2=True, timeout=120).output)
    assert status == "ok", result["error"]
    assert len(result["runs_ms"]) == 5 and all(ms > 0 for ms in result["runs_ms"])
    assert set(result["thermal_before"]) == {"cpu-thermal", "gpu-thermal", "battery"}
    assert result["clocks_before"]["cpu0"] == 1800000


def test_thermal_and_battery_follow_set_temperature(emulated_device: EmulatedDevice, device) -> None:
    emulated_device.set_temperature(2, 41200)
    assert device.shell("cat /sys/class/thermal/thermal_zone2/temp") == "41200"
    assert "temperature: 412" in device.shell(["dumpsys", "battery"])
    emulated_device.set_temperature(2, 30000)
    with pytest.raises(ValueError):
        emulated_device.set_temperature(9, 1)


def test_set_clock_visible_over_adb(emulated_device: EmulatedDevice, device) -> None:
    emulated_device.set_clock(1, 960000)
    try:
        assert device.shell("cat /sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq") == "960000"
    finally:
        emulated_device.set_clock(1, emulated.CPU_KHZ)
    with pytest.raises(ValueError):
        emulated_device.set_clock(99, 1)


def test_unplug_mid_command_then_replug(emulated_device: EmulatedDevice, device: adbutils.AdbDevice) -> None:
    device.sync.push(b"kept", "/data/local/tmp/kept.txt")
    errors: list[BaseException] = []

    def long_command() -> None:
        try:
            device.shell2("sleep 30; echo finished", v2=True, timeout=60)
        except BaseException as err:  # the error is what the test checks
            errors.append(err)

    worker = threading.Thread(target=long_command)
    worker.start()
    time.sleep(1.0)
    try:
        started = time.monotonic()
        emulated_device.unplug()
        worker.join(timeout=10)
        assert not worker.is_alive() and time.monotonic() - started < 10
        assert len(errors) == 1 and isinstance(errors[0], (EOFError, adbutils.AdbError))
        assert emulated_device.state_on_host() in (None, "offline")
        with pytest.raises(adbutils.AdbError):
            device.shell("echo hi")
    finally:
        emulated_device.replug()
    assert emulated_device.state_on_host() == "device"
    assert device.sync.read_text("/data/local/tmp/kept.txt") == "kept"


def test_answer_from_before_an_unplug_does_not_reach_the_next_boot(
    emulated_device: EmulatedDevice, device: adbutils.AdbDevice, installed_app: str, monkeypatch
) -> None:
    """An `am instrument` cut off by an unplug finishes on the host later; its answer must not leak into a new
    command after the replug (pids restart in the new namespace)."""
    release = threading.Event()
    started = threading.Event()

    def runner(model: Path, **kwargs) -> dict:
        if kwargs["runs"] == 1:
            started.set()
            release.wait(30)
        else:
            time.sleep(0.6)  # the stale answer lands while this command waits
        result = base_result(str(model), **{k: kwargs[k] for k in ("delegate", "threads", "warmup", "runs")})
        result.update(status="ok", runs_ms=[float(kwargs["runs"])] * kwargs["runs"])
        return result

    monkeypatch.setattr(emulated_device.services, "runner", runner)
    device.sync.push(b"model", MODEL)

    def command(runs: int) -> str:
        return instrument_command(MODEL, delegate="cpu", threads=1, warmup=0, runs=runs, out=RESULT)

    errors: list[BaseException] = []

    def cut_off() -> None:
        try:
            device.shell2(command(1), v2=True, timeout=60)
        except BaseException as err:  # the error is what the test checks
            errors.append(err)

    emulated_device.unplug()  # a fresh boot, so both commands start the same pid sequence
    emulated_device.replug()
    worker = threading.Thread(target=cut_off)
    worker.start()
    assert started.wait(30)
    try:
        emulated_device.unplug()
        worker.join(timeout=10)
    finally:
        emulated_device.replug()
    threading.Timer(0.2, release.set).start()
    assert len(errors) == 1
    result, status = parse_instrument_output(device.shell2(command(2), v2=True, timeout=60).output)
    assert status == "ok" and result["runs_ms"] == [2.0, 2.0]


def test_adbd_is_reachable_on_loopback_only(emulated_device: EmulatedDevice) -> None:
    """adbd (a root shell) listens on every interface of its own network namespace; the host sees only the relay
    on 127.0.0.1."""
    listeners = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.split(":")
            if state == "0A" and int(port, 16) == emulated_device.port:
                listeners.append(address)
    assert listeners == ["0100007F"]


def test_start_retries_once_on_the_next_ports_when_its_port_is_taken(
    emulated_device: EmulatedDevice, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port, adb_port = emulated.free_port_pair(5701, 5237)
    theirs = emulated.default_cache_dir() / "owners" / f"{port}.json"
    theirs.parent.mkdir(parents=True, exist_ok=True)
    theirs.write_text(json.dumps({"owner": os.getpid(), "pids": [], "adb_port": adb_port, "adb_server": False}))
    with socket.socket() as squatter:  # another (live) run holding the port
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        dev = EmulatedDevice(tmp_path, port=port, adb_port=adb_port)
        try:
            with caplog.at_level(logging.WARNING, logger=emulated.__name__):
                assert dev.start() == dev.serial != f"127.0.0.1:{port}"
            assert dev.state_on_host() == "device" and dev.port > port and dev.adb_port - dev.port == adb_port - port
            assert f"port {port} is already in use" in caplog.text and f"retrying once on {dev.serial}" in caplog.text
            record = emulated.default_cache_dir() / "owners" / f"{dev.port}.json"
            assert json.loads(record.read_text())["owner"] == os.getpid()
            assert json.loads(theirs.read_text())["pids"] == []  # the other run's record is left as it was
        finally:
            dev.stop()
            theirs.unlink()
    assert not emulated._port_open(dev.port) and not emulated._port_open(dev.adb_port) and not record.exists()


def test_start_failing_twice_is_one_clear_error_and_leaves_nothing_running(
    emulated_device: EmulatedDevice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `unshare … sh launch.sh` replaced by a boot that fails at once (the namespace probe, `… true`, still passes)
    script = '[ "$0" = true ] && exit 0; echo "boot failed: no adbd here"; exit 3'
    monkeypatch.setattr(emulated, "UNSHARE", ("sh", "-c", script, "sh"))
    port, adb_port = emulated.free_port_pair(5751, 5287)
    (tmp_path / "adbd.log").write_text("unshare: sigprocmask unblock failed: Invalid argument\n")  # an old unplug
    dev = EmulatedDevice(tmp_path, port=port, adb_port=adb_port)
    with pytest.raises(emulated.EmulatorError) as info:
        dev.start()
    message = str(info.value)
    assert message.startswith("the emulated device did not start (tried twice): adbd did not start (exited with")
    assert message.endswith("adbd.log:\nboot failed: no adbd here") and "sigprocmask" not in message
    assert (tmp_path / "adbd.log").read_text().count("boot failed") == 2  # retried once, on the same free ports
    assert not emulated._port_open(port) and not emulated._port_open(adb_port)
    assert not (emulated.default_cache_dir() / "owners" / f"{port}.json").exists()


@pytest.mark.slow
def test_script_starts_in_the_background_and_stops(emulated_device: EmulatedDevice, tmp_path: Path) -> None:
    """`scripts/emulated-device start WORKDIR --fault …` prints `ADB_SERVER SERIAL` once the device is up and
    returns; `stop WORKDIR` takes it down (the session's device above proves this machine can run one)."""
    script = REPO / "scripts" / "emulated-device"
    env = {**os.environ, "PYTHON": sys.executable}
    start = [script, "start", tmp_path, "--fault", "xnnpack=zero", "--fault", "gpu=fp16"]
    started = subprocess.run(start, capture_output=True, text=True, timeout=300, env=env)
    try:
        assert started.returncode == 0, started.stderr
        assert "(faults: xnnpack=zero, gpu=fp16)" in (tmp_path / "emulated-device.log").read_text()
        server, serial = started.stdout.split()
        assert re.fullmatch(r"127\.0\.0\.1:\d+", server) and re.fullmatch(r"127\.0\.0\.1:\d+", serial)
        client = adbutils.AdbClient(host="127.0.0.1", port=int(server.rpartition(":")[2]))
        assert [d.serial for d in client.device_list()] == [serial]
        again = subprocess.run([script, "start", tmp_path], capture_output=True, text=True, timeout=60, env=env)
        assert again.stdout.split() == [server, serial]  # already running: the same address
    finally:
        stopped = subprocess.run([script, "stop", tmp_path], capture_output=True, text=True, timeout=120, env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert not emulated._port_open(int(server.rpartition(":")[2]))
    assert not emulated._port_open(int(serial.rpartition(":")[2]))
