"""Temporal masking: exactly the requested share of frames is zeroed, the rest untouched; the transform
makes the unmasked clip the target."""
import pytest
import torch

from unilvseg_nnunet.training.masking import TemporalMaskingTransform, mask_frames, masked_frame_count


@pytest.mark.parametrize("frames,ratio,expected", [(32, 0.6, 19), (16, 0.6, 10), (8, 0.4, 3), (32, 0.8, 26), (2, 0.6, 1)])
def test_masked_frame_count(frames, ratio, expected):
    assert masked_frame_count(frames, ratio) == expected


def test_mask_frames_zeroes_exactly_the_masked_frames():
    clip = torch.rand(2, 32, 8, 8) + 1
    g = torch.Generator().manual_seed(0)
    seen = torch.zeros(32)
    for _ in range(200):
        masked, mask = mask_frames(clip, 0.6, g)
        assert mask.sum() == 19
        assert (masked[:, mask] == 0).all() and torch.equal(masked[:, ~mask], clip[:, ~mask])
        seen += mask
    assert (seen > 0).all()  # every frame gets masked sometimes (uniform choice)
    assert clip.min() >= 1  # the input is not modified


def test_transform_targets_the_clean_clip():
    clip = torch.rand(1, 16, 8, 8) + 1
    out = TemporalMaskingTransform(0.6)(image=clip.clone(), segmentation=torch.zeros(1, 16, 8, 8))
    assert torch.equal(out["segmentation"], clip)
    zeroed = (out["image"] == 0).flatten(2).all(2)[0]
    assert zeroed.sum() == 10


@pytest.mark.parametrize("ratio", [0, 1, 1.5, -0.1])
def test_bad_ratio(ratio):
    with pytest.raises(ValueError, match="mask ratio"):
        TemporalMaskingTransform(ratio)
