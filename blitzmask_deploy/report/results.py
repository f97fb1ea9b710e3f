"""The report's table: one `Row` per exported file, or per file on a benchmark cell; `Results` holds them all.

Accuracy figures are on COCO's 0–1 scale (`mask_ap`, `drop` = reference AP − file AP); tables show AP points.
How rows are read from stored files: report/sources.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One exported file, optionally on one benchmark cell (device × delegate × threads)."""

    variant: str
    name: str
    file: str
    format: str
    precision: str
    sha256: str
    mask_ap: float | None = None
    drop: float | None = None
    reference_ap: float | None = None
    host_p50_ms: float | None = None
    validation_passed: bool | None = None
    gmacs: float | None = None
    status: str = "not benchmarked"
    device: str | None = None
    device_serial: str | None = None
    soc: str | None = None
    delegate: str | None = None
    delegate_applied: str | None = None
    threads: int | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    fps: float | None = None
    init_ms: float | None = None
    error: str | None = None
    runs_ms: list[float] = field(default_factory=list)
    thermal_before: dict[str, float] = field(default_factory=dict)
    thermal_after: dict[str, float] = field(default_factory=dict)
    clocks_before: dict[str, Any] = field(default_factory=dict)
    sustained: dict[str, Any] | None = None

    @property
    def benchmarked(self) -> bool:
        """True when this row carries measured latency."""
        return self.status == "done" and self.p50_ms is not None

    @property
    def target(self) -> str:
        """'device / delegate / N threads' label of the cell."""
        return f"{self.device} / {self.delegate} / {self.threads}t"

    @property
    def thermal_delta_c(self) -> float | None:
        """Rise of the hottest zone over the cell, °C (None when not recorded)."""
        if not self.thermal_before or not self.thermal_after:
            return None
        return max(self.thermal_after.values()) - max(self.thermal_before.values())


FILE_FIELDS = [
    "variant",
    "name",
    "file",
    "format",
    "precision",
    "sha256",
    "mask_ap",
    "drop",
    "reference_ap",
    "host_p50_ms",
    "validation_passed",
    "gmacs",
]


@dataclass
class Results:
    """Everything the report and the gate need, read from stored files only."""

    source: Path
    rows: list[Row]
    validations: list[dict[str, Any]]
    manifests: dict[str, dict[str, Any]]
    accuracy: list[dict[str, Any]] = field(default_factory=list)  # accuracy cells: AP of a file on a device

    def device_ap(self, row: Row) -> float | None:
        """The mask AP measured on the row's device with its delegate, when an accuracy cell holds it."""
        for cell in self.accuracy:
            if cell["status"] == "done" and (cell["model_sha256"], cell["device_serial"], cell["delegate"]) == (
                row.sha256,
                row.device_serial,
                row.delegate,
            ):
                return cell["mask_ap"]
        return None

    def files(self) -> list[Row]:
        """One row per exported file with accuracy (the first row seen for each sha256)."""
        seen: dict[str, Row] = {}
        for row in self.rows:
            if row.mask_ap is not None:
                seen.setdefault(row.sha256, row)
        return list(seen.values())

    def benchmarked(self) -> list[Row]:
        """Rows with measured latency."""
        return [r for r in self.rows if r.benchmarked]

    def failed(self) -> list[Row]:
        """Benchmark cells that ran but did not produce latency (runtime missing, unsupported delegate, error)."""
        return [r for r in self.rows if r.status in ("failed", "pending")]

    def variants(self) -> list[str]:
        """Model variants present, in first-seen order."""
        return list(dict.fromkeys(r.variant for r in self.rows))
