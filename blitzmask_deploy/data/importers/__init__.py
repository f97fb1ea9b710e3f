"""Import labelme, Pascal VOC and YOLO segmentation data into the project's COCO layout (`blitzmask data import`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.data.importers.labelme import read_labelme
from blitzmask_deploy.data.importers.source import Source
from blitzmask_deploy.data.importers.voc import read_voc
from blitzmask_deploy.data.importers.writer import check_output, write_dataset
from blitzmask_deploy.data.importers.yolo import read_yolo

READERS: dict[str, Callable[[Path], Source]] = {"labelme": read_labelme, "voc": read_voc, "yolo": read_yolo}


def import_dataset(
    fmt: str,
    src: Path,
    out: Path,
    *,
    val_fraction: float = 0.2,
    overwrite: bool = False,
    progress: bool | None = None,
) -> dict:
    """Convert the `fmt` ("labelme", "voc" or "yolo") dataset at SRC into OUT; return a summary (see writer).

    `progress`: a bar on stderr (None: only when stderr is a terminal)."""
    if fmt not in READERS:
        raise BadInput(f"unknown format {fmt!r} (choose from {', '.join(READERS)})")
    if not 0 <= val_fraction <= 1:
        raise BadInput(f"--val-fraction must be between 0 and 1 (got {val_fraction})")
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise BadInput(f"source folder not found: {src}")
    check_output(src, out, overwrite)
    try:
        source = READERS[fmt](src)
        summary = write_dataset(source, out, val_fraction=val_fraction, progress=progress, desc=f"import {fmt}")
    except OSError as err:  # an unreadable file, a full disk, no permission: one line, not a traceback
        raise BadInput(f"{err.filename or out}: {err.strerror or err}") from None
    return {"format": fmt, "source": str(src), **summary}
