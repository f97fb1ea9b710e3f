"""A phone (or the emulated device) behind an adb server, driven through adbutils.

Every adb call has a timeout and every shell argument is quoted (protocol.quote_command); models and input packs
are pushed to content-addressed paths, so local file names never reach the device shell.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import socket
import stat
import struct
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blitzmask_deploy.bench import protocol
from blitzmask_deploy.bench.errors import (
    AppOutdated,
    DeviceError,
    DeviceGone,
    DeviceTimeout,
    InstrumentationFailed,
    RuntimeMissing,
)
from blitzmask_deploy.bench.thermal import CLOCKS_SCRIPT, THERMAL_SCRIPT, parse_clocks_output, parse_thermal_output
from blitzmask_deploy.core.errors import BadInput

if TYPE_CHECKING:
    import numpy as np

PROPS = {
    "fingerprint": "ro.build.fingerprint",
    "model": "ro.product.model",
    "manufacturer": "ro.product.manufacturer",
    "soc": "ro.soc.model",
    "platform": "ro.board.platform",
    "android": "ro.build.version.release",
    "sdk": "ro.build.version.sdk",
    "abi": "ro.product.cpu.abi",
}
APK_REMOTE = f"{protocol.REMOTE_ROOT}/blitzmask-bench.apk"
SYNC_CHUNK = 64 * 1024  # the sync protocol's largest DATA packet (adbutils' own push sends 4 KiB ones)
_GONE = re.compile(  # adb server answers meaning the device's transport is not there (any more)
    r"device .*not found|device (offline|unauthorized|still authorizing|still connecting)|connection (is )?closed"
    r"|^closed$|no devices/emulators found",
    re.I,
)


def default_adb_server() -> str:
    """127.0.0.1 with $ANDROID_ADB_SERVER_PORT (default 5037)."""
    return f"127.0.0.1:{os.environ.get('ANDROID_ADB_SERVER_PORT') or 5037}"


def parse_server(address: str) -> tuple[str, int]:
    """'HOST:PORT' → (host, port); BadInput when malformed."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(f"--adb expects HOST:PORT, got '{address}'")
    return host, int(port)


def server_reachable(address: str, timeout: float = 0.5) -> bool:
    """Whether an adb server accepts connections at HOST:PORT (never starts one)."""
    try:
        with socket.create_connection(parse_server(address), timeout=timeout):
            return True
    except OSError:
        return False


def _cut_short(err: Exception) -> bool:
    """Whether adbutils failed on an empty read: the adb server closed the connection mid-reply, which it does
    when the device's transport dies (check_okay → "Unknown data: b''", sync → "Invalid sync cmd" with no
    command, push → an empty status, stat → AssertionError / struct.error on the short reply)."""
    from adbutils.errors import AdbError

    if isinstance(err, (AssertionError, struct.error)):
        return True
    return isinstance(err, AdbError) and (
        not str(err)
        or str(err) == "Unknown data: b''"
        or (err.args[:1] == ("Invalid sync cmd",) and not any(err.args[1:2]))
    )


def guarded_call(serial: str, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call an adbutils function and map its failures onto bench.errors (a cut connection → DeviceGone)."""
    from adbutils.errors import AdbError, AdbTimeout

    try:
        return fn(*args, **kwargs)
    except (AdbTimeout, TimeoutError) as err:
        raise DeviceTimeout(f"{serial}: {what} timed out ({err})") from None
    except (EOFError, ConnectionError) as err:
        raise DeviceGone(f"{serial}: connection lost during {what} ({type(err).__name__}: {err})") from None
    except (AdbError, AssertionError, struct.error) as err:
        text = str(err)
        if _cut_short(err):
            raise DeviceGone(
                f"{serial}: connection lost during {what} (short reply: {type(err).__name__} {text!r})"
            ) from None
        if _GONE.search(text):
            raise DeviceGone(f"{serial}: {text}") from None
        raise DeviceError(f"{serial}: {what} failed: {text}") from None
    except OSError as err:
        raise DeviceGone(f"{serial}: {what}: {err}") from None


def send_file(adb_device: Any, local: Path, remote: str, mode: int = 0o644) -> None:
    """Push one file to a device file path in one sync connection, in 64 KiB packets (AdbError when refused)."""
    from adbutils.errors import AdbError

    target = f"{remote},{stat.S_IFREG | mode}".encode()
    with adb_device.open_transport(timeout=None) as conn, Path(local).open("rb") as src:
        conn.send_command("sync:")
        conn.check_okay()
        conn.conn.sendall(b"SEND" + struct.pack("<I", len(target)) + target)
        while chunk := src.read(SYNC_CHUNK):
            conn.conn.sendall(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
        conn.conn.sendall(b"DONE" + struct.pack("<I", int(time.time())))
        status = conn.read_string(4)
        if status != "OKAY":
            length = struct.unpack("<I", conn.read(4))[0] if status == "FAIL" else 0
            raise AdbError(f"push {remote}: {status} {conn.read_string(length) if length else ''}".strip())


class AndroidDevice:
    """A phone (or the emulated device) behind an adb server."""

    kind = "adb"

    def __init__(self, adb_device: Any, *, adb_server: str, instrument_timeout: float = 600.0) -> None:
        self._dev = adb_device
        self.serial: str = adb_device.serial
        self.adb_server = adb_server
        self.instrument_timeout = instrument_timeout
        self._verified: set[str] = set()  # sha256s of models and input packs checked on the device
        self._info: dict | None = None
        self._app: int | None = None  # versionCode of the installed app, once known

    @classmethod
    def connect(cls, serial: str, adb_server: str, *, timeout: float = 60.0, **kwargs: Any) -> AndroidDevice:
        """Open `serial` on the adb server at HOST:PORT; `timeout` bounds every socket operation."""
        import adbutils

        host, port = parse_server(adb_server)
        client = adbutils.AdbClient(host=host, port=port, socket_timeout=timeout)
        return cls(client.device(serial), adb_server=adb_server, **kwargs)

    def sh(self, command: str, timeout: float = 30.0) -> Any:
        """Run one (already quoted) shell line with shell v2 → adbutils ShellReturn (returncode, stdout)."""
        return guarded_call(self.serial, command.split(" ", 1)[0], self._dev.shell2, command, timeout=timeout, v2=True)

    def alive(self) -> bool:
        """Whether the device is listed as 'device' and still answers a shell command."""
        try:
            if guarded_call(self.serial, "get-state", self._dev.get_state) != "device":
                return False
            return self.sh("echo alive", timeout=10.0).stdout.strip() == "alive"
        except DeviceError:
            return False

    def info(self) -> dict:
        """The protocol's device record (+ `platform`), read once with getprop."""
        if self._info is None:
            script = "; ".join(f"echo {key}=$(getprop {protocol.quote_command([p])})" for key, p in PROPS.items())
            values = dict(line.partition("=")[::2] for line in self.sh(script).stdout.splitlines() if "=" in line)
            info = {key: (values.get(key) or "").strip() or None for key in PROPS}
            info["soc"] = info["soc"] or info.pop("platform")
            info.pop("platform", None)
            self._info = info
        return self._info

    def battery(self) -> dict:
        """`dumpsys battery` → {"level": %, "temperature_c": °C, "powered": bool} (keys absent when unknown)."""
        fields = {}
        for line in self.sh("dumpsys battery").stdout.splitlines():
            key, _, value = line.strip().partition(":")
            fields[key.strip().lower()] = value.strip()
        out: dict[str, Any] = {}
        if fields.get("level", "").isdigit():
            out["level"] = int(fields["level"])
        if fields.get("temperature", "").lstrip("-").isdigit():
            out["temperature_c"] = int(fields["temperature"]) / 10.0
        powered = [fields.get(k) for k in ("ac powered", "usb powered", "wireless powered") if k in fields]
        if powered:
            out["powered"] = "true" in powered
        return out

    def thermal(self) -> dict[str, float]:
        """{zone type: °C} of the device's thermal zones."""
        return parse_thermal_output(self.sh(THERMAL_SCRIPT).stdout)

    def clocks(self) -> dict[str, int | None]:
        """{"cpu0": khz, ..., "gpu": khz|None}."""
        return parse_clocks_output(self.sh(CLOCKS_SCRIPT).stdout)

    def installed_version_code(self) -> int | None:
        """versionCode of the benchmark app on the device, None when not installed."""
        out = self.sh(protocol.quote_command(["pm", "list", "packages", "--show-versioncode", protocol.PACKAGE]))
        for line in out.stdout.splitlines():
            fields = dict(part.partition(":")[::2] for part in line.split())
            if fields.get("package") == protocol.PACKAGE and fields.get("versionCode", "").isdigit():
                return int(fields["versionCode"])
        return None

    def ensure_app(self, apk: Path | None) -> int:
        """Install `apk` when the app is missing or older than its sidecar's versionCode → installed versionCode."""
        installed = self._app = self.installed_version_code()
        if apk is None:
            if installed is None:
                raise DeviceError(
                    f"{self.serial}: benchmark app {protocol.PACKAGE} is not installed; build it with "
                    "`make apk` and pass --apk android_bench/build/blitzmask-bench.apk"
                )
            return installed
        wanted = apk_version_code(apk)
        if installed is not None and installed >= wanted:
            return installed
        self.sh(protocol.quote_command(["mkdir", "-p", protocol.REMOTE_ROOT]))
        guarded_call(self.serial, "push apk", send_file, self._dev, Path(apk), APK_REMOTE)
        ret = self.sh(protocol.quote_command(["pm", "install", "-r", "-t", APK_REMOTE]), timeout=180.0)
        if ret.returncode != 0 or "Success" not in ret.stdout:
            raise DeviceError(f"{self.serial}: pm install failed: {(ret.stdout + ret.stderr).strip()[-200:]}")
        self.sh(protocol.quote_command(["rm", "-f", APK_REMOTE]))
        self._app = self.installed_version_code() or wanted
        return self._app

    def remote_sha256(self, remote: str) -> str | None:
        """sha256 of a device file (None when it does not exist)."""
        ret = self.sh(protocol.quote_command(["sha256sum", remote]), timeout=60.0)
        digest = ret.stdout.split()[0] if ret.returncode == 0 and ret.stdout.split() else None
        return digest.lower() if digest else None

    def prepare(self, model: Path, sha256: str) -> str:
        """Push `model` to its content-addressed path unless a file with that sha256 is already there."""
        remote = protocol.remote_model_path(sha256)
        if sha256 not in self._verified and self.remote_sha256(remote) != sha256:
            self._push_checked(Path(model), remote, sha256, "model")
        self._verified.add(sha256)
        return remote

    def push_inputs(self, pack: Path, sha256: str) -> str:
        """Push an input pack to REMOTE_ROOT/inputs/<sha256>.pack unless the device holds it already (its sha256
        checked on the device) → that path. AppOutdated when the installed app cannot read packs."""
        self._require_accuracy_app()
        remote = protocol.remote_inputs_path(sha256)
        if sha256 not in self._verified and self.remote_sha256(remote) != sha256:
            from blitzmask_deploy.core.artifacts import sha256_file  # not at module level: `blitzmask devices` is fast

            if sha256_file(pack) != sha256:
                raise BadInput(f"input pack {pack} does not have the sha256 {sha256}")
            self._push_checked(Path(pack), remote, sha256, "inputs")
        self._verified.add(sha256)
        return remote

    def _push_checked(self, local: Path, remote: str, sha256: str, what: str) -> None:
        """Push a file into a folder the app's uid can read (dirs 755, file 644) and check its sha256 there."""
        folder = posixpath.dirname(remote)
        self.sh(
            protocol.quote_command(["mkdir", "-p", folder])
            + " && "
            + protocol.quote_command(["chmod", "755", protocol.REMOTE_ROOT, folder])
        )
        guarded_call(self.serial, f"push {what}", send_file, self._dev, local, remote)
        got = self.remote_sha256(remote)
        if got != sha256:
            raise DeviceError(f"{self.serial}: pushed {what} has sha256 {got} instead of {sha256}")

    def _require_accuracy_app(self) -> None:
        """AppOutdated (one line naming the device) unless the installed app reads and writes tensor packs."""
        if self._app is None:
            self._app = self.installed_version_code()
        if self._app is None or self._app < protocol.APP_VERSION_CODE:
            installed = "is not installed" if self._app is None else f"is versionCode {self._app}"
            raise AppOutdated(
                f"{self.serial}: the benchmark app {installed}; accuracy mode needs versionCode "
                f"{protocol.APP_VERSION_CODE} or later: pass --apk android_bench/build/blitzmask-bench.apk (`make apk`)"
            )

    def run(
        self,
        remote_model: str,
        *,
        cell_key: str,
        delegate: str,
        threads: int,
        warmup: int,
        runs: int,
        sustained_s: float = 0,
        target_fps: float = 30.0,
    ) -> dict:
        """Run one cell with `am instrument`; the pulled result file, else the status line's JSON."""
        out = protocol.remote_result_path(cell_key)
        self._prepare_app_file(out)
        command = protocol.instrument_command(
            remote_model,
            delegate=delegate,
            threads=threads,
            warmup=warmup,
            runs=runs,
            out=out,
            sustained_s=sustained_s,
            target_fps=target_fps,
        )
        result = self._instrument(command, out, self.instrument_timeout + sustained_s)
        if result["status"] == "runtime_missing":
            raise RuntimeMissing(result.get("error") or "LiteRT runtime missing in the benchmark app", result)
        return result

    def run_accuracy(
        self, remote_model: str, remote_inputs: str, *, cell_key: str, delegate: str, threads: int
    ) -> tuple[dict, dict[str, list[np.ndarray]]]:
        """Run the app's accuracy mode on a pushed input pack → (result JSON, {input name: [output tensors]}).

        The output pack REMOTE_ROOT/outputs/<cell_key>.pack is pulled in one transfer and removed from the device;
        the outputs are {} unless the status is ok. A missing runtime or an unsupported delegate is the result's
        status; AppOutdated when the installed app cannot read packs."""
        self._require_accuracy_app()
        out = protocol.remote_result_path(cell_key)
        pack = protocol.remote_outputs_path(cell_key)
        self._prepare_app_file(out)
        self._prepare_app_file(pack)
        command = protocol.instrument_command(
            remote_model, delegate=delegate, threads=threads, out=out, mode="accuracy", inputs=remote_inputs,
            outputs=pack,
        )  # fmt: skip
        result = self._instrument(command, out, self.instrument_timeout)
        if result.get("mode") != "accuracy":
            raise InstrumentationFailed(
                f"{self.serial}: the benchmark app has no accuracy mode; install the current APK"
            )
        outputs = self._pull_outputs(result, pack) if result["status"] == "ok" else {}
        with contextlib.suppress(DeviceError):  # the outputs are in hand: a device gone now is found later
            self.sh(protocol.quote_command(["rm", "-f", pack]), timeout=120.0)
        return result, outputs

    def _pull_outputs(self, result: dict, pack: str) -> dict[str, list[np.ndarray]]:
        with tempfile.TemporaryDirectory(prefix="blitzmask-outputs-") as tmp:
            local = Path(tmp) / "outputs.pack"
            guarded_call(self.serial, "pull outputs", self._dev.sync.pull, pack, str(local))
            return protocol.collect_outputs(result, protocol.read_pack(local))

    def _prepare_app_file(self, path: str) -> None:
        """The folder of `path` writable by the app's uid, no old file at `path`."""
        self.sh(
            protocol.quote_command(["mkdir", "-p", posixpath.dirname(path)])
            + " && "
            + protocol.quote_command(["chmod", "777", posixpath.dirname(path)])  # the app writes as its own uid
            + " && "
            + protocol.quote_command(["rm", "-f", path])
        )

    def _instrument(self, command: str, out: str, timeout: float) -> dict:
        """Run `am instrument`; the pulled result file, else the status line's JSON."""
        ret = self.sh(command, timeout=timeout)
        from_line, _ = protocol.parse_instrument_output(ret.stdout)
        try:
            result = protocol.parse_result(guarded_call(self.serial, "pull result", self._dev.sync.read_bytes, out))
        except DeviceGone:
            if from_line is None:
                raise
            result = from_line  # the status line arrived before the device went: the cell is measured, keep it
        except DeviceError:
            result = from_line
        if result is None:
            tail = (ret.stdout + ret.stderr).strip().splitlines()[-1:] or ["no output"]
            raise InstrumentationFailed(f"{self.serial}: no result (am instrument exit {ret.returncode}): {tail[0]}")
        with contextlib.suppress(DeviceError):  # the result is in hand: a device gone now is found by the next call
            self.sh(protocol.quote_command(["rm", "-f", out]))
        return result


def apk_version_code(apk: Path) -> int:
    """versionCode from the APK's sidecar `<apk>.json` written by android_bench/build_apk.sh."""
    sidecar = apk.with_name(apk.name + ".json")
    if not apk.is_file():
        raise BadInput(f"APK not found: {apk}")
    try:
        return int(json.loads(sidecar.read_text())["version_code"])
    except (OSError, ValueError, KeyError, TypeError):
        raise BadInput(f"{sidecar} missing or without version_code (rebuild with android_bench/build_apk.sh)") from None
