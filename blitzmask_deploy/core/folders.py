"""Folders replaced whole: an output is built in a hidden sibling and swapped in, so an interrupt leaves the old
folder or the new one, never a mix of both."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from blitzmask_deploy.core.errors import BadInput


def sibling(out: Path, tag: str) -> Path:
    """A fresh hidden path beside `out`: `.NAME.TAG-RANDOM`."""
    return out.with_name(f".{out.name}.{tag}-{secrets.token_hex(4)}")


def replace_folder(out: Path, new: Path) -> None:
    """Put the folder `new` at `out`: an existing `out` is renamed aside, `new` renamed into place, the old one
    deleted. SIGINT and SIGTERM wait until this is done, so `out` is always the old folder or the new one."""
    aside = sibling(out, "old") if out.exists() else None
    with signals_held():
        if aside is not None:
            os.rename(out, aside)
        try:
            os.rename(new, out)
        except OSError:
            if aside is not None:
                os.rename(aside, out)
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Defer SIGINT and SIGTERM while the block runs: one that arrives is handled as usual when the block ends.
    (Python runs signal handlers in the main thread only; elsewhere the block runs as it is.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, FrameType | None]] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda num, frame: caught.append((num, frame))) for s in held}
    try:
        yield
    finally:
        for num, handler in previous.items():
            signal.signal(num, handler)
        for num, frame in caught[:1]:
            if callable(previous[num]):
                previous[num](num, frame)
            elif previous[num] == signal.SIG_DFL:
                signal.raise_signal(num)


def check_writable(folder: Path, what: str, *, beside: bool = False) -> None:
    """BadInput naming `folder` (the `what` option or argument) unless files can be created in it (`beside`: next to
    it, where a folder replaced whole is built) or, when that does not exist yet, in its nearest existing ancestor,
    which must be a folder. Checked by creating and deleting an empty file, so that a command finds an unwritable
    output before its work, not after it."""
    folder = Path(folder).absolute()
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"{what} {folder} exists and is not a folder")
    base = folder.parent if beside else folder
    while not base.exists() and base.parent != base:
        base = base.parent
    if not base.is_dir():
        raise BadInput(f"{what} {folder}: {base} is not a folder")
    try:
        handle, probe = tempfile.mkstemp(dir=base, prefix=".blitzmask-write-check-")
    except OSError as err:
        raise BadInput(f"{what} {folder}: cannot write into {base} ({err.strerror or err})") from None
    os.close(handle)
    os.unlink(probe)


def check_output_folder(out: Path, overwrite: bool) -> None:
    """BadInput unless `out` can receive a new folder: it must not be a file, and a non-empty folder is replaced
    only with `overwrite` (the `--overwrite` option)."""
    if out.exists() and not out.is_dir():
        raise BadInput(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise BadInput(f"output {out} exists and is not empty (--overwrite replaces it)")
