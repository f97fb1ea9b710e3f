"""Every variant uses only mobile-friendly ops: checked on the module tree, the fx graph and a torch.export graph."""

from __future__ import annotations

import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import symbolic_trace

from blitzmask_deploy.modeling.registry import create_model, list_variants

ALLOWED_LEAVES = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Identity, nn.Upsample)
CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
ALLOWED_FUNCTIONS = {operator.add, torch.add, torch.cat, torch.sigmoid, F.relu, F.relu6, F.conv2d, F.interpolate}
ALLOWED_ATEN = {
    "aten.conv2d.default",
    "aten.batch_norm.default",
    "aten._native_batch_norm_legit_no_training.default",
    "aten.relu.default",
    "aten.relu_.default",
    "aten.hardtanh.default",
    "aten.hardtanh_.default",
    "aten.add.Tensor",
    "aten.cat.default",
    "aten.sigmoid.default",
    "aten.upsample_nearest2d.vec",
    "aten.upsample_bilinear2d.vec",
}


@pytest.fixture(scope="module", params=list_variants())
def model(request: pytest.FixtureRequest) -> nn.Module:
    torch.set_num_threads(1)
    return create_model(request.param, num_classes=3).eval()


def test_module_tree_has_only_allowed_modules(model: nn.Module) -> None:
    bad = []
    for name, module in model.named_modules():
        ours = type(module).__module__.startswith("blitzmask_deploy.modeling")
        if not isinstance(module, ALLOWED_LEAVES + CONTAINERS) and not ours:
            bad.append(f"{name}: {type(module).__name__}")
        if isinstance(module, nn.Conv2d) and (module.dilation != (1, 1) or module.padding_mode != "zeros"):
            bad.append(f"{name}: dilated or non-zero-padded conv")
    assert not bad, bad


def forbidden_fx_ops(model: nn.Module) -> list[str]:
    """Everything in the fx graph of `model` that is not an allowed module or function."""
    graph = symbolic_trace(model)
    bad = []
    for node in graph.graph.nodes:
        if node.op == "call_module":
            module = graph.get_submodule(node.target)
            if not isinstance(module, ALLOWED_LEAVES):
                bad.append(f"module {node.target}: {type(module).__name__}")
        elif node.op == "call_function":
            if node.target not in ALLOWED_FUNCTIONS:
                bad.append(f"function {getattr(node.target, '__name__', node.target)}")
            if node.target is F.interpolate and node.kwargs.get("mode", "nearest") not in ("nearest", "bilinear"):
                bad.append(f"resize mode {node.kwargs['mode']}")
        elif node.op == "call_method":
            bad.append(f"method {node.target}")
    return bad


def test_fx_graph_has_only_allowed_ops(model: nn.Module) -> None:
    assert forbidden_fx_ops(model) == []


class _SqueezeExcite(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.act = nn.Hardswish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.act(self.conv(x.mean((2, 3), keepdim=True)))


def test_checker_rejects_forbidden_ops() -> None:
    bad = forbidden_fx_ops(_SqueezeExcite())
    assert any("Hardswish" in b for b in bad)
    assert any("mean" in b for b in bad)
    assert any("mul" in b for b in bad)


def test_batchnorm_always_follows_a_conv(model: nn.Module) -> None:
    """conv → BN order (BN foldable at export): every BN's input is the output of a Conv2d."""
    graph = symbolic_trace(model)
    for node in graph.graph.nodes:
        if node.op == "call_module" and isinstance(graph.get_submodule(node.target), nn.BatchNorm2d):
            producer = node.args[0]
            assert producer.op == "call_module", node.target
            assert isinstance(graph.get_submodule(producer.target), nn.Conv2d), node.target
            assert len(producer.users) == 1, f"conv before {node.target} is used elsewhere"


def test_bn_folds_into_convs_without_changing_outputs() -> None:
    from torch.fx.experimental.optimization import fuse

    torch.manual_seed(0)
    model = create_model("blitzmask-tiny", num_classes=3).eval()
    for m in model.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    fused = fuse(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ref, out = model(x), fused(x)
    for key in ref:
        torch.testing.assert_close(out[key], ref[key], atol=1e-4, rtol=1e-4)


def _exported_ops(name: str) -> set[str]:
    model = create_model(name, num_classes=3).eval()
    program = torch.export.export(model, (torch.rand(1, 3, 64, 64),))
    return {str(n.target) for n in program.graph.nodes if n.op == "call_function"}


def test_torch_export_graph_has_only_allowed_aten_ops_tiny() -> None:
    torch.set_num_threads(1)
    assert _exported_ops("blitzmask-tiny") <= ALLOWED_ATEN


@pytest.mark.slow
@pytest.mark.parametrize("name", [v for v in list_variants() if v != "blitzmask-tiny"])
def test_torch_export_graph_has_only_allowed_aten_ops(name: str) -> None:
    torch.set_num_threads(1)
    assert _exported_ops(name) <= ALLOWED_ATEN
