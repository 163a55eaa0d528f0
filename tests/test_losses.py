"""Sparse frame-wise loss: equals a reference per-frame Dice on labeled frames, gives exactly zero gradient
to unlabeled frames; deep-supervision targets keep every labeled frame (nnU-Net's drop them)."""
import numpy as np
import pytest
import torch
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform

from unilvseg_nnunet.data.dataset import IGNORE
from unilvseg_nnunet.training.losses import SparseFrameLoss, deep_supervision_weights, downsample_sparse_target


def _batch(seed=0, b=2, k=2, f=8, h=12, w=12, labeled=((1, 5), (6,))):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, k, f, h, w, generator=g, requires_grad=True)
    target = torch.full((b, 1, f, h, w), IGNORE, dtype=torch.int16)
    for i, frames in enumerate(labeled):
        for t in frames:
            target[i, 0, t] = (torch.rand(h, w, generator=g) > 0.6).to(torch.int16)
    return logits, target


def _reference_dice_loss(logits, target, smooth=1e-5):
    """1 - mean over labeled frames (and foreground classes) of the soft Dice, frame by frame in numpy."""
    p = torch.softmax(logits, 1).detach().numpy()
    y = target.numpy()[:, 0]
    dices = []
    for b in range(y.shape[0]):
        for t in range(y.shape[1]):
            if (y[b, t] == IGNORE).all():
                continue
            for c in range(1, p.shape[1]):
                pc, yc = p[b, c, t], (y[b, t] == c).astype(float)
                tp, fp, fn = (pc * yc).sum(), (pc * (1 - yc)).sum(), ((1 - pc) * yc).sum()
                dices.append((2 * tp + smooth) / (2 * tp + fp + fn + smooth))
    return 1 - np.mean(dices)


def test_dice_only_equals_reference_per_frame_dice():
    logits, target = _batch()
    loss = SparseFrameLoss(IGNORE, weight_ce=0)(logits, target)
    assert loss.item() == pytest.approx(_reference_dice_loss(logits, target), rel=1e-5)


def test_default_adds_cross_entropy_on_labeled_voxels():
    logits, target = _batch(1)
    lab = (target[:, 0] != IGNORE)
    ce = torch.nn.functional.cross_entropy(logits.permute(0, 2, 3, 4, 1)[lab], target[:, 0][lab].long())
    loss = SparseFrameLoss(IGNORE)(logits, target)
    assert loss.item() == pytest.approx(_reference_dice_loss(logits, target) + ce.item(), rel=1e-5)


@pytest.mark.parametrize("weight_ce", [0, 1])
def test_unlabeled_frames_get_exactly_zero_gradient(weight_ce):
    logits, target = _batch(2)
    SparseFrameLoss(IGNORE, weight_ce=weight_ce)(logits, target).backward()
    labeled = (target[:, 0] != IGNORE).flatten(2).any(2)  # (B, F)
    grad = logits.grad.permute(0, 2, 1, 3, 4)  # (B, F, K, H, W)
    assert torch.count_nonzero(grad[~labeled]) == 0
    assert all(torch.count_nonzero(g) > 0 for g in grad[labeled])


def test_batch_without_labels_gives_zero_loss_and_gradient():
    logits, target = _batch(3, labeled=((), ()))
    loss = SparseFrameLoss(IGNORE)(logits, target)
    loss.backward()
    assert loss.item() == 0 and torch.count_nonzero(logits.grad) == 0


def test_labeled_frames_weigh_equally_whatever_their_batch_item():
    # one labeled frame in item 0, one in item 1: the loss is the mean of both frame losses
    logits, target = _batch(4, labeled=((2,), (7,)))
    only0, only1 = target.clone(), target.clone()
    only0[1] = IGNORE
    only1[0] = IGNORE
    loss = SparseFrameLoss(IGNORE, weight_ce=0)
    mean = (loss(logits, only0).item() + loss(logits, only1).item()) / 2
    assert loss(logits, target).item() == pytest.approx(mean, rel=1e-6)


def test_deep_supervision_weights_match_nnunet():
    w = deep_supervision_weights(4)
    expected = np.array([1, 0.5, 0.25, 0])
    assert np.allclose(w, expected / expected.sum())


def test_downsampled_targets_keep_every_labeled_frame():
    _, target = _batch(5, b=1, f=8, labeled=((1, 5),))
    seg = target[0]  # (1, F, H, W)
    scale = (0.25, 0.5, 0.5)
    ours = downsample_sparse_target(seg, scale, IGNORE)
    assert ours.shape == (1, 2, 6, 6)
    assert ((ours[0] != IGNORE).flatten(1).any(1)).tolist() == [True, True]
    # each low-resolution frame carries its window's labeled frame, downsampled in-plane as nnU-Net does
    inplane = DownsampleSegForDSTransform([(1, 0.5, 0.5)])(segmentation=seg[:, [1, 5]].clone())["segmentation"][0]
    assert torch.equal(ours, inplane)
    stock = DownsampleSegForDSTransform([scale])(segmentation=seg.clone())["segmentation"][0]
    assert not (stock[0] != IGNORE).any()  # nnU-Net keeps frames 2 and 6 (nearest): both labeled frames are lost


def test_downsampling_unlabeled_windows_stay_ignore_and_full_scale_is_identity():
    _, target = _batch(6, b=1, f=8, labeled=((0,),))
    seg = target[0]
    ours = downsample_sparse_target(seg, (0.5, 1, 1), IGNORE)
    assert ((ours[0] != IGNORE).flatten(1).any(1)).tolist() == [True, False, False, False]
    assert torch.equal(downsample_sparse_target(seg, (1, 1, 1), IGNORE), seg)
