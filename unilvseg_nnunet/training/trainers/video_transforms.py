"""Video augmentation for (C, F, H, W) clips: nnU-Net's transforms, applied so that time is never mixed with space.

- spatial (rotation about the viewing axis, scaling) and Gaussian blur run on the frames folded
  into channels (nnU-Net's "dummy 2D" trick), so every frame gets the same in-plane transform;
- an in-plane translation shared by every frame of the clip, up to ``TRANSLATION`` of the patch
  per axis (the paper pads 112-pixel frames to 124 and crops 112 at random: up to 6 pixels);
- intensity transforms see the clip as one channel volume, so their parameters are shared by all
  frames; low-resolution simulation leaves the time axis alone;
- mirroring only in-plane; nothing reverses, shuffles or resamples time;
- frames without labels stay entirely ``ignore`` (nnU-Net's border padding -1 would otherwise
  turn their corners into labeled background), and deep-supervision targets keep every labeled
  frame (:func:`unilvseg_nnunet.training.losses.downsample_sparse_target`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform, SegOnlyTransform
from batchgeneratorsv2.transforms.intensity.brightness import MultiplicativeBrightnessTransform
from batchgeneratorsv2.transforms.intensity.contrast import BGContrast, ContrastTransform
from batchgeneratorsv2.transforms.intensity.gamma import GammaTransform
from batchgeneratorsv2.transforms.intensity.gaussian_noise import GaussianNoiseTransform
from batchgeneratorsv2.transforms.noise.gaussian_blur import GaussianBlurTransform
from batchgeneratorsv2.transforms.spatial.low_resolution import SimulateLowResolutionTransform
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.nnunet_masking import MaskImageTransform
from batchgeneratorsv2.transforms.utils.pseudo2d import Convert2DTo3DTransform, Convert3DTo2DTransform
from batchgeneratorsv2.transforms.utils.random import RandomTransform
from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTansform

from unilvseg_nnunet.training.losses import downsample_sparse_target

BORDER = -1  # nnU-Net's label for voxels outside the image (becomes background)
TRANSLATION = 6 / 112  # largest in-plane shift, as a share of the patch (the paper's pad-to-124, crop-112)


class InPlaneTranslationTransform(BasicTransform):
    """Shift every frame of a (C, F, H, W) clip by one random in-plane offset, up to ``max_shift`` pixels per axis.

    Image and regression target are filled with 0 (nnU-Net's padding value), labels with
    :data:`BORDER`. Offsets come from NumPy's global generator, which batchgenerators reseeds in
    every worker process (torch's is not reseeded, so every worker would draw the same offsets).
    """

    def __init__(self, max_shift: Sequence[int]):
        super().__init__()
        self.max_shift = [int(m) for m in max_shift]

    def get_parameters(self, **data_dict) -> dict:
        return {"shift": [int(np.random.randint(-m, m + 1)) for m in self.max_shift]}

    @staticmethod
    def _shift(x: torch.Tensor, shift: Sequence[int], fill) -> torch.Tensor:
        out = torch.full_like(x, fill)
        dst, src = [slice(None)] * (x.ndim - 2), [slice(None)] * (x.ndim - 2)
        for d, size in zip(shift, x.shape[-2:]):
            dst.append(slice(max(d, 0), size + min(d, 0)))
            src.append(slice(max(-d, 0), size - max(d, 0)))
        out[tuple(dst)] = x[tuple(src)]
        return out

    def _apply_to_image(self, img: torch.Tensor, **params) -> torch.Tensor:
        return self._shift(img, params["shift"], 0)

    def _apply_to_regr_target(self, regression_target: torch.Tensor, **params) -> torch.Tensor:
        return self._shift(regression_target, params["shift"], 0)

    def _apply_to_segmentation(self, segmentation: torch.Tensor, **params) -> torch.Tensor:
        return self._shift(segmentation, params["shift"], BORDER)


class KeepUnlabeledFramesIgnoredTransform(SegOnlyTransform):
    """Frames holding nothing but ``ignore`` and border padding become all ``ignore`` again."""

    def __init__(self, ignore_label: int):
        super().__init__()
        self.ignore_label = ignore_label

    def _apply_to_segmentation(self, segmentation: torch.Tensor, **params) -> torch.Tensor:
        unlabeled = ((segmentation == self.ignore_label) | (segmentation == BORDER)).flatten(2).all(2).all(0)
        segmentation[:, unlabeled] = self.ignore_label
        return segmentation


class SparseDeepSupervisionTransform(SegOnlyTransform):
    """nnU-Net's DownsampleSegForDSTransform, but keeping every labeled frame at every scale."""

    def __init__(self, ds_scales: Sequence[Sequence[float]], ignore_label: int):
        super().__init__()
        self.ds_scales, self.ignore_label = ds_scales, ignore_label

    def _apply_to_segmentation(self, segmentation: torch.Tensor, **params) -> list[torch.Tensor]:
        return [downsample_sparse_target(segmentation, s, self.ignore_label) for s in self.ds_scales]


def _label_tail(ds_scales, ignore_label: int) -> list[BasicTransform]:
    tail = [KeepUnlabeledFramesIgnoredTransform(ignore_label), RemoveLabelTansform(BORDER, 0)]
    if ds_scales is not None:
        tail.append(SparseDeepSupervisionTransform(ds_scales, ignore_label))
    return tail


def video_training_transforms(patch_size: Sequence[int], rotation, mirror_axes: Sequence[int], ds_scales,
                              ignore_label: int, use_mask_for_norm: Sequence[bool] | None = None,
                              tail: Sequence[BasicTransform] = ()) -> ComposeTransforms:
    """nnU-Net's default training augmentation made video-safe (see module docstring).

    ``patch_size`` is the clip (F, H, W); ``mirror_axes`` index (time, H, W) and must not contain 0;
    ``tail`` is appended last (e.g. temporal masking for self-supervision).
    """
    if mirror_axes and 0 in mirror_axes:
        raise ValueError("mirroring along time (axis 0) would reverse the video")
    t = [
        Convert3DTo2DTransform(),
        SpatialTransform(patch_size[1:], patch_center_dist_from_border=0, random_crop=False, p_elastic_deform=0,
                         p_rotation=0.2, rotation=rotation, p_scaling=0.2, scaling=(0.7, 1.4),
                         p_synchronize_scaling_across_axes=1, bg_style_seg_sampling=False,
                         border_mode_seg="constant", padding_value_seg=BORDER),
        RandomTransform(GaussianBlurTransform(blur_sigma=(0.5, 1.0), synchronize_channels=True, synchronize_axes=False,
                                              p_per_channel=1, benchmark=True), apply_probability=0.2),
        Convert2DTo3DTransform(),
        InPlaneTranslationTransform([round(TRANSLATION * s) for s in patch_size[1:]]),
        RandomTransform(GaussianNoiseTransform(noise_variance=(0, 0.1), p_per_channel=1, synchronize_channels=True),
                        apply_probability=0.1),
        RandomTransform(MultiplicativeBrightnessTransform(multiplier_range=BGContrast((0.75, 1.25)),
                                                          synchronize_channels=False, p_per_channel=1),
                        apply_probability=0.15),
        RandomTransform(ContrastTransform(contrast_range=BGContrast((0.75, 1.25)), preserve_range=True,
                                          synchronize_channels=False, p_per_channel=1), apply_probability=0.15),
        RandomTransform(SimulateLowResolutionTransform(scale=(0.5, 1), synchronize_channels=False,
                                                       synchronize_axes=True, ignore_axes=(0,), allowed_channels=None,
                                                       p_per_channel=0.5),
                        apply_probability=0.25),
        RandomTransform(GammaTransform(gamma=BGContrast((0.7, 1.5)), p_invert_image=1, synchronize_channels=False,
                                       p_per_channel=1, p_retain_stats=1), apply_probability=0.1),
        RandomTransform(GammaTransform(gamma=BGContrast((0.7, 1.5)), p_invert_image=0, synchronize_channels=False,
                                       p_per_channel=1, p_retain_stats=1), apply_probability=0.3),
    ]
    if mirror_axes:
        t.append(MirrorTransform(allowed_axes=tuple(mirror_axes)))
    if use_mask_for_norm is not None and any(use_mask_for_norm):
        t.append(MaskImageTransform(apply_to_channels=[i for i, m in enumerate(use_mask_for_norm) if m],
                                    channel_idx_in_seg=0, set_outside_to=0))
    return ComposeTransforms(t + _label_tail(ds_scales, ignore_label) + list(tail))


def video_validation_transforms(ds_scales, ignore_label: int, tail: Sequence[BasicTransform] = ()) -> ComposeTransforms:
    """No augmentation; label clean-up and deep-supervision targets as in training."""
    return ComposeTransforms(_label_tail(ds_scales, ignore_label) + list(tail))
