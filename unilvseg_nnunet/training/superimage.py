"""Super-image (SI) segmentation inside nnU-Net: F frames tiled into a sqrt(F) x sqrt(F) grid, one 2D network.

:class:`SuperImageNet` is a 5D-in/5D-out network that nnU-Net builds from the plans like any
other (``pydoc.locate`` of ``network_class_name`` with ``input_channels``, ``num_classes`` and
the ``arch_kwargs``), so ``nnUNetv2_train``/``nnUNetv2_predict`` work unchanged. Given exactly F
frames (a training clip drawn at stride T) it runs a single super image, so training costs what
the paper's does. Given a window of D > F consecutive frames (inference) it segments every clip
of F frames at stride T that fits in the window (one per start frame) and averages, for each frame,
the outputs of all clips that hold it. Neighbouring frames are thus treated alike: with one clip per
sub-clip phase frames t and t+1 came from different super images, at different grid positions, and
the area curve jittered at fps/T; with every clip, each frame more than (F-1)*T frames from the
window's ends is predicted at all F grid positions, and the output is the same function of the video
at every such frame (shifted in time). Planned configurations hand it whole videos
(:class:`~unilvseg_nnunet.inference.window.VideoWindowNet`, windows of
:func:`~unilvseg_nnunet.planning.superimage.inference_window`): about one super image per frame, and no
seam where nnU-Net's sliding window would blend tiles. A window shorter than F*T frames (a very short video)
is padded with zero frames. The passes run under
:func:`~unilvseg_nnunet.inference.precision.inference_autocast`. Configurations
planned now standardise each frame before tiling (``frame_norm``, see :func:`standardize_frames`):
without it a near-blank frame stays dark inside the super image and is segmented as empty.

:func:`superimage_configuration` adds such a configuration to a dataset's plans; the 2D network
(nnU-Net's U-Net by default, or an encoder of :mod:`unilvseg_nnunet.training.encoders`) and the batch size
are planned by nnU-Net's own 2D planning on the super-image size.
"""
from __future__ import annotations

import math
import pydoc
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unilvseg_nnunet.inference.precision import inference_autocast

NETWORK_CLASS = "unilvseg_nnunet.training.superimage.SuperImageNet"


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


def clip_indices(window: int, frames: int, period: int) -> torch.Tensor:
    """(U, F) frame indices of every clip of ``frames`` frames at stride ``period`` inside ``window`` frames
    (one clip per start frame); every frame is in at least one clip when ``window >= frames * period``."""
    span = (frames - 1) * period + 1
    return torch.arange(max(window - span + 1, 0))[:, None] + period * torch.arange(frames)[None]


def standardize_frames(clips: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """(N, C, F, H, W) -> each frame and channel shifted and scaled to mean 0, SD 1 over its own pixels.

    The instance norms of a 2D network see a whole super image, so a frame that is much darker or
    brighter than the others of its clip (a near-blank frame, a gain change) stays so inside the
    network, where a frame-wise network's first instance norm would undo its gain; standardising each
    tile first gives the super image that invariance. A constant frame becomes 0. (``eps`` is added to the SD,
    not to the variance as in ``F.instance_norm``, so a frame at 5 % of its gain is scaled like the others.)"""
    mean = clips.mean((-2, -1), keepdim=True)
    std = clips.std((-2, -1), keepdim=True, unbiased=False)
    return (clips - mean) / (std + eps)


def build_2d_network(input_channels: int, num_classes: int, encoder: str, **kwargs) -> nn.Module:
    """The 2D network of a super-image configuration.

    ``encoder="unet"``: the class ``net_class`` (nnU-Net's planned PlainConvUNet or ResidualEncoderUNet)
    with the planner's arch kwargs, initialised like nnU-Net does. Otherwise an
    :class:`~unilvseg_nnunet.training.encoders.EncoderUNet` (kwargs ``img_size``, ``decoder_channels``).
    """
    if encoder == "unet":
        net_class = kwargs.pop("net_class")
        net_class = pydoc.locate(net_class) if isinstance(net_class, str) else net_class
        net = net_class(input_channels=input_channels, num_classes=num_classes, deep_supervision=False, **kwargs)
        if hasattr(net, "initialize"):
            net.apply(net.initialize)
        return net
    from unilvseg_nnunet.training.encoders import EncoderUNet

    return EncoderUNet(input_channels, num_classes, encoder=encoder, **kwargs)


def _divisor(net: nn.Module) -> tuple[int, int]:
    """Input sides the 2D network accepts must be multiples of this (its total stride)."""
    if hasattr(net, "divisor"):
        return net.divisor, net.divisor
    strides = np.array([np.broadcast_to(s, 2) for s in net.encoder.strides])
    return tuple(int(v) for v in strides.prod(axis=0))


class SuperImageNet(nn.Module):
    """Video wrapper: (B, C, D, H, W) -> (B, K, D, H, W) with D = F (one clip, training) or any other D (a window).

    For a window, every clip of F frames at stride T (``period``) inside it is segmented as a super
    image by the 2D network ``self.net`` (in passes of at most ``clips_per_pass`` super images) and
    each frame's output is the mean over the clips that hold it (see the module docstring). Super
    images are zero-padded at the bottom/right to the network's total stride and cropped back.
    Deep supervision is not supported (there is no per-frame low-resolution output for every
    level); nnU-Net's switch ``network.decoder.deep_supervision`` reaches the 2D network's decoder
    and must stay False.
    """

    clips_per_pass = 16  # bounds memory at inference; outputs do not depend on it

    def __init__(self, input_channels: int, num_classes: int, frames: int, period: int = 1, encoder: str = "unet",
                 deep_supervision: bool = False, frame_norm: bool = False, **net_kwargs):
        super().__init__()
        if deep_supervision:
            raise ValueError("super-image networks have no deep supervision: train them with a trainer that sets "
                             "enable_deep_supervision = False (e.g. SuperImageTrainer)")
        grid_side(frames)
        self.frames, self.period, self.encoder_name = int(frames), int(period), encoder
        self.frame_norm = bool(frame_norm)
        self.net = build_2d_network(input_channels, num_classes, encoder, **net_kwargs)
        self.divisor = _divisor(self.net)

    @property
    def decoder(self) -> nn.Module:
        """The 2D network's decoder (where nnU-Net's trainer toggles ``deep_supervision``)."""
        return self.net.decoder

    def extra_repr(self) -> str:
        return f"frames={self.frames}, period={self.period}, encoder={self.encoder_name!r}, frame_norm={self.frame_norm}"

    def segment_clips(self, clips: torch.Tensor) -> torch.Tensor:
        """(N, C, F, H, W) clips -> (N, K, F, H, W), each clip one super image of the 2D network."""
        h, w = clips.shape[3:]
        g = grid_side(self.frames)
        images = tile(standardize_frames(clips) if self.frame_norm else clips)
        pad_h, pad_w = (-images.shape[2]) % self.divisor[0], (-images.shape[3]) % self.divisor[1]
        out = self.net(F.pad(images, (0, pad_w, 0, pad_h)) if pad_h or pad_w else images)
        return untile(out[:, :, :g * h, :g * w], self.frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[2] < 1:
            raise ValueError(f"SuperImageNet(frames={self.frames}, period={self.period}) needs input (B, C, D, H, W) "
                             f"with D = {self.frames} (one clip) or another number of frames (a window), "
                             f"got {tuple(x.shape)}")
        window, span = x.shape[2], self.frames * self.period
        if window != self.frames and window < span:  # too short for one clip at stride T: zero frames after it
            return self.forward(F.pad(x, (0, 0, 0, 0, 0, span - window)))[:, :, :window]
        if getattr(self.net.decoder, "deep_supervision", False):
            raise RuntimeError("deep supervision was switched on for a super-image network; use a trainer with "
                               "enable_deep_supervision = False (e.g. SuperImageTrainer)")
        if window == self.frames:
            return self.segment_clips(x)
        batch = x.shape[0]
        index = clip_indices(window, self.frames, self.period).to(x.device)
        out = None
        for rows in index.split(max(1, self.clips_per_pass // batch)):
            with inference_autocast(x.device) if not self.training else nullcontext():
                y = self.segment_clips(x[:, :, rows].transpose(1, 2).flatten(0, 1)).float()  # (B*U, K, F, H, W)
            y = y.unflatten(0, (batch, -1)).transpose(1, 2).flatten(2, 3)  # (B, K, U*F, H, W), frames as in rows
            if out is None:
                out = y.new_zeros((batch, y.shape[1], window, *y.shape[3:]))
            out.index_add_(2, rows.flatten(), y)
        return out / torch.bincount(index.flatten(), minlength=window).to(out.dtype).view(1, 1, -1, 1, 1)
