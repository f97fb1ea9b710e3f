"""`ModelConfig`: every architecture knob of a BlitzMask variant, as a plain dataclass (no I/O)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from blitzmask_deploy.core.artifacts import MAX_INPUT_SIZE
from blitzmask_deploy.core.errors import BadInput

# (lowest, highest) value of each numeric field: beyond them a config is a typo or a corrupt file, and building it
# would take absurd memory (a width multiplier of 1e6, a 10^9-pixel input).
_RANGES = {
    "width_mult": (0.05, 8.0),
    "depth_mult": (0.05, 8.0),
    "num_classes": (1, 10_000),
    "num_coefficients": (1, 1024),
    "input_size": (32, MAX_INPUT_SIZE),
    "output_stride": (4, 8),
    "neck_channels": (8, 4096),
    "head_channels": (8, 4096),
    "head_convs": (0, 64),
}

BACKBONES = (
    "efficientnet-lite-tiny",
    "efficientnet-lite0",
    "efficientnet-lite1",
    "efficientnet-lite2",
    "efficientnet-lite3",
    "efficientnet-lite4",
)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one BlitzMask model; `create_model(name, **overrides)` replaces any field."""

    variant: str
    backbone: str
    width_mult: float = 1.0
    depth_mult: float = 1.0
    num_classes: int = 80
    num_coefficients: int = 16
    input_size: int = 320
    use_box: bool = True
    output_stride: int = 4
    neck_channels: int = 64
    head_channels: int = 64
    head_convs: int = 2

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise BadInput(f"unknown backbone {self.backbone!r} (choose from {', '.join(BACKBONES)})")
        for name, (low, high) in _RANGES.items():
            value = getattr(self, name)
            if not (math.isfinite(value) and low <= value <= high):
                raise BadInput(f"model config: {name}={value!r} must be from {low} to {high}")
        if self.input_size % 32 or self.output_stride not in (4, 8):
            raise BadInput(
                f"model config: input_size={self.input_size!r} must be a multiple of 32 and "
                f"output_stride={self.output_stride!r} 4 or 8"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (JSON/YAML friendly)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build from a dict; unknown or missing keys and wrong types raise BadInput."""
        if not isinstance(data, dict):
            raise BadInput(f"model config must be a mapping, got {type(data).__name__}")
        return cls(**_checked(data))

    def replace(self, **overrides: Any) -> ModelConfig:
        """A copy with `overrides` applied (unknown field → BadInput)."""
        return dataclasses.replace(self, **_checked(overrides, partial=True))


def _checked(data: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise BadInput(f"unknown model config field(s) {', '.join(unknown)} (known: {', '.join(fields)})")
    if not partial:
        missing = [n for n, f in fields.items() if f.default is dataclasses.MISSING and n not in data]
        if missing:
            raise BadInput(f"model config is missing {', '.join(missing)}")
    out: dict[str, Any] = {}
    for name, value in data.items():
        out[name] = _coerce(name, fields[name].type, value)
    return out


def _coerce(name: str, type_name: Any, value: Any) -> Any:
    kind = {"str": str, "float": float, "int": int, "bool": bool}[str(type_name)]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise BadInput(f"model config: {name} must be {kind.__name__}, got {value!r}")
    return value
