"""`scripts/emulated-device start|stop WORKDIR`: the emulated device run by hand, in the background.

`start WORKDIR [--fault DELEGATE=KIND ...]` boots the device in a background process, waits until adb lists it as
`device` and prints `ADB_SERVER SERIAL` (e.g. `127.0.0.1:5137 127.0.0.1:5601`) on stdout, then returns; starting a
device that is already running prints its address again (it keeps the faults it was started with). `--fault`
makes that delegate's accuracy-mode outputs wrong: KIND is fp16 (computed in half precision), noise (N(0, 0.3 × each
output's standard deviation) added) or zero (the first output all zeros); see faults.py. `stop WORKDIR`
stops it (and its private adb server). The background process logs to WORKDIR/emulated-device.log. Exit codes:
0 ok, 1 the device failed to start, 2 bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.emulated.faults import parse_fault

PID_FILE = "emulated-device.pid"
READY_FILE = "emulated-device.ready"
LOG_FILE = "emulated-device.log"
START_TIMEOUT_S = 1200  # a first start builds the rootfs (fetching its Debian packages)
STOP_TIMEOUT_S = 30


def _running_pid(workdir: Path) -> int | None:
    """The pid of this workdir's background device process, when it is still alive."""
    try:
        pid = int((workdir / PID_FILE).read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def start(workdir: Path, faults: dict[str, str] | None = None) -> int:
    """Start the device in the background (or find it running) and print `ADB_SERVER SERIAL`."""
    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / READY_FILE
    if _running_pid(workdir) is not None and ready.is_file():
        print(ready.read_text().strip(), flush=True)
        return 0
    ready.unlink(missing_ok=True)
    command = [sys.executable, "-m", "tests.support.emulated", "serve", str(workdir)]
    command += [f"--fault={delegate}={kind}" for delegate, kind in (faults or {}).items()]
    repo = Path(__file__).resolve().parents[3]
    with open(workdir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            command, cwd=repo, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    (workdir / PID_FILE).write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready.is_file():
            print(ready.read_text().strip(), flush=True)
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    else:
        proc.terminate()
    (workdir / PID_FILE).unlink(missing_ok=True)
    tail = (workdir / LOG_FILE).read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
    print(f"error: the emulated device did not start: {tail[0]} (log: {workdir / LOG_FILE})", file=sys.stderr)
    return 1


def serve(workdir: Path, faults: dict[str, str] | None = None) -> int:
    """Run the device in this process until SIGTERM; write `ADB_SERVER SERIAL` to the ready file once it is up."""
    from tests.support.emulated.device import EmulatedDevice, EmulatorError, free_port_pair, reap_stale

    reap_stale()
    port, adb_port = free_port_pair()
    device = EmulatedDevice(workdir / "device", port=port, adb_port=adb_port, faults=faults)
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        device.start()
    except EmulatorError as err:
        device.stop()
        print(f"error: {err}", flush=True)
        return 1
    try:
        tmp = workdir / (READY_FILE + ".tmp")
        tmp.write_text(f"{device.adb_address} {device.serial}\n")
        tmp.replace(workdir / READY_FILE)
        faulty = ", ".join(f"{delegate}={kind}" for delegate, kind in device.faults.items()) or "none"
        print(f"ready: {device.adb_address} {device.serial} (faults: {faulty})", flush=True)
        while not stop:
            time.sleep(0.2)
    finally:
        (workdir / READY_FILE).unlink(missing_ok=True)
        device.stop()
    return 0


def stop(workdir: Path) -> int:
    """Stop the background device of `workdir` (a device that is not running is not an error)."""
    pid = _running_pid(workdir)
    if pid is None:
        print(f"no emulated device running in {workdir}", file=sys.stderr)
        (workdir / PID_FILE).unlink(missing_ok=True)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and _running_pid(workdir) is not None:
        time.sleep(0.1)
    if _running_pid(workdir) is not None:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    (workdir / PID_FILE).unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse `start|stop|serve WORKDIR` and run it."""
    parser = argparse.ArgumentParser(prog="scripts/emulated-device", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "stop", "serve"))
    parser.add_argument("workdir", type=Path)
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="DELEGATE=KIND",
        help=(
            "accuracy mode of DELEGATE computes wrong (repeatable): KIND is fp16 (half precision), noise "
            "(N(0, 0.3 x each output's std) added), zero (output 0 all zeros) or nan (one NaN in each float output)"
        ),
    )
    args = parser.parse_args(argv)
    try:
        faults = dict(parse_fault(text) for text in args.fault)
    except ValueError as err:
        parser.error(str(err))
    if args.action == "start":
        return start(args.workdir, faults)
    if args.action == "serve":
        return serve(args.workdir, faults)
    return stop(args.workdir)


if __name__ == "__main__":
    sys.exit(main())
