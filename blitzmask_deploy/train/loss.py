"""BlitzMask training loss — this project's own (the paper's exact loss is not public).

total = heatmap_weight · focal + class_weight · CE + mask_weight · (BCE + dice) + box_weight · L1

- focal: CenterNet's penalty-reduced focal loss (α=2, β=4) on the sigmoid heatmaps (clamped to [1e-4, 1-1e-4]),
  summed over all cells and divided by the number of instances; cells under crowd regions add no negative term.
- CE: cross-entropy over the classes of the heatmap logits (logit of the clamped probabilities) at each GT centre
  cell, mean over instances. The focal loss trains each class channel on its own; this term makes the right
  class beat the others where an object is.
- mask: for each GT instance, the coefficients at its GT centre cell are combined with the spanning set into
  logits Σ_k coef_k · basis_k at stride 4, compared with the GT mask averaged to stride 4 by BCE (mean over the
  pixels) and dice. When the model has a box head the loss only looks inside the GT box grown by one cell,
  matching decode, which crops masks to the predicted box.
- box: L1 between predicted and GT left/top/right/bottom distances (input px / 16) at the GT centre cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms."""

    heatmap: float = 3.0  # the heatmap is what learns slowest (measured: AP ×1.2–2.5 at equal steps)
    classes: float = 1.0
    mask: float = 1.0
    box: float = 1.0


def clamp_probabilities(p: Tensor) -> Tensor:
    """Sigmoid outputs as float32 clamped to [1e-4, 1 − 1e-4], so that their logs (and logits) stay finite."""
    return p.float().clamp(1e-4, 1 - 1e-4)


def focal_loss(pred: Tensor, gt: Tensor, ignore: Tensor | None = None, alpha: float = 2.0, beta: float = 4.0) -> Tensor:
    """CenterNet penalty-reduced focal loss on probabilities `pred` vs Gaussian targets `gt` (B,C,h,w); cells where
    `ignore` (B,h,w) is set (crowd regions) add no negative term."""
    pred = clamp_probabilities(pred)
    pos = gt.eq(1).float()
    neg_weight = torch.pow(1 - gt, beta)
    if ignore is not None:
        neg_weight = neg_weight * (~ignore).unsqueeze(1)
    pos_loss = torch.log(pred) * torch.pow(1 - pred, alpha) * pos
    neg_loss = torch.log(1 - pred) * torch.pow(pred, alpha) * neg_weight * (1 - pos)
    num_pos = pos.sum().clamp(min=1.0)
    return -(pos_loss.sum() + neg_loss.sum()) / num_pos


def class_loss(heatmap: Tensor, targets: dict[str, Tensor]) -> Tensor:
    """Cross-entropy over the classes of the heatmap logits at each valid instance's GT centre cell (mean)."""
    valid = targets["valid"]
    if not valid.any():
        return heatmap.sum() * 0.0
    p = clamp_probabilities(gather_cells(heatmap, targets["index"])[valid])
    return F.cross_entropy(torch.log(p) - torch.log1p(-p), targets["labels"][valid])


def gather_cells(feature: Tensor, index: Tensor) -> Tensor:
    """Values of `feature` (B,C,h,w) at flat cell indices `index` (B,M) → (B,M,C)."""
    b, c = feature.shape[:2]
    flat = feature.reshape(b, c, -1)
    return torch.gather(flat, 2, index.unsqueeze(1).expand(b, c, index.shape[1])).transpose(1, 2)


def box_region(boxes_xyxy: Tensor, h: int, w: int, stride: int) -> Tensor:
    """(B,M,h,w) bool: True inside each box (input px) grown by one output cell."""
    ys = (torch.arange(h, device=boxes_xyxy.device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(w, device=boxes_xyxy.device, dtype=torch.float32) + 0.5) * stride
    x1, y1, x2, y2 = (boxes_xyxy[..., i, None, None] for i in range(4))
    inside_y = (ys[:, None] >= y1 - stride) & (ys[:, None] <= y2 + stride)
    inside_x = (xs[None, :] >= x1 - stride) & (xs[None, :] <= x2 + stride)
    return inside_y & inside_x


def mask_loss(outputs: dict[str, Tensor], targets: dict[str, Tensor], stride: int = 4) -> Tensor:
    """BCE + dice between assembled instance masks and GT masks at the output stride (mean over instances).

    Only the cells the loss looks at are assembled (the grown GT box with a box head, else every cell): each is
    one (instance, y, x) triple, and per-instance sums are scatter-adds — a mosaic's boxes cover a few % of the
    grid, so this is far cheaper than assembling every instance's full mask."""
    valid = targets["valid"]
    coefficients = outputs["coefficients"]
    if not valid.any():
        return coefficients.sum() * 0.0
    coef = gather_cells(coefficients.float(), targets["index"])[valid]  # (n,K)
    basis = outputs["spanning_set"].float()  # (B,K,h,w)
    gt_masks = targets["masks"][valid]  # (n,h,w)
    n, h, w = gt_masks.shape
    if "box" in outputs:
        region = box_region(targets["boxes_xyxy"], h, w, stride)[valid]
    else:
        region = torch.ones_like(gt_masks, dtype=torch.bool)
    inst, ys, xs = region.nonzero(as_tuple=True)  # the cells the loss covers, instance by instance
    cells = (valid.nonzero(as_tuple=True)[0][inst] * h + ys) * w + xs  # flat (image, y, x) indices
    basis_cells = basis.permute(0, 2, 3, 1).reshape(-1, basis.shape[1]).index_select(0, cells)  # (T,K)
    logits = (coef.index_select(0, inst) * basis_cells).sum(dim=1)
    gt = gt_masks.reshape(-1).index_select(0, (inst * h + ys) * w + xs)
    area = _sum_per(inst, torch.ones_like(gt), n).clamp(min=1.0)
    bce = _sum_per(inst, F.binary_cross_entropy_with_logits(logits, gt, reduction="none"), n) / area
    prob = torch.sigmoid(logits)
    dice = 1 - (2 * _sum_per(inst, prob * gt, n) + 1) / (_sum_per(inst, prob, n) + _sum_per(inst, gt, n) + 1)
    return (bce + dice).mean()


def _sum_per(owner: Tensor, values: Tensor, n: int) -> Tensor:
    """(n,) sums of `values` grouped by `owner` (each value's instance, in [0, n))."""
    return torch.zeros(n, device=values.device, dtype=values.dtype).index_add_(0, owner, values)


def box_loss(outputs: dict[str, Tensor], targets: dict[str, Tensor]) -> Tensor:
    """Mean L1 over valid instances of the ltrb distances at the GT centre cells."""
    valid = targets["valid"]
    if not valid.any():
        return outputs["box"].sum() * 0.0
    pred = gather_cells(outputs["box"].float(), targets["index"])[valid]
    return F.l1_loss(pred, targets["boxes_ltrb"][valid], reduction="sum") / (4 * pred.shape[0])


def blitzmask_loss(
    outputs: dict[str, Tensor], targets: dict[str, Tensor], weights: LossWeights = LossWeights(), stride: int = 4
) -> tuple[Tensor, dict[str, float]]:
    """Total loss and its parts (as floats, for logging) for a batch of model outputs and collated targets
    built at output stride `stride`."""
    parts = {
        "heatmap": focal_loss(outputs["heatmap"], targets["heatmap"], targets.get("ignore")),
        "classes": class_loss(outputs["heatmap"], targets),
        "mask": mask_loss(outputs, targets, stride),
    }
    total = weights.heatmap * parts["heatmap"] + weights.classes * parts["classes"] + weights.mask * parts["mask"]
    if "box" in outputs:
        parts["box"] = box_loss(outputs, targets)
        total = total + weights.box * parts["box"]
    return total, {k: float(v.detach()) for k, v in parts.items()}
