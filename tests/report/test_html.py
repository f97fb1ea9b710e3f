"""report.html (self-contained, PNGs embedded and beside it) and summary.md from stored results."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from blitzmask_deploy.report.html import FIGURES, write_report
from blitzmask_deploy.report.markdown import HEADER
from blitzmask_deploy.report.sources import load_results
from tests.support.report_fixtures import make_export, make_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = make_run(tmp_path_factory.mktemp("run"))
    results = load_results(root)
    return root, write_report(results, root / "report")


def test_every_figure_is_written_and_embedded(full_report: tuple[Path, object]) -> None:
    root, files = full_report
    page = (root / "report" / "report.html").read_text()
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == len(FIGURES) == len(files.images)  # type: ignore[attr-defined]
    for name, data in zip(FIGURES, embedded, strict=True):
        on_disk = (root / "report" / name).read_bytes()
        assert on_disk.startswith(PNG_MAGIC)
        assert base64.b64decode(data) == on_disk
    assert not re.search(r'(src|href)="(https?:|file:)', page)  # self-contained


def test_page_shows_figures_tables_and_gate(full_report: tuple[Path, object]) -> None:
    root, files = full_report
    page = (root / "report" / "report.html").read_text()
    for heading in ("Budgets", "Summary", "Accuracy vs speed", "Latency distributions", "Thermal", "Roofline"):
        assert f"<h2>{heading}" in page
    assert "Gate verdict" in page and files.gate is not None and files.gate.passed  # type: ignore[attr-defined]
    assert "checkpoint mask AP <b>30.00</b>" in page
    assert "delegate &#x27;gpu&#x27; is not available" in page  # the failed cell is listed, escaped
    assert page.count("of peak") >= 1 and "GMACs" in page


def test_summary_markdown_has_a_line_per_row(full_report: tuple[Path, object]) -> None:
    root, _ = full_report
    lines = (root / "report" / "summary.md").read_text().splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| " + " | ".join(HEADER) + " |"
    assert len(table) == 2 + len(load_results(root).rows)
    int8_xnn2 = next(line for line in table if "tflite-int8" in line and "| xnnpack | 2 |" in line)
    assert "| 29.60 | 0.40 |" in int8_xnn2


def test_validation_only_report_explains_missing_plots(tmp_path: Path) -> None:
    export = make_export(tmp_path / "export")
    out = tmp_path / "report"
    out.mkdir()
    (out / "latency.png").write_bytes(b"stale")
    files = write_report(load_results(export / "validation.json"), out)
    assert [p.name for p in files.images] == ["ap_drop.png"]
    assert not (out / "latency.png").exists()
    page = files.html.read_text()
    assert "No latency plot" in page and "No thermal plot" in page and "No roofline" in page
