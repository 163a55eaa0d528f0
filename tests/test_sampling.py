"""Clip positions: a labeled frame is always inside a training clip and at the centre of a validation
clip, the period is respected, padding only where the video is shorter than the clip; the nnU-Net
data loader built on it pads with ignore labels."""
import numpy as np
import pytest
import torch
from nnunetv2.utilities.label_handling.label_handling import LabelManager

from unilvseg_nnunet.data.dataset import IGNORE
from unilvseg_nnunet.training.sampling import clip_frames, clip_span, window_start
from unilvseg_nnunet.training.trainers.clip_loader import SparseClipDataLoader


def _cases(rng, n=400):
    for _ in range(n):
        frames, period = int(rng.integers(2, 33)), int(rng.integers(1, 6))
        num = int(rng.integers(1, 200))
        labeled = np.sort(rng.choice(num, size=min(num, int(rng.integers(1, 3))), replace=False))
        yield num, labeled, frames, period


def test_training_clip_contains_a_labeled_frame_at_the_period():
    rng = np.random.default_rng(0)
    for num, labeled, frames, period in _cases(rng):
        t = clip_frames(num, labeled, frames, period, "train", rng)
        assert len(t) == frames and np.all(np.diff(t) == period)
        assert np.isin(labeled, t).any(), (num, labeled, frames, period, t)
        inside = (t >= 0) & (t < num)
        if num >= clip_span(frames, period) + period - 1:  # some in-video start is aligned with the labeled frame
            assert inside.all()


def test_training_clip_holds_both_labeled_frames_when_they_fit():
    rng = np.random.default_rng(5)
    for _ in range(300):
        frames, period = int(rng.integers(4, 33)), int(rng.integers(1, 4))
        num = clip_span(frames, period) + int(rng.integers(0, 100))
        ed = int(rng.integers(0, num - clip_span(frames, period) + 1))
        es = ed + period * int(rng.integers(1, frames))  # on the clip's stride, within one clip span
        t = clip_frames(num, [ed, es], frames, period, "train", rng)
        assert {ed, es} <= set(t.tolist()) and t.min() >= 0 and t.max() < num, (num, ed, es, frames, period, t)
    positions = {int(np.flatnonzero(clip_frames(300, [100, 120], 32, 1, "train", rng) == 100)[0]) for _ in range(300)}
    assert positions == set(range(12))  # the pair's place in the clip still varies over every place that holds both
    t = clip_frames(100, [10, 60], 16, 1, "train", rng)  # too far apart: one of them, as before
    assert len({10, 60} & set(t.tolist())) == 1


def test_stretched_clip_holds_both_labeled_frames_at_the_smallest_stride_that_can():
    rng = np.random.default_rng(6)
    for gap, stride in [(5, 1), (8, 2), (9, 3), (10, 2), (12, 2), (15, 3), (21, 3)]:
        for _ in range(20):
            t = clip_frames(120, [40, 40 + gap], 8, 1, "train", rng, stretch=3)
            assert {40, 40 + gap} <= set(t.tolist()) and np.all(np.diff(t) == stride), (gap, t)
    for gap in (11, 16, 22):  # no stride up to 3 holds both in 8 frames: one of them, at the period
        t = clip_frames(120, [40, 40 + gap], 8, 1, "train", rng, stretch=3)
        assert len({40, 40 + gap} & set(t.tolist())) == 1 and np.all(np.diff(t) == 1)
    t = clip_frames(120, [40, 48], 8, 2, "train", rng, stretch=2)  # multiples of the period: 2 or 4
    assert {40, 48} <= set(t.tolist()) and np.all(np.diff(t) == 2)
    t = clip_frames(120, [40, 56], 8, 2, "train", rng, stretch=2)
    assert {40, 56} <= set(t.tolist()) and np.all(np.diff(t) == 4)
    t = clip_frames(120, [40, 48], 8, 1, "val", rng, stretch=3)  # validation keeps the period, labeled frame centred
    assert t[4] in (40, 48) and np.all(np.diff(t) == 1)
    t = clip_frames(20, [2, 16], 8, 1, "train", rng, stretch=3)  # a stride that would leave the video is not taken
    assert t.min() >= 0 and t.max() < 20


def test_short_video_is_wholly_inside_when_the_stride_allows():
    rng = np.random.default_rng(1)
    for _ in range(50):
        t = clip_frames(28, [3, 20], 32, 1, "train", rng)
        assert set(range(28)) <= set(t.tolist()) and {3, 20} & set(t.tolist())


def test_validation_clip_has_the_labeled_frame_at_the_centre():
    rng = np.random.default_rng(2)
    for num, labeled, frames, period in _cases(rng):
        t = clip_frames(num, labeled, frames, period, "val", rng)
        assert t[frames // 2] in labeled and np.all(np.diff(t) == period)


def test_training_positions_vary_and_cover_the_clip():
    rng = np.random.default_rng(3)
    positions = {int(np.flatnonzero(clip_frames(300, [150], 16, 2, "train", rng) == 150)[0]) for _ in range(500)}
    assert positions == set(range(16))


def test_clips_without_labels_stay_inside_or_centre_the_padding():
    rng = np.random.default_rng(4)
    for _ in range(100):
        t = clip_frames(100, [], 16, 3, "train", rng)
        assert t.min() >= 0 and t.max() < 100
    t = clip_frames(10, None, 16, 1, "val", rng)
    assert t[0] == -3 and t[-1] == 12  # the 10 frames in the middle, 3 padded frames before, 3 after


def test_bad_arguments_have_clear_messages():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="mode"):
        clip_frames(10, [1], 4, 1, "test", rng)
    with pytest.raises(ValueError, match="stretch"):
        clip_frames(10, [1], 4, 1, "train", rng, stretch=0)
    with pytest.raises(ValueError, match="outside a video"):
        clip_frames(10, [12], 4, 1, "train", rng)
    with pytest.raises(ValueError, match="period"):
        clip_frames(10, [1], 4, 0, "train", rng)


def test_window_start_follows_nnunet_bounds():
    rng = np.random.default_rng(0)
    starts = {window_start(112, 160, 48, "train", rng) for _ in range(500)}
    assert min(starts) == -24 and max(starts) == -24  # a window 48 larger than the image: centred
    starts = {window_start(200, 112, 0, "train", rng) for _ in range(2000)}
    assert min(starts) == 0 and max(starts) == 88
    assert window_start(200, 112, 0, "val", rng) == 44


class _Dataset:
    """Two videos in nnU-Net's (C, F, H, W) layout: one labeled at frame 4, one shorter than the clip."""

    identifiers = ["long", "short"]

    def __init__(self):
        self.cases = {}
        for key, frames in (("long", 30), ("short", 5)):
            img = np.broadcast_to(np.arange(frames, dtype=np.float32)[None, :, None, None], (1, frames, 16, 16)).copy()
            seg = np.full((1, frames, 16, 16), IGNORE, np.int16)
            seg[0, 4] = 0
            seg[0, 4, 4:12, 4:12] = 1
            self.cases[key] = (img, seg)

    def load_case(self, key):
        img, seg = self.cases[key]
        return img, seg, None, {}


def test_loader_pads_short_videos_with_ignore_and_keeps_the_labeled_frame():
    lm = LabelManager({"background": 0, "LV": 1, "ignore": IGNORE}, regions_class_order=None)
    loader = SparseClipDataLoader(_Dataset(), 4, (8, 16, 16), (8, 16, 16), lm, period=1, mode="val")
    for key in ("long", "short"):
        _, img, seg = loader.load_clip(key)
        assert img.shape == (1, 8, 16, 16) and seg.shape == (1, 8, 16, 16)
        labeled = np.flatnonzero((seg[0] != IGNORE).flatten(1).any(1).numpy())
        assert labeled.tolist() == [4]  # the labeled frame sits at the centre (8 // 2)
        assert torch.equal(seg[0, 4], torch.from_numpy(_Dataset().cases[key][1][0, 4]))
    _, img, seg = loader.load_clip("short")  # frames 0..4 of the video at clip positions 0..4, rest padding
    assert torch.equal(img[0, :, 0, 0], torch.tensor([0, 1, 2, 3, 4, 0, 0, 0], dtype=torch.float32))
    assert (seg[0, 5:] == IGNORE).all()
    batch = loader.generate_train_batch()
    assert batch["data"].shape == (4, 1, 8, 16, 16) and batch["target"].shape == (4, 1, 8, 16, 16)


def test_stretched_training_loader_reads_both_labeled_frames_at_the_wider_stride():
    lm = LabelManager({"background": 0, "LV": 1, "ignore": IGNORE}, regions_class_order=None)
    data = _Dataset()
    img, seg = data.cases["long"]
    seg[0, 14] = 0
    seg[0, 14, 6:10, 6:10] = 1  # ED at 4, ES at 14: 10 frames apart, more than an 8-frame clip at stride 1 holds
    data.identifiers = ["long"]
    for stretch, holds_both in ((1, False), (2, True)):
        loader = SparseClipDataLoader(data, 2, (8, 16, 16), (8, 16, 16), lm, period=1, mode="train", stretch=stretch)
        for _ in range(10):
            _, clip, labels = loader.load_clip("long")
            frames = clip[0, :, 0, 0].numpy()  # each frame's pixels hold its index in the video
            labeled = set(frames[(labels[0] != IGNORE).flatten(1).any(1).numpy()].tolist())
            assert np.all(np.diff(frames) == (2 if holds_both else 1))
            assert labeled == {4, 14} if holds_both else len(labeled) == 1 and labeled <= {4, 14}
