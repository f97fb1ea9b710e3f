"""`blitzmask validate`: mask AP of a checkpoint, of every file in an export directory, or of every .tflite file
measured on devices (`--device`)."""

from __future__ import annotations

from pathlib import Path

import typer

from blitzmask_deploy.cli.common import (
    emit_verdict,
    existing_path,
    finite,
    info,
    open_cli_devices,
    open_store,
    split_csv,
)
from blitzmask_deploy.core.errors import BadInput


def register(app: typer.Typer) -> None:
    """Add `validate` to `app`."""
    app.command("validate")(validate_cmd)


def validate_cmd(
    model: Path = typer.Argument(..., help="A checkpoint (.pt) or an export directory with manifest.json."),
    data: Path = typer.Option(..., "--data", help="COCO dataset directory (uses its val split)."),
    max_images: int = typer.Option(
        0, "--images", "--max-images", min=0, help="Evaluate at most this many val images (0 = all)."
    ),
    device: str | None = typer.Option(
        None, "--device", help="Measure on devices: 'all', 'local' or serials, comma-separated (needs --store)."
    ),
    delegate: str = typer.Option(
        "xnnpack", "--delegate", help="With --device: comma list of cpu,xnnpack,gpu,nnapi,qnn."
    ),
    threads: int = typer.Option(4, "--threads", min=1, max=1024, help="With --device: CPU threads on the device."),
    adb: list[str] = typer.Option([], "--adb", help="adb server HOST:PORT (repeatable; default 127.0.0.1:5037)."),
    apk: Path | None = typer.Option(None, "--apk", help="Benchmark APK to install when missing or outdated."),
    store: Path | None = typer.Option(
        None, "--store", help="With --device: SQLite result store (the one `bench` uses; reruns resume)."
    ),
    timeout: float = typer.Option(
        600.0, "--timeout", min=1, callback=finite, help="Seconds allowed for one am instrument call."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Mask AP (and drop, parity, host latency for exports) on the dataset's val split; with --device, the AP of
    every .tflite file on each device and delegate beside its host AP."""
    existing_path(model, "model")
    existing_path(data, "dataset")
    from blitzmask_deploy.bench.discovery import check_servers
    from blitzmask_deploy.bench.protocol import DELEGATES

    delegates = split_csv(delegate, set(DELEGATES), "delegate")
    check_servers(adb)
    if device is not None:
        _validate_on_devices(model, data, device, delegates, threads, adb, apk, store, timeout, max_images, as_json)
        return
    if model.is_dir():
        from blitzmask_deploy.core.artifacts import VALIDATION_NAME
        from blitzmask_deploy.validate.export_dir import run_validate_export

        result = run_validate_export(model, data, max_images=max_images)
        if result.kept is not None:
            info(
                f"{model / VALIDATION_NAME} holds a validation of {result.kept} images: this partial one "
                f"({result.images} images) was not saved"
            )
    else:
        from blitzmask_deploy.validate.checkpoint import validate_checkpoint

        result = validate_checkpoint(model, data, max_images=max_images)
    emit_verdict(result, as_json)


def _validate_on_devices(
    model: Path,
    data: Path,
    device: str,
    delegates: list[str],
    threads: int,
    adb: list[str],
    apk: Path | None,
    store: Path | None,
    timeout: float,
    max_images: int,
    as_json: bool,
) -> None:
    from blitzmask_deploy.validate.device import run_validate_device

    if store is None:
        raise BadInput("--device needs --store RESULTS (the SQLite store that keeps the accuracy cells)")
    if not model.is_dir():
        raise BadInput(f"--device needs an export directory, got {model}")
    if apk is not None and not apk.is_file():
        raise BadInput(f"APK not found: {apk}")
    devices = open_cli_devices(device, adb, timeout)
    results = open_store(store)
    try:
        outcome = run_validate_device(
            model, data, devices, results, delegates=delegates, threads=threads, max_images=max_images, apk=apk,
            progress=not as_json,
        )  # fmt: skip
    except KeyboardInterrupt:
        info(f"interrupted: cells still pending in {store}: rerun to finish")
        raise typer.Exit(130) from None
    for serial, reason in outcome.gone.items():
        pending = sum(r["device_serial"] == serial and r["status"] == "pending" for r in outcome.rows)
        why = " ".join(reason.split())
        info(f"device {serial} is offline or gone ({why}): {pending} cells pending: rerun to finish")
    if outcome.claimed_elsewhere:
        info(
            f"{outcome.claimed_elsewhere} cells are being measured by another validate process on this store: "
            "rerun when it ends"
        )
    emit_verdict(outcome, as_json)
