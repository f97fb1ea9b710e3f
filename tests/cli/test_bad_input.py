"""Hostile input through the CLI, one test per kind: exit 2 with one line on stderr and nothing lost for bad input,
exit 1 for a check that failed, 0 only when everything asked for was done."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
import typer

from blitzmask_deploy.core.masks import masks_to_rle
from tests.conftest import run_cli
from tests.support.report_fixtures import make_export, make_run

BUDGETS = "ap_drop_max: {fp32: 0.05, onnx: 0.05, fp16: 0.1, int8: 0.5}\nparity_max_abs: {fp32: 1.0e-4}\n"


def _one_error_line(r: subprocess.CompletedProcess[str], *expected: str) -> str:
    """The single stderr line of an exit-2 run, after checking it names every `expected` part."""
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-2000:]
    assert all(part in lines[0] for part in expected), lines[0]
    return lines[0]


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _coco(tmp_path: Path, segmentation: object) -> Path:
    gt = {
        "images": [{"id": 1, "file_name": "a.png", "height": 10, "width": 10}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "segmentation": segmentation}],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))  # NaN written as JSON's NaN extension, as Python and many tools write it
    return path


def test_eval_refuses_a_nan_polygon_naming_file_record_and_field(tmp_path: Path) -> None:
    gt = _coco(tmp_path, [[1, 1, 5, math.nan, 5, 5]])
    pred = tmp_path / "pred.json"
    pred.write_text("[]")
    _one_error_line(
        run_cli("eval", "--gt", gt, "--pred", pred, timeout=60), f"{gt}: annotations[0] (id 7): segmentation"
    )


def test_eval_refuses_a_nan_score_naming_file_entry_and_field(tmp_path: Path) -> None:
    gt = _coco(tmp_path, [[1, 1, 5, 1, 5, 5]])
    mask = np.zeros((1, 10, 10), bool)
    mask[0, 1:5, 1:5] = True
    pred = tmp_path / "pred.json"
    pred.write_text(
        json.dumps([{"image_id": 1, "category_id": 1, "score": math.nan, "segmentation": masks_to_rle(mask)[0]}])
    )
    _one_error_line(run_cli("eval", "--gt", gt, "--pred", pred, timeout=60), f"{pred}: predictions[0]: score")


def test_export_refuses_to_replace_a_folder_that_is_not_an_export(tiny_checkpoint: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"weeks of training")
    r = run_cli("export", tiny_checkpoint, "--out", run, "--formats", "onnx", timeout=300)
    _one_error_line(r, str(run), "last.pt", "--out")
    assert _contents(run) == {"last.pt": b"weeks of training"}


def test_report_and_gate_never_lose_or_skip_what_they_cannot_read(tmp_path: Path) -> None:
    root = make_run(tmp_path / "run")
    out = tmp_path / "report"
    assert run_cli("report", root, "--out", out, timeout=120).returncode == 0
    before = _contents(out)
    bad = tmp_path / "bad.yaml"
    bad.write_text("ap_drop_max: {int8: .nan}\nparity_max_abs: {}\n")
    _one_error_line(run_cli("report", root, "--out", out, "--budgets", bad, timeout=120), str(bad), "ap_drop_max.int8")
    assert _contents(out) == before
    budgets = tmp_path / "numerics.yaml"
    budgets.write_text(BUDGETS)
    export = make_export(tmp_path / "export", int8_ap=0.25)  # 5 AP points below the reference: over budget
    assert run_cli("gate", export, "--budgets", budgets, timeout=60).returncode == 1
    validation = json.loads((export / "validation.json").read_text())
    validation["variants"][2]["mask_ap_drop"] = "n/a"
    (export / "validation.json").write_text(json.dumps(validation))
    _one_error_line(run_cli("gate", export, "--budgets", budgets, timeout=60), "tflite-int8", "mask_ap_drop")


def test_train_refuses_an_earlier_run_without_resume_or_overwrite(synth_dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text('{"mask_ap": 0.9}')
    args = ("train", "--data", synth_dataset, "--model", "blitzmask-tiny", "--out", run, "--epochs", "1",
            "--batch-size", "8", "--input-size", "64", "--workers", "0", "--threads", "1", "--no-cache")  # fmt: skip
    _one_error_line(run_cli(*args, timeout=120), str(run), "metrics.json", "--resume", "--overwrite")
    _one_error_line(run_cli(*args, "--resume", "--overwrite", timeout=120), "--resume", "--overwrite")
    assert _contents(run) == {"metrics.json": b'{"mask_ap": 0.9}'}
    r = run_cli(*args, "--overwrite", "--json", timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((run / "metrics.json").read_text()) == json.loads(r.stdout)  # the new run's, not the old


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("train --data {tmp} --model m --out {tmp}/o --epochs abc", "Invalid value for '--epochs'"),
        ("train --no-such-option", "No such option: --no-such-option"),
        ("train --model m --out {tmp}/o", "Missing option '--data'"),
        ("no-such-command", "No such command 'no-such-command'"),
        ("bench {tmp}/m.tflite --store {tmp}/s --runs -1", "Invalid value for '--runs'"),
        ("bench {tmp}/m.tflite --store {tmp}/s --threads 100000", "--threads expects positive integers up to"),
        ("bench {tmp}/m.tflite --store {tmp}/s --cooldown-c nan", "nan is not a finite number"),
        ("train --data {tmp} --model m --out {tmp}/o --minutes nan", "--minutes > 0"),
        ("train --data {tmp} --model m --out {tmp}/o --epochs 1 --threads 100000", "--threads must be 1 to 1024"),
        ("export {tmp}/x.pt --out {tmp}/o --calib-images 0", "Invalid value for '--calib-images'"),
        ("gate {tmp}/export --max-latency-ms inf", "--max-latency-ms must be a finite number"),
    ],
)
def test_usage_errors_and_impossible_numbers_are_one_line(tmp_path: Path, args: str, expected: str) -> None:
    (tmp_path / "m.tflite").write_bytes(b"never read: the options are refused first")
    (tmp_path / "x.pt").write_bytes(b"never read either")
    make_export(tmp_path / "export")
    _one_error_line(run_cli(*args.format(tmp=tmp_path).split(), timeout=120), expected)


def test_help_version_and_no_arguments_still_work() -> None:
    assert "Usage" in run_cli("--help").stdout and run_cli("--help").returncode == 0
    assert run_cli("--version").returncode == 0
    assert run_cli("train", "--help").returncode == 0 and "--overwrite" in run_cli("train", "--help").stdout
    bare = run_cli()
    assert bare.returncode == 2 and "Usage" in bare.stdout + bare.stderr


def _env() -> dict[str, str]:
    """No adb server: a port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return {**os.environ, "ANDROID_ADB_SERVER_PORT": str(port)}


def test_bench_exits_1_unless_every_cell_is_done(bench_tflite: Path, tmp_path: Path) -> None:
    store = tmp_path / "r.sqlite"
    args = [
        "bench",
        bench_tflite,
        "--device",
        "local",
        "--threads",
        "1",
        "--warmup",
        "0",
        "--runs",
        "3",
        "--store",
        store,
    ]
    assert run_cli(*args, "--delegate", "xnnpack", env=_env(), timeout=120).returncode == 0
    r = run_cli(*args, "--delegate", "xnnpack,gpu", env=_env(), timeout=120)  # no GPU delegate on the host
    assert r.returncode == 1 and "1 cells failed" in r.stderr, r.stderr[-2000:]


def test_bench_names_each_device_that_went_away(capsys: pytest.CaptureFixture[str]) -> None:
    from blitzmask_deploy.cli.bench import _verdict

    rows = [{"device_serial": "phone-1", "status": s} for s in ("done", "pending", "pending")]
    with pytest.raises(typer.Exit) as stop:
        _verdict({"phone-1": "device offline\n(adb)"}, rows, {})
    assert stop.value.exit_code == 1
    assert capsys.readouterr().err.splitlines() == [
        "device phone-1 is offline or gone (device offline (adb)): 2 cells pending: rerun to finish"
    ]


@pytest.mark.parametrize(
    ("option", "value"), [("--minutes", "nan"), ("--minutes", "inf"), ("--runs", "0"), ("--calib-images", "0")]
)
def test_demo_refuses_absurd_numbers_before_any_work(tmp_path: Path, option: str, value: str) -> None:
    r = run_cli("demo", "--out", tmp_path / "demo", option, value)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "demo").exists()
