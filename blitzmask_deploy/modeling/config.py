"""`ModelConfig`: every architecture knob of a BlitzMask variant, as a plain dataclass (no I/O)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from blitzmask_deploy.core.errors import BadInput

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
        checks = {
            "width_mult": self.width_mult > 0,
            "depth_mult": self.depth_mult > 0,
            "num_classes": self.num_classes >= 1,
            "num_coefficients": self.num_coefficients >= 1,
            "input_size": self.input_size >= 32 and self.input_size % 32 == 0,
            "output_stride": self.output_stride in (4, 8),
            "neck_channels": self.neck_channels >= 8,
            "head_channels": self.head_channels >= 8,
            "head_convs": self.head_convs >= 0,
        }
        rules = {
            "input_size": "a multiple of 32",
            "output_stride": "4 or 8",
            "neck_channels": ">= 8",
            "head_channels": ">= 8",
            "head_convs": ">= 0",
        }
        for name, ok in checks.items():
            if not ok:
                rule = rules.get(name, "> 0")
                raise BadInput(f"model config: {name}={getattr(self, name)!r} must be {rule}")

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
