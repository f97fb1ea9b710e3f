"""EMA weights: the ramped decay recurrence on floats, integer buffers copied, loading keeps them in step."""

from __future__ import annotations

import torch
from torch import nn

from blitzmask_deploy.train.ema import ModelEMA


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def test_ema_follows_the_ramped_recurrence_and_copies_counters() -> None:
    model = _model()
    ema = ModelEMA(model, decay=0.9)
    expected = model[0].weight.detach().clone()
    for n in range(1, 6):
        with torch.no_grad():
            model[0].weight.add_(1.0)
            model[1].num_batches_tracked.add_(3)
        ema.update(model)
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * model[0].weight.detach()
    torch.testing.assert_close(ema.module[0].weight, expected)
    assert int(ema.module[1].num_batches_tracked) == 15


def test_ema_keeps_following_a_model_after_both_load_state_dicts() -> None:
    model = _model()
    ema = ModelEMA(model, decay=0.5)
    ema.update(model)  # the first update fixes which tensors are blended
    other = _model()
    with torch.no_grad():
        other[0].weight.fill_(2.0)
    model.load_state_dict(other.state_dict())
    ema.module.load_state_dict(other.state_dict())
    with torch.no_grad():
        model[0].weight.fill_(4.0)
    ema.update(model)
    d = min(0.5, 3 / 12)  # second update
    torch.testing.assert_close(ema.module[0].weight, torch.full_like(model[0].weight, d * 2.0 + (1 - d) * 4.0))
