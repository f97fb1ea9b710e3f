"""What the sweep runner needs of a benchmark device: the `Device` protocol that `AndroidDevice` (bench/adb.py)
and `LocalDevice` (bench/local.py) implement."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np


class Device(Protocol):
    """A device the runner can measure cells on."""

    serial: str
    kind: str  # "adb" or "local"
    adb_server: str | None

    def alive(self) -> bool:
        """Whether the device still answers."""
        ...

    def info(self) -> dict:
        """The protocol's `device` record (model, soc, android, abi, fingerprint, ...)."""
        ...

    def thermal(self) -> dict[str, float]:
        """{thermal zone: °C}."""
        ...

    def ensure_app(self, apk: Path | None) -> int:
        """Install the benchmark app when needed → its versionCode."""
        ...

    def prepare(self, model: Path, sha256: str) -> str:
        """Make `model` available on the device → the path the app opens."""
        ...

    def run(self, remote_model: str, *, cell_key: str, **settings: Any) -> dict:
        """Run one cell → the protocol's result JSON."""
        ...

    def push_inputs(self, pack: Path, sha256: str) -> str:
        """Make an input tensor pack (protocol.write_pack) available → the path the app reads; a pack the device
        already holds is not pushed again."""
        ...

    def run_accuracy(
        self, remote_model: str, remote_inputs: str, *, cell_key: str, delegate: str, threads: int
    ) -> tuple[dict, dict[str, list[np.ndarray]]]:
        """Run accuracy mode → (result JSON, {input name: [output tensors in output index order]}; {} unless ok)."""
        ...
