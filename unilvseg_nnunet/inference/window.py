"""Whole-video inference along time: every frame computed about once, no window seam.

A temporal configuration's network never strides time and is fully convolutional along it, so it
segments a clip of any length; a super-image network segments every clip a window of any length holds
(:class:`~unilvseg_nnunet.training.superimage.SuperImageNet`). Their plans carry an inference window (``"unilvseg": {"inference":
{"max_frames", "overlap", "margin"}}``, see :func:`unilvseg_nnunet.planning.temporal.with_inference_window`)
and a patch of ``tile_frames`` frames: nnU-Net's sliding window hands a whole video to the network
in one tile, and :class:`VideoWindowNet` does the rest:

- training, and whenever deep supervision is on: the network itself (clips of F frames);
- inference: the frames nnU-Net padded the tile with (exactly 0 after normalisation, at either
  end) are cut off, so the network sees the video and nothing else; its instance norms take, for
  each frame, the statistics of the training clip centred on it (``norm_frames``, the clip length F:
  :mod:`~unilvseg_nnunet.inference.clip_norm`), not those of the whole window; a video of up to
  ``max_frames`` frames is segmented in one pass; a longer one in windows of at most
  ``max_frames`` frames overlapping by at least ``overlap`` frames (:func:`plan_windows`). In each
  overlap the ``margin`` frames next to either window's edge are dropped and the rest is
  cross-faded linearly (:func:`window_weights`), so each frame's prediction is a convex
  combination of predictions made away from window edges, and a frame costs at most
  ``max_frames / (max_frames - overlap)`` network passes;
- a temporal network sees the video with ``mirror`` frames mirrored at either end (frame -k reads as
  frame k; half its training clip, at most ``margin``: :func:`video_window_net`), so that its first and last frames sit
  inside a clip as every other frame does: with the convolutions' zero padding there instead, the
  3D model's area curve bent at a video's ends and ED/ES detection missed the events there
  (BENCHMARKS.md, "mirrored video ends"). Super images keep their edges: mirrored, one benchmark model's
  figures did not move.

Inference passes run under :func:`~unilvseg_nnunet.inference.precision.inference_autocast` (bfloat16 on a
CPU that computes it natively) and return float32 logits.

Padding frames get zero logits (background); a video frame that is exactly 0 everywhere after
normalisation at the very start or end of a video (a featureless frame exactly at the video's
mean grey) is treated the same way.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from unilvseg_nnunet.inference.clip_norm import use_clip_norm
from unilvseg_nnunet.inference.gaussian import use_separable_gaussian
from unilvseg_nnunet.inference.precision import inference_autocast


def plan_windows(n_frames: int, max_frames: int, overlap: int) -> list[tuple[int, int]]:
    """(start, stop) of the windows covering ``n_frames`` frames: one when it fits, else the fewest of
    equal length (at most ``max_frames``) whose neighbours overlap by at least ``overlap`` frames."""
    if n_frames < 1:
        raise ValueError(f"need at least one frame, got {n_frames}")
    if not 0 <= 3 * overlap <= max_frames:  # so that no frame lies in three windows
        raise ValueError(f"need 0 <= 3 * overlap <= max_frames, got overlap {overlap}, max_frames {max_frames}")
    if n_frames <= max_frames:
        return [(0, n_frames)]
    k = math.ceil((n_frames - overlap) / (max_frames - overlap))
    length = math.ceil((n_frames + (k - 1) * overlap) / k)
    starts = [i * (n_frames - length) // (k - 1) for i in range(k)]
    return [(s, s + length) for s in starts]


def window_weights(windows: list[tuple[int, int]], margin: int) -> list[torch.Tensor]:
    """Per window, the weight of each of its frames (float32, summing to 1 over windows for every frame).

    Where windows A and B overlap, A keeps weight 1 until ``margin`` frames after B's start, B takes
    over fully ``margin`` frames before A's end, and the weights ramp linearly in between.
    """
    weights = [torch.ones(stop - start) for start, stop in windows]
    for i in range(len(windows) - 1):
        (a0, a1), (b0, _) = windows[i], windows[i + 1]
        lo, hi = b0 + margin, a1 - margin  # the cross-fade zone, absolute frames
        if hi <= lo:
            raise ValueError(f"windows {windows[i]} and {windows[i + 1]} overlap by {a1 - b0} frames, "
                             f"not more than twice the margin {margin}")
        ramp = (torch.arange(lo, hi, dtype=torch.float32) - lo + 0.5) / (hi - lo)  # B's share, 0..1
        weights[i][lo - a0:hi - a0] = 1 - ramp
        weights[i][hi - a0:] = 0
        weights[i + 1][:lo - b0] = 0
        weights[i + 1][lo - b0:hi - b0] = ramp
    return weights


def content_range(x: torch.Tensor) -> tuple[int, int]:
    """[first, last + 1) of the frames of ``x`` (B, C, T, H, W) that are not exactly 0 everywhere; the
    whole range when every frame is 0."""
    nonzero = torch.nonzero(x.detach().abs().amax(dim=(0, 1, 3, 4)) > 0).flatten().tolist()
    return (nonzero[0], nonzero[-1] + 1) if nonzero else (0, x.shape[2])


def iter_blended(windows: list[tuple[int, int]], margin: int, predict):
    """Yield ``(start, stop, logits)`` over the frames the windows cover, in order, each frame once:
    ``predict(start, stop)`` gives the logits (B, K, stop - start, ...) of one window, and frames that
    windows share get their cross-faded logits (:func:`window_weights`). One window's logits are held
    at a time, plus the overlap still to be blended."""
    carry = None
    for i, ((start, stop), w) in enumerate(zip(windows, window_weights(windows, margin))):
        y = predict(start, stop)
        if len(windows) > 1:
            y = y * w.to(y.device, y.dtype).view(1, 1, -1, *([1] * (y.ndim - 3)))
        if carry is not None:
            y[:, :, :carry.shape[2]] += carry
        final = windows[i + 1][0] - start if i + 1 < len(windows) else stop - start
        yield start, start + final, y[:, :, :final]
        carry = y[:, :, final:]


def mirror_index(n_frames: int, mirror: int) -> torch.Tensor:
    """Frame indices of a video of ``n_frames`` frames with ``mirror`` frames mirrored at either end (at most
    ``n_frames - 1``): ``mirror .. 1, 0 .. n-1, n-2 .. n-1-mirror``."""
    m = max(0, min(int(mirror), n_frames - 1))
    inner = torch.arange(n_frames)
    return torch.cat([inner[1:m + 1].flip(0), inner, inner[n_frames - 1 - m:n_frames - 1].flip(0)])


def iter_video(n_frames: int, mirror: int, plan, margin: int, predict):
    """Yield ``(start, stop, logits)`` over the ``n_frames`` frames of a video, in order, each frame once: the
    video with ``mirror`` frames mirrored at either end (:func:`mirror_index`) is segmented in the windows
    ``plan(length)`` and blended (:func:`iter_blended`); ``predict(index)`` gives the logits of the video frames
    ``index`` (a window's frame indices); the mirrored frames' logits are dropped."""
    index = mirror_index(n_frames, mirror)
    m = (len(index) - n_frames) // 2
    for start, stop, y in iter_blended(plan(len(index)), margin, lambda a, b: predict(index[a:b])):
        a, b = max(start, m), min(stop, m + n_frames)
        if b > a:
            yield a - m, b - m, y[:, :, a - start:b - start]


class VideoWindowNet(nn.Module):
    """A temporal network that segments whole videos at inference (see the module doc).

    The trained network is ``self.net``; training, deep supervision and checkpoints go through it
    unchanged (parameter names start with ``net.``). ``norm_frames`` > 0: its InstanceNorm3d layers become
    :class:`~unilvseg_nnunet.inference.clip_norm.ClipInstanceNorm3d` of that many frames (0: whole-window
    statistics). ``mirror``: frames mirrored at either end of a video (see the module doc).
    """

    def __init__(self, net: nn.Module, max_frames: int, overlap: int, margin: int, norm_frames: int = 0,
                 mirror: int = 0):
        super().__init__()
        if margin < 0 or overlap <= 2 * margin:
            raise ValueError(f"the overlap ({overlap}) must exceed twice the margin ({margin}), which must be >= 0")
        if norm_frames < 0 or mirror < 0:
            raise ValueError(f"norm_frames and mirror must be >= 0, got {norm_frames} and {mirror}")
        plan_windows(max_frames + 1, max_frames, overlap)  # validates max_frames and overlap
        self.net = use_clip_norm(net, norm_frames) if norm_frames else net
        self.max_frames, self.overlap, self.margin, self.mirror = int(max_frames), int(overlap), int(margin), int(mirror)

    @property
    def decoder(self):
        """The inner decoder, so nnU-Net's ``set_deep_supervision_enabled`` works unchanged."""
        return self.net.decoder

    def windows(self, n_frames: int) -> list[tuple[int, int]]:
        """The windows of a sequence of ``n_frames`` frames (a video with its mirrored frames)."""
        return plan_windows(n_frames, self.max_frames, self.overlap)

    def segments(self, n_frames: int, predict):
        """:func:`iter_video` of a video of ``n_frames`` frames with this network's windows and mirror."""
        return iter_video(n_frames, self.mirror, self.windows, self.margin, predict)

    def forward(self, x: torch.Tensor):
        if self.training or getattr(self.net.decoder, "deep_supervision", False):
            return self.net(x)
        with inference_autocast(x.device):
            lo, hi = content_range(x)
            out = None
            for start, stop, y in self.segments(hi - lo, lambda index: self.net(x[:, :, lo + index.to(x.device)]).float()):
                if out is None:
                    out = y.new_zeros((*y.shape[:2], x.shape[2], *y.shape[3:]))
                out[:, :, lo + start:lo + stop] = y
            return out


def video_window_net(net: nn.Module, settings: dict | None) -> nn.Module:
    """``net`` in a :class:`VideoWindowNet` when its configuration's "unilvseg" entry (``settings``) has an
    inference window, else ``net`` itself (plans made before the window existed, which nnU-Net's sliding window
    tiles). The window's "norm_frames" defaults to the training clip's length ("frames"), also for plans written
    before it existed. A temporal network mirrors half a training clip at a video's ends (an end frame then sits at a
    clip's centre), at most the window's margin (the reach the windows give an edge: 4 frames at F = 8, 8 at F = 32);
    a super image none."""
    window = (settings or {}).get("inference")
    if not window:
        return net
    use_separable_gaussian()  # the 1,024-frame tile's Gaussian in 0.3 s instead of 6 s
    mirror = 0 if settings.get("layout") == "superimage" else min(int(settings["frames"]) // 2, int(window["margin"]))
    return VideoWindowNet(net, **{"norm_frames": int(settings["frames"]), "mirror": mirror, **window})
