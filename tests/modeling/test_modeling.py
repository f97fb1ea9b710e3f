"""BlitzMask variants: output contract, overrides, backbone scaling rules, complexity counting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from blitzmask_deploy import create_model as create_model_lazy
from blitzmask_deploy.core.errors import BadInput
from blitzmask_deploy.modeling.backbones.efficientnet_lite import B0_STAGES, build_backbone
from blitzmask_deploy.modeling.complexity import count_macs, count_params
from blitzmask_deploy.modeling.config import ModelConfig
from blitzmask_deploy.modeling.layers import IMAGENET_MEAN, InputNorm, make_divisible
from blitzmask_deploy.modeling.registry import create_model, list_variants, variant_config

HEAVY = {"blitzmask-b3", "blitzmask-b4"}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def check_outputs(out: dict[str, torch.Tensor], n: int, c: int, k: int, side: int, box: bool = True) -> None:
    expected = {"heatmap": c, "coefficients": k, "spanning_set": k} | ({"box": 4} if box else {})
    assert set(out) == set(expected)
    for key, channels in expected.items():
        assert out[key].shape == (n, channels, side, side), key
        assert out[key].dtype == torch.float32
        assert torch.isfinite(out[key]).all(), key
    assert ((out["heatmap"] > 0) & (out["heatmap"] < 1)).all()
    if box:
        assert (out["box"] >= 0).all()


def test_registry_lists_the_variants() -> None:
    assert list_variants() == [f"blitzmask-{v}" for v in ("tiny", "b0", "b1", "b2", "b3", "b4")]


@pytest.mark.parametrize("name", [v for v in list_variants() if v not in HEAVY])
def test_forward_contract_at_128(name: str) -> None:
    model = create_model(name, num_classes=5).eval()
    assert model.config.variant == name and model.config.input_size == 320
    with torch.no_grad():
        out = model(torch.rand(2, 3, 128, 128))
    check_outputs(out, 2, 5, model.config.num_coefficients, 32)


@pytest.mark.slow
def test_every_variant_runs_forward_at_320() -> None:
    for name in list_variants():
        model = create_model(name).eval()
        with torch.no_grad():
            out = model(torch.rand(1, 3, 320, 320))
        check_outputs(out, 1, 80, 16, 80)


def test_package_level_create_model_and_overrides() -> None:
    model = create_model_lazy("blitzmask-tiny", num_classes=3, num_coefficients=8, use_box=False, input_size=96)
    assert model.config.num_classes == 3 and model.config.input_size == 96
    out = model.eval()(torch.rand(1, 3, 96, 96))
    check_outputs(out, 1, 3, 8, 24, box=False)


def test_output_stride_8() -> None:
    model = create_model("blitzmask-tiny", num_classes=2, output_stride=8).eval()
    out = model(torch.rand(1, 3, 128, 128))
    check_outputs(out, 1, 2, 16, 16)


@pytest.mark.parametrize(
    ("name", "overrides", "needle"),
    [
        ("blitzmask-b9", {}, "choose from blitzmask-tiny, blitzmask-b0"),
        ("blitzmask-tiny", {"num_clases": 3}, "num_clases"),
        ("blitzmask-tiny", {"input_size": 100}, "multiple of 32"),
        ("blitzmask-tiny", {"num_classes": "3"}, "num_classes must be int"),
        ("blitzmask-tiny", {"backbone": "resnet50"}, "unknown backbone"),
        ("blitzmask-tiny", {"output_stride": 16}, "output_stride"),
    ],
)
def test_bad_names_and_overrides_are_bad_input(name: str, overrides: dict, needle: str) -> None:
    with pytest.raises(BadInput, match=needle) as err:
        create_model(name, **overrides)
    assert "\n" not in str(err.value)


def test_config_round_trip_and_strict_from_dict() -> None:
    cfg = variant_config("blitzmask-b2", num_classes=7)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert ModelConfig.from_dict({**cfg.to_dict(), "width_mult": 1}).width_mult == 1.0
    with pytest.raises(BadInput, match="extra"):
        ModelConfig.from_dict({**cfg.to_dict(), "extra": 1})
    with pytest.raises(BadInput, match="missing backbone"):
        ModelConfig.from_dict({"variant": "x"})
    assert variant_config("blitzmask-b2") != cfg  # the registry default is untouched


def test_heatmap_starts_near_the_focal_prior() -> None:
    torch.manual_seed(0)
    model = create_model("blitzmask-tiny", num_classes=4).eval()
    heat = model(torch.rand(1, 3, 64, 64))["heatmap"]
    assert 0.05 < heat.mean().item() < 0.2


def test_input_normalisation_is_inside_the_model() -> None:
    mean_image = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    assert InputNorm()(mean_image).abs().max() < 1e-6
    white = InputNorm()(torch.ones(1, 3, 1, 1)).flatten()
    assert (white > 2.0).all()


def _stage_blocks(model: nn.Module) -> list[int]:
    return [len(stage) for stage in model.backbone.stages]


def test_lite_scaling_rules() -> None:
    """Stem fixed at 32; first/last stages not depth-scaled; width rounded to multiples of 8."""
    b0, b4 = (create_model(v) for v in ("blitzmask-b0", "blitzmask-b4"))
    for model in (b0, b4):
        assert model.backbone.stem[0].out_channels == 32
    assert _stage_blocks(b0) == [s.repeats for s in B0_STAGES]
    assert _stage_blocks(b4) == [1, 4, 4, 6, 6, 8, 1]  # ceil(r × 1.8) except first/last
    widths = [stage[-1].block[-1][0].out_channels for stage in b4.backbone.stages]
    assert widths == [make_divisible(s.out_ch * 1.4) for s in B0_STAGES]
    assert all(w % 8 == 0 for w in widths)


def test_backbone_features_at_strides_4_to_32() -> None:
    model = create_model("blitzmask-b1")
    feats = model.backbone(torch.rand(1, 3, 128, 128))
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4]
    assert [f.shape[1] for f in feats] == model.backbone.out_channels


def test_every_parameter_gets_a_gradient() -> None:
    model = create_model("blitzmask-tiny", num_classes=3).train()
    out = model(torch.rand(2, 3, 64, 64))
    sum(v.mean() for v in out.values()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_count_macs_matches_hand_count() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=8))
    # 8×16×16 outputs × 3×3×3 + 8×16×16 outputs × 1×3×3
    assert count_macs(model, 32) == 8 * 16 * 16 * 27 + 8 * 16 * 16 * 9
    assert count_params(model) == (8 * 27 + 8) + (8 * 9 + 8)


def test_macs_scale_with_input_area_and_grow_with_variant() -> None:
    tiny = create_model("blitzmask-tiny")
    assert count_macs(tiny, 256) == 4 * count_macs(tiny, 128)
    b0, b1 = (create_model(v) for v in ("blitzmask-b0", "blitzmask-b1"))
    assert count_macs(tiny, 128) < count_macs(b0, 128) < count_macs(b1, 128)
    assert count_params(tiny) < count_params(b0) < count_params(b1)
    assert tiny.training  # count_macs restores the mode


@pytest.mark.parametrize(("index", "millions"), [(0, 4.65), (1, 5.42), (2, 6.09), (3, 8.20), (4, 13.01)])
def test_backbone_matches_published_efficientnet_lite_sizes(index: int, millions: float) -> None:
    """Backbone + the dropped 1280-channel head conv/BN and 1000-class classifier = timm's efficientnet_lite sizes."""
    cfg = variant_config(f"blitzmask-b{index}")
    assert cfg.backbone == f"efficientnet-lite{index}"
    backbone = build_backbone(cfg.backbone, cfg.width_mult, cfg.depth_mult)
    dropped = backbone.out_channels[-1] * 1280 + 2 * 1280 + 1280 * 1000 + 1000
    assert round((count_params(backbone) + dropped) / 1e6, 2) == millions
