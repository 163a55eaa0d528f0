"""Self-supervised temporal masking (paper §II-A): blank a random share of the frames of a clip.

- Masked frames are black, as in the paper (pixel value 0) and as a dropped frame of a real video:
  the intensity of raw 0 after the case's normalisation. The preprocessed data do not keep the
  normalisation's parameters, so black is estimated as the clean clip's minimum (per channel):
  echo frames have black borders outside the imaging sector, so every clip shows raw 0. (0 in
  nnU-Net's z-scored space would be mean grey, the value of the padding beyond a video's ends.)
- The target is the clean clip: geometrically augmented like the input, but without the intensity
  augmentation (noise, blur, brightness, contrast, gamma, low resolution), which no network can
  reconstruct. :class:`CleanTargetTransform`, first in the pipeline, copies the clip into
  batchgenerators' ``regression_target``, which the spatial transforms and mirroring move with the
  image while image-only (intensity) transforms leave it alone; :class:`TemporalMaskingTransform`,
  last, masks the image and makes that copy the target.
- Masks are drawn from NumPy's global generator, which batchgenerators reseeds in every worker
  process; torch's generator is not reseeded there, so with it every worker drew the same masks.
"""
from __future__ import annotations

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform

CLEAN = "regression_target"  # batchgenerators' key for a target that follows the image geometrically only


def masked_frame_count(frames: int, ratio: float) -> int:
    """How many of ``frames`` frames a ``ratio`` masks: rounded, at least one, at most all but one."""
    if not 0 < ratio < 1:
        raise ValueError(f"mask ratio must be in (0, 1), got {ratio}")
    return min(max(round(ratio * frames), 1), frames - 1) if frames > 1 else 1


def random_frame_mask(frames: int, ratio: float, rng: np.random.Generator | None = None) -> torch.Tensor:
    """Boolean ``(frames,)``: exactly :func:`masked_frame_count` frames True, chosen uniformly by ``rng``
    (default: NumPy's global generator)."""
    mask = torch.zeros(frames, dtype=torch.bool)
    mask[torch.from_numpy((rng or np.random).permutation(frames)[:masked_frame_count(frames, ratio)])] = True
    return mask


def black_level(clip: torch.Tensor) -> torch.Tensor:
    """Black of a (C, F, H, W) clip, shape (C, 1, 1, 1): its minimum per channel (see module docstring)."""
    return clip.flatten(1).amin(1).reshape(-1, 1, 1, 1)


def mask_frames(clip: torch.Tensor, ratio: float, rng: np.random.Generator | None = None,
                black: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy of ``clip`` (C, F, H, W) with a random ``ratio`` of its frames set to ``black`` (default:
    :func:`black_level` of ``clip``), and the boolean frame mask."""
    mask = random_frame_mask(clip.shape[1], ratio, rng)
    out = clip.clone()
    out[:, mask] = black_level(clip) if black is None else black
    return out, mask


class CleanTargetTransform(BasicTransform):
    """First transform of a self-supervised pipeline: keeps a copy of the clip as ``regression_target``."""

    def apply(self, data_dict: dict, **params) -> dict:
        data_dict[CLEAN] = data_dict["image"].clone()
        return data_dict


class TemporalMaskingTransform(BasicTransform):
    """Last transform of a self-supervised pipeline: image = the masked clip, target ("segmentation") =
    the clean clip kept by :class:`CleanTargetTransform` (the image itself when there is none).

    ``seed``: draw masks from a generator of its own (fixed masks, e.g. for validation) instead of
    NumPy's global one.
    """

    def __init__(self, ratio: float, seed: int | None = None):
        super().__init__()
        masked_frame_count(2, ratio)  # validates the ratio
        self.ratio, self.seed = ratio, seed
        self.rng = None if seed is None else np.random.default_rng(seed)

    def apply(self, data_dict: dict, **params) -> dict:
        clean = data_dict.pop(CLEAN, None)
        target = data_dict["image"].clone() if clean is None else clean
        data_dict["image"], _ = mask_frames(data_dict["image"], self.ratio, self.rng, black_level(target))
        data_dict["segmentation"] = target
        return data_dict

    def __repr__(self):
        return f"{type(self).__name__}(ratio={self.ratio}, seed={self.seed})"
