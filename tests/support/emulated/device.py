"""An emulated Android device for tests: Debian's real `adbd` in a chroot, reached through a private adb server.

Debian trixie's adbd needs glibc 2.38+, so it runs in a chroot of extracted trixie packages
(rootfs/build_rootfs.sh, cached under .cache/emulated-device) inside its own mount, pid and
network namespaces (`unshare`, needs root). The host reaches it on 127.0.0.1:PORT only, through a relay
(rootfs/forward.py; 5601: ports 5555–5585 would also show up as `emulator-N`); a private adb server
on ADB_PORT (5137) is connected to it, so a user's own adb server is never touched. `getprop`, `pm`, `cmd`,
`dumpsys` and `am` are shims; `am instrument` runs the benchmark protocol on the host (see worker.py), in accuracy
mode through the fault switched on for the requested delegate, if any (`faults`, see faults.py). The driver cannot
tell it from a phone connected over adb-over-TCP.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from tests.support.emulated.faults import check_faults
from tests.support.emulated.worker import (
    DeviceServices,
    Runner,
    SpoolWorker,
    device_record,
    read_build_prop,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
SCRIPTS = Path(__file__).resolve().parent / "rootfs"  # what builds and boots the device's file system
EMULATOR_PORTS = range(5554, 5586)
THERMAL_ZONES = (("cpu-thermal", 38000), ("gpu-thermal", 36000), ("battery", 30000))
UNSHARE = ("unshare", "--mount", "--pid", "--net", "--fork", "--kill-child", "--propagation", "private", "sh")
IN_USE = ".in-use"  # written last by a complete build; running devices hold a shared lock on it
CPU_COUNT, CPU_KHZ, CPU_MAX_KHZ = 4, 1800000, 2400000
BUILD_TIMEOUT_S = 900  # build_rootfs.sh, and the longest wait for another run's build
log = logging.getLogger(__name__)


class EmulatorError(RuntimeError):
    """The emulated device could not be built or started."""


class EmulatorUnavailable(EmulatorError):
    """This machine cannot run the emulated device (no root or namespaces, or the .debs cannot be fetched)."""


def default_cache_dir() -> Path:
    """Where the rootfs and its .debs are cached ($BLITZMASK_EMULATED_CACHE or .cache/emulated-device)."""
    return Path(os.environ.get("BLITZMASK_EMULATED_CACHE", REPO_ROOT / ".cache" / "emulated-device"))


def acquire_rootfs(cache_dir: Path | None = None) -> tuple[Path, IO[str]]:
    """The emulated device's rootfs and an open file holding a shared lock on it (keep it open while the device
    runs). Built on first use (fetches ~20 .debs) and again when rootfs/ changes, as
    `rootfs-<digest>`; other versions are removed once no running device holds them."""
    cache = cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    rootfs = cache / f"rootfs-{_scripts_digest()[:16]}"
    with open(cache / ".lock", "w") as lock:
        _flock_within(lock, BUILD_TIMEOUT_S, f"the rootfs lock {cache / '.lock'} (another run building it?)")
        if not (rootfs / IN_USE).exists():
            env = {**os.environ, "PYTHON": sys.executable}
            script = [str(SCRIPTS / "build_rootfs.sh"), str(cache), str(rootfs)]
            try:
                proc = subprocess.run(
                    ["bash", *script], env=env, capture_output=True, text=True, check=False, timeout=BUILD_TIMEOUT_S
                )
            except subprocess.TimeoutExpired:
                raise EmulatorError(f"build_rootfs.sh did not finish within {BUILD_TIMEOUT_S} s") from None
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


def _flock_within(handle: IO[str], timeout: float, what: str) -> None:
    """An exclusive flock, or EmulatorError after `timeout` seconds (never a silent hang)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise EmulatorError(f"could not take {what} within {timeout:.0f} s") from None
            time.sleep(0.2)


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


def _listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds the socket listening on 127.0.0.1:`port` (and not another run's relay)."""
    try:
        rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
        inodes = {f"socket:[{r[9]}]" for r in rows if r[1] == f"0100007F:{port:04X}" and r[3] == "0A"}
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(pid: int, marker: str) -> None:
    """SIGKILL the children of `pid` then `pid`, when its command line still contains `marker` (pids get reused)."""
    try:
        if marker not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
            return
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return
    for child in [*map(int, children), pid]:
        with contextlib.suppress(OSError):
            os.kill(child, signal.SIGKILL)


def reap_stale(cache_dir: Path | None = None) -> list[str]:
    """Stop what emulated devices of dead processes left behind (relay, adbd, private adb server) → their ports.

    Each started device records its processes in CACHE/owners/<port>.json; a record whose owner process is gone
    (a killed test run: the relay and adbd run in their own sessions and outlive it) is cleaned up here."""
    freed, records = [], {}
    for record in sorted((cache_dir or default_cache_dir()).glob("owners/*.json")):
        try:
            owned = json.loads(record.read_text())
            records[record] = (owned, _pid_alive(int(owned["owner"])))
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("emulated device: removing unreadable owner record %s (%s)", record, err)
            record.unlink(missing_ok=True)
    live_servers = {owned.get("adb_port") for owned, alive in records.values() if alive}
    for record, (owned, alive) in records.items():
        if alive:
            continue
        with contextlib.suppress(ValueError, TypeError):
            for pid, marker in owned.get("pids", []):
                _kill_group(int(pid), str(marker))
            port = int(owned.get("adb_port", 0))
            if owned.get("adb_server") and port not in live_servers and _port_open(port):
                _kill_server(port)
        log.warning("emulated device: stopped the leftovers of dead run %s (port %s)", owned["owner"], record.stem)
        freed.append(record.stem)
        record.unlink(missing_ok=True)
    return freed


def _kill_server(adb_port: int) -> None:
    import adbutils

    cmd = [adbutils.adb_path(), "-P", str(adb_port), "kill-server"]
    subprocess.run(cmd, capture_output=True, timeout=20, check=False)


def free_port_pair(port: int = 5601, adb_port: int = 5137, tries: int = 50) -> tuple[int, int]:
    """The first (device port, adb server port) pair from the defaults upwards (step 2) where both are free."""
    for i in range(tries):
        pair = (port + 2 * i, adb_port + 2 * i)
        if pair[0] not in EMULATOR_PORTS and not any(_port_open(p) for p in pair):
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
        faults: dict[str, str] | None = None,
    ) -> None:
        if port in EMULATOR_PORTS:
            raise ValueError(f"port {port} is in 5554–5585: adb would also list it as an emulator")
        self.faults = check_faults(faults)  # {delegate: "fp16" | "noise" | "zero"}: accuracy mode computes wrong
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
        self._port_held = False  # our relay listens on `port`: the owner record CACHE/owners/<port>.json is ours
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
        """Build (cached) and boot the device, connect the adb server to it; returns its serial.

        Leftovers of killed runs are stopped first (`reap_stale`). A failed boot is cleaned up and retried once,
        on the next free port pair when its ports are taken (logged); a second failure raises EmulatorError."""
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
        reap_stale(self.cache_dir)
        try:
            self._boot()
        except EmulatorError as err:
            self._shutdown()
            if _port_open(self.port) or _port_open(self.adb_port):
                port, adb_port = self.port + 2, self.adb_port + 2
                if port in EMULATOR_PORTS:
                    port, adb_port = EMULATOR_PORTS.stop + 1, adb_port + EMULATOR_PORTS.stop + 1 - port
                self.port, self.adb_port = free_port_pair(port, adb_port)
            reason = str(err).splitlines()[0]
            log.warning("emulated device: start failed (%s); retrying once on %s, adb server %s", reason,
                        self.serial, self.adb_address)  # fmt: skip
            try:
                self._boot()
            except EmulatorError as again:
                self.stop()
                raise EmulatorError(f"the emulated device did not start (tried twice): {again}") from None
        return self.serial

    def _boot(self) -> None:
        self._start_relay()
        self._start_server()
        self.services = DeviceServices(self.state, self.props, self._runner or _local_runner, faults=self.faults)
        self._worker = SpoolWorker(self.state / "spool", self.services)
        self._worker.start()
        self.replug()

    def stop(self) -> None:
        """Shut the device down and, when this object started it, the private adb server."""
        self._shutdown()
        if self._rootfs_hold is not None:
            self._rootfs_hold.close()
            self._rootfs_hold = None

    def _shutdown(self) -> None:
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
            _kill_server(self.adb_port)
            self._own_server = False
        if self._port_held:
            self._owner_record().unlink(missing_ok=True)
            self._port_held = False

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

    def _owner_record(self) -> Path:
        return (self.cache_dir or default_cache_dir()) / "owners" / f"{self.port}.json"

    def _record_owner(self) -> None:
        """CACHE/owners/<port>.json: what to stop should this process die without stop() (see reap_stale)."""
        if not self._port_held:
            return
        pids = [[p.pid, mark] for p, mark in ((self._relay, "forward.py"), (self._proc, "unshare")) if p is not None]
        record = {"owner": os.getpid(), "pids": pids, "adb_port": self.adb_port, "adb_server": self._own_server}
        path = self._owner_record()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)

    def _start_server(self) -> None:
        if _port_open(self.adb_port):  # the relay port is ours, so this is a user's server or a foreign leftover
            raise EmulatorError(f"adb server port {self.adb_port} is already in use")
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
        self._record_owner()

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
        while not _listens(self._relay.pid, self.port):  # not just "open": another run may have bound it first
            if self._relay.poll() is not None or time.monotonic() > deadline:
                tail = (self.workdir / "relay.log").read_text(errors="replace").strip().splitlines()[-1:]
                raise EmulatorError(f"the relay did not listen on 127.0.0.1:{self.port}: {tail[0] if tail else ''}")
            time.sleep(0.05)
        self._port_held = True
        self._record_owner()

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
        with open(self._log_path(), "ab") as out:
            offset = out.tell()  # this boot's part of adbd.log (each unplug's SIGKILL makes util-linux 2.38's
            # unshare print "sigprocmask unblock failed": harmless, and not this boot's problem)
            self._proc = subprocess.Popen(
                [*UNSHARE, str(SCRIPTS / "launch.sh"), str(self.rootfs), str(self.state), str(self.port), str(spool)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHON": sys.executable},
            )
        self._record_owner()
        deadline = time.monotonic() + 60
        while not _unix_open(self._socket):
            exited = self._proc.poll()
            if exited is not None or time.monotonic() > deadline:
                self._kill_adbd()
                with open(self._log_path(), "rb") as boot_log:
                    boot_log.seek(offset)
                    tail = boot_log.read().decode(errors="replace")[-1500:].strip() or "(no output)"
                why = f"exited with status {exited}" if exited is not None else "timed out after 60 s"
                raise EmulatorError(f"adbd did not start ({why}); {self._log_path()}:\n{tail}")
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
