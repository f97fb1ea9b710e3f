"""The app ↔ driver protocol: command line, device paths, instrumentation output parsing and the tensor packs of
accuracy mode."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from blitzmask_deploy.bench import protocol
from blitzmask_deploy.bench.errors import InstrumentationFailed

HOSTILE = ["my model.tflite", "a'b\"c.tflite", "x; rm -rf /", "$(reboot)", "`id`", "a\nb", "-e", "*"]


def _result(**over: object) -> dict:
    res = protocol.base_result("/m.tflite", delegate="cpu", threads=1, warmup=1, runs=2)
    res.update(status="ok", runs_ms=[1.0, 2.0], **over)
    return res


@pytest.mark.parametrize("value", HOSTILE)
def test_instrument_command_round_trips_hostile_values(value: str) -> None:
    line = protocol.instrument_command(value, delegate="gpu", threads=2, warmup=3, runs=4, out=value)
    argv = shlex.split(line)
    assert argv == protocol.instrument_args(value, delegate="gpu", threads=2, warmup=3, runs=4, out=value)
    assert argv[:4] == ["am", "instrument", "-w", "-r"]
    assert argv[argv.index("model") + 1] == value
    assert argv[-1] == protocol.RUNNER


def test_instrument_args_optional_extras() -> None:
    argv = protocol.instrument_args("m", delegate="cpu", threads=1, warmup=0, runs=1, out="o")
    assert "cooldown_c" not in argv and "sustained_s" not in argv
    argv = protocol.instrument_args(
        "m", delegate="cpu", threads=1, warmup=0, runs=1, out="o", cooldown_c=40, sustained_s=5, target_fps=30
    )
    pairs = dict(zip(argv[5::3], argv[6::3], strict=False))
    assert pairs["cooldown_c"] == "40" and pairs["sustained_s"] == "5" and pairs["target_fps"] == "30"
    with pytest.raises(ValueError):
        protocol.instrument_args("m", delegate="tpu", threads=1, warmup=0, runs=1, out="o")


def test_remote_paths_are_content_addressed_and_checked() -> None:
    sha = "ab" * 32
    assert protocol.remote_model_path(sha) == f"/data/local/tmp/blitzmask/models/{sha}.tflite"
    assert protocol.remote_result_path("0f" * 16).endswith("/results/" + "0f" * 16 + ".json")
    for bad in ("", "../x", "AB" * 32, "a b", "$(id)"):
        with pytest.raises(ValueError):
            protocol.remote_model_path(bad)


def test_parse_instrument_output_ok() -> None:
    res = _result()
    text = (
        f"INSTRUMENTATION_STATUS: blitzmask_result={json.dumps(res)}\r\n"
        "INSTRUMENTATION_STATUS_CODE: 0\r\nINSTRUMENTATION_RESULT: status=ok\r\nINSTRUMENTATION_CODE: -1\r\n"
    )
    parsed, status = protocol.parse_instrument_output(text)
    assert parsed == res and status == "ok"


@pytest.mark.parametrize(
    "text",
    [
        "INSTRUMENTATION_FAILED: com.blitzmask.bench/.BenchInstrumentation\nINSTRUMENTATION_CODE: -1",
        "INSTRUMENTATION_RESULT: shortMsg=Process crashed.\nINSTRUMENTATION_CODE: 0",
        "INSTRUMENTATION_STATUS: blitzmask_result={not json\nINSTRUMENTATION_CODE: -1",
        # what a real `am instrument` prints when the app is not installed
        "INSTRUMENTATION_STATUS: id=ActivityManagerService\n"
        "INSTRUMENTATION_STATUS: Error=Unable to find instrumentation info for: ComponentInfo{com.blitzmask.bench/"
        "com.blitzmask.bench.BenchInstrumentation}\nINSTRUMENTATION_STATUS_CODE: -1\n"
        "android.util.AndroidException: INSTRUMENTATION_FAILED: com.blitzmask.bench/.BenchInstrumentation",
    ],
)
def test_parse_instrument_output_failures(text: str) -> None:
    with pytest.raises(InstrumentationFailed):
        protocol.parse_instrument_output(text)


def test_parse_instrument_output_without_result_line() -> None:
    assert protocol.parse_instrument_output("INSTRUMENTATION_RESULT: status=error\n") == (None, "error")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.update(schema=2), "schema"),
        (lambda r: r.pop("runs_ms"), "runs_ms"),
        (lambda r: r.update(status="great"), "status"),
    ],
)
def test_parse_result_rejects_foreign_json(mutate, message: str) -> None:
    res = _result()
    mutate(res)
    with pytest.raises(InstrumentationFailed, match=message):
        protocol.parse_result(json.dumps(res))
    with pytest.raises(InstrumentationFailed):
        protocol.parse_result("[1, 2]")


# --- accuracy mode ---------------------------------------------------------------------------------------------
def _accuracy_result(**over: object) -> dict:
    res = protocol.base_accuracy_result("/m.tflite", inputs="/in", outputs="/out", delegate="xnnpack", threads=2)
    specs = [{"index": 0, "name": "heat", "dtype": "float32", "shape": [1, 2]}, {"index": 1, "name": "box",
             "dtype": "int8", "shape": [3]}]  # fmt: skip
    res.update(status="ok", samples=2, samples_ms=[1.0, 2.0], output_tensors=specs, **over)
    return res


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.mark.parametrize("value", HOSTILE)
def test_accuracy_command_round_trips_hostile_folders(value: str) -> None:
    line = protocol.instrument_command("m", delegate="gpu", threads=2, out="o", mode="accuracy", inputs=value,
                                       outputs=value + "/out")  # fmt: skip
    argv = shlex.split(line)
    pairs = dict(zip(argv[5::3], argv[6::3], strict=False))
    assert pairs == {"model": "m", "delegate": "gpu", "threads": "2", "mode": "accuracy", "inputs": value,
                     "outputs": value + "/out", "out": "o"}  # fmt: skip
    assert argv[-1] == protocol.RUNNER and "warmup" not in argv and "runs" not in argv


def test_accuracy_command_needs_both_packs_and_a_known_mode() -> None:
    with pytest.raises(ValueError, match="inputs and an outputs"):
        protocol.instrument_args("m", delegate="cpu", threads=1, out="o", mode="accuracy", inputs="/in")
    with pytest.raises(ValueError, match="mode"):
        protocol.instrument_args("m", delegate="cpu", threads=1, out="o", mode="fast")
    timing = protocol.instrument_args("m", delegate="cpu", threads=1, out="o", inputs="/in", outputs="/out")
    assert "mode" not in timing and "inputs" not in timing  # timing mode, the default, ignores them


def test_input_and_output_packs_are_content_addressed() -> None:
    assert protocol.remote_inputs_path("ab" * 32) == "/data/local/tmp/blitzmask/inputs/" + "ab" * 32 + ".pack"
    assert protocol.remote_outputs_path("0f" * 16) == "/data/local/tmp/blitzmask/outputs/" + "0f" * 16 + ".pack"
    for bad in ("", "../x", "a b"):
        with pytest.raises(ValueError):
            protocol.remote_inputs_path(bad)
        with pytest.raises(ValueError):
            protocol.remote_outputs_path(bad)


TENSORS = [
    ("img.7", np.asfortranarray(np.arange(24, dtype=">i4").reshape(2, 3, 4))),  # stored little-endian, C order
    ("a", np.array(1.5, np.float16)),
    *((f"t_{dtype}", np.arange(6).reshape(2, 3).astype(dtype)) for dtype in protocol.TENSOR_DTYPES),
]


def test_packs_round_trip_and_are_the_documented_bytes(tmp_path: Path) -> None:
    sha256 = protocol.write_pack(tmp_path / "t.pack", len(TENSORS), iter(TENSORS))
    data = (tmp_path / "t.pack").read_bytes()
    assert sha256 == hashlib.sha256(data).hexdigest() and protocol.pack_count(tmp_path / "t.pack") == len(TENSORS)
    back = list(protocol.read_pack(tmp_path / "t.pack"))
    assert [name for name, _ in back] == [name for name, _ in TENSORS]  # the writer's order
    for (_, got), (_, want) in zip(back, TENSORS, strict=True):
        assert got.dtype.name == want.dtype.name and got.dtype.byteorder in "=|" and got.shape == want.shape
        assert np.array_equal(got, want)
    # magic, version 1, count (uint32 LE); then per record: name length (uint16 LE), name, the bytes of numpy.save
    assert data[:12] == b"\x93BMPACK\x01" + len(TENSORS).to_bytes(4, "little")
    offset = 12
    for name, array in TENSORS:
        assert data[offset : offset + 2 + len(name)] == len(name).to_bytes(2, "little") + name.encode()
        record = _npy(np.asarray(array, dtype=array.dtype.newbyteorder("<"), order="C"))
        offset += 2 + len(name)
        assert data[offset : offset + len(record)] == record and data[offset + 6 : offset + 8] == b"\x01\x00"
        offset += len(record)
    assert offset == len(data)


@pytest.mark.parametrize(
    ("tensors", "count", "message"),
    [
        ([("a b", np.zeros(1, np.int8))], 1, "tensor name 'a b'"),
        ([("$(x)", np.zeros(1, np.int8))], 1, "tensor name"),
        ([(".hidden", np.zeros(1, np.int8))], 1, "tensor name"),
        ([("x" * 201, np.zeros(1, np.int8))], 1, "tensor name"),
        ([("x", np.zeros(1, np.int8)), ("x", np.zeros(1, np.int8))], 2, "two tensors named x"),
        ([("f", np.zeros(3))], 1, "f: dtype float64"),
        ([("a", np.zeros(1, np.int8))], 2, "1 tensors written, the pack was opened for 2"),
        ([("a", np.zeros(1, np.int8)), ("b", np.zeros(1, np.int8))], 1, "more than the 1 tensors"),
    ],
)
def test_write_pack_refuses_what_the_device_cannot_take(
    tmp_path: Path, tensors: list, count: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("$", r"\$").replace("(", r"\(").replace(")", r"\)")):
        protocol.write_pack(tmp_path / "t.pack", count, iter(tensors))


def _pack_bytes(tmp_path: Path, tensors: list) -> bytes:
    protocol.write_pack(tmp_path / "ok.pack", len(tensors), iter(tensors))
    return (tmp_path / "ok.pack").read_bytes()


def test_read_pack_refuses_anything_but_a_complete_pack(tmp_path: Path) -> None:
    good = _pack_bytes(tmp_path, [("a", np.arange(4, dtype=np.float32)), ("b", np.arange(3, dtype=np.int8))])
    pickled = io.BytesIO()
    np.save(pickled, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    f64 = _npy(np.zeros(2))
    cases = {
        b"garbage": "not a tensor pack",
        good[:7] + b"\x02" + good[8:]: "tensor pack version 2",
        good[:-1]: "record 1 (b): truncated",
        good + b"\x00": "bytes after its 2 records",
        good[:8] + (3).to_bytes(4, "little") + good[12:]: "record 2: truncated",
        good[:12] + b"\x01\x00a" + pickled.getvalue(): "record 0 (a): dtype '|O' is not one of",
        good[:12] + b"\x01\x00a" + f64: "record 0 (a): dtype '<f8' is not one of",
        good[:12] + b"\x01\x00a" + b"not numpy at all": "record 0 (a): not a readable .npy tensor",
        good[:12] + b"\x01\x00a" + _npy(np.asfortranarray(np.zeros((2, 2), np.int8))): "record 0 (a): Fortran order",
    }
    for i, (data, message) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.pack"
        path.write_bytes(data)
        with pytest.raises(ValueError, match=re.escape(f"bad{i}.pack: {message}")):
            list(protocol.read_pack(path))


def test_parse_accuracy_result() -> None:
    res = _accuracy_result()
    assert protocol.parse_result(json.dumps(res)) == res
    line = f"INSTRUMENTATION_STATUS: blitzmask_result={json.dumps(res)}\nINSTRUMENTATION_RESULT: status=ok\n"
    assert protocol.parse_instrument_output(line) == (res, "ok")
    for key in ("samples_ms", "output_tensors"):
        broken = dict(res)
        broken.pop(key)
        with pytest.raises(InstrumentationFailed, match=key):
            protocol.parse_result(json.dumps(broken))
    with pytest.raises(InstrumentationFailed, match="mode"):
        protocol.parse_result(json.dumps({**res, "mode": "profile"}))


def test_collect_outputs_groups_by_input_in_output_order() -> None:
    res = _accuracy_result()
    heat, box = np.ones((1, 2), np.float32), np.arange(3, dtype=np.int8)
    records = [(f"{stem}.{i}", a) for stem in ("img.2", "img.1") for i, a in ((1, box), (0, heat))]
    outputs = protocol.collect_outputs(res, records)
    assert list(outputs) == ["img.2", "img.1"]  # the pack's order
    assert [a.dtype.name for a in outputs["img.1"]] == ["float32", "int8"] and np.array_equal(outputs["img.2"][1], box)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([("a.0", "heat"), ("a.1", "box")], "outputs of 1 samples \\(2 run\\)"),
        ([("a.0", "heat"), ("b.0", "heat"), ("b.1", "box")], "incomplete: a"),
        ([("a.0", "box")], "does not match"),
        ([("a.7", "heat")], "does not match None"),
        ([("a", "heat")], "unexpected output tensor"),
        ([("a.x", "heat")], "unexpected output tensor"),
    ],
)
def test_collect_outputs_refuses_what_the_result_does_not_say(records: list, message: str) -> None:
    arrays = {"heat": np.ones((1, 2), np.float32), "box": np.zeros(3, np.int8)}
    with pytest.raises(InstrumentationFailed, match=message):
        protocol.collect_outputs(_accuracy_result(), [(name, arrays[kind]) for name, kind in records])


def test_collect_outputs_of_a_broken_pack_is_one_failure(tmp_path: Path) -> None:
    (tmp_path / "out.pack").write_bytes(b"\x93BMPACK\x01\x05\x00\x00\x00")
    with pytest.raises(InstrumentationFailed, match=r"output pack: out\.pack: record 0: truncated"):
        protocol.collect_outputs(_accuracy_result(), protocol.read_pack(tmp_path / "out.pack"))
