"""Muon + AdamW: orthogonalised conv updates, AdamW steps equal to torch's, exact state round trip."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from blitzmask_deploy.modeling.heads import Head
from blitzmask_deploy.modeling.registry import create_model
from blitzmask_deploy.train.muon import MuonAdamW, muon_parameters, orthogonalize
from blitzmask_deploy.train.optim import build_optimizer


@pytest.mark.parametrize("shape", [(3, 16, 72), (2, 64, 24)])
def test_orthogonalize_flattens_the_spectrum_and_keeps_the_directions(shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    g = torch.randn(shape) * torch.logspace(-2, 0, shape[2])  # columns of very different sizes
    out = orthogonalize(g)
    assert out.shape == g.shape
    for i in range(len(g)):
        s = torch.linalg.svdvals(out[i])
        assert s.min() > 0.6 and s.max() < 1.25  # the exact polar factor has all singular values 1
        u, _, vh = torch.linalg.svd(g[i], full_matrices=False)
        polar = u @ vh
        cosine = (out[i] * polar).sum() / (out[i].norm() * polar.norm())
        assert cosine > 0.95
        torch.testing.assert_close(out[i], orthogonalize(g[i : i + 1])[0])  # batching changes nothing


def test_muon_takes_the_inner_convs_only() -> None:
    model = create_model("blitzmask-tiny", num_classes=3)
    chosen = {id(p) for p in muon_parameters(model)}
    outputs = {id(m.out.weight) for m in model.modules() if isinstance(m, Head)}
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert outputs and len(chosen) > len(convs) // 3
    for conv in convs:
        inner = conv.in_channels > 3 and conv.groups == 1 and id(conv.weight) not in outputs
        assert (id(conv.weight) in chosen) == inner


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: list[torch.Tensor]) -> list[float]:
    losses = []
    for x in inputs:
        loss = sum(v.float().square().mean() for v in model(x).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_adamw_groups_step_as_torch_adamw() -> None:
    torch.manual_seed(0)
    mine = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 2))
    ref = copy.deepcopy(mine)
    ours = MuonAdamW([{"params": mine.parameters(), "weight_decay": 0.1}], lr=1e-2)
    theirs = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.1, foreach=False)
    x = torch.randn(16, 5)
    for _ in range(6):
        for net, opt in ((mine, ours), (ref, theirs)):
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    for a, b in zip(mine.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_muon_trains_and_resumes_exactly_from_its_state_dict() -> None:
    torch.manual_seed(0)
    inputs = [torch.rand(2, 3, 64, 64) for _ in range(6)]
    model = create_model("blitzmask-tiny", num_classes=3, input_size=64)
    start = copy.deepcopy(model.state_dict())
    optimizer = build_optimizer(model, "muon", 1e-2, 0.01)
    assert [g["muon"] for g in optimizer.param_groups] == [True, False, False]
    losses = _train(model, optimizer, inputs + inputs)
    assert losses[-1] < 0.5 * losses[0]

    def fresh() -> tuple[nn.Module, torch.optim.Optimizer]:
        net = create_model("blitzmask-tiny", num_classes=3, input_size=64)
        net.load_state_dict(start)
        return net, build_optimizer(net, "muon", 1e-2, 0.01)

    uninterrupted, opt = fresh()
    _train(uninterrupted, opt, inputs)
    interrupted, opt = fresh()
    _train(interrupted, opt, inputs[:4])
    state = copy.deepcopy(opt.state_dict())
    resumed_opt = build_optimizer(interrupted, "muon", 1e-2, 0.01)
    resumed_opt.load_state_dict(state)
    _train(interrupted, resumed_opt, inputs[4:])
    for a, b in zip(interrupted.state_dict().values(), uninterrupted.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
