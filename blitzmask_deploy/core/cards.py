"""Typed model cards from `models/<variant>/`: model.yaml (architecture), perf.yaml (paper + measured figures),
numerics.yaml (accuracy/parity budgets). Unknown keys and bad values raise BadInput with one line.

The cards are the single definition of the variants: the model registry builds each variant from its model.yaml.
They live in the repository's top-level `models/` folder and are copied into the package (`blitzmask_deploy/models`)
when a wheel is built, so an installed package finds them without a checkout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from blitzmask_deploy.core.artifacts import EXPORT_FORMATS
from blitzmask_deploy.core.errors import BadInput

_PACKAGED_MODELS = Path(__file__).resolve().parent.parent / "models"  # in an installed wheel
MODELS_DIR = _PACKAGED_MODELS if _PACKAGED_MODELS.is_dir() else Path(__file__).resolve().parents[2] / "models"

Precision = Literal["fp32", "fp16", "int8"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelCard(_Strict):
    """`model.yaml`: the architecture and default input of a variant (mirrors `ModelConfig`; no value is converted
    from another type)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    variant: str
    description: str = ""
    backbone: str
    width_mult: float
    depth_mult: float
    input_size: int
    num_classes: int
    num_coefficients: int
    use_box: bool
    output_stride: int
    neck_channels: int
    head_channels: int
    head_convs: int

    def architecture(self) -> dict[str, Any]:
        """The card as `ModelConfig` keyword arguments (everything except the description)."""
        return self.model_dump(exclude={"description"})


class PaperFigure(_Strict):
    """One published accuracy/speed point."""

    mask_ap: float
    fps: float
    precision: Precision


class PaperPerf(_Strict):
    """Figures reported in the BlitzMask paper for this variant."""

    source: Literal["paper"] = "paper"
    device: str
    input_size: int = 320
    gpu: PaperFigure | None = None
    dsp: PaperFigure | None = None


class MeasuredPerf(_Strict):
    """One figure measured by this project (appended by `blitzmask report --update-cards`)."""

    date: str
    device: str
    delegate: str
    precision: Precision
    file: str | None = None
    model_sha256: str | None = None
    threads: int | None = None
    input_size: int | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    fps: float | None = None
    mask_ap: float | None = None
    mask_ap_drop: float | None = None
    notes: str | None = None


class PerfCard(_Strict):
    """`perf.yaml`: the paper's figures (or null) and the list of measured figures."""

    paper: PaperPerf | None = None
    measured: list[MeasuredPerf] = []


class NumericsCard(_Strict):
    """`numerics.yaml`: budgets. AP drops are in AP points on the paper's 0–100 scale (0.5 = half a point)."""

    ap_drop_max: dict[str, float]
    parity_max_abs: dict[str, float]
    latency_p50_ms_max: float | None = None
    device_ap_drop_max: dict[str, float] = {}  # device AP vs host LiteRT AP of the same file, per precision

    @field_validator("ap_drop_max", "parity_max_abs", "device_ap_drop_max")
    @classmethod
    def _known_non_negative(cls, table: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(table) - set(EXPORT_FORMATS))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)} (use {', '.join(EXPORT_FORMATS)})")
        if any(v < 0 for v in table.values()):
            raise ValueError("budgets must be >= 0")
        return table

    def max_drop_fraction(self, precision: str) -> float:
        """The allowed mask-AP drop for `precision` (or a file name like 'tflite-int8') as a fraction of AP 0–1."""
        return _budget(self.ap_drop_max, precision, "ap_drop_max") / 100.0

    def max_device_drop_fraction(self, precision: str) -> float | None:
        """The allowed drop of a file's AP on a device vs its AP on host LiteRT (0–1), or None when not set."""
        limit = self.device_ap_drop_max.get(precision)
        return None if limit is None else limit / 100.0

    def max_parity(self, precision: str) -> float:
        """The allowed max |Δ| of raw head outputs vs the checkpoint for `precision` (or a file name)."""
        return _budget(self.parity_max_abs, precision, "parity_max_abs")


def _budget(table: dict[str, float], name: str, what: str) -> float:
    """Look up 'int8', or 'tflite-int8' → 'int8', 'onnx-fp32' → 'onnx'."""
    keys = [name]
    if "-" in name:
        fmt, precision = name.split("-", 1)
        keys += [fmt, precision] if fmt == "onnx" else [precision]
    for key in keys:
        if key in table:
            return table[key]
    raise BadInput(f"no {what} budget for {name!r} (have {', '.join(table) or 'none'})")


def model_dir(variant: str, root: Path | None = None) -> Path:
    """`models/<variant>/`; an unknown variant raises BadInput listing those with cards."""
    base = root or MODELS_DIR
    path = base / variant
    if not path.is_dir():
        known = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        raise BadInput(f"no model card for {variant!r} in {base} (have {', '.join(known) or 'none'})")
    return path


_Card = TypeVar("_Card", bound=BaseModel)


def _load(path: Path, cls: type[_Card]) -> _Card:
    if not path.is_file():
        raise BadInput(f"card not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise BadInput(f"{path} is not valid YAML: {' '.join(str(err).split())[:200]}") from None
    except RecursionError:
        raise BadInput(f"{path} is not valid YAML (nested too deeply)") from None
    except OSError as err:
        raise BadInput(f"{path}: cannot read ({err.strerror or err})") from None
    if not isinstance(raw, dict):
        raise BadInput(f"{path}: expected a mapping at the top level")
    try:
        return cls.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "top level"
        msg = " ".join(first["msg"].split())
        raise BadInput(f"{path}: invalid {cls.__name__} at '{where}': {msg}") from None


def list_model_cards(root: Path | None = None) -> list[str]:
    """Names of the variants that have a model.yaml under `root` (default: the packaged or checkout cards)."""
    base = root or MODELS_DIR
    return sorted(p.parent.name for p in base.glob("*/model.yaml")) if base.is_dir() else []


def load_model_card(variant: str, root: Path | None = None) -> ModelCard:
    """Read `models/<variant>/model.yaml`."""
    path = model_dir(variant, root) / "model.yaml"
    card = _load(path, ModelCard)
    if card.variant != variant:
        raise BadInput(f"{path} names variant {card.variant!r}, expected {variant!r}")
    return card


def load_perf(variant: str, root: Path | None = None) -> PerfCard:
    """Read `models/<variant>/perf.yaml`."""
    return _load(model_dir(variant, root) / "perf.yaml", PerfCard)


def load_numerics(variant: str, root: Path | None = None) -> NumericsCard:
    """Read `models/<variant>/numerics.yaml`."""
    return _load(model_dir(variant, root) / "numerics.yaml", NumericsCard)


def load_numerics_file(path: Path) -> NumericsCard:
    """Read a numerics card from an explicit path (e.g. `blitzmask gate --budgets FILE`)."""
    return _load(Path(path), NumericsCard)


def save_perf(variant: str, card: PerfCard, root: Path | None = None) -> Path:
    """Write `models/<variant>/perf.yaml` atomically in the same schema (paper figures kept as given)."""
    path = model_dir(variant, root) / "perf.yaml"
    data = card.model_dump(exclude_none=True)
    data.setdefault("paper", None)
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.replace(path)
    return path


def append_measured(variant: str, entry: MeasuredPerf, root: Path | None = None) -> PerfCard:
    """Append one measured figure to `models/<variant>/perf.yaml` and return the updated card."""
    card = load_perf(variant, root)
    card = card.model_copy(update={"measured": [*card.measured, entry]})
    save_perf(variant, card, root)
    return card
