"""Hostile input, made programmatically: garbage JSON and YAML, COCO / prediction / manifest / budget records with a
wrong value in each field, corrupt checkpoints (one a pickle that would leave a mark if it were ever executed),
model files and images, stores that are not stores, and a context in which root obeys file permissions."""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import math
import pickle
import sqlite3
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Files that are not the JSON a reader expects: (id, bytes).
GARBAGE_JSON: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("whitespace", b" \n\t\n"),
    ("truncated", b'{"images": [{"id": 1, "file_na'),
    ("binary", bytes(range(256)) * 4),
    ("invalid-utf8", b'{"images": "\xff\xfe"}'),
    ("nested-too-deep", b"[" * 200_000 + b"]" * 200_000),
    ("huge-int", b"1" * 100_000),
    ("null", b"null"),
    ("number", b"3.5"),
    ("string", b'"images"'),
    ("nan", b"NaN"),
]

# YAML that is not a budgets mapping: (id, text bytes).
GARBAGE_YAML: list[tuple[str, bytes]] = [
    ("unclosed", b"ap_drop_max: [1, 2"),
    ("tab-indent", b"ap_drop_max:\n\tint8: 0.5\n"),
    ("list", b"- ap_drop_max\n- parity_max_abs\n"),
    ("scalar", b"42\n"),
    ("empty", b""),
    ("invalid-utf8", b"ap_drop_max: {int8: \xff}\n"),
    ("binary", bytes(range(256))),
    ("python-tag", b"ap_drop_max: !!python/object/apply:os.system ['true']\n"),
    ("alias-bomb", b"a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + b"".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n".encode()
        for i in range(9)
    )),
]

# A value of each kind, and for each kind of field the values that are wrong for it.
_HUGE = 10**30
NOT_INT: list[Any] = ["1", 1.5, None, True, [1], {"v": 1}, math.nan]
NOT_STR: list[Any] = [1, None, [], {"v": "x"}, True]
NOT_LIST: list[Any] = ["x", 1, None, {"v": []}]
NOT_NUMBER: list[Any] = ["1", None, True, [1.0], math.nan, math.inf, -math.inf]
NOT_SIZE: list[Any] = [0, -1, 1.5, "10", None, True, math.nan, _HUGE]


def field_mutations(record: dict, kinds: dict[str, list[Any]]) -> Iterator[tuple[str, str, Any]]:
    """(id, field, bad value) for every field of `record` named in `kinds` and every bad value of its kind."""
    for field, values in kinds.items():
        assert field in record, field
        for value in values:
            yield f"{field}={_label(value)}", field, value


def _label(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    text = json.dumps(value) if not isinstance(value, int) or abs(value) < 10**6 else "huge"
    return text.replace(" ", "")[:28]


def write_json(path: Path, value: Any) -> Path:
    """`value` as JSON at `path` (NaN and Infinity written as Python and many tools write them)."""
    path.write_text(json.dumps(value))
    return path


# -- images ---------------------------------------------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk declaring `width`×`height` RGB, with no pixel data after it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))


def bad_images(valid_png: bytes) -> dict[str, bytes]:
    """Image files that cannot be used (kind → bytes): empty, truncated, not an image, lying about their size."""
    return {
        "zero-bytes": b"",
        "truncated": valid_png[: len(valid_png) // 2],
        "header-only": valid_png[:40],
        "text": b"this is not an image\n",
        "bomb-100k-square": png_header(100_000, 100_000),
        "no-pixel-data": png_header(64, 64),
    }


IMAGE_KINDS = tuple(bad_images(b""))


# -- checkpoints ----------------------------------------------------------------------------------------------------


class _Mark:
    """Pickled as a call that would create the file `path`: the file exists only if the pickle was executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (open, (str(self.path), "w"))


def _zip_bytes() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("archive/data.pkl", b"not a pickle")
    return buffer.getvalue()


def checkpoint_bytes(valid: bytes, mark: Path) -> dict[str, bytes]:
    """Checkpoint files that are not checkpoints (kind → bytes); executing the pickle one would create `mark`."""
    return {
        "empty": b"",
        "truncated": valid[: len(valid) // 2],
        "first-kb": valid[:1024],
        "text": b"weights, promised\n",
        "pickle-that-executes": pickle.dumps({"format": "blitzmask-checkpoint", "run": _Mark(mark)}),
        "zip-not-torch": _zip_bytes(),
    }


CHECKPOINT_KINDS = tuple(checkpoint_bytes(b"", Path("mark")))


def _with(**changes: Any) -> Callable[[dict], Any]:
    return lambda good: {**good, **changes}


def _without(key: str) -> Callable[[dict], Any]:
    return lambda good: {k: v for k, v in good.items() if k != key}


def _config(**changes: Any) -> Callable[[dict], Any]:
    return lambda good: {**good, "config": {**good["config"], **changes}}


def _weights(spoil: Callable[[dict, str], dict]) -> Callable[[dict], Any]:
    """A payload whose state_dict is `spoil(state_dict, its first key)`."""
    return lambda good: {**good, "state_dict": spoil(good["state_dict"], next(iter(good["state_dict"])))}


def _torch(make: Callable[[Any], Any]) -> Callable[[dict], Any]:
    """A payload made with torch (imported when it is made)."""

    def payload(good: dict) -> Any:
        import torch

        return make(torch)(good)

    return payload


# Payloads torch reads fine that are not BlitzMask checkpoints (kind → function of a good checkpoint's payload):
# wrong tags, missing keys, wrong types, weights that do not fit the config, bad categories.
CHECKPOINT_PAYLOADS: dict[str, Callable[[dict], Any]] = {
    "list": lambda good: [1, 2, 3],
    "tensor": _torch(lambda torch: lambda good: torch.zeros(3)),
    "no-format": _without("format"),
    "other-format": _with(format="yolo"),
    "version-2": _with(version=2),
    "version-str": _with(version="1"),
    **{f"no-{key}": _without(key) for key in ("config", "state_dict", "categories")},
    "config-str": _with(config="blitzmask-tiny"),
    "config-unknown-key": _config(colour="red"),
    "config-missing-key": lambda good: {**good, "config": {k: v for k, v in good["config"].items() if k != "backbone"}},
    "config-wrong-type": _config(input_size="sixty-four"),
    "config-bad-backbone": _config(backbone="resnet9000"),
    "config-huge-input": _config(input_size=10**9),
    "config-negative-classes": _config(num_classes=-1),
    "config-huge-width": _config(width_mult=1e6),
    "state-list": _with(state_dict=[1, 2]),
    "state-missing-key": _weights(lambda state, first: {k: v for k, v in state.items() if k != first}),
    "state-extra-key": _torch(lambda torch: _weights(lambda state, _: {**state, "bogus.weight": torch.zeros(1)})),
    "state-wrong-shape": _torch(lambda torch: _weights(lambda state, first: {**state, first: torch.zeros(1, 2, 3)})),
    "state-not-tensor": _weights(lambda state, first: {**state, first: "weights"}),
    "state-nan": _torch(lambda torch: _weights(
        lambda state, first: {**state, first: torch.full_like(state[first], math.nan)})),
    "categories-empty": _with(categories=[]),
    "categories-str": _with(categories="disc"),
    "categories-no-id": lambda good: {**good, "categories": [{"name": c.get("name")} for c in good["categories"]]},
    "categories-dup-id": lambda good: {**good, "categories": [{**c, "id": 1} for c in good["categories"]]},
    "categories-fewer": lambda good: {**good, "categories": good["categories"][:1]},
    "extra-list": _with(extra=[1]),
}  # fmt: skip


# -- model files ----------------------------------------------------------------------------------------------------


def model_file_bytes(valid: bytes) -> dict[str, bytes]:
    """.tflite / .onnx files that are not models (kind → bytes): empty, truncated, garbage."""
    return {
        "empty": b"",
        "truncated": valid[: len(valid) // 2],
        "header-only": valid[:64],
        "text": b"a model, honestly\n",
        "random": bytes((i * 7919) % 251 for i in range(4096)),
    }


MODEL_FILE_KINDS = tuple(model_file_bytes(b""))


# -- stores ---------------------------------------------------------------------------------------------------------


def bad_store(path: Path, kind: str) -> Path:
    """A file at `path` that is not a usable bench store (`kind` from STORE_KINDS)."""
    if kind == "text":
        path.write_text("cells: none\n")
    elif kind == "json":
        path.write_text('{"cells": []}')
    elif kind == "random":
        path.write_bytes(bytes((i * 31) % 256 for i in range(8192)))
    elif kind == "sqlite-other-tables":
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
            conn.commit()
    elif kind == "sqlite-truncated":
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
            conn.executemany("INSERT INTO customers VALUES (?, ?)", [(i, "x" * 200) for i in range(200)])
            conn.commit()
        path.write_bytes(path.read_bytes()[:1500])
    elif kind == "directory":
        path.mkdir()
    else:
        raise ValueError(kind)
    return path


STORE_KINDS = ("text", "json", "random", "sqlite-other-tables", "sqlite-truncated", "directory")


# -- permissions ----------------------------------------------------------------------------------------------------

_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2
_CAPABILITY_V3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


@contextlib.contextmanager
def permissions_enforced() -> Iterator[None]:
    """Within the block this thread obeys file modes even as root (CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH
    dropped from its effective set, then restored), so that a chmod 000 file is unreadable and a 0o555 folder
    unwritable. Threads started inside the block inherit it."""
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _CapHeader(_CAPABILITY_V3, 0), (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    saved = data[0].effective
    data[0].effective &= ~((1 << _CAP_DAC_OVERRIDE) | (1 << _CAP_DAC_READ_SEARCH))
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    try:
        yield
    finally:
        data[0].effective = saved
        if libc.capset(ctypes.byref(header), data) != 0:
            raise OSError(ctypes.get_errno(), "capset (restore) failed")
