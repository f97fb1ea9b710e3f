"""`blitzmask validate EXPORT_DIR --data DIR`: AP, AP drop, host latency and per-head parity of every exported file
against the checkpoint it came from, checked against `models/<variant>/numerics.yaml`; writes validation.json (a
partial run, `max_images`, never replaces a validation of more images)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from blitzmask_deploy.core.artifacts import VALIDATION_NAME, ExportedFile, Manifest, load_manifest, sha256_file
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.core.folders import check_writable
from blitzmask_deploy.core.jsonio import read_json, write_json_atomic

if TYPE_CHECKING:
    from blitzmask_deploy.data.coco import CocoDataset
    from blitzmask_deploy.modeling.blitzmask import BlitzMask

_EPS = 1e-9


@dataclass
class FileValidation:
    """One exported file's figures, its budget and which checks it failed."""

    file: ExportedFile
    mask_ap: float
    mask_ap_drop: float
    latency_ms_p50: float
    parity: dict[str, float]
    parity_mean: dict[str, float]
    budget: dict[str, float | None]
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every budget held."""
        return not self.failures

    def to_json(self) -> dict:
        """The contract's per-variant row."""
        return {
            "name": self.file.name,
            "format": self.file.format,
            "precision": self.file.precision,
            "file": self.file.file,
            "sha256": self.file.sha256,
            "mask_ap": self.mask_ap,
            "mask_ap_drop": self.mask_ap_drop,
            "latency_ms_p50": round(self.latency_ms_p50, 3),
            "parity": self.parity,
            "parity_mean": self.parity_mean,
            "budget": self.budget,
            "failures": self.failures,
            "passed": self.passed,
        }


@dataclass
class ExportValidation:
    """The checkpoint's AP and every exported file's figures on one val split."""

    variant: str
    checkpoint_sha256: str
    dataset: str
    images: int
    reference_ap: float
    reference_latency_ms_p50: float
    files: list[FileValidation]
    partial: bool = False  # fewer images than the val split holds
    kept: int | None = None  # images of the validation.json kept instead of this result (None: this one was saved)

    @property
    def passed(self) -> bool:
        """True when every file met its budgets."""
        return all(f.passed for f in self.files)

    def to_json(self) -> dict:
        """`{"variant", "checkpoint_sha256", "dataset", "reference", "variants": [...], "passed"}`."""
        return {
            "variant": self.variant,
            "checkpoint_sha256": self.checkpoint_sha256,
            "dataset": self.dataset,
            "images": self.images,
            "partial": self.partial,
            "reference": {
                "name": "checkpoint",
                "mask_ap": self.reference_ap,
                "latency_ms_p50": round(self.reference_latency_ms_p50, 3),
            },
            "variants": [f.to_json() for f in self.files],
            "passed": self.passed,
        }

    def to_table(self) -> str:
        """A fixed-width table: AP (0–100), drop in AP points, p50 ms, worst head parity, PASS/FAIL and why."""
        head = f"{'name':<13} {'mask AP':>8} {'drop':>7} {'budget':>7} {'p50 ms':>8} {'max |Δ|':>9}  result"
        lines = [
            f"{self.variant} on {self.dataset} ({self.images} val images{', partial' if self.partial else ''})",
            head,
            "-" * len(head),
            f"{'checkpoint':<13} {100 * self.reference_ap:>8.2f} {'':>7} {'':>7} "
            f"{self.reference_latency_ms_p50:>8.2f} {'':>9}  reference",
        ]
        for f in self.files:
            worst = max(f.parity.values(), default=0.0)
            budget = f.budget["ap_drop_max"]
            lines.append(
                f"{f.file.name:<13} {100 * f.mask_ap:>8.2f} {100 * f.mask_ap_drop:>7.2f} "
                f"{'-' if budget is None else f'{100 * budget:.2f}':>7} {f.latency_ms_p50:>8.2f} {worst:>9.2e}  "
                + ("PASS" if f.passed else "FAIL: " + "; ".join(f.failures))
            )
        lines.append("PASSED" if self.passed else "FAILED: a file exceeded its numerics budget (models/<variant>)")
        return "\n".join(lines)


def run_validate_export(
    export_dir: Path, data: Path, *, max_images: int = 0, threads: int = 2, progress: bool = True
) -> ExportValidation:
    """Validate every file of `export_dir` on `data`'s val split; writes `export_dir/validation.json`."""
    from blitzmask_deploy.core.cards import load_numerics
    from blitzmask_deploy.data.coco import CocoDataset
    from blitzmask_deploy.inference.dataset import evaluate_run, latency_p50, predict_dataset
    from blitzmask_deploy.inference.runtimes import TorchRuntime, open_runtimes
    from blitzmask_deploy.validate.parity import measure_parity, parity_inputs

    export_dir = Path(export_dir)
    manifest = load_manifest(export_dir)
    if not manifest.files:
        raise BadInput(f"{export_dir}: the manifest lists no exported files")
    check_writable(export_dir, "export directory")  # validation.json goes there: known before the work
    runtimes = open_runtimes(export_dir, manifest.files, threads=threads)  # sha256 + readability first
    model = load_source_checkpoint(manifest)
    numerics = load_numerics(manifest.variant)
    dataset = CocoDataset.from_split(Path(data), "val")
    check_categories(manifest, dataset, data)

    reference = TorchRuntime(model, manifest.input_size, threads=threads)
    ref_run = predict_dataset(reference, dataset, max_images=max_images, progress=progress, desc="validate torch")
    ref_ap = float(evaluate_run(ref_run, dataset)["mask_ap"])
    images = parity_inputs(dataset, manifest.input_size)
    results = []
    for entry, runtime in zip(manifest.files, runtimes, strict=True):
        run = predict_dataset(runtime, dataset, max_images=max_images, progress=progress, desc=f"validate {entry.name}")
        ap = float(evaluate_run(run, dataset)["mask_ap"])
        max_abs, mean_abs = measure_parity(reference, runtime, images)
        result = FileValidation(
            file=entry,
            mask_ap=ap,
            mask_ap_drop=ref_ap - ap,
            latency_ms_p50=latency_p50(run),
            parity=max_abs,
            parity_mean=mean_abs,
            budget=_budget(numerics, entry.name),
        )
        result.failures = _failures(result)
        results.append(result)
    validation = ExportValidation(
        variant=manifest.variant,
        checkpoint_sha256=manifest.checkpoint.sha256,
        dataset=str(data),
        images=len(ref_run.image_ids),
        reference_ap=ref_ap,
        reference_latency_ms_p50=latency_p50(ref_run),
        files=results,
        partial=len(ref_run.image_ids) < len(dataset),
    )
    validation.kept = save_validation(export_dir / VALIDATION_NAME, validation)
    return validation


def save_validation(path: Path, validation: ExportValidation) -> int | None:
    """Write `validation` to `path` unless it is partial and `path` holds one of all images or of more images than
    it; returns the image count of the kept file then, else None."""
    kept = _covers_more(path, validation.images) if validation.partial else None
    if kept is None:
        write_json_atomic(path, validation.to_json())
    return kept


def _covers_more(path: Path, images: int) -> int | None:
    """The image count of the validation at `path` when it is a full one or one of more than `images` images."""
    if not path.is_file():
        return None
    try:
        existing = read_json(path)
    except BadInput:  # unreadable: replaced
        return None
    count = existing.get("images") if isinstance(existing, dict) else None
    if isinstance(count, int) and (existing.get("partial") is False or count > images):
        return count
    return None


def check_categories(manifest: Manifest, dataset: CocoDataset, data: Path) -> None:
    """BadInput unless the dataset's categories are the export's, in the same order."""
    if [c["id"] for c in manifest.categories] != list(dataset.cat_index_to_id):
        raise BadInput(f"{data}: categories differ from the export's ({len(manifest.categories)} in the manifest)")


def load_source_checkpoint(manifest: Manifest) -> BlitzMask:
    """The model of the checkpoint the export came from, checked to be the same bytes and the same variant."""
    from blitzmask_deploy.core.checkpoints import read_checkpoint
    from blitzmask_deploy.modeling.registry import model_from_checkpoint

    path = Path(manifest.checkpoint.path)
    if not path.is_file():
        raise BadInput(f"the export's source checkpoint is missing: {path}")
    if sha256_file(path) != manifest.checkpoint.sha256:
        raise BadInput(f"{path}: sha256 differs from the manifest's checkpoint (retrained since the export?)")
    model = model_from_checkpoint(read_checkpoint(path))
    if model.config.variant != manifest.variant:
        raise BadInput(f"{path}: checkpoint is {model.config.variant}, the export is {manifest.variant}")
    return model


def _budget(numerics, name: str) -> dict[str, float | None]:
    def optional(lookup) -> float | None:
        try:
            return lookup(name)
        except BadInput:
            return None

    return {
        "ap_drop_max": optional(numerics.max_drop_fraction),
        "parity_max_abs": optional(numerics.max_parity),
        "latency_p50_ms_max": numerics.latency_p50_ms_max,
    }


def _failures(result: FileValidation) -> list[str]:
    budget, failures = result.budget, []
    if budget["ap_drop_max"] is not None and result.mask_ap_drop > budget["ap_drop_max"] + _EPS:
        failures.append(f"AP drop {100 * result.mask_ap_drop:.2f} > {100 * budget['ap_drop_max']:.2f} points")
    if budget["parity_max_abs"] is not None:
        over = [h for h, v in result.parity.items() if v > budget["parity_max_abs"]]
        if over:
            failures.append(f"parity {', '.join(over)} > {budget['parity_max_abs']:g}")
    if budget["latency_p50_ms_max"] is not None and result.latency_ms_p50 > budget["latency_p50_ms_max"]:
        failures.append(f"p50 {result.latency_ms_p50:.1f} ms > {budget['latency_p50_ms_max']:g} ms")
    return failures
