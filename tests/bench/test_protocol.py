"""The app ↔ driver protocol: command line, device paths, instrumentation output parsing."""

from __future__ import annotations

import json
import shlex

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
