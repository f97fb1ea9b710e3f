"""Muon for the inner conv weights, AdamW for everything else (`--optimizer muon`).

Muon (Jordan et al., 2024; Ultralytics' MuSGD is a relative) replaces a weight matrix's update by the orthogonal
factor of its Nesterov momentum, computed with a few Newton–Schulz iterations: every direction of the update gets
the same step size, however small its gradient. A conv weight (out, in, kh, kw) is treated as the matrix
(out, in·kh·kw). Muon leaves out the layers it is not meant for: the stem (it reads the image), depthwise convs
(one input channel: a tall, thin matrix) and the heads' output convs; those, the biases and the norm weights
take AdamW steps.
"""

from __future__ import annotations

import math

import torch
from torch import nn

NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)  # quintic coefficients of Muon's reference implementation


def orthogonalize(updates: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """Approximately U·Vᵀ of each (r, c) matrix U·S·Vᵀ in the batch (B, r, c): singular values end in ~[0.7, 1.2]."""
    a, b, c = NEWTON_SCHULZ
    x = updates.float()
    tall = x.size(1) > x.size(2)
    if tall:
        x = x.transpose(1, 2)
    x = x / (x.norm(dim=(1, 2), keepdim=True) + 1e-7)
    for _ in range(steps):
        gram = x @ x.transpose(1, 2)
        x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.transpose(1, 2) if tall else x


def muon_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The conv weights Muon updates: dense (not depthwise) convs other than the backbone's stem (it reads the
    image) and the heads' output convs."""
    from blitzmask_deploy.modeling.heads import Head

    left_out = {id(m.out.weight) for m in model.modules() if isinstance(m, Head)}
    left_out |= {id(p) for p in model.backbone.stem.parameters()}
    return [
        m.weight for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == 1 and id(m.weight) not in left_out
    ]


class MuonAdamW(torch.optim.Optimizer):
    """Parameter groups with `"muon": True` take Muon steps (lr × `muon_lr_ratio`, Nesterov momentum `momentum`),
    the others AdamW steps (`betas`, `eps`, decoupled `weight_decay`). `set_lr` drives both through "lr"."""

    def __init__(
        self,
        groups: list[dict],
        lr: float,
        *,
        momentum: float = 0.95,
        muon_lr_ratio: float = 4.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        defaults = dict(
            lr=lr, muon=False, weight_decay=0.0, momentum=momentum, muon_lr_ratio=muon_lr_ratio, betas=betas, eps=eps
        )
        super().__init__(groups, defaults)

    @torch.no_grad()
    def step(self, closure=None) -> None:
        """One Muon or AdamW step per parameter group (no closure support)."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                (self._muon_step if group["muon"] else self._adamw_step)(group, params)

    def _muon_step(self, group: dict, params: list[torch.Tensor]) -> None:
        grads = [p.grad for p in params]
        buffers = [self.state[p].setdefault("momentum_buffer", torch.zeros_like(p)) for p in params]
        torch._foreach_lerp_(buffers, grads, 1 - group["momentum"])
        updates = torch._foreach_lerp(grads, buffers, group["momentum"])  # Nesterov
        by_shape: dict[tuple[int, int], list[int]] = {}
        for i, p in enumerate(params):
            by_shape.setdefault((len(p), p[0].numel()), []).append(i)
        for (rows, cols), members in by_shape.items():  # one batched orthogonalisation per matrix shape
            ortho = orthogonalize(torch.stack([updates[i].reshape(rows, cols) for i in members]))
            step = group["lr"] * group["muon_lr_ratio"] * math.sqrt(max(1.0, rows / cols))
            targets = [params[i] for i in members]
            torch._foreach_add_(targets, [o.view_as(t) for o, t in zip(ortho, targets, strict=True)], alpha=-step)

    def _adamw_step(self, group: dict, params: list[torch.Tensor]) -> None:
        from torch.optim.adamw import adamw

        states = [self.state[p] for p in params]
        for p, state in zip(params, states, strict=True):
            if not state:
                step = torch.zeros((), device=p.device)  # fused kernels want it beside the parameter
                state.update(step=step, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        beta1, beta2 = group["betas"]
        adamw(
            params,
            [p.grad for p in params],
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [],
            [s["step"] for s in states],
            fused=True,  # one kernel over all tensors, as build_optimizer's AdamW
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
        )
