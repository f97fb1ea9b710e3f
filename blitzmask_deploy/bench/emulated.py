"""An emulated Android device for tests: Debian's real `adbd` in a chroot, reached through a private adb server.

Debian trixie's adbd needs glibc 2.38+, so it runs in a chroot of extracted trixie packages
(scripts/emulated_device/build_rootfs.sh, cached under .cache/emulated-device) inside its own mount, pid and
network namespaces (`unshare`, needs root). The host reaches it on 127.0.0.1:PORT only, through a relay
(scripts/emulated_device/forward.py; 5601: ports 5555–5585 would also show up as `emulator-N`); a private adb server
on ADB_PORT (5137) is connected to it, so a user's own adb server is never touched. `getprop`, `pm`, `cmd`,
`dumpsys` and `am` are shims; `am instrument` runs the benchmark protocol on the host (see emulated_worker).
The driver cannot tell it from a phone connected over adb-over-TCP.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from blitzmask_deploy.bench.emulated_worker import (
    DeviceServices,
    Runner,
    SpoolWorker,
    device_record,
    read_build_prop,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts" / "emulated_device"
EMULATOR_PORTS = range(5554, 5586)
THERMAL_ZONES = (("cpu-thermal", 38000), ("gpu-thermal", 36000), ("battery", 30000))
UNSHARE = ("unshare", "--mount", "--pid", "--net", "--fork", "--kill-child", "--propagation", "private", "sh")
IN_USE = ".in-use"  # written last by a complete build; running devices hold a shared lock on it
CPU_COUNT, CPU_KHZ, CPU_MAX_KHZ = 4, 1800000, 2400000


class EmulatorError(RuntimeError):
    """The emulated device could not be built or started."""


class EmulatorUnavailable(EmulatorError):
    """This machine cannot run the emulated device (no root or namespaces, or the .debs cannot be fetched)."""


def default_cache_dir() -> Path:
    """Where the rootfs and its .debs are cached ($BLITZMASK_EMULATED_CACHE or .cache/emulated-device)."""
    return Path(os.environ.get("BLITZMASK_EMULATED_CACHE", REPO_ROOT / ".cache" / "emulated-device"))


def acquire_rootfs(cache_dir: Path | None = None) -> tuple[Path, IO[str]]:
    """The emulated device's rootfs and an open file holding a shared lock on it (keep it open while the device
    runs). Built on first use (fetches ~20 .debs) and again when scripts/emulated_device changes, as
    `rootfs-<digest>`; other versions are removed once no running device holds them."""
    cache = cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    rootfs = cache / f"rootfs-{_scripts_digest()[:16]}"
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (rootfs / IN_USE).exists():
            env = {**os.environ, "PYTHON": sys.executable}
            script = [str(SCRIPTS / "build_rootfs.sh"), str(cache), str(rootfs)]
            proc = subprocess.run(["bash", *script], env=env, capture_output=True, text=True, check=False)
            if proc.returncode == 3:
                raise EmulatorUnavailable(proc.stderr.strip().splitlines()[-1])
            if proc.returncode != 0:
                raise EmulatorError(f"build_rootfs.sh failed: {proc.stderr.strip()[-2000:]}")
            (rootfs / IN_USE).touch()
        held = open(rootfs / IN_USE)  # noqa: SIM115 - the caller keeps it open while the device runs
        fcntl.flock(held, fcntl.LOCK_SH)
        for old in cache.glob("rootfs-*"):
            if old != rootfs and _unused(old):
                shutil.rmtree(old, ignore_errors=True)
    return rootfs, held


def _unused(rootfs: Path) -> bool:
    try:
        with open(rootfs / IN_USE) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a half-built or foreign directory
        return True
    return True


def _scripts_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in SCRIPTS.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(SCRIPTS)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _unix_open(path: Path) -> bool:
    """Whether a Unix socket accepts connections (through /proc/self/fd: no 108-byte path limit)."""
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return False
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            return sock.connect_ex(f"/proc/self/fd/{dir_fd}/{path.name}") == 0
    finally:
        os.close(dir_fd)


def free_port_pair(port: int = 5601, adb_port: int = 5137, tries: int = 50) -> tuple[int, int]:
    """The first (device port, adb server port) pair from the defaults upwards (step 2) where both are free."""
    for i in range(tries):
        pair = (port + 2 * i, adb_port + 2 * i)
        if not any(_port_open(p) for p in pair):
            return pair
    raise EmulatorError(f"no free port pair from {port}/{adb_port}")


class EmulatedDevice:
    """A real adbd in a chroot on 127.0.0.1:`port`, served by a private adb server on 127.0.0.1:`adb_port`."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int = 5601,
        adb_port: int = 5137,
        cache_dir: Path | None = None,
        runner: Runner | None = None,
    ) -> None:
        if port in EMULATOR_PORTS:
            raise ValueError(f"port {port} is in 5554–5585: adb would also list it as an emulator")
        self.workdir = Path(workdir)
        self.port = port
        self.adb_port = adb_port
        self.cache_dir = cache_dir
        self.state = self.workdir / "state"
        self.rootfs: Path | None = None
        self.props: dict[str, str] = {}
        self.services: DeviceServices | None = None  # answers the shims; tests may swap `services.runner`
        self._runner = runner
        self._proc: subprocess.Popen | None = None
        self._relay: subprocess.Popen | None = None
        self._worker: SpoolWorker | None = None
        self._own_server = False
        self._boots = 0
        self._rootfs_hold: IO[str] | None = None

    @property
    def serial(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def adb_address(self) -> str:
        return f"127.0.0.1:{self.adb_port}"

    @property
    def device_info(self) -> dict:
        """The protocol's `device` record the instrumentation shim reports."""
        return device_record(self.props)

    def adb_env(self) -> dict[str, str]:
        """Environment for the `adb` command line tool pointed at this device's server."""
        return {**os.environ, "ANDROID_ADB_SERVER_PORT": str(self.adb_port), "ANDROID_SERIAL": self.serial}

    def client(self):
        """An adbutils client of the private adb server."""
        import adbutils

        return adbutils.AdbClient(host="127.0.0.1", port=self.adb_port, socket_timeout=30)

    def start(self) -> str:
        """Build (cached) and boot the device, connect the adb server to it; returns its serial."""
        if os.geteuid() != 0:
            raise EmulatorUnavailable("the emulated device needs root (chroot and mount namespaces)")
        if shutil.which("unshare") is None:
            raise EmulatorUnavailable("the emulated device needs unshare (util-linux)")
        probe = subprocess.run([*UNSHARE[:-1], "true"], capture_output=True, text=True, timeout=30, check=False)
        if probe.returncode != 0:
            raise EmulatorUnavailable(f"cannot create mount/pid/net namespaces here: {probe.stderr.strip()}")
        self.rootfs, self._rootfs_hold = acquire_rootfs(self.cache_dir)
        self.props = read_build_prop(self.rootfs / "system" / "build.prop")
        self._prepare_state()
        self._start_relay()
        self._start_server()
        self.services = DeviceServices(self.state, self.props, self._runner or _local_runner)
        self._worker = SpoolWorker(self.state / "spool", self.services)
        self._worker.start()
        self.replug()
        return self.serial

    def stop(self) -> None:
        """Shut the device down and, when this object started it, the private adb server."""
        if self._proc is not None:
            self._kill_adbd()
            with contextlib.suppress(Exception):  # the server may already be gone
                self.client().disconnect(self.serial)
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        if self._relay is not None:
            self._relay.kill()
            self._relay.wait(timeout=10)
            self._relay = None
        if self._own_server:
            subprocess.run(
                [self._adb(), "-P", str(self.adb_port), "kill-server"], capture_output=True, timeout=20, check=False
            )
            self._own_server = False
        if self._rootfs_hold is not None:
            self._rootfs_hold.close()
            self._rootfs_hold = None

    def unplug(self, timeout: float = 10.0) -> None:
        """Kill adbd (as a pulled cable would): running commands get EOF and the device goes offline."""
        self._kill_adbd()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.state_on_host() == "device":
            time.sleep(0.05)

    def replug(self, timeout: float = 20.0) -> None:
        """Boot adbd again (its /data is kept) and wait until the adb server lists the device as `device`."""
        if self._proc is not None:
            return
        self._launch_adbd()
        client = self.client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state_on_host() == "device":
                return
            with contextlib.suppress(Exception):  # adbd not accepting yet
                client.connect(self.serial, timeout=5)
            time.sleep(0.1)
        raise EmulatorError(f"{self.serial} did not come online within {timeout:.0f} s; see {self._log_path()}")

    def state_on_host(self) -> str | None:
        """The device's state as the adb server sees it ('device', 'offline', …) or None when not listed."""
        try:
            for info in self.client().list():
                if info.serial == self.serial:
                    return info.state
        except Exception:
            return None
        return None

    def set_temperature(self, zone: int, milli_c: int) -> None:
        """Set /sys/class/thermal/thermal_zone<zone>/temp on the device (milli-degrees Celsius)."""
        path = self.state / "sys" / "class" / "thermal" / f"thermal_zone{zone}" / "temp"
        if not path.exists():
            raise ValueError(f"the emulated device has no thermal_zone{zone}")
        path.write_text(f"{int(milli_c)}\n")

    def set_clock(self, cpu: int, khz: int) -> None:
        """Set cpu<cpu>/cpufreq/scaling_cur_freq on the device (kHz), e.g. to play a throttling phone."""
        path = self.state / "sys" / "devices" / "system" / "cpu" / f"cpu{cpu}" / "cpufreq" / "scaling_cur_freq"
        if not path.exists():
            raise ValueError(f"the emulated device has no cpu{cpu}")
        path.write_text(f"{int(khz)}\n")

    def __enter__(self) -> EmulatedDevice:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals ------------------------------------------------------------------------------------------
    def _prepare_state(self) -> None:
        for sub in ("data/local/tmp", "data/system", "data/app", "tmp", "spool"):
            (self.state / sub).mkdir(parents=True, exist_ok=True)
        thermal = self.state / "sys" / "class" / "thermal"
        for i, (kind, milli_c) in enumerate(THERMAL_ZONES):
            zone = thermal / f"thermal_zone{i}"
            zone.mkdir(parents=True, exist_ok=True)
            (zone / "type").write_text(kind + "\n")
            (zone / "temp").write_text(f"{milli_c}\n")
        for cpu in range(CPU_COUNT):
            freq = self.state / "sys" / "devices" / "system" / "cpu" / f"cpu{cpu}" / "cpufreq"
            freq.mkdir(parents=True, exist_ok=True)
            for name, khz in (("scaling_cur_freq", CPU_KHZ), ("scaling_max_freq", CPU_MAX_KHZ)):
                (freq / name).write_text(f"{khz}\n")
            (freq / "cpuinfo_max_freq").write_text(f"{CPU_MAX_KHZ}\n")

    def _adb(self) -> str:
        import adbutils

        return adbutils.adb_path()

    def _start_server(self) -> None:
        if _port_open(self.adb_port):
            return
        home = self.workdir / "adb-home"  # the server's adbkey goes here, not into the user's ~/.android
        home.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [self._adb(), "-P", str(self.adb_port), "start-server"],
            env={**self.adb_env(), "HOME": str(home), "ANDROID_USER_HOME": str(home / ".android")},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if proc.returncode != 0:
            raise EmulatorError(f"adb start-server on port {self.adb_port} failed: {proc.stderr.strip()}")
        self._own_server = True

    def _log_path(self) -> Path:
        return self.workdir / "adbd.log"

    def _start_relay(self) -> None:
        """127.0.0.1:PORT on the host → STATE/adbd.sock → adbd in its network namespace (see forward.py)."""
        if _port_open(self.port):
            raise EmulatorError(f"port {self.port} is already in use")
        with open(self.workdir / "relay.log", "ab") as log:
            self._relay = subprocess.Popen(
                [sys.executable, str(SCRIPTS / "forward.py"), f"tcp:127.0.0.1:{self.port}", f"unix:{self._socket}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while not _port_open(self.port):
            if self._relay.poll() is not None or time.monotonic() > deadline:
                raise EmulatorError(f"the relay did not listen on {self.port}; see {self.workdir / 'relay.log'}")
            time.sleep(0.05)

    @property
    def _socket(self) -> Path:
        return self.state / "adbd.sock"

    def _launch_adbd(self) -> None:
        # A fresh spool per boot: pids restart in the new namespace, so an answer to a request of the previous
        # boot must not reach a new shim with the same pid.
        self._boots += 1
        spool = self.state / "spool" / f"boot{self._boots}"
        shutil.rmtree(spool, ignore_errors=True)
        spool.mkdir(parents=True)
        assert self._worker is not None
        self._worker.spool = spool
        with open(self._log_path(), "ab") as log:
            self._proc = subprocess.Popen(
                [*UNSHARE, str(SCRIPTS / "launch.sh"), str(self.rootfs), str(self.state), str(self.port), str(spool)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHON": sys.executable},
            )
        deadline = time.monotonic() + 60
        while not _unix_open(self._socket):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._kill_adbd()
                tail = self._log_path().read_text(errors="replace")[-1500:]
                raise EmulatorError(f"adbd did not start:\n{tail}")
            time.sleep(0.05)

    def _kill_adbd(self) -> None:
        if self._proc is None:
            return
        # Kill the namespace's pid 1 (adbd; everything in the namespace dies with it) so that unshare reaps it;
        # killing unshare alone also works (--kill-child) but leaves adbd to be reaped by the host's init.
        children = Path(f"/proc/{self._proc.pid}/task/{self._proc.pid}/children")
        with contextlib.suppress(OSError, ValueError):
            for pid in children.read_text().split():
                os.kill(int(pid), signal.SIGKILL)
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=10)
        self._proc = None


def _local_runner(model: Path, **kwargs: object) -> dict:
    from blitzmask_deploy.bench.local import run_local_benchmark

    return run_local_benchmark(model, **kwargs)  # type: ignore[arg-type]


def main() -> None:
    """`python -m blitzmask_deploy.bench.emulated [WORKDIR]`: run the device until Ctrl-C (for manual tries)."""
    import tempfile

    workdir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="blitzmask-emu-"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the device on `kill` too
    with EmulatedDevice(workdir) as emu:
        print(f"{emu.serial} on adb server {emu.adb_address}: try `adb -P {emu.adb_port} devices -l`", flush=True)
        print(f"e.g. blitzmask devices --adb {emu.adb_address}; Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
