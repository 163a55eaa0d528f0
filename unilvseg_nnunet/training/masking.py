"""Self-supervised temporal masking (paper §II-A): zero a random share of the frames of a clip.

The masked frames are set to 0 in the network's input space (nnU-Net's z-score normalised
intensities), i.e. a frame that carries no information; the target is the unmasked clip.
"""
from __future__ import annotations

import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform


def masked_frame_count(frames: int, ratio: float) -> int:
    """How many of ``frames`` frames a ``ratio`` masks: rounded, at least one, at most all but one."""
    if not 0 < ratio < 1:
        raise ValueError(f"mask ratio must be in (0, 1), got {ratio}")
    return min(max(round(ratio * frames), 1), frames - 1) if frames > 1 else 1


def random_frame_mask(frames: int, ratio: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Boolean ``(frames,)``: exactly :func:`masked_frame_count` frames True, chosen uniformly."""
    mask = torch.zeros(frames, dtype=torch.bool)
    mask[torch.randperm(frames, generator=generator)[:masked_frame_count(frames, ratio)]] = True
    return mask


def mask_frames(clip: torch.Tensor, ratio: float, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy of ``clip`` (C, F, H, W) with a random ``ratio`` of its frames zeroed, and the frame mask."""
    mask = random_frame_mask(clip.shape[1], ratio, generator)
    out = clip.clone()
    out[:, mask] = 0
    return out, mask


class TemporalMaskingTransform(BasicTransform):
    """Last transform of a self-supervised pipeline: target = the clip, image = the masked clip."""

    def __init__(self, ratio: float):
        super().__init__()
        masked_frame_count(2, ratio)  # validates the ratio
        self.ratio = ratio

    def apply(self, data_dict: dict, **params) -> dict:
        data_dict["segmentation"] = data_dict["image"].clone()
        data_dict["image"], _ = mask_frames(data_dict["image"], self.ratio)
        return data_dict

    def __repr__(self):
        return f"{type(self).__name__}(ratio={self.ratio})"
