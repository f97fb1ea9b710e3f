"""Folders replaced whole: the old folder or the new one, never a mix; outputs that must not be clobbered."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.folders import check_output_folder, replace_folder, sibling, signals_held


def _folder(path: Path, **files: str) -> Path:
    path.mkdir()
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def test_replace_swaps_and_removes_the_old_folder(tmp_path: Path) -> None:
    out = _folder(tmp_path / "out", a="old", stale="x")
    new = _folder(sibling(out, "new"), a="new")
    replace_folder(out, new)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (out / "a").read_text() == "new" and not (out / "stale").exists()


def test_a_failed_rename_puts_the_old_folder_back(tmp_path: Path) -> None:
    out = _folder(tmp_path / "out", a="old")
    with pytest.raises(OSError):
        replace_folder(out, tmp_path / "missing")
    assert (out / "a").read_text() == "old"


def test_a_signal_waits_until_the_block_ends() -> None:
    seen: list[str] = []
    previous = signal.signal(signal.SIGTERM, lambda *_: seen.append("handled"))
    try:
        with signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            seen.append("block done")
        assert seen == ["block done", "handled"]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_output_checks(tmp_path: Path) -> None:
    check_output_folder(tmp_path / "new", overwrite=False)
    check_output_folder(_folder(tmp_path / "empty"), overwrite=False)
    full = _folder(tmp_path / "full", a="1")
    with pytest.raises(BadInput, match="not empty"):
        check_output_folder(full, overwrite=False)
    check_output_folder(full, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInput, match="not a folder"):
        check_output_folder(tmp_path / "file", overwrite=True)
