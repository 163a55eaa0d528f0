"""Temporal masking: exactly the requested share of frames is set to black (the clip's raw 0, not z-scored
mean grey), the rest untouched; the target is the clean clip; masks differ between nnU-Net's data workers."""
import os
import time

import numpy as np
import pytest
import torch
from batchgenerators.dataloading.data_loader import SlimDataLoaderBase
from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
from batchgeneratorsv2.transforms.intensity.gaussian_noise import GaussianNoiseTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms

from unilvseg_nnunet.training import masking
from unilvseg_nnunet.training.masking import CleanTargetTransform, TemporalMaskingTransform


@pytest.mark.parametrize("frames,ratio,expected",
                         [(32, 0.6, 19), (16, 0.6, 10), (8, 0.4, 3), (32, 0.8, 26), (2, 0.6, 1)])
def test_masked_frame_count(frames, ratio, expected):
    assert masking.masked_frame_count(frames, ratio) == expected


def test_mask_frames_blackens_exactly_the_masked_frames():
    clip = torch.rand(2, 32, 8, 8) + 1
    rng = np.random.default_rng(0)
    seen = torch.zeros(32)
    for _ in range(200):
        masked, mask = masking.mask_frames(clip, 0.6, rng)
        assert mask.sum() == 19
        assert torch.equal(masked[:, mask], masking.black_level(clip).expand(2, 19, 8, 8))
        assert torch.equal(masked[:, ~mask], clip[:, ~mask])
        seen += mask
    assert (seen > 0).all()  # every frame gets masked sometimes (uniform choice)
    assert clip.min() >= 1  # the input is not modified


def _zscored_echo_clip(frames: int = 16) -> torch.Tensor:
    """A z-scored-like echo clip: black border (-1.3) around a bright sector; the last two frames are
    out-of-video padding (0)."""
    clip = torch.full((1, frames, 12, 12), -1.3)
    clip[:, :, 3:9, 3:9] = torch.linspace(0.2, 2.0, frames)[:, None, None]
    clip[:, -2:] = 0.0
    return clip


def test_masked_frames_are_black_not_mean_grey():
    """Black is the z-scored raw 0 (the clip's minimum), not 0 (mean grey, the value of out-of-video padding)."""
    clip = _zscored_echo_clip()
    out = TemporalMaskingTransform(0.6, seed=0)(image=clip.clone(), segmentation=torch.zeros(1, 16, 12, 12))
    masked = (out["image"] == -1.3).flatten(2).all(2)[0]  # uniformly black frames (no unmasked frame is)
    assert masked.sum() == 10 and masked[-2:].any()  # padding frames get masked too (to black)
    assert torch.equal(out["image"][:, ~masked], clip[:, ~masked])


def test_target_is_the_clean_clip_kept_before_intensity_augmentation():
    clip = _zscored_echo_clip()
    pipeline = ComposeTransforms([CleanTargetTransform(), GaussianNoiseTransform(noise_variance=(0.1, 0.1)),
                                  TemporalMaskingTransform(0.6)])
    out = pipeline(image=clip.clone(), segmentation=torch.zeros(1, 16, 12, 12))
    assert torch.equal(out["segmentation"], clip) and "regression_target" not in out
    unmasked = ~(out["image"] == -1.3).flatten(2).all(2)[0]
    assert unmasked.sum() == 6 and not torch.equal(out["image"][:, unmasked], clip[:, unmasked])  # the input is noisy
    alone = TemporalMaskingTransform(0.6)(image=clip.clone(), segmentation=None)  # without CleanTargetTransform
    assert torch.equal(alone["segmentation"], clip)


def test_seeded_transform_draws_fixed_masks():
    clip = _zscored_echo_clip()
    a = [TemporalMaskingTransform(0.6, seed=3)(image=clip.clone())["image"] for _ in range(2)]
    assert torch.equal(a[0], a[1])


class _MaskingLoader(SlimDataLoaderBase):
    """Draws one masked 32-frame clip per batch inside the worker, as nnU-Net's loaders apply their transforms."""

    def __init__(self):
        super().__init__(None, 1, None)
        clip = torch.ones(1, 32, 2, 2)
        clip[:, :, 0, 0] = 0  # black border
        self.clip, self.transform = clip, TemporalMaskingTransform(0.6)

    def generate_train_batch(self):
        time.sleep(0.05)  # as slow as loading a case: every worker contributes batches
        image = self.transform(image=self.clip.clone())["image"]
        return {"masked": tuple((image[0].flatten(1).amax(1) == 0).tolist()), "worker": os.getpid()}


def test_data_workers_draw_different_masks():
    """nnU-Net's augmenter (seeds None, as the trainers use it) forks workers with the parent's torch generator:
    masks drawn from it would repeat in every worker."""
    torch.manual_seed(0)
    augmenter = NonDetMultiThreadedAugmenter(_MaskingLoader(), None, 4, 2, None, False, 0.002)
    try:
        batches = [next(augmenter) for _ in range(16)]
    finally:
        augmenter._finish()
    masks = [b["masked"] for b in batches]
    assert len({b["worker"] for b in batches}) >= 3 and all(sum(m) == 19 for m in masks)
    assert len(set(masks)) == len(masks)


@pytest.mark.parametrize("ratio", [0, 1, 1.5, -0.1])
def test_bad_ratio(ratio):
    with pytest.raises(ValueError, match="mask ratio"):
        TemporalMaskingTransform(ratio)
