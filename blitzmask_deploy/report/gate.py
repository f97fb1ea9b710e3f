"""Regression gate: AP drop per exported file against the numerics budgets, the drop of each file's AP measured
on a device vs its host AP (`device_ap_drop_max`), p50 latency against a limit.

Budgets come from `--budgets FILE` (a numerics.yaml) or else `models/<variant>/numerics.yaml`; `ap_drop_max` is in
AP points (0–100, as the paper writes them) and is compared with the stored drop on COCO's 0–1 scale through
`NumericsCard.max_drop_fraction`. ONNX files use the `onnx` key, TFLite files their precision.
The latency limit is `--max-latency-ms` or the card's `latency_p50_ms_max`; it applies to every benchmarked cell.

The gate never passes by skipping what it cannot read: a budget that is not a finite number >= 0, a validated file
whose AP or AP drop is not a finite number, or a finished cell without a readable p50 under a latency limit is
BadInput (exit 2), as a budget miss is a failed check (exit 1).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.report.results import Results, Row

_EPS = 1e-9
TABLE_HEADER = ["check", "file", "target", "value", "limit", "result"]


@dataclass(frozen=True)
class Check:
    """One gate line: a measured value against its limit."""

    check: str  # "ap_drop" | "device_ap_drop" | "latency_p50"
    file: str
    target: str
    value: float
    limit: float
    unit: str

    @property
    def passed(self) -> bool:
        """True when the value is within its limit."""
        return self.value <= self.limit + _EPS

    def cells(self) -> list[str]:
        """The line as display strings: check, file, target, value, limit, PASS/FAIL."""
        label = {"ap_drop": "AP drop", "device_ap_drop": "device AP drop"}.get(self.check, "p50 latency")
        value, limit = _fmt(self.value, self.unit), _fmt(self.limit, self.unit)
        return [label, self.file, self.target, value, limit, "PASS" if self.passed else "FAIL"]


@dataclass
class GateResult:
    """All checks of one gate run."""

    checks: list[Check]
    notes: list[str]

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        """The `--json` object."""
        return {
            "passed": self.passed,
            "checks": [{**asdict(c), "passed": c.passed} for c in self.checks],
            "notes": self.notes,
        }

    def to_table(self) -> str:
        """Aligned text table with PASS/FAIL per line and a verdict."""
        rows = [TABLE_HEADER, *(c.cells() for c in self.checks)]
        widths = [max(len(x) for x in col) for col in zip(*rows, strict=True)]
        out = ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip() for row in rows]
        out.insert(1, "  ".join("-" * w for w in widths))
        failed = sum(not c.passed for c in self.checks)
        out += [f"note: {n}" for n in self.notes]
        out.append(f"gate: {'PASS' if failed == 0 else 'FAIL'} ({len(self.checks) - failed}/{len(self.checks)} passed)")
        return "\n".join(out)


def _fmt(value: float, unit: str) -> str:
    return f"{value * 100:.2f} AP" if unit == "ap" else f"{value:.2f} ms"


def budget_key(row: Row) -> str:
    """Key of a file in `ap_drop_max` / `parity_max_abs`: 'onnx' for ONNX files, else the precision."""
    return "onnx" if row.format == "onnx" else row.precision


def load_budget_file(path: Path) -> Any:
    """A NumericsCard read from an explicit numerics.yaml path; every budget a finite number >= 0."""
    from blitzmask_deploy.core.cards import load_numerics_file

    return _checked(load_numerics_file(path), path)


def _checked(card: Any, path: Path) -> Any:
    """`card` after checking that every budget in it is a finite number >= 0 (YAML reads .nan and .inf)."""
    budgets = {
        **{f"ap_drop_max.{k}": v for k, v in card.ap_drop_max.items()},
        **{f"parity_max_abs.{k}": v for k, v in card.parity_max_abs.items()},
        **{f"device_ap_drop_max.{k}": v for k, v in card.device_ap_drop_max.items()},
        "latency_p50_ms_max": card.latency_p50_ms_max,
    }
    for where, value in budgets.items():
        if value is not None and not _finite(value, minimum=0):
            raise BadInput(f"{path}: invalid numerics card at '{where}': {value} is not a finite number >= 0")
    return card


def _finite(value: Any, minimum: float = -math.inf) -> bool:
    """A real number (not a bool) that is finite and at least `minimum`."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value >= minimum


class Budgets:
    """Numerics cards per variant: an explicit file for every variant, else `models/<variant>/numerics.yaml`."""

    def __init__(self, path: Path | None = None) -> None:
        self._explicit = load_budget_file(path) if path is not None else None
        self._cards: dict[str, Any] = {}
        self.notes: list[str] = []

    def card(self, variant: str) -> Any:
        """The NumericsCard for `variant`, or None (with a note) when it has none; one it has but that cannot be
        read is BadInput."""
        if self._explicit is not None:
            return self._explicit
        if variant not in self._cards:
            from blitzmask_deploy.core.cards import MODELS_DIR, list_model_cards, load_numerics

            known = list_model_cards()
            if variant in known:
                self._cards[variant] = _checked(load_numerics(variant), MODELS_DIR / variant / "numerics.yaml")
            else:
                self.notes.append(f"no numerics card for {variant} (have {', '.join(known) or 'none'})")
                self._cards[variant] = None
        return self._cards[variant]

    def ap_drop(self, row: Row) -> float | None:
        """Allowed AP drop of a file as a 0–1 fraction, or None when the card has no entry for it."""
        card = self.card(row.variant)
        key = budget_key(row)
        if card is None or key not in card.ap_drop_max:
            return None
        return float(card.max_drop_fraction(key))

    def device_ap_drop(self, variant: str, precision: str) -> float | None:
        """Allowed drop of a file's device AP vs its host AP (0–1), or None when the card has no entry for it."""
        card = self.card(variant)
        return None if card is None else card.max_device_drop_fraction(precision)

    def latency_ms(self, row: Row) -> float | None:
        """The card's p50 latency limit for the row's variant, if any."""
        return getattr(self.card(row.variant), "latency_p50_ms_max", None)


def run_gate(results: Results, *, budgets: Path | None = None, max_latency_ms: float | None = None) -> GateResult:
    """Check every validated file's AP drop and every finished cell's p50 latency; BadInput for an entry or budget
    that cannot be read, and when nothing can be checked."""
    if max_latency_ms is not None and not _finite(max_latency_ms, minimum=0):
        raise BadInput(f"--max-latency-ms must be a finite number >= 0, got {max_latency_ms}")
    cards = Budgets(budgets)
    notes: list[str] = []
    checks: list[Check] = []
    for row in results.files():
        limit = cards.ap_drop(row)
        if limit is None:
            notes.append(f"{row.name}: no AP-drop budget for '{budget_key(row)}'")
        else:
            checks.append(Check("ap_drop", row.name, "host", row.drop, limit, "ap"))
    checks += _device_checks(results, cards, notes)
    for row in results.rows:
        if row.status == "not benchmarked":
            continue
        limit = max_latency_ms if max_latency_ms is not None else cards.latency_ms(row)
        if limit is None:
            continue
        if row.status != "done":
            notes.append(f"{row.name} on {row.target}: {row.status}, no latency to check")
        elif not _finite(row.p50_ms, minimum=0):
            raise BadInput(
                f"{results.source}: {row.name} on {row.target} is done but its p50 latency {row.p50_ms!r} is unreadable"
            )
        else:
            checks.append(Check("latency_p50", row.name, row.target, row.p50_ms, float(limit), "ms"))
    if not checks:
        raise BadInput(f"{results.source}: nothing to check (no AP drops with budgets, no latency limit)")
    return GateResult(checks=checks, notes=list(dict.fromkeys(cards.notes + notes)))


def _device_checks(results: Results, cards: Budgets, notes: list[str]) -> list[Check]:
    """One check per accuracy cell measured on a device: its AP drop vs the same file on host LiteRT."""
    checks = []
    for cell in results.accuracy:
        name, target = cell["model_name"], f"{cell['device_model'] or cell['device_serial']} / {cell['delegate']}"
        if cell["status"] != "done":
            notes.append(f"{name} on {target}: accuracy {cell['status']}, no device AP to check")
            continue
        if not (_finite(cell["mask_ap"]) and _finite(cell["host_ap"])):
            raise BadInput(f"{results.source}: {name} on {target}: device or host AP is not a finite number")
        limit = cards.device_ap_drop(cell["variant"], cell["precision"])
        if limit is None:
            notes.append(f"{name}: no device AP-drop budget for '{cell['precision']}'")
        else:
            checks.append(Check("device_ap_drop", name, target, cell["host_ap"] - cell["mask_ap"], limit, "ap"))
    return checks
