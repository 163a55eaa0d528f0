"""Metric definitions pinned against hand-computed values on tiny arrays."""
import math

import numpy as np
import pytest

from unilvseg_nnunet.evaluation import metrics


def _frames():
    """Two 4x4 frames: frame 0 A=4 px, B=2 px, overlap 2; frame 1 A=1 px, B=3 px, overlap 1."""
    a = np.zeros((2, 4, 4), np.uint8)
    b = np.zeros((2, 4, 4), np.uint8)
    a[0, :2, :2] = 1
    b[0, 0, :2] = 1
    a[1, 3, 3] = 1
    b[1, 3, 1:] = 1
    return a, b


def test_dice_per_frame_and_pooled_by_hand():
    a, b = _frames()
    inter, ap, ar = metrics.frame_overlap(a, b)
    assert inter.tolist() == [2, 1] and ap.tolist() == [4, 1] and ar.tolist() == [2, 3]
    np.testing.assert_allclose(metrics.dice_per_frame(a, b), [4 / 6, 2 / 4])
    # pooled: 2*(2+1) / (6+4) = 0.6, not the mean of the frame Dices (0.5833)
    assert metrics.pooled_dsc(inter, ap, ar) == pytest.approx(0.6)


def test_dice_empty_frames_and_shape_mismatch():
    z = np.zeros((1, 3, 3))
    assert metrics.dice_per_frame(z, z).tolist() == [1.0]
    one = z.copy()
    one[0, 1, 1] = 1
    assert metrics.dice_per_frame(one, z).tolist() == [0.0]
    with pytest.raises(ValueError, match="shape mismatch"):
        metrics.frame_overlap(z, np.zeros((2, 3, 3)))
    # a video without any labeled frame (an UNLABELED case of imagesTr) gives empty counts, not an error
    assert [a.shape for a in metrics.frame_overlap(np.zeros((0, 3, 3)), np.zeros((0, 3, 3)))] == [(0,)] * 3


def test_bootstrap_reproducible_contains_estimate_and_is_95_percent():
    rng = np.random.default_rng(1)
    n = 200
    inter = rng.integers(700, 900, n).astype(float)
    size = 2 * inter + rng.integers(20, 200, n)
    nf = np.full(n, 2.0)
    dsum = 2 * 2 * inter / size
    per_video = {"inter": inter, "size": size, "dice_sum": dsum, "n_frames": nf}
    s1 = metrics.dsc_summary(per_video, n_boot=10_000, seed=3)
    s2 = metrics.dsc_summary(per_video, n_boot=10_000, seed=3)
    assert s1 == s2
    assert s1["pooled_dsc"] == pytest.approx(2 * inter.sum() / size.sum())
    lo, hi = s1["pooled_dsc_ci95"]
    assert lo < s1["pooled_dsc"] < hi
    lo, hi = s1["mean_dsc_ci95"]
    assert lo < s1["mean_dsc"] < hi
    # a different seed moves the interval a little; a 90% interval is strictly inside the 95% one
    s3 = metrics.dsc_summary(per_video, n_boot=10_000, seed=4)
    assert s3["pooled_dsc_ci95"] != s1["pooled_dsc_ci95"]
    ci90 = metrics.bootstrap_ratio_ci(2 * inter, size, n_boot=10_000, seed=3, level=0.90)[0]
    ci95 = metrics.bootstrap_ratio_ci(2 * inter, size, n_boot=10_000, seed=3)[0]
    assert ci95[0] < ci90[0] < ci90[1] < ci95[1]
    assert ci95.tolist() == pytest.approx(s1["pooled_dsc_ci95"])


def test_bootstrap_resamples_videos_not_frames():
    # two videos: one perfect with many frames' pixels, one poor; every resample is a ratio of
    # video sums, so the bootstrap distribution has only 3 distinct values (0/1/2 copies of the first).
    num = np.array([[100.0, 10.0]])
    den = np.array([[100.0, 100.0]])
    ci = metrics.bootstrap_ratio_ci(num, den, n_boot=2_000, seed=0)[0]
    allowed = {0.1, 110 / 200, 1.0}
    assert all(min(abs(c - a) for a in allowed) < 1e-12 for c in ci)
    assert ci[0] == pytest.approx(0.1) and ci[1] == pytest.approx(1.0)


def test_dsc_summary_drops_videos_without_frames():
    per_video = {"inter": np.array([5, 0]), "size": np.array([10, 0]), "dice_sum": np.array([1.0, 0]),
                 "n_frames": np.array([1, 0])}
    s = metrics.dsc_summary(per_video, n_boot=100, seed=0)
    assert s["n_videos"] == 1 and s["pooled_dsc"] == 1.0 and s["pooled_dsc_ci95"] == [1.0, 1.0]


def test_hd95_by_hand():
    a = np.zeros((20, 20), bool)
    a[5:10, 5:10] = True
    b = np.zeros_like(a)
    b[5:10, 8:13] = True  # same square shifted by 3 columns
    # boundary distances: every boundary pixel is at most 3 px from the other boundary
    h = metrics.hd95(a, b)
    assert 0 < h <= 3.0
    assert metrics.hd95(a, a) == 0.0
    assert metrics.hd95(np.zeros_like(a), np.zeros_like(a)) == 0.0
    assert math.isnan(metrics.hd95(a, np.zeros_like(a)))
    # single-pixel masks 5 apart: all distances are 5
    p = np.zeros_like(a)
    q = np.zeros_like(a)
    p[2, 2] = q[2, 7] = True
    assert metrics.hd95(p, q) == pytest.approx(5.0)
    assert metrics.hd95(p, q, spacing=(1.0, 0.5)) == pytest.approx(2.5)
