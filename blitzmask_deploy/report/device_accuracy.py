"""The report's table of accuracy measured on devices: per file, device and delegate, the device AP beside the host AP
of the same file on the same val images (`blitzmask validate EXPORT --device`)."""

from __future__ import annotations

from blitzmask_deploy.report.results import Results

HEADER = ["file", "device", "delegate", "applied", "device AP", "host AP", "drop vs host", "drop vs ckpt", "status"]


def device_accuracy_rows(results: Results) -> list[list[str]]:
    """One row of display strings per accuracy cell, AP in points (0–100)."""

    def points(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.2f}"

    rows = []
    for cell in results.accuracy:
        done = cell["status"] == "done"
        rows.append([
            str(cell["model_name"]),
            str(cell["device_model"] or cell["device_serial"]),
            str(cell["delegate"]),
            str(cell["delegate_applied"] or "–"),
            points(cell["mask_ap"] if done else None),
            points(cell["host_ap"] if done else None),
            points(cell["host_ap"] - cell["mask_ap"] if done else None),
            points(cell["reference_ap"] - cell["mask_ap"] if done else None),
            cell["status"] + (f": {cell['error']}" if cell["error"] else ""),
        ])  # fmt: skip
    return rows
