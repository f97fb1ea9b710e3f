"""The app ↔ driver protocol: command line, device paths, instrumentation output parsing, accuracy-mode tensor
files and input sets."""

from __future__ import annotations

import hashlib
import io
import json
import shlex
from pathlib import Path

import numpy as np
import pytest

from blitzmask_deploy.bench import protocol
from blitzmask_deploy.bench.errors import InstrumentationFailed
from blitzmask_deploy.core.errors import BadInput

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


def test_accuracy_command_needs_both_folders_and_a_known_mode() -> None:
    with pytest.raises(ValueError, match="inputs and an outputs"):
        protocol.instrument_args("m", delegate="cpu", threads=1, out="o", mode="accuracy", inputs="/in")
    with pytest.raises(ValueError, match="mode"):
        protocol.instrument_args("m", delegate="cpu", threads=1, out="o", mode="fast")
    timing = protocol.instrument_args("m", delegate="cpu", threads=1, out="o", inputs="/in", outputs="/out")
    assert "mode" not in timing and "inputs" not in timing  # timing mode, the default, ignores them


def test_input_and_output_folders_are_content_addressed() -> None:
    assert protocol.remote_inputs_path("ab" * 32) == "/data/local/tmp/blitzmask/inputs/" + "ab" * 32
    assert protocol.remote_outputs_path("0f" * 16) == "/data/local/tmp/blitzmask/outputs/" + "0f" * 16
    for bad in ("", "../x", "a b"):
        with pytest.raises(ValueError):
            protocol.remote_inputs_path(bad)
        with pytest.raises(ValueError):
            protocol.remote_outputs_path(bad)


def test_input_set_digest_is_the_sorted_sha256sum_listing(tmp_path: Path) -> None:
    files = []
    for name, payload in (("b.npy", b"bee"), ("a.1.npy", b"ay")):
        files.append(tmp_path / name)
        files[-1].write_bytes(payload)
    digest, shas = protocol.input_set(files)
    assert shas == {"b.npy": hashlib.sha256(b"bee").hexdigest(), "a.1.npy": hashlib.sha256(b"ay").hexdigest()}
    listing = f"{shas['a.1.npy']}  a.1.npy\n{shas['b.npy']}  b.npy\n"
    assert digest == hashlib.sha256(listing.encode()).hexdigest() == protocol.input_set_digest(shas)
    assert protocol.input_set(files[::-1])[0] == digest  # the order of the list does not matter
    files[0].write_bytes(b"changed")
    assert protocol.input_set(files)[0] != digest


@pytest.mark.parametrize("name", ["a b.npy", "x;id.npy", "$(x).npy", "a\nb.npy", ".hidden.npy", "m.tflite", "-e.npy"])
def test_input_set_refuses_names_the_device_cannot_take(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"x")
    with pytest.raises(BadInput, match="name"):
        protocol.input_set([path])


def test_input_set_refuses_twice_the_same_name_and_an_empty_set(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    for folder in (tmp_path, tmp_path / "one"):
        (folder / "x.npy").write_bytes(b"x")
    with pytest.raises(BadInput, match=r"two input tensor files named x\.npy"):
        protocol.input_set([tmp_path / "x.npy", tmp_path / "one" / "x.npy"])
    with pytest.raises(BadInput, match="no input"):
        protocol.input_set([])


@pytest.mark.parametrize("dtype", protocol.TENSOR_DTYPES)
def test_tensor_files_round_trip_in_c_order(tmp_path: Path, dtype: str) -> None:
    array = np.asfortranarray(np.arange(24).reshape(2, 3, 4).astype(dtype))
    protocol.save_tensor(tmp_path / "t.npy", array)
    data = (tmp_path / "t.npy").read_bytes()
    assert data[6:8] == b"\x01\x00" and b"'fortran_order': False" in data  # version 1.0, C order
    back = protocol.load_tensor(tmp_path / "t.npy")
    assert back.dtype == np.dtype(dtype) and back.dtype.byteorder in "<=|" and np.array_equal(back, array)
    assert np.array_equal(protocol.load_tensor(data, "t.npy"), array)


def test_tensor_files_refuse_other_dtypes_and_pickles(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="float64"):
        protocol.save_tensor(tmp_path / "f.npy", np.zeros(3))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"obj\.npy: not a readable \.npy tensor"):
        protocol.load_tensor(tmp_path / "obj.npy")
    with pytest.raises(ValueError, match=r"x\.npy: dtype float64"):
        protocol.load_tensor(_npy(np.zeros(2)), "x.npy")
    with pytest.raises(ValueError, match=r"y\.npy: not a readable"):
        protocol.load_tensor(b"garbage", "y.npy")


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


def test_collect_outputs_groups_by_stem_in_output_order() -> None:
    res = _accuracy_result()
    heat, box = np.ones((1, 2), np.float32), np.arange(3, dtype=np.int8)
    files = [(f"{stem}.{i}.npy", _npy(a)) for stem in ("img.2", "img.1") for i, a in ((1, box), (0, heat))]
    outputs = protocol.collect_outputs(res, files)
    assert list(outputs) == ["img.1", "img.2"]
    assert [a.dtype.name for a in outputs["img.1"]] == ["float32", "int8"] and np.array_equal(outputs["img.2"][1], box)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([("a.0.npy", "heat"), ("a.1.npy", "box")], "outputs of 1 samples \\(2 run\\)"),
        ([("a.0.npy", "heat"), ("b.0.npy", "heat"), ("b.1.npy", "box")], "incomplete: a"),
        ([("a.0.npy", "box")], "does not match"),
        ([("a.7.npy", "heat")], "does not match None"),
        ([("a.npy", "heat")], "unexpected output file"),
        ([("a.0.txt", "heat")], "unexpected output file"),
    ],
)
def test_collect_outputs_refuses_what_the_result_does_not_say(files: list, message: str) -> None:
    arrays = {"heat": np.ones((1, 2), np.float32), "box": np.zeros(3, np.int8)}
    with pytest.raises(InstrumentationFailed, match=message):
        protocol.collect_outputs(_accuracy_result(), [(name, _npy(arrays[kind])) for name, kind in files])
