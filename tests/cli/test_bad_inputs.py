"""Every CLI command fed hostile input, table-driven: missing paths, a folder where a file belongs and the reverse,
unreadable inputs and unwritable outputs, garbage JSON / YAML, a wrong value in each field of COCO files,
predictions, manifests, checkpoints, validation results, bench cells, budgets and model cards, impossible numbers in
each numeric option (read from the CLI itself), corrupt models, images and stores.

Each case runs the CLI in this process (its `main`, as the `blitzmask` script does, Python's default warning filters
included) and asserts: exit 2 (1 where a check legitimately fails), exactly one non-empty line on stderr with no
traceback, naming what is wrong, and every file of the case's workspace and of the shared fixtures it reads —
pre-existing outputs included — byte for byte as it was (no output that looks valid, no staging left behind). An
exception escaping `main` fails the case with its traceback. A sample also runs as the installed command, where
what native libraries print on the process's stderr is seen too.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
import typing
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.conftest import run_cli
from tests.support import corrupt
from tests.support.report_fixtures import make_run

# -- the runner and the checks --------------------------------------------------------------------------------------


def run_in_process(args: Sequence[object], capfd: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `blitzmask ARGS` run by the CLI's own `main` in this process, with Python's
    default warning filters: a warning is printed on stderr as the command would print it."""
    from blitzmask_deploy.cli.app import main

    capfd.readouterr()
    with mock.patch.object(sys, "argv", ["blitzmask", *map(str, args)]), warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", category)
        warnings.showwarning = _print_warning
        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    out, err = capfd.readouterr()
    return code, out, err


def _print_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, *_: object) -> None:
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno))


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under `root` (itself included): its kind, mode and, for files, the sha256 of its bytes."""
    entries: dict[str, tuple] = {}
    for path in [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]:
        rel = str(path.relative_to(root)) if path != root else "."
        info = path.lstat()
        if path.is_symlink():
            entries[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            entries[rel] = ("dir", info.st_mode)
        else:
            entries[rel] = ("file", info.st_mode, hashlib.sha256(path.read_bytes()).hexdigest())
    return entries


class Workspace:
    """A case's folder, the shared fixtures it copies from, and what the case must leave unchanged."""

    def __init__(self, tmp: Path, request: pytest.FixtureRequest) -> None:
        self.tmp = tmp
        self._request = request
        self.watched: list[Path] = []  # shared fixtures the case reads: they must stay as they are too
        self.models_dir: Path | None = None  # model cards to read instead of the package's

    def fixture(self, name: str) -> Path:
        """A session fixture's path, watched for changes."""
        path = Path(self._request.getfixturevalue(name))
        self.watched.append(path)
        return path

    def copy(self, name: str, rel: str) -> Path:
        """A copy of fixture `name` (a file or folder) at `rel` in the workspace."""
        source, target = self.fixture(name), self.tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        return target

    def file(self, rel: str, data: bytes | str) -> Path:
        """A file at `rel` in the workspace holding `data`."""
        path = self.tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def json(self, rel: str, value: Any) -> Path:
        """`value` as JSON at `rel`."""
        return self.file(rel, json.dumps(value))

    def folder(self, rel: str, files: dict[str, str] | None = None) -> Path:
        """A folder at `rel` holding `files` (name → text)."""
        path = self.tmp / rel
        path.mkdir(parents=True, exist_ok=True)
        for name, text in (files or {}).items():
            (path / name).write_text(text)
        return path


@dataclass(frozen=True)
class Case:
    """One hostile input: `build` writes what it needs into the workspace and returns the arguments after
    `blitzmask`; `expect` are parts of the error line (`{tmp}` is the workspace)."""

    id: str
    build: Callable[[Workspace], Sequence[object]]
    expect: tuple[str, ...] = ()
    code: int = 2
    enforce_permissions: bool = False  # run with file modes enforced (root included)
    slow: bool = False
    started: str = ""  # the start of the one line the command prints when its work begins, before the bad input

    @property
    def command(self) -> str:
        return self.id.split(":", 1)[0]


CASES: list[Case] = []


def case(command: str, what: str, build: Callable[[Workspace], Sequence[object]], *expect: str, **kw: Any) -> None:
    """Add a case `command:what` to the table (a second case whose id reads the same gets a number)."""
    ident = f"{command}:{what}"
    while any(c.id == ident for c in CASES):
        ident = f"{command}:{what}#{sum(c.id.startswith(f'{command}:{what}') for c in CASES) + 1}"
    CASES.append(Case(ident, build, expect, **kw))


# -- valid inputs that the cases spoil ------------------------------------------------------------------------------


def small_coco() -> dict:
    """A two-image, two-category COCO instance file with a polygon, a compressed RLE, an uncompressed RLE and a box."""
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "height": 20, "width": 30},
            {"id": 2, "file_name": "b.png", "height": 20, "width": 30},
        ],
        "categories": [{"id": 1, "name": "disc"}, {"id": 2, "name": "square"}],
        "annotations": [
            {
                "id": 10,
                "image_id": 1,
                "category_id": 1,
                "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]],
                "area": 100.0,
                "bbox": [2, 2, 10, 10],
                "iscrowd": 0,
            },
            {
                "id": 11,
                "image_id": 2,
                "category_id": 2,
                "segmentation": {"size": [20, 30], "counts": [0, 600]},
                "area": 600.0,
                "bbox": [0, 0, 30, 20],
                "iscrowd": 0,
            },
        ],
    }


def predictions(coco: dict) -> list[dict]:
    """Results matching `small_coco` exactly (AP 1)."""
    from blitzmask_deploy.core.masks import segmentation_to_rle

    out = []
    for ann in coco["annotations"]:
        img = next(i for i in coco["images"] if i["id"] == ann["image_id"])
        rle = segmentation_to_rle(ann["segmentation"], img["height"], img["width"])
        counts = rle["counts"].decode() if isinstance(rle["counts"], bytes) else rle["counts"]
        out.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "score": 0.9,
                "segmentation": {"size": rle["size"], "counts": counts},
                "bbox": ann["bbox"],
            }
        )
    return out


COCO_FIELDS = {
    "images": {
        "id": corrupt.NOT_INT,
        "file_name": [*corrupt.NOT_STR, ""],
        "height": corrupt.NOT_SIZE,
        "width": corrupt.NOT_SIZE,
    },
    "annotations": {
        "id": ["10", 1.5, True, [10], None],
        "image_id": [*corrupt.NOT_INT, 999],
        "category_id": [*corrupt.NOT_INT, 999],
        "segmentation": [
            None, "polygon", [], [[1, 2, 3]], [[2, 2, 12, 2, 12, math.nan]], [[2, 2, 12, 2, 12, math.inf]],
            [[2, 2, 1e30, 2, 12, 12]], [["2", 2, 12, 2, 12, 12]], {"counts": "abc"},
            {"size": [20, 30], "counts": 5}, {"size": [20, 30], "counts": [-1, 601]},
            {"size": [20, 30], "counts": [0, 10**12]}, {"size": [10**6, 10**6], "counts": [0, 10**12]},
            {"size": [20, 30], "counts": "!!!!"}, {"size": [20, 30], "counts": "0" * 10_000},
            {"size": ["20", 30], "counts": [600]},
        ],
        "area": [-1, math.nan, math.inf, "big", [1]],
        "bbox": [[1, 2, 3], [math.nan, 0, 1, 1], ["0", 0, 1, 1], [0, 0, -5, 5], [0, 0, 1e9, 1e9], "box"],
        "iscrowd": [2, "no", -1, 0.5],
    },
    "categories": {"id": corrupt.NOT_INT, "name": corrupt.NOT_STR},
}  # fmt: skip

PRED_FIELDS = {
    "image_id": [*corrupt.NOT_INT, 999],
    "category_id": [*corrupt.NOT_INT, 999],
    "score": corrupt.NOT_NUMBER,
    "segmentation": [
        None, "rle", [], {"size": [20, 30]}, {"size": [21, 30], "counts": "PT8"}, {"size": [20, 30], "counts": 7},
        {"size": [20, 30], "counts": "!!!!"}, {"size": [20, 30], "counts": [0, 601]},
    ],
    "bbox": [[1, 2, 3], [math.nan, 0, 1, 1], "box", [0, 0, -1, 1]],
}  # fmt: skip


def coco_mutations() -> Iterator[tuple[str, Callable[[dict], dict]]]:
    """(id, function spoiling a copy of small_coco) for each field of each record kind, and the top level."""
    for kind, fields in COCO_FIELDS.items():
        for what, field, value in corrupt.field_mutations(small_coco()[kind][0], fields):

            def spoil(coco: dict, kind: str = kind, field: str = field, value: Any = value) -> dict:
                coco[kind][0][field] = value
                return coco

            yield f"{kind}[0].{what}", spoil
    for key in ("images", "annotations", "categories"):
        for bad in (None, {"0": {}}, "x"):

            def top(coco: dict, key: str = key, bad: Any = bad) -> dict:
                coco[key] = bad
                return coco

            yield f"{key}={corrupt._label(bad)}", top
    yield "duplicate-image-id", lambda c: {**c, "images": [c["images"][0], {**c["images"][1], "id": 1}]}
    yield "record-not-object", lambda c: {**c, "annotations": [7, *c["annotations"]]}
    yield "missing-segmentation", lambda c: {
        **c, "annotations": [{k: v for k, v in c["annotations"][0].items() if k != "segmentation"}]
    }  # fmt: skip


# -- eval: garbage files, every field of the ground truth and of the predictions ------------------------------------


def _eval_files(ws: Workspace, coco: dict | None = None, preds: Any = None) -> list[object]:
    gt = ws.json("gt.json", coco if coco is not None else small_coco())
    pred = ws.json("pred.json", preds if preds is not None else predictions(small_coco()))
    return ["eval", "--gt", gt, "--pred", pred]


for _id, _spoil in coco_mutations():
    case("eval", f"gt:{_id}", lambda ws, s=_spoil: _eval_files(ws, coco=s(small_coco())), "{tmp}/gt.json")

for _field, _values in PRED_FIELDS.items():
    for _what, _f, _value in corrupt.field_mutations(predictions(small_coco())[0], {_field: _values}):

        def _pred_case(ws: Workspace, field: str = _f, value: Any = _value) -> list[object]:
            preds = predictions(small_coco())
            preds[0][field] = value
            return _eval_files(ws, preds=preds)

        case("eval", f"pred:{_what}", _pred_case, "{tmp}/pred.json", "predictions[0]")

for _name, _data in corrupt.GARBAGE_JSON:
    case("eval", f"gt-garbage:{_name}", lambda ws, d=_data: [*_eval_files(ws)[:2], ws.file("g.json", d), "--pred",
         ws.tmp / "pred.json"], "{tmp}/g.json")  # fmt: skip
    case("eval", f"pred-garbage:{_name}", lambda ws, d=_data: [*_eval_files(ws)[:4], "--pred",
         ws.file("p.json", d)], "{tmp}/p.json")  # fmt: skip
case("eval", "pred-object", lambda ws: _eval_files(ws, preds={"annotations": []}), "{tmp}/pred.json")
case("eval", "gt-missing", lambda ws: ["eval", "--gt", ws.tmp / "nope.json", "--pred", ws.json("p.json", [])],
     "{tmp}/nope.json")  # fmt: skip
case("eval", "gt-is-folder", lambda ws: ["eval", "--gt", ws.folder("gt"), "--pred", ws.json("p.json", [])],
     "{tmp}/gt")  # fmt: skip
case("eval", "pred-is-folder", lambda ws: [*_eval_files(ws)[:4], "--pred", ws.folder("pred")], "{tmp}/pred")
case("eval", "unknown-backend", lambda ws: [*_eval_files(ws), "--backend", "detectron"], "detectron")


def _unreadable(ws: Workspace, path: Path) -> Path:
    path.chmod(0)
    return path


case("eval", "gt-unreadable", lambda ws: [*_eval_files(ws)[:2], _unreadable(ws, ws.json("g.json", small_coco())),
     "--pred", ws.json("p.json", [])], "{tmp}/g.json", enforce_permissions=True)  # fmt: skip


# -- data check: a dataset whose annotations or images are bad --------------------------------------------------------


def _dataset(ws: Workspace, rel: str = "data") -> Path:
    return ws.copy("synth_dataset", rel)


def _spoiled_dataset(ws: Workspace, spoil: Callable[[dict], dict], split: str = "val") -> Path:
    root = _dataset(ws)
    ann = root / "annotations" / f"instances_{split}.json"
    ann.write_text(json.dumps(spoil(json.loads(ann.read_text()))))
    return root


def _first_image(root: Path, split: str = "val") -> Path:
    coco = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
    return root / "images" / split / coco["images"][0]["file_name"]


def _dataset_with_bad_image(ws: Workspace, data: bytes, split: str = "val") -> Path:
    root = _dataset(ws)
    _first_image(root, split).write_bytes(data)
    return root


for _id, _spoil in list(coco_mutations())[::5]:  # a sample: data check collects problems with the same checks
    case("data", f"check:{_id}", lambda ws, s=_spoil: ["data", "check", _spoiled_dataset(ws, s)], code=1)
for _name, _data in corrupt.GARBAGE_JSON[:6]:  # a problem of the dataset, listed with the others: exit 1
    case("data", f"check:annotations-{_name}", lambda ws, d=_data: ["data", "check", _garbage_annotations(ws, d)],
         code=1)  # fmt: skip
case("data", "check:missing", lambda ws: ["data", "check", ws.tmp / "nope"], "{tmp}/nope")
case("data", "check:file", lambda ws: ["data", "check", ws.file("data.txt", "x")], "{tmp}/data.txt")
case("data", "check:empty-folder", lambda ws: ["data", "check", ws.folder("empty")], "{tmp}/empty")


def _garbage_annotations(ws: Workspace, data: bytes) -> Path:
    root = _dataset(ws)
    (root / "annotations" / "instances_val.json").write_bytes(data)
    return root


# -- images: every command that reads them ---------------------------------------------------------------------------


def _valid_png(ws: Workspace) -> bytes:
    return _first_image(ws.fixture("synth_dataset")).read_bytes()


for _name in corrupt.IMAGE_KINDS:

    def _image(ws: Workspace, name: str = _name) -> bytes:
        return corrupt.bad_images(_valid_png(ws))[name]

    case("data", f"check:image-{_name}", lambda ws, im=_image: ["data", "check", _dataset_with_bad_image(ws, im(ws))],
         code=1)  # fmt: skip
    case("predict", f"image-{_name}", lambda ws, im=_image: ["predict", ws.fixture("tiny_checkpoint"),
         ws.file("x.png", im(ws)), "--out", ws.tmp / "out"], "{tmp}/x.png")  # fmt: skip
    case("validate", f"val-image-{_name}", lambda ws, im=_image: ["validate", ws.fixture("tiny_checkpoint"),
         "--data", _dataset_with_bad_image(ws, im(ws)), "--images", 2], "/images/val/")  # fmt: skip
    case("train", f"image-{_name}", lambda ws, im=_image: _train(ws, _dataset_with_bad_image(ws, im(ws), "train")),
         "/images/train/", slow=True, started="recipe on ")  # images are decoded as training reads them  # fmt: skip
    case("export", f"calib-image-{_name}", lambda ws, im=_image: ["export", ws.fixture("tiny_checkpoint"), "--out",
         ws.tmp / "export", "--formats", "int8", "--calib", ws.file("calib/a.png", im(ws)).parent, "--calib-images", 1],
         "{tmp}/calib/a.png")  # fmt: skip
    case("quant-debug", f"image-{_name}", lambda ws, im=_image: ["quant-debug", _export(ws), "--data",
         ws.file("imgs/a.png", im(ws)).parent, "--images", 1, "--top", 0], "{tmp}/imgs/a.png")  # fmt: skip

case("data", "check:image-missing", lambda ws: ["data", "check", _dataset_with_missing_image(ws)], code=1)
case("data", "check:image-size-differs", lambda ws: ["data", "check", _spoiled_dataset(
    ws, lambda c: {**c, "images": [{**c["images"][0], "width": c["images"][0]["width"] + 1}, *c["images"][1:]]})],
    code=1)  # fmt: skip


def _dataset_with_missing_image(ws: Workspace) -> Path:
    root = _dataset(ws)
    _first_image(root).unlink()
    return root


# -- checkpoints: every command that reads one ------------------------------------------------------------------------


def _bad_ckpt_bytes(ws: Workspace, name: str) -> bytes:
    return corrupt.checkpoint_bytes(ws.fixture("tiny_checkpoint").read_bytes(), ws.tmp / "EXECUTED")[name]


def _ckpt_bytes(ws: Workspace, name: str) -> Path:
    return ws.file("model.pt", _bad_ckpt_bytes(ws, name))


def _ckpt_payload(ws: Workspace, name: str) -> Path:
    import torch

    good = torch.load(ws.fixture("tiny_checkpoint"), map_location="cpu", weights_only=True)
    path = ws.tmp / "model.pt"
    torch.save(corrupt.CHECKPOINT_PAYLOADS[name](good), path)
    return path


def _ckpt_commands(ws: Workspace, ckpt: Path, command: str) -> list[object]:
    if command == "predict":
        return ["predict", ckpt, _first_image(ws.fixture("synth_dataset")), "--out", ws.tmp / "out"]
    if command == "export":
        return ["export", ckpt, "--out", ws.tmp / "export", "--formats", "onnx"]
    return ["validate", ckpt, "--data", ws.fixture("synth_dataset"), "--images", 1]


for _command in ("predict", "export", "validate"):
    for _name in corrupt.CHECKPOINT_KINDS:
        case(_command, f"ckpt-{_name}", lambda ws, n=_name, c=_command: _ckpt_commands(ws, _ckpt_bytes(ws, n), c),
             "{tmp}/model.pt")  # fmt: skip
for _i, _name in enumerate(corrupt.CHECKPOINT_PAYLOADS):  # each payload once, the three commands in turn
    _command = ("predict", "export", "validate")[_i % 3]
    case(_command, f"ckpt-{_name}", lambda ws, n=_name, c=_command: _ckpt_commands(ws, _ckpt_payload(ws, n), c),
         "{tmp}/model.pt")  # fmt: skip
for _command in ("predict", "export", "validate"):
    case(_command, "ckpt-missing", lambda ws, c=_command: _ckpt_commands(ws, ws.tmp / "nope.pt", c), "{tmp}/nope.pt")
    case(_command, "ckpt-folder-without-manifest", lambda ws, c=_command: _ckpt_commands(ws, ws.folder("m.pt"), c),
         "{tmp}/m.pt")  # fmt: skip


def _resume_from(ws: Workspace, last: Callable[[Path], None]) -> list[object]:
    """Args of `train --resume` whose OUT/last.pt is written by `last`."""
    run = ws.folder("run")
    last(run / "last.pt")
    return _train(ws, None, "--resume")


def _last_with_state(ws: Workspace, train_state: Any) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import torch

        payload = torch.load(ws.fixture("tiny_checkpoint"), weights_only=True)
        torch.save({**payload, "extra": {"train": train_state}}, path)

    return write


for _name in corrupt.CHECKPOINT_KINDS:
    case("train", f"resume-last.pt-{_name}", lambda ws, n=_name: _resume_from(
        ws, lambda path: path.write_bytes(_bad_ckpt_bytes(ws, n))), "{tmp}/run/last.pt")
for _what, _state in [("no-train-state", None), ("state-list", [1]), ("state-no-config", {"model": {}}),
                      ("state-wrong-model", {"config": {}, "model": {"x": 1}})]:  # fmt: skip
    case("train", f"resume-{_what}", lambda ws, s=_state: _resume_from(ws, _last_with_state(ws, s)),
         "{tmp}/run/last.pt")
case("predict", "ckpt-unreadable", lambda ws: _ckpt_commands(ws, _unreadable(ws, ws.copy("tiny_checkpoint", "u.pt")),
     "predict"), "{tmp}/u.pt", enforce_permissions=True)  # fmt: skip


# -- numeric and choice options: each option × each impossible value --------------------------------------------------

_NOT_A_NUMBER = ["abc", "", "1e400x"]
_NON_FINITE = ["nan", "inf", "-inf", "1e400"]


def _train(ws: Workspace, data: Path | None = None, *extra: object, out: str = "run") -> list[object]:
    return [
        "train", "--data", data or ws.fixture("synth_dataset"), "--model", "blitzmask-tiny", "--out", ws.tmp / out,
        "--epochs", 1, "--batch-size", 8, "--input-size", 64, "--workers", 0, "--threads", 1, "--no-cache", *extra,
    ]  # fmt: skip


def _bench(ws: Workspace, model: Path) -> list[object]:
    return ["bench", model, "--store", ws.tmp / "r.sqlite", "--device", "local", "--threads", "1", "--warmup", "0",
            "--runs", "2"]  # fmt: skip


def _with_option(args: list[object], option: str, value: str) -> list[object]:
    """`args` with `option` set to `value` (replacing its value when present)."""
    if option in args:
        i = args.index(option)
        return [*args[:i], option, value, *args[i + 2 :]]
    return [*args, option, value]


def _export(ws: Workspace) -> Path:
    return ws.copy("tiny_export", "export")


_BASES: dict[str, Callable[[Workspace], list[object]]] = {
    "models": lambda ws: ["models", "blitzmask-tiny"],
    "train": _train,
    "predict": lambda ws: ["predict", ws.fixture("tiny_checkpoint"), _first_image(ws.fixture("synth_dataset")),
                           "--out", ws.tmp / "out"],
    "export": lambda ws: ["export", ws.fixture("tiny_checkpoint"), "--out", ws.tmp / "export", "--formats", "int8",
                          "--calib", ws.fixture("synth_dataset"), "--calib-images", 2],
    "quant-debug": lambda ws: ["quant-debug", _export(ws), "--data", ws.fixture("synth_dataset"), "--images", 2,
                               "--top", 0],
    "validate": lambda ws: ["validate", ws.fixture("tiny_checkpoint"), "--data", ws.fixture("synth_dataset"),
                            "--images", 1],
    "bench": lambda ws: _bench(ws, ws.fixture("bench_tflite")),
    "gate": lambda ws: ["gate", make_run(ws.tmp / "run")],
    "demo": lambda ws: ["demo", "--out", ws.tmp / "demo", "--skip-bench", "--minutes", "0.01", "--train-images", "4",
                        "--val-images", "2", "--size", "64", "--calib-images", "2", "--runs", "1"],
    "data synth": lambda ws: ["data", "synth", ws.tmp / "synth", "--train", "2", "--val", "1", "--size", "32",
                              "--quiet"],
    "data import": lambda ws: ["data", "import", _labelme_source(ws), ws.tmp / "imported", "--from", "labelme",
                               "--quiet"],
}

# (command, option, impossible values): the values outside what each option means, beyond the garbage every numeric
# option gets (_numeric_options below)
_OPTIONS: list[tuple[str, str, list[str]]] = [
    ("models", "--input-size", ["-32", "31", "33", "1.5", "abc", str(2**40)]),
    ("train", "--epochs", ["0", "-1", "1.5", "abc", ""]),
    ("train", "--minutes", ["0", "-1", *_NON_FINITE, *_NOT_A_NUMBER]),
    ("train", "--batch-size", ["0", "-1", "abc", str(10**30)]),
    ("train", "--lr", ["0", "-1", *_NON_FINITE, "abc"]),
    ("train", "--optimizer", ["adam", "", "MUON"]),
    ("train", "--input-size", ["0", "-64", "31", "100", str(2**40), "abc"]),
    ("train", "--workers", ["-1", "100000", "abc"]),
    ("train", "--seed", ["-1", str(2**64), "abc"]),
    ("train", "--mosaic", ["-0.1", "1.5", *_NON_FINITE]),
    ("train", "--close-mosaic", ["-0.1", "1.5", "nan"]),
    ("train", "--threads", ["0", "-1", "100000"]),
    ("train", "--model", ["blitzmask-b9", "", "../../etc"]),
    ("predict", "--score-threshold", ["-0.1", "1.5", *_NON_FINITE, "abc"]),
    ("export", "--calib-images", ["0", "-1", "abc"]),
    ("export", "--int8-budget", ["-1", *_NON_FINITE, "abc"]),
    ("export", "--calib-headroom", ["0", "0.99", "16.5", "-1", *_NON_FINITE, "abc"]),
    ("export", "--formats", ["fp64", "", ",", "onnx,tflite"]),
    ("export", "--calib-algorithm", ["percentile", ""]),
    ("quant-debug", "--images", ["0", "-1", "abc"]),
    ("quant-debug", "--top", ["-1", "abc"]),
    ("validate", "--images", ["-1", "abc", "1.5"]),
    ("validate", "--threads", ["0", "-1", "100000"]),
    ("validate", "--timeout", ["0", "-1", *_NON_FINITE]),
    ("validate", "--delegate", ["tpu", ""]),
    ("bench", "--warmup", ["-1", "abc"]),
    ("bench", "--runs", ["0", "-1", "abc"]),
    ("bench", "--cooldown-c", [*_NON_FINITE, "-300", "abc"]),
    ("bench", "--cooldown-max-s", ["-1", *_NON_FINITE]),
    ("bench", "--sustained", ["-1", *_NON_FINITE]),
    ("bench", "--target-fps", ["0", "-1", *_NON_FINITE]),
    ("bench", "--timeout", ["0", "-1", *_NON_FINITE]),
    ("bench", "--threads", ["0", "-1", "100000", "abc", "", "1,,x", "1.5", "\u00b2"]),
    ("bench", "--delegate", ["tpu", "cpu,tpu", ""]),
    ("bench", "--device", ["no-such-phone", ",", ""]),
    ("bench", "--adb", ["nohostport", "host:", ":5037", "host:99999", "host:-1", "ü" * 70 + ":5037", "a\x00b:5037"]),
    ("gate", "--max-latency-ms", ["-1", *_NON_FINITE, "abc"]),
    ("demo", "--minutes", ["0", "-1", *_NON_FINITE]),
    ("demo", "--train-images", ["0", "-1", "abc"]),
    ("demo", "--val-images", ["0", "-1"]),
    ("demo", "--size", ["0", "32", "63", "-64", str(2**40)]),
    ("demo", "--calib-images", ["0", "-1"]),
    ("demo", "--runs", ["0", "-1"]),
    ("demo", "--adb", ["nohostport", "ü" * 70 + ":5037"]),
    ("data synth", "--train", ["-1", "abc"]),
    ("data synth", "--val", ["-1"]),
    ("data synth", "--size", ["0", "31", "-1", str(2**40)]),
    ("data synth", "--seed", ["-1", "abc"]),
    ("data synth", "--workers", ["-1", "100000"]),
    ("data import", "--val-fraction", ["-0.1", "1.5", *_NON_FINITE]),
    ("data import", "--from", ["coco", "", "LabelMe"]),
]



def _numeric_options() -> list[tuple[str, str, list[str]]]:
    """(command, option, values no number option can take) for every integer and float option of the CLI, read from
    the CLI itself: a new numeric option gets these cases without a line here."""
    from typer.main import get_command

    from blitzmask_deploy.cli.app import app

    garbage = {int: ["abc", "1.5", ""], float: ["abc", "", *_NON_FINITE]}
    found = []
    for name, group in get_command(app).commands.items():
        for sub, command in (getattr(group, "commands", None) or {"": group}).items():
            for param in command.params:
                kind = typing.get_args(param.type_descriptor.annotation) or (param.type_descriptor.annotation,)
                if param.param_type_name == "option" and kind[0] in garbage:
                    found.append((f"{name} {sub}".strip(), param.opts[0], garbage[kind[0]]))
    return found


_GARBAGE = _numeric_options()
_VALUES: dict[tuple[str, str], list[str]] = {}
for _command, _option, _values in _OPTIONS + _GARBAGE:
    _VALUES.setdefault((_command, _option), [])
    _VALUES[_command, _option] += [v for v in _values if v not in _VALUES[_command, _option]]
for (_command, _option), _values in _VALUES.items():
    for _value in _values:
        case(_command.split()[0], f"{_command.replace(' ', '-')}{_option}={_value[:12] or 'empty'}",
             lambda ws, c=_command, o=_option, v=_value: _with_option(_BASES[c](ws), o, v),
             _option.lstrip("-").split("-")[0].rstrip("s"))  # fmt: skip

for _value in ["nohostport", "host:", "host:0", "ü" * 70 + ":5037", "[::1", "a\x00b:5037"]:
    case("devices", f"adb={_value[:12]}", lambda ws, v=_value: ["devices", "--adb", v], "--adb")
case("models", "unknown-variant", lambda ws: ["models", "blitzmask-b9"], "blitzmask-b9")
case("validate", "device-without-store", lambda ws: ["validate", _export(ws), "--data", ws.fixture("synth_dataset"),
     "--device", "local"], "--store")  # fmt: skip
case("validate", "device-needs-export-dir", lambda ws: ["validate", ws.fixture("tiny_checkpoint"), "--data",
     ws.fixture("synth_dataset"), "--device", "local", "--store", ws.tmp / "s.sqlite"], "export directory")  # fmt: skip


# -- data import: broken sources ------------------------------------------------------------------------------------


def _labelme_source(ws: Workspace, shapes: Any = None, doc: dict | None = None, image: bytes | None = None) -> Path:
    src = ws.tmp / "labelme"
    src.mkdir(exist_ok=True)
    (src / "a.png").write_bytes(image if image is not None else _valid_png(ws))
    points = [[2, 2], [30, 2], [30, 30], [2, 30]]
    record = {
        "version": "5.4.1", "flags": {}, "imagePath": "a.png", "imageData": None, "imageHeight": 128,
        "imageWidth": 128,
        "shapes": shapes if shapes is not None else [
            {"label": "disc", "points": points, "group_id": None, "shape_type": "polygon", "flags": {}}
        ],
    }  # fmt: skip
    (src / "a.json").write_text(json.dumps({**record, **(doc or {})}))
    return src


_LABELME_SHAPE = {"label": "disc", "points": [[2, 2], [30, 2], [30, 30]], "group_id": None, "shape_type": "polygon"}
for _what, _field, _value in corrupt.field_mutations(
    _LABELME_SHAPE, {"label": [None, 3, ""], "points": [None, "x", [[1, math.nan], [2, 2], [3, 3]], [[1]]],
                     "group_id": ["g", 1.5], "shape_type": [3, ["polygon"]]}
):
    case("data", f"import-labelme:shapes[0].{_what}", lambda ws, f=_field, v=_value: [
        "data", "import", _labelme_source(ws, shapes=[{**_LABELME_SHAPE, f: v}]), ws.tmp / "out", "--from", "labelme"],
         "{tmp}/labelme/a.json")  # fmt: skip
for _what, _field, _value in corrupt.field_mutations(
    {"shapes": [], "imagePath": "", "imageData": None, "imageHeight": 1, "imageWidth": 1},
    {"shapes": [None, "x", {}], "imagePath": [3, "../../etc/passwd", "missing.png"], "imageData": [3, ["x"]],
     "imageHeight": [-1, "x"], "imageWidth": [0]},
):
    case("data", f"import-labelme:{_what}", lambda ws, f=_field, v=_value: [
        "data", "import", _labelme_source(ws, doc={f: v}), ws.tmp / "out", "--from", "labelme"], "{tmp}/labelme")


def _labelme_garbage(ws: Workspace, data: bytes) -> Path:
    src = _labelme_source(ws)
    (src / "a.json").write_bytes(data)
    return src


for _name, _data in corrupt.GARBAGE_JSON[:5]:
    case("data", f"import-labelme:json-{_name}", lambda ws, d=_data: [
        "data", "import", _labelme_garbage(ws, d), ws.tmp / "out", "--from", "labelme"], "{tmp}/labelme/a.json")
for _name in corrupt.IMAGE_KINDS:
    case("data", f"import-labelme:image-{_name}", lambda ws, n=_name: [
        "data", "import", _labelme_source(ws, image=corrupt.bad_images(_valid_png(ws))[n]), ws.tmp / "out",
        "--from", "labelme"], "{tmp}/labelme/a.png")  # fmt: skip


def _yolo_source(ws: Workspace, label: str = "0 0.1 0.1 0.5 0.1 0.5 0.5\n", config: str = "names: [disc]\n") -> Path:
    src = ws.tmp / "yolo"
    (src / "images").mkdir(parents=True, exist_ok=True)
    (src / "labels").mkdir(parents=True, exist_ok=True)
    (src / "images" / "a.png").write_bytes(_valid_png(ws))
    (src / "labels" / "a.txt").write_text(label)
    (src / "data.yaml").write_text(config)
    return src


for _label in ["0 0.1 0.1 0.5\n", "x 0.1 0.1 0.5 0.1 0.5 0.5\n", "0 nan 0.1 0.5 0.1 0.5 0.5\n",
               "7 0.1 0.1 0.5 0.1 0.5 0.5\n", "0 0.1 0.1 5 0.1 0.5 0.5\n", "0 0.1 0.1 0.5 0.1 0.5\n"]:  # fmt: skip
    case("data", f"import-yolo:label={_label.strip()[:14]}", lambda ws, t=_label: [
        "data", "import", _yolo_source(ws, label=t), ws.tmp / "out", "--from", "yolo"], "{tmp}/yolo/labels/a.txt")
for _name, _data in corrupt.GARBAGE_YAML:
    case("data", f"import-yolo:data.yaml-{_name}", lambda ws, d=_data: [
        "data", "import", _yolo_source(ws, config=d.decode("latin-1")), ws.tmp / "out", "--from", "yolo"],
         "{tmp}/yolo/data.yaml")  # fmt: skip
case("data", "import-voc:not-a-tree", lambda ws: ["data", "import", ws.folder("voc"), ws.tmp / "out", "--from", "voc"],
     "{tmp}/voc")  # fmt: skip
case("data", "import:source-missing", lambda ws: ["data", "import", ws.tmp / "nope", ws.tmp / "out", "--from",
     "labelme"], "{tmp}/nope")  # fmt: skip
case("data", "import:source-is-file", lambda ws: ["data", "import", ws.file("src.json", "{}"), ws.tmp / "out",
     "--from", "labelme"], "{tmp}/src.json")  # fmt: skip


# -- input paths: missing, a file where a folder belongs and the reverse, an empty folder ----------------------------

_INPUTS: dict[str, Callable[[Workspace, Path], list[object]]] = {  # (workspace, the input path) → args
    "train --data": lambda ws, path: _train(ws, path),
    "predict IMAGE": lambda ws, path: ["predict", ws.fixture("tiny_checkpoint"), path, "--out", ws.tmp / "out"],
    "export --calib": lambda ws, path: ["export", ws.fixture("tiny_checkpoint"), "--out", ws.tmp / "export",
                                        "--formats", "int8", "--calib", path],
    "quant-debug --data": lambda ws, path: ["quant-debug", _export(ws), "--data", path, "--images", 1],
    "validate --data": lambda ws, path: ["validate", ws.fixture("tiny_checkpoint"), "--data", path],
    "validate --apk": lambda ws, path: ["validate", _export(ws), "--data", ws.fixture("synth_dataset"), "--device",
                                        "local", "--store", ws.tmp / "s.sqlite", "--apk", path],
    "data import SRC": lambda ws, path: ["data", "import", path, ws.tmp / "imported", "--from", "yolo"],
}
for _where, _args in _INPUTS.items():
    _c = _where.split(" ", 1)[0]
    _tag = _where.replace(" ", "")
    case(_c, f"{_tag}:missing", lambda ws, a=_args: a(ws, ws.tmp / "nope"), "{tmp}/nope")
    case(_c, f"{_tag}:empty-folder", lambda ws, a=_args: a(ws, ws.folder("empty")), "{tmp}/empty")
    if _where not in ("predict IMAGE", "validate --apk"):  # those two want a file: a text file is the next case
        case(_c, f"{_tag}:a-file", lambda ws, a=_args: a(ws, ws.file("notes.txt", "x")), "{tmp}/notes.txt")
case("predict", "predict-IMAGE:a-text-file", lambda ws: _INPUTS["predict IMAGE"](ws, ws.file("a.png", "x")),
     "{tmp}/a.png")  # fmt: skip


# -- outputs: a file where a folder belongs, a non-empty folder, an unwritable folder ---------------------------------

_OUTPUTS: dict[str, tuple[Callable[[Workspace, Path], list[object]], str]] = {
    "train": (lambda ws, out: _with_option(_train(ws), "--out", str(out)), "--out"),
    "predict": (lambda ws, out: _with_option(_BASES["predict"](ws), "--out", str(out)), "--out"),
    "export": (lambda ws, out: ["export", ws.fixture("tiny_checkpoint"), "--out", out, "--formats", "onnx"], "--out"),
    "report": (lambda ws, out: ["report", make_run(ws.tmp / "run"), "--out", out], "--out"),
    "demo": (lambda ws, out: _with_option(_BASES["demo"](ws), "--out", str(out)), "--out"),
    "data synth": (lambda ws, out: ["data", "synth", out, "--train", "2", "--val", "1", "--size", "32", "--quiet"],
                   "OUT"),
    "data import": (lambda ws, out: ["data", "import", _labelme_source(ws), out, "--from", "labelme", "--quiet"],
                    "OUT"),
}


def _read_only_folder(ws: Workspace, rel: str) -> Path:
    folder = ws.folder(rel)
    folder.chmod(0o555)
    return folder


for _command, (_args, _) in _OUTPUTS.items():
    _c = _command.split()[0]
    _w = _command.replace(" ", "-")
    case(_c, f"{_w}:out-is-a-file", lambda ws, a=_args: a(ws, ws.file("out", "precious")), "{tmp}/out")
    case(_c, f"{_w}:out-under-a-file", lambda ws, a=_args: a(ws, ws.file("f", "precious") / "out"), "{tmp}/f")
    case(_c, f"{_w}:out-in-read-only-folder", lambda ws, a=_args: a(ws, _read_only_folder(ws, "ro") / "out"),
         "{tmp}/ro", enforce_permissions=True)  # fmt: skip
for _command in ("data synth", "data import"):  # train and demo add their files to a folder: others may be there
    _args = _OUTPUTS[_command][0]
    case(_command.split()[0], f"{_command.replace(' ', '-')}:out-holds-other-files",
         lambda ws, a=_args: a(ws, ws.folder("out", {"notes.txt": "keep me"})), "{tmp}/out")  # fmt: skip
case("export", "out-holds-other-files", lambda ws: _OUTPUTS["export"][0](ws, ws.folder("out", {"best.pt": "x"})),
     "{tmp}/out")  # fmt: skip


def _validated_export(ws: Workspace) -> Path:
    export = _export(ws)
    (export / "validation.json").write_text('{"variants": []}')
    return export


case("validate", "export-dir-read-only", lambda ws: ["validate", _read_only(_validated_export(ws)), "--data",
     ws.fixture("synth_dataset"), "--images", 1], "{tmp}/export", enforce_permissions=True)  # fmt: skip
case("quant-debug", "export-dir-read-only", lambda ws: ["quant-debug", _read_only(_export(ws)), "--data",
     ws.fixture("synth_dataset"), "--images", 2, "--top", 0], "{tmp}/export", enforce_permissions=True)  # fmt: skip


def _read_only(folder: Path) -> Path:
    folder.chmod(0o555)
    return folder


# -- manifests: garbage, every field wrong, paths leading out of the folder, corrupt model files ----------------------


def _manifest(ws: Workspace, spoil: Callable[[dict], Any]) -> Path:
    export = _export(ws)
    path = export / "manifest.json"
    path.write_text(json.dumps(spoil(json.loads(path.read_text()))))
    return export


def _set(path: str, value: Any) -> Callable[[dict], dict]:
    """A spoiler setting the dotted `path` (list indices as numbers) of a manifest to `value`."""

    def spoil(doc: dict) -> dict:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = doc
        for p in parents:
            node = node[p]
        node[last] = value
        return doc

    return spoil


_MANIFEST_FIELDS: dict[str, list[Any]] = {
    "schema_version": [2, "1", None],
    "variant": [3, None],
    "input_size": ["64", 0, -64, 63, 10**9, True, 64.5, None],
    "categories": ["disc", [1], None],
    "checkpoint": ["best.pt", {"path": 1}],
    "files": ["model.tflite", {}, None],
    "toolchain": [["torch"], {"torch": 2}],
    "created": [1, None],
    "files.0.file": [1, None, "", "../outside.tflite", "/etc/hostname", "sub/../../outside.tflite", "."],
    "files.0.format": ["tflite3", None],
    "files.0.precision": ["int4", 8],
    "files.0.sha256": ["abc", 1, None, "0" * 64],
    "files.0.bytes": ["big", -1, None],
    "files.0.inputs": ["image", [], None],
    "files.0.inputs.0.shape": ["1x64x64x3", [1, -64, 64, 3], [1, "64", 64, 3], []],
    "files.0.inputs.0.dtype": ["float64", 3],
    "files.0.inputs.0.name": [None, 7],
    "files.0.outputs": [[], "heatmap"],
}
_MANIFEST_COMMANDS = ("coverage", "validate", "bench", "quant-debug")


def _reads_manifest(ws: Workspace, command: str, export: Path) -> list[object]:
    if command == "coverage":
        return ["coverage", export]
    if command == "validate":
        return ["validate", export, "--data", ws.fixture("synth_dataset"), "--images", 1]
    if command == "bench":
        return _bench(ws, export)
    return ["quant-debug", export, "--data", ws.fixture("synth_dataset"), "--images", 2, "--top", 0]


def _manifest_names(value: Any) -> str:
    """What the error line of a manifest holding `value` names: the manifest, or the file its sha256 does not fit."""
    return "model_fp32.tflite" if value == "0" * 64 else "manifest.json"


def _escaping(ws: Workspace, export: Path, value: Any) -> Path:
    """For a manifest whose file leads outside its folder: put a real copy there, with the sha256 the manifest has."""
    if isinstance(value, str) and "outside" in value:
        shutil.copy2(export / "model_fp32.tflite", export.parent / "outside.tflite")
    return export


_i = 0
for _field, _values in _MANIFEST_FIELDS.items():
    for _value in _values:
        _command = _MANIFEST_COMMANDS[_i % len(_MANIFEST_COMMANDS)]
        _i += 1
        case(_command, f"manifest:{_field}={corrupt._label(_value)}",
             lambda ws, f=_field, v=_value, c=_command: _reads_manifest(ws, c, _escaping(ws, _manifest(ws, _set(f, v)),
                                                                                         v)),
             _manifest_names(_value))  # fmt: skip


for _command in _MANIFEST_COMMANDS:
    for _name, _data in corrupt.GARBAGE_JSON[:8:2]:
        case(_command, f"manifest-garbage:{_name}", lambda ws, d=_data, c=_command: _reads_manifest(
            ws, c, _garbage_manifest(ws, d)), "manifest.json")  # fmt: skip
    case(_command, "export-dir-missing", lambda ws, c=_command: _reads_manifest(ws, c, ws.tmp / "nope"), "{tmp}/nope")
    case(_command, "export-dir-without-manifest", lambda ws, c=_command: _reads_manifest(ws, c, ws.folder("empty")),
         "{tmp}/empty")  # fmt: skip
    case(_command, "model-file-missing", lambda ws, c=_command: _reads_manifest(ws, c, _without_file(ws)),
         "model_fp32.tflite")  # fmt: skip
    case(_command, "model-file-changed", lambda ws, c=_command: _reads_manifest(ws, c, _changed_file(ws)),
         "model_fp32.tflite")  # fmt: skip


def _garbage_manifest(ws: Workspace, data: bytes) -> Path:
    export = _export(ws)
    (export / "manifest.json").write_bytes(data)
    return export


def _without_file(ws: Workspace) -> Path:
    export = _export(ws)
    (export / "model_fp32.tflite").unlink()
    return export


def _changed_file(ws: Workspace) -> Path:
    export = _export(ws)
    with open(export / "model_fp32.tflite", "ab") as fh:
        fh.write(b"\0")
    return export


def _corrupt_model_file(ws: Workspace, file: str, data: bytes) -> Path:
    """An export whose `file` holds `data`, its manifest's sha256 and size updated to match (a consistent lie)."""
    from blitzmask_deploy.core.artifacts import sha256_file

    export = _export(ws)
    (export / file).write_bytes(data)
    manifest = json.loads((export / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["file"] == file:
            entry["sha256"], entry["bytes"] = sha256_file(export / file), len(data)
    (export / "manifest.json").write_text(json.dumps(manifest))
    return export


def _bad_model_file(ws: Workspace, fixture: str, file: str, kind: str) -> bytes:
    """The bytes of a `kind` of corrupt `file` (of the export fixture, or the fixture itself when `file` is '')."""
    source = ws.fixture(fixture) / file if file else ws.fixture(fixture)
    return corrupt.model_file_bytes(source.read_bytes())[kind]


for _name in corrupt.MODEL_FILE_KINDS:
    for _command, _file in (("coverage", "model_int8.tflite"), ("validate", "model_fp16.tflite"),
                            ("validate", "model.onnx"), ("quant-debug", "model_int8.tflite")):  # fmt: skip
        case(_command, f"{_file}-{_name}", lambda ws, n=_name, c=_command, f=_file: _reads_manifest(
            ws, c, _corrupt_model_file(ws, f, _bad_model_file(ws, "tiny_export", f, n))), _file)  # fmt: skip
    case("bench", f"tflite-{_name}", lambda ws, n=_name: _bench(
        ws, ws.file("m.tflite", _bad_model_file(ws, "bench_tflite", "", n))), "{tmp}/m.tflite")  # fmt: skip
case("bench", "model-missing", lambda ws: _bench(ws, ws.tmp / "nope.tflite"),
     "{tmp}/nope.tflite")  # fmt: skip
case("bench", "model-not-tflite", lambda ws: _bench(ws, ws.file("m.onnx", "x")),
     "{tmp}/m.onnx")  # fmt: skip
case("bench", "apk-missing", lambda ws: [*_BASES["bench"](ws), "--apk", ws.tmp / "nope.apk"], "{tmp}/nope.apk")
case("bench", "apk-is-folder", lambda ws: [*_BASES["bench"](ws), "--apk", ws.folder("a.apk")], "{tmp}/a.apk")


# -- stores: bench, validate --device, report and gate ----------------------------------------------------------------

for _kind in corrupt.STORE_KINDS:
    case("bench", f"store-{_kind}", lambda ws, k=_kind: _with_option(
        _BASES["bench"](ws), "--store", str(corrupt.bad_store(ws.tmp / "s.sqlite", k))), "{tmp}/s.sqlite")  # fmt: skip
    case("validate", f"device-store-{_kind}", lambda ws, k=_kind: [
        "validate", _export(ws), "--data", ws.fixture("synth_dataset"), "--device", "local", "--store",
        corrupt.bad_store(ws.tmp / "s.sqlite", k)], "{tmp}/s.sqlite")  # fmt: skip
    if _kind != "directory":
        case("report", f"store-{_kind}", lambda ws, k=_kind: ["report", corrupt.bad_store(ws.tmp / "s.sqlite", k),
             "--out", ws.tmp / "report"], "{tmp}/s.sqlite")  # fmt: skip
        case("gate", f"store-{_kind}", lambda ws, k=_kind: ["gate", corrupt.bad_store(ws.tmp / "s.sqlite", k)],
             "{tmp}/s.sqlite")  # fmt: skip
case("bench", "store-in-read-only-folder", lambda ws: _with_option(_BASES["bench"](ws), "--store",
     str(_read_only_folder(ws, "ro") / "s.sqlite")), "{tmp}/ro", enforce_permissions=True)  # fmt: skip
case("bench", "store-unreadable", lambda ws: _with_option(_BASES["bench"](ws), "--store", str(
    _unreadable(ws, corrupt.bad_store(ws.tmp / "s.sqlite", "sqlite-other-tables")))), "{tmp}/s.sqlite",
    enforce_permissions=True)  # fmt: skip


# -- report and gate: results and budgets ----------------------------------------------------------------------------


def _run_with(ws: Workspace, spoil: Callable[[dict], Any], name: str = "validation.json") -> Path:
    root = make_run(ws.tmp / "run")
    path = root / "export" / name
    path.write_text(json.dumps(spoil(json.loads(path.read_text()))))
    return root


_VALIDATION_FIELDS: dict[str, list[Any]] = {
    "variants": [None, "x", {}],
    "reference": ["checkpoint", [0.3]],
    "variant": [3, ["blitzmask-tiny"]],
    "variants.0": [None, "tflite-fp32", []],
    "variants.0.name": [None, 3, []],
    "variants.0.sha256": [None, [1], {"a": 1}],
    "variants.0.mask_ap": [math.nan, "high", None, -0.5, 1.5],
    "variants.0.mask_ap_drop": [math.inf, "x"],
    "variants.0.latency_ms_p50": ["fast", math.nan, -1],
    "variants.0.format": [None, 3],
    "variants.0.precision": [None, "int9"],
    "variants.0.passed": ["yes"],
}
for _field, _values in _VALIDATION_FIELDS.items():
    for _j, _value in enumerate(_values):
        _command = ("report", "gate")[_j % 2]
        case(_command, f"validation:{_field}={corrupt._label(_value)}", lambda ws, f=_field, v=_value, c=_command: [
            c, _run_with(ws, _set(f, v)), *(["--out", ws.tmp / "report"] if c == "report" else [])],
             "validation.json")  # fmt: skip
for _name, _data in corrupt.GARBAGE_JSON[:6]:
    case("report", f"validation-garbage:{_name}", lambda ws, d=_data: [
        "report", ws.file("validation.json", d), "--out", ws.tmp / "report"], "{tmp}/validation.json")  # fmt: skip
    case("gate", f"validation-garbage:{_name}", lambda ws, d=_data: ["gate", ws.file("validation.json", d)],
         "{tmp}/validation.json")  # fmt: skip
for _command in ("report", "gate"):
    case(_command, "results-missing", lambda ws, c=_command: [c, ws.tmp / "nope", *_report_out(ws, c)], "{tmp}/nope")
    case(_command, "results-empty-folder", lambda ws, c=_command: [c, ws.folder("empty"), *_report_out(ws, c)],
         "{tmp}/empty")  # fmt: skip
    case(_command, "results-wrong-suffix", lambda ws, c=_command: [c, ws.file("r.txt", "x"), *_report_out(ws, c)],
         "{tmp}/r.txt")  # fmt: skip


def _with_quant_debug(ws: Workspace, data: bytes) -> list[object]:
    """`report` of a run whose export holds `data` as its quant_debug.json."""
    root = make_run(ws.tmp / "run")
    (root / "export" / "quant_debug.json").write_bytes(data)
    return ["report", root, "--out", ws.tmp / "report"]


_QUANT_DEBUG = [
    *corrupt.GARBAGE_JSON[:6],
    ("ops-a-number", b'{"ops": 5}'),
    ("op-not-an-object", b'{"ops": [3]}'),
    ("snr-nan", b'{"ops": [{"snr_db": NaN, "module": "stem", "op": "CONV_2D", "group": "backbone"}]}'),
    ("snr-text", b'{"ops": [{"snr_db": "low", "module": "stem", "op": "CONV_2D", "group": "backbone"}]}'),
    ("group-a-list", b'{"ops": [{"snr_db": 3.0, "module": "stem", "op": "CONV_2D", "group": ["backbone"]}]}'),
]
for _name, _data in _QUANT_DEBUG:
    case("report", f"quant_debug.json-{_name}", lambda ws, d=_data: _with_quant_debug(ws, d), "quant_debug.json")


def _report_out(ws: Workspace, command: str) -> list[object]:
    return ["--out", ws.tmp / "report"] if command == "report" else []


def _cells_with(ws: Workspace, column: str, value: Any) -> Path:
    import sqlite3

    root = make_run(ws.tmp / "run")
    with sqlite3.connect(root / "results.sqlite") as conn:
        conn.execute(f"UPDATE cells SET {column} = ? WHERE rowid = 1", (value,))
    conn.close()
    return root


for _column, _value in [("result_json", "{not json"), ("result_json", '{"runs_ms": ["fast"]}'),
                        ("result_json", '{"runs_ms": [1e999]}'), ("result_json", '{"device": "phone"}'),
                        ("result_json", '{"thermal_before": [1, 2]}'), ("result_json", '{"sustained": 5}'),
                        ("model_path", "\x00"), ("threads", "many"), ("p50_ms", "fast"), ("fps", -5.0)]:  # fmt: skip
    for _command in ("report", "gate"):
        case(_command, f"cell:{_column}={str(_value)[:14]}", lambda ws, col=_column, v=_value, c=_command: [
            c, _cells_with(ws, col, v), *_report_out(ws, c)], "results.sqlite")  # fmt: skip

_BUDGET_FIELDS: dict[str, list[Any]] = {
    "ap_drop_max": [None, "x", [0.5], {"int8": math.nan}, {"int8": -1}, {"int9": 1}, {"int8": "x"}, {"int8": math.inf}],
    "parity_max_abs": [None, {"fp32": math.nan}, {"fp32": -1e-4}, {"fp32": [1]}],
    "latency_p50_ms_max": [math.nan, -1, "x", math.inf],
    "device_ap_drop_max": [{"int8": math.nan}, "x", {"int8": -1}],
}


def _budgets(ws: Workspace, field: str | None = None, value: Any = None, raw: bytes | None = None) -> Path:
    import yaml

    card = yaml.safe_load((ws.fixture("models_dir") / "blitzmask-tiny" / "numerics.yaml").read_text())
    if field is not None:
        card[field] = value
    text = raw if raw is not None else yaml.safe_dump(card).encode()
    return ws.file("numerics.yaml", text)


for _field, _values in _BUDGET_FIELDS.items():
    for _j, _value in enumerate(_values):
        _command = ("report", "gate")[_j % 2]
        case(_command, f"budgets:{_field}={corrupt._label(_value)}", lambda ws, f=_field, v=_value, c=_command: [
            c, make_run(ws.tmp / "run"), "--budgets", _budgets(ws, f, v), *_report_out(ws, c)],
             "{tmp}/numerics.yaml")  # fmt: skip
case("gate", "budgets:unknown-key", lambda ws: ["gate", make_run(ws.tmp / "run"), "--budgets",
     _budgets(ws, "colour", "red")], "{tmp}/numerics.yaml")  # fmt: skip
for _j, (_name, _data) in enumerate(corrupt.GARBAGE_YAML):
    _command = ("report", "gate")[_j % 2]
    case(_command, f"budgets-garbage:{_name}", lambda ws, d=_data, c=_command: [
        c, make_run(ws.tmp / "run"), "--budgets", _budgets(ws, raw=d), *_report_out(ws, c)],
         "{tmp}/numerics.yaml")  # fmt: skip
for _command in ("report", "gate"):
    case(_command, "budgets-missing", lambda ws, c=_command: [c, make_run(ws.tmp / "run"), "--budgets",
         ws.tmp / "nope.yaml", *_report_out(ws, c)], "{tmp}/nope.yaml")  # fmt: skip
    case(_command, "budgets-is-folder", lambda ws, c=_command: [c, make_run(ws.tmp / "run"), "--budgets",
         ws.folder("b.yaml"), *_report_out(ws, c)], "{tmp}/b.yaml")  # fmt: skip
    case(_command, "budgets-unreadable", lambda ws, c=_command: [c, make_run(ws.tmp / "run"), "--budgets",
         _unreadable(ws, _budgets(ws)), *_report_out(ws, c)], "{tmp}/numerics.yaml",
         enforce_permissions=True)  # fmt: skip


# -- model cards (models/<variant>/*.yaml) -------------------------------------------------------------------------

_CARD_FIELDS: dict[str, list[Any]] = {
    "backbone": [3, "resnet9000", None],
    "width_mult": ["wide", math.nan, -1.0, 0],
    "input_size": ["320", 0, -32, 10**9],
    "num_classes": [0, -1, "six"],
    "num_coefficients": [0, "k"],
    "output_stride": [3, "four"],
    "neck_channels": [0, -8],
    "head_convs": [-1, "two"],
    "use_box": ["maybe"],
}
for _field, _values in _CARD_FIELDS.items():
    for _j, _value in enumerate(_values):
        _command = ("models", "train")[_j % 2]
        case(_command, f"card:model.yaml:{_field}={corrupt._label(_value)}",
             lambda ws, f=_field, v=_value, c=_command: _with_card(ws, f, v, c), "model.yaml")  # fmt: skip


def _with_card(ws: Workspace, field: str, value: Any, command: str) -> list[object]:
    """Args for `command`, the model cards read from a copy whose blitzmask-tiny/model.yaml has `field` set to
    `value`."""
    import yaml

    models = ws.copy("models_dir", "models")
    path = models / "blitzmask-tiny" / "model.yaml"
    card = yaml.safe_load(path.read_text())
    card[field] = value
    path.write_text(yaml.safe_dump(card))
    ws.models_dir = models
    return ["models", "blitzmask-tiny"] if command == "models" else _train(ws)


def _update_cards_with(ws: Workspace, perf: bytes) -> list[object]:
    """`report --update-cards` of a run of blitzmask-tiny, the cards read from a copy whose perf.yaml is `perf`."""
    ws.models_dir = ws.copy("models_dir", "models")
    (ws.models_dir / "blitzmask-tiny" / "perf.yaml").write_bytes(perf)
    return ["report", make_run(ws.tmp / "run"), "--out", ws.tmp / "report", "--update-cards"]


_PERF = [
    *corrupt.GARBAGE_YAML,
    ("measured-not-a-list", b"paper: null\nmeasured: {p50_ms: 3}\n"),
    ("measured-wrong-precision", b"paper: null\nmeasured: [{date: '2026-01-01', device: x, delegate: cpu, "
                                 b"precision: int4}]\n"),
    ("paper-a-number", b"paper: 3\nmeasured: []\n"),
    ("unknown-key", b"paper: null\nmeasured: []\ncolour: red\n"),
]  # fmt: skip
for _name, _data in _PERF:
    case("report", f"card:perf.yaml-{_name}", lambda ws, d=_data: _update_cards_with(ws, d), "perf.yaml")


# -- the test -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The model cards the package reads (models/ of the checkout)."""
    from blitzmask_deploy.core import cards

    return cards.MODELS_DIR


def _check(bad: Case, tmp_path: Path, request: pytest.FixtureRequest, run: Callable[[list[object]], tuple]) -> None:
    """Build the case in `tmp_path`, run it with `run` (args → exit code, stderr) and check what it left."""
    ws = Workspace(tmp_path, request)
    args = list(bad.build(ws))
    before = {str(p): snapshot(p) for p in [tmp_path, *ws.watched]}
    code, err = run(args) if ws.models_dir is None else _with_cards(ws.models_dir, request, lambda: run(args))
    lines = err.strip().splitlines()
    if bad.started and lines and lines[0].startswith(bad.started):
        lines = lines[1:]
    assert code == bad.code, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    if bad.code == 2:
        assert len(lines) == 1 and lines[0].startswith("error: "), err[-3000:]
        for part in bad.expect:
            assert part.format(tmp=tmp_path) in lines[0], lines[0]
    else:
        assert len(lines) <= 1, err[-3000:]
    assert not (tmp_path / "EXECUTED").exists()  # no pickle was ever run
    after = {str(p): snapshot(p) for p in [tmp_path, *ws.watched]}
    assert after == before


def _with_cards(models: Path, request: pytest.FixtureRequest, run: Callable[[], tuple]) -> tuple:
    """`run()` with the model cards read from `models` (the registry reads them once per process: again)."""
    from blitzmask_deploy.core import cards
    from blitzmask_deploy.modeling import registry

    request.addfinalizer(registry._variants.cache_clear)
    with mock.patch.object(cards, "MODELS_DIR", models):
        registry._variants.cache_clear()
        return run()


@pytest.mark.parametrize(
    "bad", [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else []) for c in CASES]
)  # fmt: skip
def test_bad_input_is_one_line_and_changes_nothing(
    bad: Case, tmp_path: Path, request: pytest.FixtureRequest, capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)  # anything written relative to the working directory lands in the workspace

    def run(args: list[object]) -> tuple[int, str]:
        with corrupt.permissions_enforced() if bad.enforce_permissions else contextlib.nullcontext():
            code, _, err = run_in_process(args, capfd)
        return code, err

    _check(bad, tmp_path, request, run)


# Run as the installed command: one case of each command, and the cases whose files native code reads (LiteRT,
# ONNX Runtime, torch's unpickler, PIL): what a library prints on the process's own stderr is seen here too.
_NATIVE = ("bench:tflite-truncated", "coverage:model_int8.tflite-random", "validate:model.onnx-truncated",
           "quant-debug:model_int8.tflite-header-only", "predict:ckpt-pickle-that-executes", "predict:image-truncated",
           "export:ckpt-state-nan", "report:store-sqlite-truncated", "eval:pred:segmentation=\"rle\"")  # fmt: skip
_SAMPLE = [c for c in CASES if c.id in _NATIVE] + [
    next(c for c in CASES if c.command == name and not c.enforce_permissions and "card:" not in c.id)
    for name in dict.fromkeys(c.command for c in CASES)
]


@pytest.mark.slow
@pytest.mark.parametrize("bad", [pytest.param(c, id=c.id) for c in _SAMPLE])
def test_as_a_command_too(bad: Case, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    def run(args: list[object]) -> tuple[int, str]:
        result = run_cli(*args, timeout=300)
        return result.returncode, result.stderr

    _check(bad, tmp_path, request, run)


def test_every_command_has_its_hostile_inputs() -> None:
    from blitzmask_deploy.cli.app import app

    commands = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    per_command = {name: sum(c.command == name for c in CASES) for name in commands}
    assert all(count >= 5 for count in per_command.values()), per_command
    assert len(CASES) >= 250
    assert len({c.id for c in CASES}) == len(CASES)
    assert set(_NATIVE) <= {c.id for c in CASES}, set(_NATIVE) - {c.id for c in CASES}
    assert {(c, o) for c, o, _ in _GARBAGE} <= {(c, o) for c, o, _ in _OPTIONS}  # each also has its own limits
