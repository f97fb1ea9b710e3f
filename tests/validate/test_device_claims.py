"""`validate --device` claims each accuracy cell in the store before measuring it: two runs on one store measure
every cell once, a claim whose process died is taken over, a live one is left to its owner. The phone here is this
host (LocalDevice's protocol under a phone's serial), so no emulated device is needed."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from blitzmask_deploy.bench.errors import DeviceGone
from blitzmask_deploy.bench.local import LocalDevice
from blitzmask_deploy.bench.store import ResultStore
from blitzmask_deploy.validate.device import TABLE, DeviceValidation, run_validate_device

pytestmark = pytest.mark.slow
DELEGATES = ["cpu", "xnnpack"]
IMAGES = 4


class HostPhone:
    """This host as a phone: `start` (a barrier) holds its first app check until every run sharing it got there;
    every accuracy run is recorded in `ran` (its cell key)."""

    kind = "adb"
    serial = "HOSTPHONE1"
    adb_server = None

    def __init__(self, start: threading.Barrier | None, ran: list[str]) -> None:
        self.start, self.ran = start, ran
        self._host = LocalDevice()

    def info(self) -> dict:
        return {"model": "Host Phone", "fingerprint": "test/host-phone:1"}

    def alive(self) -> bool:
        return True

    def ensure_app(self, apk: Path | None) -> int:
        if self.start is not None:
            self.start.wait(120)  # both runs found their cells pending (generous: the suite may load the CPU)
        return 3

    def push_inputs(self, pack: Path, sha256: str) -> str:
        return self._host.push_inputs(pack, sha256)

    def prepare(self, model: Path, sha256: str) -> str:
        return self._host.prepare(model, sha256)

    def run_accuracy(
        self, remote_model: str, remote_inputs: str, *, cell_key: str, delegate: str, threads: int
    ) -> tuple[dict, dict[str, list[np.ndarray]]]:
        self.ran.append(cell_key)
        return self._host.run_accuracy(remote_model, remote_inputs, cell_key=cell_key, delegate=delegate,
                                       threads=threads)  # fmt: skip


class Unplugged(HostPhone):
    """A phone that is gone by the time its app is checked: its cells are planned and stay pending."""

    def ensure_app(self, apk: Path | None) -> int:
        raise DeviceGone(f"{self.serial}: unplugged")


def _validate(export: Path, data: Path, phone: HostPhone, store: Path) -> DeviceValidation:
    return run_validate_device(
        export, data, [phone], ResultStore(store), delegates=DELEGATES, threads=1, max_images=IMAGES, progress=False
    )


def _hold(store: Path, key: str, owner: str, until: float) -> None:
    """Write a claim on one accuracy cell as another process would have left it."""
    conn = sqlite3.connect(store)
    with conn:
        conn.execute(f"UPDATE {TABLE} SET claimed_by = ?, lease_until = ? WHERE cell_key = ?", (owner, until, key))
    conn.close()


def test_two_runs_on_one_store_measure_each_cell_once(tiny_export: Path, synth_dataset: Path, tmp_path: Path) -> None:
    store = tmp_path / "results.sqlite"
    planned = _validate(tiny_export, synth_dataset, Unplugged(None, []), store)
    keys = [row["cell_key"] for row in planned.rows]
    assert len(keys) == 6 and planned.ran == 0 and {row["status"] for row in planned.rows} == {"pending"}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host, later = socket.gethostname(), time.time() + 600
    _hold(store, keys[0], f"{host}:{dead.pid}:killed", later)  # its process died: taken over
    _hold(store, keys[1], f"{host}:{os.getpid()}:other", later)  # a live owner: left to it

    start, ran = threading.Barrier(2), []
    outcomes: list[DeviceValidation] = []

    def run() -> None:
        outcomes.append(_validate(tiny_export, synth_dataset, HostPhone(start, ran), store))

    workers = [threading.Thread(target=run) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(outcomes) == 2
    assert sorted(ran) == sorted(keys[:1] + keys[2:])  # every cell but the live claim's, each measured once
    assert sum(o.ran for o in outcomes) == 5 and all(not o.gone for o in outcomes)
    # Seen held: the live claim by both runs, and the first cell either run claimed by the other one (which waits at
    # the barrier with it until that other run got there).
    assert sum(o.claimed_elsewhere for o in outcomes) >= 3
    rows = {row["cell_key"]: row for row in ResultStore(store).cells(table=TABLE)}
    assert [rows[k]["status"] for k in keys] == ["done", "pending", "done", "done", "done", "done"]
    assert [rows[k]["attempts"] for k in keys] == [1, 0, 1, 1, 1, 1]
    assert rows[keys[1]]["claimed_by"].endswith(":other") and rows[keys[1]]["lease_until"] == pytest.approx(later)
    assert {rows[k]["lease_until"] for k in keys if k != keys[1]} == {None}  # released once measured
