"""`blitzmask validate CKPT --data DIR`: mask AP of a PyTorch checkpoint (EMA weights) on the val split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from blitzmask_deploy.core.errors import BadInput

METRIC_KEYS = ("mask_ap", "mask_ap50", "mask_ap75", "mask_ap_small", "mask_ap_medium", "mask_ap_large", "box_ap")


@dataclass
class CheckpointValidation:
    """AP of one checkpoint; a checkpoint has no budget to miss, so `passed` is True once it evaluated."""

    model: str
    checkpoint: Path
    sha256: str
    images: int
    metrics: dict
    latency_ms_p50: float
    passed: bool = True

    def to_json(self) -> dict:
        """coco_eval keys plus model, images, checkpoint, sha256 and host latency."""
        return {
            **self.metrics,
            "model": self.model,
            "images": self.images,
            "checkpoint": str(self.checkpoint),
            "sha256": self.sha256,
            "latency_ms_p50": round(self.latency_ms_p50, 3),
            "passed": self.passed,
        }

    def to_table(self) -> str:
        """A small human-readable table."""
        lines = [f"{self.model}  {self.checkpoint}  ({self.images} val images, torch p50 {self.latency_ms_p50:.1f} ms)"]
        for key in METRIC_KEYS:
            value = self.metrics.get(key)
            lines.append(f"  {key:<15} {'-' if value is None else f'{value:.4f}'}")
        return "\n".join(lines)


def validate_checkpoint(ckpt: Path, data: Path, *, max_images: int = 0) -> CheckpointValidation:
    """Evaluate checkpoint `ckpt` on `data`'s val split with the torch runtime and the shared decode."""
    from blitzmask_deploy.core.checkpoints import read_checkpoint
    from blitzmask_deploy.data.coco import CocoDataset
    from blitzmask_deploy.inference.dataset import evaluate_run, latency_p50, predict_dataset
    from blitzmask_deploy.inference.runtimes import TorchRuntime
    from blitzmask_deploy.modeling.registry import model_from_checkpoint

    checkpoint = read_checkpoint(Path(ckpt))
    model = model_from_checkpoint(checkpoint)
    dataset = CocoDataset.from_split(Path(data), "val")
    saved = [c["id"] for c in checkpoint.categories]
    if saved != list(dataset.cat_index_to_id):
        raise BadInput(
            f"{data}: categories differ from the checkpoint's ({len(saved)} saved, {dataset.num_classes} here)"
        )
    runtime = TorchRuntime(model, model.config.input_size)
    run = predict_dataset(runtime, dataset, max_images=max_images, desc="validate torch")
    return CheckpointValidation(
        model=model.config.variant,
        checkpoint=Path(ckpt),
        sha256=checkpoint.sha256,
        images=len(run.image_ids),
        metrics=evaluate_run(run, dataset),
        latency_ms_p50=latency_p50(run),
    )
