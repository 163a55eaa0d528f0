"""Where a training or validation clip lies in a video: pure functions, no I/O.

A clip is ``frames`` frames taken every ``period`` frames, so it spans ``(frames - 1) * period + 1``
frames of the video. Frame indices outside ``[0, num_frames)`` are padding (videos shorter than the
span); the data loader fills them with zeros and marks their labels as ignore.

- training (paper §II-B): a labeled frame is drawn, then its position inside the clip is drawn
  uniformly among the positions that keep the most of the clip inside the video and, among those,
  hold the most labeled frames: a clip holding both ED and ES doubles the supervision of an
  iteration. With ``stretch`` S > 1 the stride may also be 2T ... ST (the clip then shows the heart
  beating up to S times faster, a heart-rate augmentation), so that short clips still hold both:
  the paper's 32-frame clips usually hold ED and ES, the 8 frames a CPU trains on rarely do at T=1;
- validation: the labeled frame sits at the centre of the clip (index ``frames // 2``);
- without labeled frames (self-supervision, unlabeled videos): a uniform random clip (training)
  or the centred clip (validation).
"""
from __future__ import annotations

import numpy as np

MODES = ("train", "val")


def clip_span(frames: int, period: int) -> int:
    """Number of video frames a clip of ``frames`` frames at stride ``period`` covers."""
    if frames < 1 or period < 1:
        raise ValueError(f"frames and period must be >= 1, got frames={frames}, period={period}")
    return (frames - 1) * period + 1


def clip_frames(num_frames: int, labeled, frames: int, period: int, mode: str,
                rng: np.random.Generator, stretch: int = 1) -> np.ndarray:
    """Video frame indices (length ``frames``, increasing by ``period``) of one clip.

    ``labeled``: indices of labeled frames (empty or None: draw without labels). Indices may fall
    outside the video when it is shorter than the clip span; they never do otherwise. ``stretch``:
    largest multiple of ``period`` a training clip around labeled frames may step by (see above).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if num_frames < 1:
        raise ValueError(f"a video needs at least one frame, got {num_frames}")
    if stretch < 1:
        raise ValueError(f"stretch must be >= 1, got {stretch}")
    span = clip_span(frames, period)
    offsets = np.arange(frames) * period
    labeled = np.asarray([] if labeled is None else labeled, dtype=int)
    if labeled.size and (labeled.min() < 0 or labeled.max() >= num_frames):
        raise ValueError(f"labeled frames {labeled.tolist()} outside a video of {num_frames} frames")

    if labeled.size == 0:
        lo, hi = min(0, num_frames - span), max(0, num_frames - span)  # pad both sides evenly when short
        start = rng.integers(lo, hi + 1) if mode == "train" else (lo + hi) // 2
        return start + offsets

    anchor = int(rng.choice(labeled))
    if mode == "val":
        return anchor - (frames // 2) * period + offsets
    steps = np.arange(1, stretch + 1)[:, None] * np.arange(frames)  # (stride multiple, position): offset / period
    clips = anchor + period * (steps[:, None, :] - steps[..., None]).reshape(-1, frames)  # the anchor at each position
    n_inside = ((clips >= 0) & (clips < num_frames)).sum(1)
    rank = n_inside * (frames + 1) + np.isin(clips, labeled).sum(1)  # most inside first, then most labeled
    best = np.flatnonzero(rank == rank.max())
    best = best[best // frames == best.min() // frames]  # then the smallest stride: stretch only to gain a frame
    return clips[rng.choice(best)]


def window_start(size: int, window: int, extra_pad: int, mode: str, rng: np.random.Generator,
                 centre: int | None = None) -> int:
    """Start of a ``window`` along one in-plane axis of length ``size``, nnU-Net's rule.

    As in nnU-Net's data loader, the window may extend ``extra_pad`` voxels beyond the image (more
    when the image is smaller than the window); training draws uniformly, validation centres it.
    ``centre``: a foreground pixel the window is centred on as far as that range allows (nnU-Net's
    foreground oversampling, for frames larger than the patch).
    """
    need = max(extra_pad, window - size)
    lo = -(need // 2)
    hi = size + need // 2 + need % 2 - window
    if centre is not None:
        return int(np.clip(centre - window // 2, lo, hi))
    return int(rng.integers(lo, hi + 1)) if mode == "train" else (lo + hi) // 2


def foreground_pixel(seg: np.ndarray, ignore_label: int, rng: np.random.Generator) -> tuple[int, int] | None:
    """(row, column) of a random pixel of a random structure (a label other than 0 and ``ignore_label``) present
    in the (frames, H, W) labels ``seg``, each present structure equally likely (as nnU-Net samples classes);
    None when there is none."""
    present = [c for c in np.unique(seg) if c > 0 and c != ignore_label]
    if not present:
        return None
    pixels = np.argwhere(seg == rng.choice(present))
    return tuple(int(i) for i in pixels[rng.integers(len(pixels))][1:])
