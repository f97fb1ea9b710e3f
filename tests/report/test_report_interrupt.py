"""`blitzmask report` interrupted at any point: OUT holds a report.html only while every file beside it is of the same
report (the old one or the new one, whole), and running it again gives what an uninterrupted run gives."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import time
from functools import partial
from pathlib import Path

import pytest

from blitzmask_deploy.report import html
from blitzmask_deploy.report.html import write_report
from blitzmask_deploy.report.sources import load_results
from tests.conftest import cli_command
from tests.support.report_fixtures import make_run

_GENERATED = re.compile(rb"generated \d{4}-\d\d-\d\d \d\d:\d\d UTC")


def _report(folder: Path) -> dict[str, bytes]:
    """Every entry of a report folder (hidden ones included), report.html without its generation time."""
    return {p.name: _GENERATED.sub(b"generated <time>", p.read_bytes()) if p.is_file() else b"<dir>"
            for p in sorted(folder.iterdir())}  # fmt: skip


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run")


@pytest.fixture
def reference(run: Path, tmp_path: Path) -> dict[str, bytes]:
    """What an uninterrupted report of `run` holds."""
    write_report(load_results(run), tmp_path / "reference")
    return _report(tmp_path / "reference")


@pytest.fixture
def old_report(tmp_path: Path) -> Path:
    """A report of other results (no thermal figure, other figures and tables) where the new one goes."""
    out = tmp_path / "report"
    write_report(load_results(make_run(tmp_path / "other", int8_ap=0.25, gmacs=None)), out)
    return out


def _consistent(out: Path, reference: dict[str, bytes], old: dict[str, bytes]) -> bool:
    """OUT holds no report.html (nothing that looks like a report), or exactly the old report or the new one."""
    now = {name: data for name, data in _report(out).items() if not name.startswith(".")} if out.exists() else {}
    return "report.html" not in now or now in (reference, old)


def test_reference_reports_are_reproducible(run: Path, tmp_path: Path, reference: dict[str, bytes]) -> None:
    write_report(load_results(run), tmp_path / "again")
    assert _report(tmp_path / "again") == reference
    assert {"report.html", "summary.md", "latency.png"} <= set(reference)


def test_a_failure_at_any_step_of_the_swap_leaves_no_mixed_report(
    run: Path, old_report: Path, reference: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _report(old_report)
    moves = len([name for name in reference if name != "report.html"]) + 1
    replace = os.replace
    for k in range(moves):
        calls = []

        def failing(src: object, dst: object, k: int = k, calls: list = calls) -> None:
            calls.append(dst)
            if len(calls) == k + 1:
                raise OSError(errno.ENOSPC, "No space left on device")
            replace(src, dst)

        monkeypatch.setattr(html.os, "replace", failing)
        with pytest.raises(Exception, match="No space left on device"):
            write_report(load_results(run), old_report)
        monkeypatch.setattr(html.os, "replace", replace)
        assert not (old_report / "report.html").exists() and _consistent(old_report, reference, old), k
        assert not [p for p in old_report.iterdir() if p.name.startswith(".")]  # no staging folder left
    write_report(load_results(run), old_report)
    assert _report(old_report) == reference


def test_an_interrupt_while_rendering_leaves_the_old_report_untouched(
    run: Path, old_report: Path, reference: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _report(old_report)

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(html.plots, "plot_thermal", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(load_results(run), old_report)
    assert _report(old_report) == old
    monkeypatch.undo()
    write_report(load_results(run), old_report)
    assert _report(old_report) == reference


def test_a_failed_first_report_leaves_no_folder(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(html.plots, "plot_latency", partial(_raise, KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        write_report(load_results(run), tmp_path / "new" / "report")
    assert not (tmp_path / "new" / "report").exists()


def _raise(error: type[BaseException], *args: object, **kwargs: object) -> None:
    raise error


def _old_report_at(out: Path, tag: str) -> dict[str, bytes]:
    """Write a report of other results to `out`; returns what it holds."""
    write_report(load_results(make_run(out.parent / f"other-{tag}", int8_ap=0.25, gmacs=None)), out)
    return _report(out)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_report_killed_at_any_moment_reruns_to_the_same_result(
    run: Path, tmp_path: Path, reference: dict[str, bytes], sig: signal.Signals
) -> None:
    out = tmp_path / "report"
    args = cli_command("report", run, "--out", out)
    # as from a terminal: a shell starting background jobs (e.g. CI) leaves SIGINT ignored, which children inherit
    reset_sigint = partial(signal.signal, signal.SIGINT, signal.SIG_DFL)
    start = time.monotonic()
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    wall = time.monotonic() - start
    outcomes = set()
    for fraction in (0.4, 0.6, 0.75, 0.85, 0.95):
        old = _old_report_at(out, str(fraction))
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=reset_sigint)
        time.sleep(fraction * wall)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        visible = {k: v for k, v in _report(out).items() if not k.startswith(".")}
        if proc.returncode == 0:  # done before the signal (one at interpreter exit may print its own note)
            assert visible == reference
        elif sig == signal.SIGINT and proc.returncode != -signal.SIGINT:  # not killed while Python was starting
            assert proc.returncode == 130 and b"Traceback" not in err, err.decode()[-2000:]
        assert _consistent(out, reference, old), fraction
        outcomes.add("new" if visible == reference else "old" if visible == old else "none")
        write_report(load_results(run), out)  # the rerun
        assert _report(out) == reference  # a staging folder a SIGKILL left is gone too
    assert outcomes & {"old", "none"}, outcomes  # some signal arrived before the report was complete
