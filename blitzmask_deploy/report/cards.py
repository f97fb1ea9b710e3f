"""`--update-cards`: measured figures appended to `models/<variant>/perf.yaml` (paper figures are kept).

Each benchmarked cell becomes one `measured:` entry (AP in points on the paper's 0–100 scale, like its figures);
a cell already recorded (same file sha256, device, delegate, threads and p50) is not added twice.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from blitzmask_deploy.core.cards import MeasuredPerf, PerfCard, load_perf, model_dir, save_perf
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.report.results import Results, Row


def _entry(row: Row, input_size: int | None, date: str) -> MeasuredPerf:
    return MeasuredPerf(
        date=date,
        device=row.device or "?",
        delegate=row.delegate or "?",
        precision=row.precision,  # type: ignore[arg-type]
        file=row.file,
        model_sha256=row.sha256,
        threads=row.threads,
        input_size=input_size,
        p50_ms=None if row.p50_ms is None else round(row.p50_ms, 3),
        p90_ms=None if row.p90_ms is None else round(row.p90_ms, 3),
        fps=None if row.fps is None else round(row.fps, 2),
        mask_ap=None if row.mask_ap is None else round(row.mask_ap * 100, 2),
        mask_ap_drop=None if row.drop is None else round(row.drop * 100, 2),
        notes="blitzmask report --update-cards (host AP on the val split of the data used)",
    )


def _key(sha: str | None, device: str, delegate: str, threads: int | None, p50: float | None) -> tuple:
    return (sha, device, delegate, threads, p50)


def _rows(results: Results, variant: str) -> list[Row]:
    return [r for r in results.benchmarked() if r.variant == variant and r.precision in ("fp32", "fp16", "int8")]


def read_perf_cards(results: Results, *, root: Path | None = None) -> dict[str, PerfCard]:
    """The perf card of every benchmarked variant that has a card folder (a line on stderr for one without); a
    perf.yaml there that cannot be read is BadInput, so that it is known before the report is written."""
    cards = {}
    for variant in results.variants():
        if not _rows(results, variant):
            continue
        try:
            model_dir(variant, root)
        except BadInput as err:
            print(f"not updating cards of {variant}: {err}", file=sys.stderr)
            continue
        cards[variant] = load_perf(variant, root)
    return cards


def update_perf_cards(
    results: Results, *, root: Path | None = None, cards: dict[str, PerfCard] | None = None
) -> list[Path]:
    """Append every benchmarked cell to its variant's perf.yaml (`cards`: as `read_perf_cards` read them); returns
    the cards written."""
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    written: list[Path] = []
    for variant, card in (read_perf_cards(results, root=root) if cards is None else cards).items():
        rows = _rows(results, variant)
        have = {_key(m.model_sha256, m.device, m.delegate, m.threads, m.p50_ms) for m in card.measured}
        sizes = {sha: m.get("input_size") for sha, m in results.manifests.items()}
        new = [_entry(r, sizes.get(r.sha256), date) for r in rows]
        new = [m for m in new if _key(m.model_sha256, m.device, m.delegate, m.threads, m.p50_ms) not in have]
        if new:
            written.append(save_perf(variant, card.model_copy(update={"measured": [*card.measured, *new]}), root))
    return written
