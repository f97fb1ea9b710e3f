"""The adb driver against a recording fake of adbutils' device: quoting, content-addressed pushes, parsing."""

from __future__ import annotations

import hashlib
import json
import shlex
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from adbutils.errors import AdbError, AdbTimeout

from blitzmask_deploy.bench import adb, protocol
from blitzmask_deploy.bench.adb import AndroidDevice, apk_version_code, parse_server
from blitzmask_deploy.bench.errors import (
    AppOutdated,
    DeviceError,
    DeviceGone,
    DeviceTimeout,
    InstrumentationFailed,
    RuntimeMissing,
)
from blitzmask_deploy.bench.thermal import THERMAL_SCRIPT
from blitzmask_deploy.core.errors import BadInput

HOSTILE_NAMES = ["my model.tflite", "it's.tflite", 'a"b.tflite', "x; reboot.tflite", "$(reboot).tflite", "`id`.tflite"]


@pytest.fixture(autouse=True)
def _push_through_fake_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pushes go to the fake's sync.push (the real ones speak the sync protocol over a transport)."""
    monkeypatch.setattr(adb, "send_file", lambda dev, local, remote, mode=0o644: dev.sync.push(local, remote, mode))


@dataclass
class Ret:
    returncode: int
    stdout: str
    stderr: str = ""


class FakeSync:
    def __init__(self, dev: FakeAdb) -> None:
        self.dev = dev

    def push(self, src: Path, dst: str, mode: int = 0o755) -> int:
        assert isinstance(src, Path)
        self.dev.pushes.append(dst)
        self.dev.files[dst] = src.read_bytes()
        return len(self.dev.files[dst])

    def read_bytes(self, path: str) -> bytes:
        if path not in self.dev.files:
            raise AdbError(f"open failed: No such file or directory: {path}")
        return self.dev.files[path]

    def pull(self, src: str, dst: str) -> int:
        self.dev.pulls.append(src)
        Path(dst).write_bytes(self.read_bytes(src))
        return len(self.dev.files[src])


class FakeAdb:
    """Stands in for adbutils.AdbDevice: a tiny device shell over a dict of files."""

    serial = "FAKE123"

    def __init__(self, result_status: str = "ok", write_file: bool = True) -> None:
        self.commands: list[str] = []
        self.pushes: list[str] = []
        self.pulls: list[str] = []
        self.files: dict[str, bytes] = {}
        self.installed: int | None = None
        self.result_status = result_status
        self.write_file = write_file
        self.sync = FakeSync(self)
        self.fail_with: BaseException | None = None

    state = "device"

    def get_state(self) -> str:
        return self.state

    def shell2(self, cmd: str, timeout: float | None = None, v2: bool = False) -> Ret:
        assert isinstance(cmd, str) and timeout and v2
        if self.fail_with is not None:
            raise self.fail_with
        self.commands.append(cmd)
        if cmd == THERMAL_SCRIPT:
            return Ret(0, "thermal_zone0\tcpu-0\t47000\nthermal_zone1\tbattery\t30500\n")
        if "getprop" in cmd:
            return Ret(0, "fingerprint=acme/phone:14/UP1\nmodel=Acme Phone\nmanufacturer=Acme\nsoc=\nplatform=sm8550\n"
                          "android=14\nsdk=34\nabi=arm64-v8a\n")  # fmt: skip
        argv = shlex.split(cmd.replace(" && ", " ; "))
        if argv[0] == "sha256sum":
            data = self.files.get(argv[1])
            return Ret(0, f"{hashlib.sha256(data).hexdigest()}  {argv[1]}\n") if data is not None else Ret(1, "")
        if argv[:3] == ["pm", "list", "packages"]:
            found = f"package:{protocol.PACKAGE} versionCode:{self.installed}\n" if self.installed else ""
            return Ret(0, "package:com.other versionCode:7\n" + found)
        if argv[:2] == ["pm", "install"]:
            self.installed = json.loads(Path(self.apk_sidecar).read_text())["version_code"]
            return Ret(0, "Success\n")
        if argv[:2] == ["am", "instrument"]:
            return self._instrument(argv)
        if argv[0] == "dumpsys":
            return Ret(0, "Current Battery Service state:\n  AC powered: false\n  USB powered: true\n  level: 87\n"
                          "  temperature: 312\n")  # fmt: skip
        if argv[0] == "echo":
            return Ret(0, " ".join(argv[1:]) + "\n")
        if argv[0] in ("mkdir", "rm"):
            if argv[0] == "rm":
                for path in argv[argv.index("rm") + 2 :]:
                    self.files.pop(path, None)
            return Ret(0, "")
        raise AssertionError(f"unexpected command {cmd!r}")

    def _instrument(self, argv: list[str]) -> Ret:
        extras = dict(zip(argv[5::3], argv[6::3], strict=False))
        if extras.get("mode") == "accuracy":
            return self._accuracy(extras)
        res = protocol.base_result(extras["model"], delegate=extras["delegate"], threads=int(extras["threads"]),
                                   warmup=int(extras["warmup"]), runs=int(extras["runs"]))  # fmt: skip
        res.update(status=self.result_status, runs_ms=[1.0] * int(extras["runs"]) if self.result_status == "ok" else [])
        if self.write_file:
            self.files[extras["out"]] = json.dumps({**res, "source": "file"}).encode()
        line = json.dumps({**res, "source": "status"})
        return Ret(0, f"INSTRUMENTATION_STATUS: blitzmask_result={line}\nINSTRUMENTATION_STATUS_CODE: 0\n"
                      f"INSTRUMENTATION_RESULT: status={self.result_status}\nINSTRUMENTATION_CODE: -1\n")  # fmt: skip

    def _accuracy(self, extras: dict[str, str]) -> Ret:
        """Accuracy mode of an app whose model doubles its float32 input: one output per input of the pack."""
        res = protocol.base_accuracy_result(extras["model"], inputs=extras["inputs"], outputs=extras["outputs"],
                                            delegate=extras["delegate"], threads=int(extras["threads"]))  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "in.pack").write_bytes(self.files[extras["inputs"]])
            inputs = list(protocol.read_pack(Path(tmp) / "in.pack"))
            protocol.write_pack(Path(tmp) / "out.pack", len(inputs), ((f"{n}.0", 2 * x) for n, x in inputs))
            self.files[extras["outputs"]] = (Path(tmp) / "out.pack").read_bytes()
        shape = list(inputs[0][1].shape)
        res.update(status="ok", samples=len(inputs), samples_ms=[1.0] * len(inputs),
                   output_tensors=[{"index": 0, "name": "double", "dtype": "float32", "shape": shape}])  # fmt: skip
        self.files[extras["out"]] = json.dumps(res).encode()
        return Ret(0, f"INSTRUMENTATION_STATUS: blitzmask_result={json.dumps(res)}\nINSTRUMENTATION_CODE: -1\n")


def _check_commands(fake: FakeAdb, forbidden: str) -> None:
    for cmd in fake.commands:
        shlex.split(cmd)  # every command is well-formed shell words
        assert forbidden not in cmd


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_model_names_never_reach_the_shell(tmp_path: Path, name: str) -> None:
    model = tmp_path / name
    model.write_bytes(b"TFL3" + name.encode())
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    fake = FakeAdb()
    dev = AndroidDevice(fake, adb_server="127.0.0.1:5037")
    remote = dev.prepare(model, sha)
    assert remote == f"/data/local/tmp/blitzmask/models/{sha}.tflite"
    assert fake.files[remote] == model.read_bytes() and fake.pushes == [remote]
    res = dev.run(remote, cell_key="ab" * 16, delegate="cpu", threads=2, warmup=1, runs=3)
    assert res["model"] == remote and res["source"] == "file"
    _check_commands(fake, name)
    instrument = next(c for c in fake.commands if c.startswith("am "))
    assert shlex.split(instrument)[-1] == protocol.RUNNER


def test_model_is_pushed_once_and_repushed_on_mismatch(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"model-bytes")
    sha = hashlib.sha256(b"model-bytes").hexdigest()
    fake = FakeAdb()
    AndroidDevice(fake, adb_server="h:1").prepare(model, sha)
    dev = AndroidDevice(fake, adb_server="h:1")  # a new driver session finds the file already there
    dev.prepare(model, sha)
    dev.prepare(model, sha)
    assert len(fake.pushes) == 1
    assert sum(c.startswith("sha256sum") for c in fake.commands) == 3  # 2 by the first session, 1 by the second
    fake.files[protocol.remote_model_path(sha)] = b"truncated"
    AndroidDevice(fake, adb_server="h:1").prepare(model, sha)
    assert len(fake.pushes) == 2 and fake.files[protocol.remote_model_path(sha)] == b"model-bytes"


def test_push_that_does_not_verify_is_an_error(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(b"abc")
    with pytest.raises(DeviceError, match="sha256"):
        AndroidDevice(FakeAdb(), adb_server="h:1").prepare(model, "00" * 32)


def test_run_falls_back_to_status_line_and_reports_runtime_missing() -> None:
    fake = FakeAdb(write_file=False)
    res = AndroidDevice(fake, adb_server="h:1").run("/m", cell_key="cd" * 16, delegate="gpu", threads=1, warmup=0,
                                                     runs=2)  # fmt: skip
    assert res["source"] == "status" and res["runs_ms"] == [1.0, 1.0]
    with pytest.raises(RuntimeMissing) as info:
        AndroidDevice(FakeAdb("runtime_missing"), adb_server="h:1").run(
            "/m", cell_key="cd" * 16, delegate="cpu", threads=1, warmup=0, runs=1
        )
    assert info.value.result["status"] == "runtime_missing"


def test_run_without_any_result_is_instrumentation_failed() -> None:
    fake = FakeAdb(write_file=False)
    fake._instrument = lambda argv: Ret(1, "INSTRUMENTATION_RESULT: status=error\nINSTRUMENTATION_CODE: 0\n")
    with pytest.raises(InstrumentationFailed, match="no result"):
        AndroidDevice(fake, adb_server="h:1").run("/m", cell_key="cd" * 16, delegate="cpu", threads=1, warmup=0,
                                                   runs=1)  # fmt: skip


def test_ensure_app_installs_when_missing_or_outdated(tmp_path: Path) -> None:
    apk = tmp_path / "blitzmask bench.apk"
    apk.write_bytes(b"PK apk")
    fake = FakeAdb()
    fake.apk_sidecar = str(apk) + ".json"
    dev = AndroidDevice(fake, adb_server="h:1")
    with pytest.raises(DeviceError, match="not installed"):
        dev.ensure_app(None)
    with pytest.raises(BadInput, match="version_code"):
        dev.ensure_app(apk)
    Path(fake.apk_sidecar).write_text(json.dumps({"version_code": 2}))
    assert apk_version_code(apk) == 2
    assert dev.ensure_app(apk) == 2 and fake.installed == 2
    fake.installed = 1  # outdated → reinstalled
    assert dev.ensure_app(apk) == 2 and sum(c.startswith("pm install") for c in fake.commands) == 2
    assert dev.ensure_app(apk) == 2 and sum(c.startswith("pm install") for c in fake.commands) == 2
    assert dev.ensure_app(None) == 2
    _check_commands(fake, "blitzmask bench.apk")


def _input_pack(tmp_path: Path) -> tuple[Path, str, dict[str, np.ndarray]]:
    tensors = {f"img{i}": np.full((1, 4), i, np.float32) for i in range(3)}
    sha256 = protocol.write_pack(tmp_path / "in.pack", 3, iter(tensors.items()))
    return tmp_path / "in.pack", sha256, tensors


def test_accuracy_mode_pushes_one_pack_once_and_pulls_one_pack(tmp_path: Path) -> None:
    pack, sha256, tensors = _input_pack(tmp_path)
    fake = FakeAdb()
    fake.installed = protocol.APP_VERSION_CODE
    dev = AndroidDevice(fake, adb_server="h:1")
    remote = dev.push_inputs(pack, sha256)
    assert remote == protocol.remote_inputs_path(sha256) and fake.pushes == [remote]
    assert AndroidDevice(fake, adb_server="h:1").push_inputs(pack, sha256) == remote  # on the device: not again
    assert fake.pushes == [remote]
    result, outputs = dev.run_accuracy("/m", remote, cell_key="ab" * 16, delegate="gpu", threads=2)
    assert result["samples"] == 3 and fake.pulls == [protocol.remote_outputs_path("ab" * 16)]
    assert {name: out[0].tolist() for name, out in outputs.items()} == {n: (2 * x).tolist() for n, x in tensors.items()}
    assert protocol.remote_outputs_path("ab" * 16) not in fake.files  # removed once pulled
    fake.files[remote] = b"truncated"
    with pytest.raises(BadInput, match="does not have the sha256"):
        AndroidDevice(fake, adb_server="h:1").push_inputs(pack, "00" * 32)
    assert AndroidDevice(fake, adb_server="h:1").push_inputs(pack, sha256) == remote  # pushed again, verified
    assert fake.pushes == [remote, remote] and fake.files[remote] == pack.read_bytes()


@pytest.mark.parametrize(("installed", "says"), [(2, "is versionCode 2"), (None, "is not installed")])
def test_accuracy_mode_refuses_an_app_without_packs_in_one_line(
    tmp_path: Path, installed: int | None, says: str
) -> None:
    pack, sha256, _ = _input_pack(tmp_path)
    fake = FakeAdb()
    fake.installed = installed
    dev = AndroidDevice(fake, adb_server="h:1")
    for call in (lambda: dev.push_inputs(pack, sha256),
                 lambda: dev.run_accuracy("/m", "/in", cell_key="ab" * 16, delegate="cpu", threads=1)):  # fmt: skip
        with pytest.raises(AppOutdated) as err:
            call()
        assert str(err.value) == (
            f"FAKE123: the benchmark app {says}; accuracy mode needs versionCode {protocol.APP_VERSION_CODE} or "
            "later: pass --apk android_bench/build/blitzmask-bench.apk (`make apk`)"
        )
    assert fake.pushes == [] and not any(c.startswith("am ") for c in fake.commands)


def test_device_info_battery_and_thermal() -> None:
    dev = AndroidDevice(FakeAdb(), adb_server="h:1")
    info = dev.info()
    assert info == {"fingerprint": "acme/phone:14/UP1", "model": "Acme Phone", "manufacturer": "Acme",
                    "soc": "sm8550", "android": "14", "sdk": "34", "abi": "arm64-v8a"}  # fmt: skip
    assert dev.battery() == {"level": 87, "temperature_c": 31.2, "powered": True}
    assert dev.thermal() == {"cpu-0": 47.0, "battery": 30.5}


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (EOFError("Expected 5 bytes, got 0"), DeviceGone),
        (ConnectionResetError("reset"), DeviceGone),
        (AdbError("device 'FAKE123' not found"), DeviceGone),
        (AdbError("device offline"), DeviceGone),
        (AdbTimeout("adb read timeout"), DeviceTimeout),
        (AdbError("something else"), DeviceError),
        # the adb server closing the connection mid-reply (the transport died), as adbutils reports it
        (AdbError("closed"), DeviceGone),  # FAIL "closed": the transport closed while a stream was opened
        (AdbError("Unknown data: b''"), DeviceGone),
        (AdbError("Invalid sync cmd", ""), DeviceGone),
        (AdbError(""), DeviceGone),
        (AssertionError(), DeviceGone),
        (struct.error("unpack requires a buffer of 12 bytes"), DeviceGone),
    ],
)
def test_adb_failures_map_to_the_error_hierarchy(error: BaseException, expected: type) -> None:
    fake = FakeAdb()
    fake.fail_with = error
    with pytest.raises(expected) as info:
        AndroidDevice(fake, adb_server="h:1").thermal()
    assert type(info.value) is expected


def test_alive_needs_state_device_and_a_working_shell() -> None:
    fake = FakeAdb()
    dev = AndroidDevice(fake, adb_server="h:1")
    assert dev.alive()
    fake.fail_with = EOFError("adbd gone")
    assert not dev.alive()
    fake.fail_with, fake.state = None, "offline"
    assert not dev.alive()


def test_parse_server() -> None:
    assert parse_server("10.0.0.2:5037") == ("10.0.0.2", 5037)
    for bad in ("5037", "host:", "host:99999", ":5037", "host:port"):
        with pytest.raises(BadInput):
            parse_server(bad)


def test_a_status_line_that_arrived_before_an_unplug_is_kept() -> None:
    """The device goes away while the result file is pulled: the status line already holds the measured cell."""
    fake = FakeAdb()
    fake.sync.read_bytes = lambda path: (_ for _ in ()).throw(ConnectionResetError("device gone"))
    res = AndroidDevice(fake, adb_server="h:1").run("/m", cell_key="cd" * 16, delegate="cpu", threads=1, warmup=0,
                                                     runs=2)  # fmt: skip
    assert res["source"] == "status" and res["runs_ms"] == [1.0, 1.0]
    fake._instrument = lambda argv: Ret(1, "")  # no status line either: the cell stays pending (DeviceGone)
    with pytest.raises(DeviceGone):
        AndroidDevice(fake, adb_server="h:1").run("/m", cell_key="cd" * 16, delegate="cpu", threads=1, warmup=0,
                                                   runs=1)  # fmt: skip
