"""Segmentation metrics on (frames, H, W) masks: per-frame Dice, pooled and mean DSC, video-level
bootstrap confidence intervals, and the 95th-percentile Hausdorff distance. Plain numpy/scipy.

Definitions (pinned by tests/test_metrics.py):

* per-frame Dice = 2|A∩B| / (|A|+|B|); 1.0 when both masks are empty.
* pooled DSC = 2·ΣI / Σ(|A|+|B|) over all frames of a set (the paper's and EchoNet-Dynamic's
  "overall" DSC); mean DSC = the mean of the per-frame Dice values.
* confidence interval: percentile bootstrap that resamples VIDEOS with replacement (frames of
  one video are not independent), 2.5th and 97.5th percentiles = a 95% interval. (The authors'
  release takes the 5th/95th percentiles, a 90% interval, and calls it 95%.) Both DSCs are
  ratios of per-video sums, so one resample-count matrix serves every statistic.
* HD95 (per frame, pixels): the 95th percentile of the pooled symmetric boundary-to-boundary
  distances (MedPy's ``hd95``). Both masks empty -> 0.0; exactly one empty -> NaN (undefined;
  aggregates skip NaN and report how many frames had it).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

CI_LEVEL = 0.95


def frame_overlap(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame intersection, predicted area and reference area (pixel counts) of (F, H, W) masks."""
    pred = np.asarray(pred).astype(bool, copy=False)
    ref = np.asarray(ref).astype(bool, copy=False)
    if pred.shape != ref.shape:
        raise ValueError(f"shape mismatch: prediction {pred.shape} vs reference {ref.shape}")
    shape = (pred.shape[0], int(np.prod(pred.shape[1:])))  # explicit: also for zero frames
    inter = np.logical_and(pred, ref).reshape(shape).sum(1)
    return inter, pred.reshape(shape).sum(1), ref.reshape(shape).sum(1)


def dice_from_counts(inter, area_pred, area_ref) -> np.ndarray:
    """Dice per element from counts; 1.0 where both areas are zero."""
    inter = np.asarray(inter, float)
    denom = np.asarray(area_pred, float) + np.asarray(area_ref, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2.0 * inter / np.where(denom > 0, denom, 1.0), 1.0)


def dice_per_frame(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Dice of every frame of (F, H, W) masks."""
    return dice_from_counts(*frame_overlap(pred, ref))


def pooled_dsc(inter, area_pred, area_ref) -> float:
    """2·ΣI / Σ(|A|+|B|) over all given frames (1.0 if every mask is empty)."""
    return float(dice_from_counts(np.sum(inter), np.sum(area_pred), np.sum(area_ref)))


def bootstrap_ratio_ci(numerators: np.ndarray, denominators: np.ndarray, n_boot: int = 10_000,
                       seed: int = 0, level: float = CI_LEVEL, chunk: int = 2_000) -> np.ndarray:
    """Percentile-bootstrap CIs of ratios of per-video sums, resampling videos.

    ``numerators``/``denominators``: (S, N) per-video sums for S statistics over N videos (a
    statistic is Σ num / Σ den over the resampled videos). The same resamples serve every
    statistic. Returns (S, 2) [low, high] at the ``(1-level)/2`` and ``(1+level)/2`` quantiles.
    Vectorised: a (chunk, N) resample-count matrix times the per-video sums.
    """
    num = np.atleast_2d(np.asarray(numerators, float))
    den = np.atleast_2d(np.asarray(denominators, float))
    if num.shape != den.shape:
        raise ValueError(f"numerators {num.shape} and denominators {den.shape} differ")
    n = num.shape[1]
    if n == 0:
        return np.full((num.shape[0], 2), np.nan)
    rng = np.random.default_rng(seed)
    stats = np.empty((num.shape[0], n_boot))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        counts = np.bincount((idx + (np.arange(b) * n)[:, None]).ravel(), minlength=b * n).reshape(b, n).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            stats[:, start:start + b] = (num @ counts.T) / (den @ counts.T)
    alpha = (1.0 - level) / 2.0
    return np.nanquantile(stats, [alpha, 1.0 - alpha], axis=1).T


def dsc_summary(per_video: dict[str, np.ndarray], n_boot: int = 10_000, seed: int = 0) -> dict:
    """Pooled and mean DSC with bootstrap 95% CIs for one frame set.

    ``per_video``: arrays over videos of ``inter``, ``size`` (Σ|A|+|B|), ``dice_sum`` (Σ per-frame
    Dice) and ``n_frames``; videos with no frame in the set are dropped.
    """
    keep = np.asarray(per_video["n_frames"]) > 0
    inter, size, dsum, nf = (np.asarray(per_video[k], float)[keep] for k in ("inter", "size", "dice_sum", "n_frames"))
    ci = bootstrap_ratio_ci(np.stack([2 * inter, dsum]), np.stack([size, nf]), n_boot=n_boot, seed=seed)
    pooled = float(dice_from_counts(inter.sum(), size.sum(), 0.0)) if keep.any() else float("nan")
    mean = float(dsum.sum() / nf.sum()) if keep.any() else float("nan")
    return {
        "pooled_dsc": pooled, "pooled_dsc_ci95": [float(ci[0, 0]), float(ci[0, 1])],
        "mean_dsc": mean, "mean_dsc_ci95": [float(ci[1, 0]), float(ci[1, 1])],
        "n_videos": int(keep.sum()), "n_frames": int(nf.sum()),
    }


def _boundary(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), border_value=0)


def hd95(pred: np.ndarray, ref: np.ndarray, spacing=(1.0, 1.0)) -> float:
    """95th-percentile symmetric Hausdorff distance between two 2D masks (see module doc)."""
    pred = np.asarray(pred, bool)
    ref = np.asarray(ref, bool)
    if not pred.any() and not ref.any():
        return 0.0
    if not pred.any() or not ref.any():
        return float("nan")
    bp, br = _boundary(pred), _boundary(ref)
    d_to_ref = ndimage.distance_transform_edt(~br, sampling=spacing)
    d_to_pred = ndimage.distance_transform_edt(~bp, sampling=spacing)
    return float(np.percentile(np.concatenate([d_to_ref[bp], d_to_pred[br]]), 95))
