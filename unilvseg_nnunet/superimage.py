"""Super-image (SI) segmentation inside nnU-Net: F frames tiled into a sqrt(F) x sqrt(F) grid, one 2D network.

:class:`SuperImageNet` is a 5D-in/5D-out network that nnU-Net builds from the plans like any
other (``pydoc.locate`` of ``network_class_name`` with ``input_channels``, ``num_classes`` and
the ``arch_kwargs``), so ``nnUNetv2_train``/``nnUNetv2_predict`` work unchanged on a
configuration whose patch is (F*T, H, W): the clip is split into T interleaved sub-clips (frames
t, t+T, ...), each is tiled into a super image, segmented by the 2D network, untiled and the
sub-clips re-interleaved. Given exactly F frames (a training clip drawn at stride T) it runs a
single super image, so training costs what the paper's does.

:func:`superimage_configuration` adds such a configuration to a dataset's plans; the 2D network
(nnU-Net's U-Net by default, or an encoder of :mod:`unilvseg_nnunet.encoders`) and the batch size
are planned by nnU-Net's own 2D planning on the super-image size.
"""
from __future__ import annotations

import math
import pydoc
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NETWORK_CLASS = "unilvseg_nnunet.superimage.SuperImageNet"


def grid_side(frames: int) -> int:
    """sqrt(frames); frames must be a perfect square (the paper's grid layout)."""
    side = math.isqrt(frames)
    if frames < 1 or side * side != frames:
        raise ValueError(f"super images need a square number of frames (4, 9, 16, 25, ...), got {frames}")
    return side


def tile(x: torch.Tensor) -> torch.Tensor:
    """(B, C, F, H, W) -> (B, C, sqrt(F)*H, sqrt(F)*W); frame f goes to grid row f // sqrt(F), column f % sqrt(F)."""
    b, c, f, h, w = x.shape
    g = grid_side(f)
    return x.reshape(b, c, g, g, h, w).permute(0, 1, 2, 4, 3, 5).reshape(b, c, g * h, g * w)


def untile(y: torch.Tensor, frames: int) -> torch.Tensor:
    """Inverse of :func:`tile`: (B, C, sqrt(F)*H, sqrt(F)*W) -> (B, C, F, H, W)."""
    b, c, gh, gw = y.shape
    g = grid_side(frames)
    if gh % g or gw % g:
        raise ValueError(f"super image {gh}x{gw} is not a {g}x{g} grid of equal frames")
    h, w = gh // g, gw // g
    return y.reshape(b, c, g, h, g, w).permute(0, 1, 2, 4, 3, 5).reshape(b, c, frames, h, w)


def split_subclips(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, C, S*F, H, W) -> (B*S, C, F, H, W): sub-clip s holds frames s, s+S, s+2S, ... (S = D // F)."""
    b, c, d, h, w = x.shape
    s = d // frames
    return x.reshape(b, c, frames, s, h, w).permute(0, 3, 1, 2, 4, 5).reshape(b * s, c, frames, h, w)


def merge_subclips(y: torch.Tensor, batch: int) -> torch.Tensor:
    """Inverse of :func:`split_subclips`: (B*S, K, F, H, W) -> (B, K, S*F, H, W)."""
    bs, k, f, h, w = y.shape
    s = bs // batch
    return y.reshape(batch, s, k, f, h, w).permute(0, 2, 3, 1, 4, 5).reshape(batch, k, f * s, h, w)


def build_2d_network(input_channels: int, num_classes: int, encoder: str, **kwargs) -> nn.Module:
    """The 2D network of a super-image configuration.

    ``encoder="unet"``: the class ``net_class`` (nnU-Net's planned PlainConvUNet or ResidualEncoderUNet)
    with the planner's arch kwargs, initialised like nnU-Net does. Otherwise an
    :class:`~unilvseg_nnunet.encoders.EncoderUNet` (kwargs ``img_size``, ``decoder_channels``).
    """
    if encoder == "unet":
        net_class = kwargs.pop("net_class")
        net_class = pydoc.locate(net_class) if isinstance(net_class, str) else net_class
        net = net_class(input_channels=input_channels, num_classes=num_classes, deep_supervision=False, **kwargs)
        if hasattr(net, "initialize"):
            net.apply(net.initialize)
        return net
    from .encoders import EncoderUNet

    return EncoderUNet(input_channels, num_classes, encoder=encoder, **kwargs)


def _divisor(net: nn.Module) -> tuple[int, int]:
    """Input sides the 2D network accepts must be multiples of this (its total stride)."""
    if hasattr(net, "divisor"):
        return net.divisor, net.divisor
    strides = np.array([np.broadcast_to(s, 2) for s in net.encoder.strides])
    return tuple(int(v) for v in strides.prod(axis=0))


class SuperImageNet(nn.Module):
    """Video wrapper: (B, C, D, H, W) -> (B, K, D, H, W) with D a multiple of ``frames``.

    The D // frames interleaved sub-clips are segmented as super images in one batch of the 2D
    network ``self.net``; each output frame depends only on the frames of its own sub-clip (in
    eval mode). Super images are zero-padded at the bottom/right to the network's total stride
    and cropped back. ``period`` (T) is the configuration's sampling period: a patch of F*T frames
    gives T sub-clips. Deep supervision is not supported (there is no per-frame low-resolution
    output for every level); nnU-Net's switch ``network.decoder.deep_supervision`` reaches the 2D
    network's decoder and must stay False.
    """

    def __init__(self, input_channels: int, num_classes: int, frames: int, period: int = 1, encoder: str = "unet",
                 deep_supervision: bool = False, **net_kwargs):
        super().__init__()
        if deep_supervision:
            raise ValueError("super-image networks have no deep supervision: train them with a trainer that sets "
                             "enable_deep_supervision = False (e.g. SuperImageTrainer)")
        grid_side(frames)
        self.frames, self.period, self.encoder_name = int(frames), int(period), encoder
        self.net = build_2d_network(input_channels, num_classes, encoder, **net_kwargs)
        self.divisor = _divisor(self.net)

    @property
    def decoder(self) -> nn.Module:
        """The 2D network's decoder (where nnU-Net's trainer toggles ``deep_supervision``)."""
        return self.net.decoder

    def extra_repr(self) -> str:
        return f"frames={self.frames}, period={self.period}, encoder={self.encoder_name!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[2] % self.frames:
            raise ValueError(f"SuperImageNet(frames={self.frames}) needs input (B, C, D, H, W) with D a multiple of "
                             f"{self.frames} (e.g. F*T = {self.frames * self.period}), got {tuple(x.shape)}")
        if getattr(self.net.decoder, "deep_supervision", False):
            raise RuntimeError("deep supervision was switched on for a super-image network; use a trainer with "
                               "enable_deep_supervision = False (e.g. SuperImageTrainer)")
        batch, h, w = x.shape[0], x.shape[3], x.shape[4]
        g = grid_side(self.frames)
        images = tile(split_subclips(x, self.frames))
        pad_h, pad_w = (-images.shape[2]) % self.divisor[0], (-images.shape[3]) % self.divisor[1]
        out = self.net(F.pad(images, (0, pad_w, 0, pad_h)) if pad_h or pad_w else images)
        return merge_subclips(untile(out[:, :, :g * h, :g * w], self.frames), batch)


def configuration_name(frames: int, period: int, encoder: str = "unet") -> str:
    """"si_f{F}t{T}", plus "_{encoder}" for an encoder other than nnU-Net's planned U-Net."""
    return f"si_f{frames}t{period}" + ("" if encoder == "unet" else f"_{encoder}")


def superimage_configuration(plans: dict, fingerprint: dict | None = None, base: str = "3d_fullres", frames: int = 16,
                             period: int = 5, encoder: str = "unet", encoder_weights: str | None = None,
                             gpu_memory_gb: float | None = None, planner=None) -> tuple[str, dict]:
    """Plan a super-image configuration for ``plans`` (the dict of nnUNetPlans.json); returns (name, config).

    The config ``"inherits_from": base`` (its preprocessed 3D data is reused), has patch
    (F*T, H, W) with (H, W) the median frame size, and a ``"unilvseg"`` key read by our
    trainers. The 2D U-Net topology (or, for another encoder, just the batch size) comes from
    the dataset's own nnU-Net planner (the class recorded in the plans, e.g. ExperimentPlanner or
    a ResEnc planner) planning a 2D configuration of median size sqrt(F)*H x sqrt(F)*W. The
    super image is never cut: if the planner's VRAM rule would shrink the 2D patch below it, its
    topology and batch size are kept and a warning says so. ``planner``: an already constructed
    planner (default: the plans' planner class for ``plans["dataset_name"]``, which needs
    nnUNet_raw/nnUNet_preprocessed); ``fingerprint`` replaces the planner's dataset fingerprint.
    ``encoder_weights``: optional local ImageNet checkpoint the SI trainer loads into the encoder.
    ``gpu_memory_gb``: the planner's VRAM target (default: the planner's own, 8 GB for nnU-Net's).
    """
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    g = grid_side(frames)
    if period < 1:
        raise ValueError(f"sampling period must be >= 1, got {period}")
    if encoder != "unet":
        from .encoders import ENCODERS

        if encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {encoder!r}; choose 'unet' or one of {sorted(ENCODERS)}")
    if encoder_weights is not None:
        if encoder == "unet":
            raise ValueError("encoder_weights are for the pretrained-style encoders, not nnU-Net's planned U-Net")
        encoder_weights = Path(encoder_weights).resolve()
        if not encoder_weights.is_file():
            raise FileNotFoundError(f"{encoder_weights}: encoder weights file not found")
    manager = PlansManager(plans)
    if base not in plans["configurations"]:
        raise ValueError(f"plans of {plans.get('dataset_name')} have no {base!r} configuration to build on "
                         f"(have {list(plans['configurations'])}); run nnUNetv2_plan_and_preprocess -c {base} first")
    base_cfg = manager.get_configuration(base)
    if len(base_cfg.patch_size) != 3:
        raise ValueError(f"base configuration {base!r} is not 3D (patch {base_cfg.patch_size})")
    h, w = (int(round(v)) for v in base_cfg.median_image_size_in_voxels[1:])  # whole frames, whatever the base patch
    if planner is None:
        planner = manager.experiment_planner_class(plans["dataset_name"], plans_name=plans["plans_name"])
    if fingerprint is not None:
        planner.dataset_fingerprint = fingerprint
    if gpu_memory_gb is not None:
        planner.UNet_vram_target_GB = float(gpu_memory_gb)
    si_size = (g * h, g * w)
    n_voxels = float(np.prod(base_cfg.median_image_size_in_voxels, dtype=np.float64) * planner.dataset_json["numTraining"])
    plan_2d = planner.get_plans_for_configuration(base_cfg.spacing[1:], si_size, f"{plans['plans_name']}_{base}", n_voxels, {})
    patch_2d = [int(v) for v in plan_2d["patch_size"]]
    if any(p < s for p, s in zip(patch_2d, si_size)):
        warnings.warn(f"nnU-Net's 2D planning would shrink the patch to {patch_2d} below the super image {list(si_size)} "
                      f"(VRAM target {planner.UNet_vram_target_GB} GB); the whole super image is used anyway")
    arch_2d = plan_2d["architecture"]
    if encoder == "unet":
        arch_kwargs = {"frames": frames, "period": period, "encoder": encoder,
                       "net_class": arch_2d["network_class_name"], **arch_2d["arch_kwargs"]}
        requires_import = list(arch_2d["_kw_requires_import"])
    else:
        arch_kwargs = {"frames": frames, "period": period, "encoder": encoder, "img_size": max(si_size)}
        requires_import = []
    config = {
        "inherits_from": base,
        "patch_size": [frames * period, h, w],
        "batch_size": int(plan_2d["batch_size"]),
        "batch_dice": True,  # as nnU-Net's own 2d configuration
        "architecture": {"network_class_name": NETWORK_CLASS, "arch_kwargs": arch_kwargs,
                         "_kw_requires_import": requires_import},
        "unilvseg": {"frames": frames, "period": period, "encoder": encoder, "layout": "superimage",
                     "super_image_size": list(si_size), "planned_2d_patch_size": patch_2d,
                     "gpu_memory_gb": planner.UNet_vram_target_GB, "planner": type(planner).__name__,
                     "encoder_weights": None if encoder_weights is None else str(encoder_weights)},
    }
    from nnunetv2.utilities.json_export import recursive_fix_for_json_export

    recursive_fix_for_json_export(config)
    return configuration_name(frames, period, encoder), config
