"""`blitzmask quant-debug`: per-op error of the int8 file, module names, MAC shares, AP of the worst ops kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def export_copy(tiny_export: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_export, tmp_path / "export"))


def test_every_quantised_op_has_module_error_and_mac_share(export_copy: Path, synth_dataset: Path) -> None:
    from blitzmask_deploy.export.quant_debug import QUANT_DEBUG_NAME, op_macs, run_quant_debug

    result = run_quant_debug(export_copy, synth_dataset, images=4, top=2, threads=1, progress=False)
    fp32 = export_copy / "model_fp32.tflite"
    assert len(result.ops) == len(op_macs(fp32))  # full int8: every op of the fp32 graph is quantised
    assert all(op.module and op.group in ("backbone", "neck", "heads") for op in result.ops)
    assert {op.group for op in result.ops} == {"backbone", "neck", "heads"}
    assert any(op.module.startswith("backbone.") for op in result.ops)
    for op in result.ops:
        assert op.max_abs >= op.mean_abs >= 0 and -1 <= op.cosine <= 1 + 1e-6
    conv = [op for op in result.ops if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")]
    assert sum(op.mac_share for op in conv) == pytest.approx(1.0)
    assert all(op.mac_share == 0 for op in result.ops if op not in conv)
    assert result.reference_mask_ap is not None and result.int8_mask_ap is not None
    kept = [op for op in result.ops if op.ap_drop_kept_fp32 is not None]
    assert kept == result.worst(2)
    written = json.loads((export_copy / QUANT_DEBUG_NAME).read_text())
    assert written == json.loads(json.dumps(result.to_json()))


def test_mac_count_of_a_conv_matches_the_formula() -> None:
    from blitzmask_deploy.export.quant_debug import _macs

    assert _macs("CONV_2D", [1, 8, 8, 16], [16, 3, 3, 4]) == 8 * 8 * 16 * 9 * 4
    assert _macs("DEPTHWISE_CONV_2D", [1, 8, 8, 16], [1, 3, 3, 16]) == 8 * 8 * 16 * 9
    assert _macs("FULLY_CONNECTED", [1, 10], [10, 32]) == 10 * 32


def test_cli_json_and_table(export_copy: Path, synth_dataset: Path) -> None:
    done = run_cli("quant-debug", export_copy, "--data", synth_dataset, "--images", 2, "--top", 0, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["file"] == "model_int8.tflite" and report["images"] == 2 and report["ops"]
    assert {"index", "op", "module", "group", "scope", "snr_db", "cosine", "max_abs", "mean_abs", "mac_share"} <= set(
        report["ops"][0]
    )
    bad = run_cli("quant-debug", export_copy, "--data", synth_dataset, "--images", 0)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_report_charts_the_worst_ops_when_quant_debug_json_is_found(tmp_path: Path) -> None:
    from blitzmask_deploy.report.html import _quant_debug
    from blitzmask_deploy.report.plots import QUANT_DEBUG_TOP, plot_quant_debug

    ops = [
        {"module": f"backbone.{i}", "op": "CONV_2D", "group": ("backbone", "neck", "heads")[i % 3], "snr_db": float(i)}
        for i in range(30)
    ]
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "quant_debug.json").write_text(json.dumps({"file": "model_int8.tflite", "ops": ops}))
    found = _quant_debug(tmp_path)
    assert len(found["ops"]) == 30 and QUANT_DEBUG_TOP == 20
    assert plot_quant_debug(found, tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")
    assert plot_quant_debug({}, tmp_path / "none.png") is None
