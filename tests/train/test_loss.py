"""The training loss: focal loss, class CE at the centres, BCE + dice masks from centre coefficients, L1 box."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from blitzmask_deploy.data.targets import build_targets, collate_targets
from blitzmask_deploy.train.loss import blitzmask_loss, class_loss, focal_loss, gather_cells, mask_loss


def _targets(size: int = 32, num_classes: int = 2) -> dict[str, torch.Tensor]:
    masks = np.zeros((2, size, size), bool)
    masks[0, 4:16, 4:16] = True
    masks[1, 16:28, 16:28] = True  # cell-aligned: stride-4 targets are exactly 0 or 1
    boxes = np.array([[4, 4, 16, 16], [16, 16, 28, 28]], np.float32)
    t = build_targets(masks, boxes, np.array([0, 1]), num_classes, size)
    return {k: torch.from_numpy(v) for k, v in collate_targets([t]).items()}


def test_focal_loss_matches_hand_computation() -> None:
    gt = torch.tensor([1.0, 0.5, 0.0])
    pred = torch.tensor([0.8, 0.3, 0.1])
    pos = math.log(0.8) * 0.2**2
    neg = math.log(0.7) * 0.3**2 * 0.5**4 + math.log(0.9) * 0.1**2 * 1.0
    assert math.isclose(float(focal_loss(pred, gt)), -(pos + neg) / 1, rel_tol=1e-5)


def test_focal_loss_prefers_the_target_and_clamps() -> None:
    gt = _targets()["heatmap"]
    good = focal_loss(gt.clone(), gt)
    flat = focal_loss(torch.full_like(gt, 0.5), gt)
    assert float(good) < 0.05 < float(flat)
    assert torch.isfinite(focal_loss(torch.zeros_like(gt), gt))  # clamp keeps log finite


def test_gather_cells_reads_flat_index() -> None:
    feat = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    index = torch.tensor([[7, 0], [19, 3]])
    got = gather_cells(feat, index)
    assert got.shape == (2, 2, 3)
    assert torch.equal(got[1, 0], feat[1, :, 3, 4])
    assert torch.equal(got[0, 0], feat[0, :, 1, 2])


def _perfect_outputs(t: dict[str, torch.Tensor], num_classes: int = 2, k: int = 2) -> dict[str, torch.Tensor]:
    """Outputs whose assembled masks reproduce the GT: basis k = ±10 logits of mask k, coef one-hot at centre k."""
    h, w = t["heatmap"].shape[-2:]
    basis = (t["masks"][0] > 0.5).float() * 20 - 10  # (M,h,w) = (K,h,w)
    coef = torch.zeros(1, k, h * w)
    for i, idx in enumerate(t["index"][0]):
        coef[0, i, idx] = 1.0
    box = torch.zeros(1, 4, h * w)
    box[0, :, t["index"][0]] = t["boxes_ltrb"][0].T
    return {
        "heatmap": t["heatmap"].clone(),
        "coefficients": coef.reshape(1, k, h, w),
        "spanning_set": basis[None],
        "box": box.reshape(1, 4, h, w),
    }


def test_perfect_outputs_give_small_loss_and_wrong_ones_large() -> None:
    t = _targets()
    perfect = _perfect_outputs(t)
    total, parts = blitzmask_loss(perfect, t)
    assert parts["mask"] < 0.02 and parts["box"] < 1e-6 and parts["heatmap"] < 0.05
    wrong = dict(perfect, spanning_set=-perfect["spanning_set"], box=perfect["box"] + 1.0)
    _, bad = blitzmask_loss(wrong, t)
    assert bad["mask"] > 1.0 and math.isclose(bad["box"], 1.0, rel_tol=1e-5)
    assert float(total) < 0.1


def test_class_loss_makes_the_right_class_win_at_the_centres() -> None:
    t = _targets()
    perfect = _perfect_outputs(t)["heatmap"]
    assert float(class_loss(perfect, t)) < 1e-3
    swapped = perfect.flip(1)  # each instance's centre now fires in the other class
    assert float(class_loss(swapped, t)) > 10.0
    heatmap = torch.full_like(perfect, 0.5, requires_grad=True)  # undecided everywhere
    class_loss(heatmap, t).backward()
    grad = gather_cells(heatmap.grad, t["index"])[t["valid"]]  # (instances, classes)
    right = F.one_hot(t["labels"][t["valid"]], grad.shape[1]).bool()
    assert (grad[right] < 0).all() and (grad[~right] > 0).all()  # descent raises the right class, lowers the rest
    assert heatmap.grad.abs().sum() == grad.abs().sum()  # only the centre cells
    assert float(class_loss(perfect, t | {"valid": torch.zeros_like(t["valid"])})) == 0.0


def test_mask_loss_without_box_head_sees_the_whole_image() -> None:
    t = _targets()
    out = _perfect_outputs(t)
    out["spanning_set"] = out["spanning_set"].clone()
    out["spanning_set"][0, 0, 0, -1] = 10.0  # a false positive far outside instance 0's box
    with_box = float(mask_loss(out, t))
    without = float(mask_loss({k: v for k, v in out.items() if k != "box"}, t))
    assert without > with_box


def test_loss_trains_free_outputs_and_handles_empty_images() -> None:
    torch.manual_seed(0)
    t = _targets()
    h, w = t["heatmap"].shape[-2:]
    params = {
        "heatmap": torch.zeros(1, 2, h, w, requires_grad=True),
        "coefficients": torch.randn(1, 4, h, w, requires_grad=True),
        "spanning_set": torch.randn(1, 4, h, w, requires_grad=True),
        "box": torch.zeros(1, 4, h, w, requires_grad=True),
    }
    opt = torch.optim.Adam(params.values(), lr=0.1)

    def outputs() -> dict[str, torch.Tensor]:
        return dict(params, heatmap=torch.sigmoid(params["heatmap"]), box=torch.relu(params["box"]))

    first, _ = blitzmask_loss(outputs(), t)
    for _ in range(60):
        loss, _ = blitzmask_loss(outputs(), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.2 * float(first.detach())
    empty = {k: torch.zeros_like(v) for k, v in t.items()}
    empty_loss, parts = blitzmask_loss(outputs(), empty | {"valid": torch.zeros_like(t["valid"])})
    assert torch.isfinite(empty_loss) and parts["mask"] == 0.0 and parts["box"] == 0.0


def test_loss_at_output_stride_8_grows_the_box_by_one_8px_cell() -> None:
    masks = np.zeros((2, 64, 64), bool)
    masks[0, 8:32, 8:32] = True
    masks[1, 32:56, 32:56] = True
    boxes = np.array([[8, 8, 32, 32], [32, 32, 56, 56]], np.float32)
    built = build_targets(masks, boxes, np.array([0, 1]), 2, 64, stride=8)
    t = {k: torch.from_numpy(v) for k, v in collate_targets([built]).items()}
    assert t["heatmap"].shape[-2:] == (8, 8)
    out = _perfect_outputs(t)
    out["spanning_set"] = out["spanning_set"].clone()
    out["spanning_set"][0, 0, 0, 0] = 10.0  # false positive in the cell just outside instance 0's box (centre 4, 4)
    _, parts = blitzmask_loss(out, t, stride=8)
    _, clean = blitzmask_loss(_perfect_outputs(t), t, stride=8)
    assert parts["mask"] > clean["mask"] + 0.01
    assert math.isclose(float(mask_loss(out, t, 4)), clean["mask"], abs_tol=1e-3)  # a stride-4 region misses it


def _dense_mask_loss(outputs: dict[str, torch.Tensor], t: dict[str, torch.Tensor], stride: int) -> torch.Tensor:
    """The mask loss written out over whole masks: every instance's logits on the full grid, weighted by its box."""
    per_instance = []
    for b, m in t["valid"].nonzero().tolist():
        y, x = divmod(int(t["index"][b, m]), outputs["coefficients"].shape[-1])
        logits = torch.einsum("k,khw->hw", outputs["coefficients"][b, :, y, x], outputs["spanning_set"][b])
        gt = t["masks"][b, m]
        h, w = gt.shape
        cy = (torch.arange(h, dtype=torch.float32) + 0.5)[:, None] * stride
        cx = (torch.arange(w, dtype=torch.float32) + 0.5)[None, :] * stride
        x1, y1, x2, y2 = t["boxes_xyxy"][b, m].tolist()
        weight = ((cy >= y1 - stride) & (cy <= y2 + stride) & (cx >= x1 - stride) & (cx <= x2 + stride)).float()
        bce = (torch.nn.functional.binary_cross_entropy_with_logits(logits, gt, reduction="none") * weight).sum()
        prob = torch.sigmoid(logits) * weight
        dice = 1 - (2 * (prob * gt).sum() + 1) / (prob.sum() + (gt * weight).sum() + 1)
        per_instance.append(bce / weight.sum().clamp(min=1.0) + dice)
    return torch.stack(per_instance).mean()


def test_mask_loss_and_its_gradients_equal_the_loss_over_whole_masks() -> None:
    # two images with different instance counts (padding slots must not count), boxes that cut through cells
    rng = np.random.default_rng(0)
    items = []
    for count in (3, 1):
        masks = np.zeros((count, 48, 48), bool)
        for m in masks:
            y, x, h, w = rng.integers(0, 30, 2).tolist() + rng.integers(3, 18, 2).tolist()
            m[y : y + h, x : x + w] = rng.random((h, w)) < 0.7
        boxes = np.stack([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] for ys, xs in map(np.nonzero, masks)])
        items.append(build_targets(masks, boxes.astype(np.float32), np.zeros(count, int), 1, 48))
    t = {k: torch.from_numpy(v) for k, v in collate_targets(items).items()}
    torch.manual_seed(0)
    leaves = {k: torch.randn(2, c, 12, 12, requires_grad=True) for k, c in (("coefficients", 5), ("spanning_set", 5))}
    outputs = dict(leaves, box=torch.zeros(2, 4, 12, 12))
    fast, reference = mask_loss(outputs, t), _dense_mask_loss(outputs, t, 4)
    torch.testing.assert_close(fast, reference)
    got = torch.autograd.grad(fast, list(leaves.values()))
    want = torch.autograd.grad(reference, list(leaves.values()))
    for g, r in zip(got, want, strict=True):
        torch.testing.assert_close(g, r)


def test_focal_loss_takes_no_negative_term_from_ignored_cells() -> None:
    targets = _targets()
    gt = targets["heatmap"]
    pred = torch.full_like(gt, 0.3)
    ignore = torch.zeros(gt.shape[0], *gt.shape[2:], dtype=torch.bool)
    ignore[0, 0:2, 6:8] = True  # cells with no positive: a crowd region
    kept = ~ignore.unsqueeze(1).expand_as(gt)
    neg = (torch.log(1 - pred) * pred**2 * (1 - gt) ** 4 * gt.ne(1))[kept].sum()
    pos = (torch.log(pred) * (1 - pred) ** 2 * gt.eq(1)).sum()
    expected = -(pos + neg) / gt.eq(1).sum()
    torch.testing.assert_close(focal_loss(pred, gt, ignore), expected)
    assert float(focal_loss(pred, gt)) > float(focal_loss(pred, gt, ignore))
