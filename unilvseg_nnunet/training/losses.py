"""Sparse frame-wise segmentation loss (paper §II-B) and label-preserving deep-supervision targets.

Tensors are nnU-Net's: logits ``(B, K, F, H, W)``, targets ``(B, 1, F, H, W)`` holding class
indices and ``ignore_label`` on every voxel without a label (all voxels of untraced frames).

Default loss = frame-wise soft Dice + cross-entropy, both over labeled voxels only, weight 1 each,
as nnU-Net pairs Dice with CE by default (CE stabilises early training on the rare labeled
frames); ``weight_ce=0`` is the paper's Dice-only loss.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def labeled_voxels(target: torch.Tensor, ignore_label: int) -> torch.Tensor:
    """Float mask ``(B, 1, F, H, W)`` of voxels that carry a label."""
    return (target != ignore_label).float()


def frame_dice(logits: torch.Tensor, target: torch.Tensor, ignore_label: int,
               smooth: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft Dice of every foreground class on every frame, over labeled voxels.

    Returns ``dice (B, K-1, F)`` and ``labeled (B, F)`` (frames with at least one labeled voxel).
    """
    mask = labeled_voxels(target, ignore_label)
    probs = torch.softmax(logits, 1) * mask
    onehot = torch.zeros_like(logits).scatter_(1, torch.where(mask.bool(), target, 0).long(), 1) * mask
    probs, onehot = probs[:, 1:], onehot[:, 1:]  # foreground classes only, as nnU-Net (do_bg=False)
    axes = tuple(range(3, logits.ndim))
    tp = (probs * onehot).sum(axes)
    fp = (probs * (1 - onehot)).sum(axes)
    fn = ((1 - probs) * onehot).sum(axes)
    dice = (2 * tp + smooth) / (2 * tp + fp + fn + smooth)
    return dice, mask.flatten(3).amax(3)[:, 0].bool()


class SparseFrameLoss(nn.Module):
    """``weight_dice * (1 - mean frame Dice over labeled frames) + weight_ce * CE over labeled voxels``.

    The Dice term averages over the labeled frames of the whole batch (paper eq. 3-6 up to the
    constant normalisation); frames without any labeled voxel are left out of the average, so their
    gradient is exactly zero. A batch without any label gives a zero loss that keeps the graph.
    """

    def __init__(self, ignore_label: int, weight_dice: float = 1.0, weight_ce: float = 1.0, smooth: float = 1e-5):
        super().__init__()
        self.ignore_label, self.weight_dice, self.weight_ce, self.smooth = ignore_label, weight_dice, weight_ce, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        dice, labeled = frame_dice(logits, target, self.ignore_label, self.smooth)
        if not labeled.any():
            return logits.sum() * 0
        loss = self.weight_dice * (1 - dice.permute(0, 2, 1)[labeled]).mean()
        if self.weight_ce:
            loss = loss + self.weight_ce * F.cross_entropy(logits, target[:, 0].long(), ignore_index=self.ignore_label)
        return loss


def deep_supervision_weights(n: int) -> np.ndarray:
    """nnU-Net's weights for ``n`` deep-supervision outputs: halving per scale, lowest one unused, sum 1."""
    w = np.array([1 / 2 ** i for i in range(n)])
    w[-1] = 0 if n > 1 else w[-1]
    return w / w.sum()


def downsample_sparse_target(target: torch.Tensor, scale, ignore_label: int) -> torch.Tensor:
    """Deep-supervision target ``(C, F, H, W)`` at ``scale`` (per axis, time first) keeping every labeled frame.

    nnU-Net downsamples with nearest interpolation, which along time keeps one frame in every
    ``1/scale`` and so drops most labeled frames. Here each low-resolution frame takes the label
    map of the first labeled frame of its time window ("any" pooling of the labeled-frame mask),
    and is ignore only when its whole window is unlabeled. In-plane: nearest, as nnU-Net.
    """
    c, f = target.shape[:2]
    new_shape = [max(1, round(n * s)) for n, s in zip(target.shape[1:], scale)]
    if f % new_shape[0]:
        raise ValueError(f"clip of {f} frames cannot be pooled to {new_shape[0]} frames")
    r = f // new_shape[0]
    if r > 1:
        windows = target.reshape(c, new_shape[0], r, *target.shape[2:])
        labeled = (windows != ignore_label).flatten(3).any(3).any(0)  # (F', r)
        first = labeled.float().argmax(1)  # first labeled frame of each window (0 when none)
        target = windows[:, torch.arange(new_shape[0]), first]
        target[:, ~labeled.any(1)] = ignore_label
    if list(target.shape[2:]) != new_shape[1:]:
        target = F.interpolate(target[None].float(), [target.shape[1], *new_shape[1:]],
                               mode="nearest-exact")[0].to(target.dtype)
    return target
