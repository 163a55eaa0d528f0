"""Clinical read-outs on shapes and curves whose answers are known analytically."""
import math

import numpy as np
import pytest
from skimage.draw import ellipse

from unilvseg_nnunet.data.echonet import tracing_mask, volume_by_disks
from unilvseg_nnunet.evaluation import cardiac


def ellipse_mask(a, b, rotation=0.0, shape=(112, 112), centre=(56, 56)):
    """Filled ellipse with semi-axes a (along rows before rotation) and b."""
    m = np.zeros(shape, np.uint8)
    r, c = ellipse(centre[0], centre[1], a, b, shape, rotation=rotation)
    m[r, c] = 1
    return m


@pytest.mark.parametrize("a,b,rot", [(40, 20, 0.0), (40, 20, 0.7), (30, 12, -1.2), (25, 18, 2.0)])
def test_disk_volume_of_ellipse_matches_prolate_spheroid(a, b, rot):
    # an ellipse rotated about its long axis is a prolate spheroid: V = 4/3 pi a b^2
    v = cardiac.mask_volume(ellipse_mask(a, b, rot))
    assert v == pytest.approx(4 / 3 * math.pi * a * b * b, rel=0.03)


def test_long_axis_found_from_mask():
    x1, y1, x2, y2 = cardiac.disks_from_mask(ellipse_mask(40, 15, rotation=0.0))
    assert len(x1) == cardiac.N_DISKS + 1
    # rotation 0: long axis along rows (y), length ~ 2a; chords horizontal
    assert abs(x2[0] - x1[0]) < 1.0 and abs(y2[0] - y1[0]) == pytest.approx(80, abs=1.5)
    np.testing.assert_allclose(y1[1:], y2[1:], atol=1e-6)
    assert np.max(np.hypot(x2[1:] - x1[1:], y2[1:] - y1[1:])) == pytest.approx(30, abs=1.5)
    assert cardiac.disks_from_mask(np.zeros((10, 10))) is None
    assert cardiac.mask_volume(np.zeros((10, 10))) == 0.0


def test_ef_of_phantom_shapes_with_known_volume_ratio():
    # ED ellipse (a=40, b=20) and ES ellipse (a=34, b=14): true EF = 1 - (34*14^2)/(40*20^2)
    true_ef = 100 * (1 - (34 * 14**2) / (40 * 20**2))
    ef = cardiac.ef_from_volumes(cardiac.mask_volume(ellipse_mask(40, 20, 0.3)), cardiac.mask_volume(ellipse_mask(34, 14, 0.4)))
    assert ef == pytest.approx(true_ef, abs=1.5)
    assert math.isnan(cardiac.ef_from_volumes(0.0, 0.0))


def test_mask_volume_agrees_with_tracing_volume():
    # an EchoNet-style tracing of an ellipse: the disk volume from its rasterised mask ~ the tracing's
    a, b, cy, cx = 38.0, 17.0, 56.0, 56.0
    pos = -a + (np.arange(20) + 0.5) * 2 * a / 20
    half = b * np.sqrt(1 - (pos / a) ** 2)
    x1 = np.concatenate([[cx], cx - half])
    x2 = np.concatenate([[cx], cx + half])
    y1 = np.concatenate([[cy - a], cy + pos])
    y2 = np.concatenate([[cy + a], cy + pos])
    v_trace = volume_by_disks(x1, y1, x2, y2)
    v_mask = cardiac.mask_volume(tracing_mask(x1, y1, x2, y2, (112, 112)))
    assert v_mask == pytest.approx(v_trace, rel=0.05)


def test_largest_component_and_holes():
    m = ellipse_mask(30, 15)
    m[50:53, 50:53] = 0  # hole
    noisy = m.copy()
    noisy[2:4, 2:4] = 1  # speck
    assert cardiac.mask_volume(noisy) == pytest.approx(cardiac.mask_volume(ellipse_mask(30, 15)), rel=1e-6)


def _area_curve(fps=50.0, seconds=4.0, hr_bpm=72.0, noise=0.0, seed=0):
    """Synthetic area curve: asymmetric beat (fast ejection, slow filling) + white noise."""
    t = np.arange(int(seconds * fps)) / fps
    phase = (t * hr_bpm / 60.0) % 1.0
    # systole 35% of the cycle: area falls ED -> ES, then refills
    shape = np.where(phase < 0.35, 0.5 * (1 + np.cos(np.pi * phase / 0.35)),
                     0.5 * (1 - np.cos(np.pi * (phase - 0.35) / 0.65)))
    area = 1200 + 600 * shape
    return area + np.random.default_rng(seed).normal(0, noise, len(t)), t, phase


def test_ed_es_detection_on_synthetic_curve():
    fps, hr = 50.0, 72.0
    area, t, _ = _area_curve(fps, 4.0, hr, noise=15.0)
    ed, es = cardiac.detect_ed_es(area, fps)
    period = fps * 60 / hr  # 41.67 frames
    true_ed = np.arange(0, len(area), period)[1:]  # the peak at t=0 sits on the border: not a peak
    true_es = np.arange(0.35 * period, len(area), period)
    assert len(ed) == len(true_ed) and len(es) == len(true_es)
    assert np.max(np.abs(ed - true_ed[: len(ed)])) <= 2
    assert np.max(np.abs(es - true_es[: len(es)])) <= 2
    assert [e < s for e, s in cardiac.beats(ed, es)] == [True] * len(ed)
    assert cardiac.nearest_error(es, int(round(true_es[1]))) <= 2
    assert math.isnan(cardiac.nearest_error(np.array([], int), 5))


def test_detection_respects_max_heart_rate():
    # a 5 Hz (300 bpm) wobble is not a heartbeat: peaks closer than 60/200 s are merged
    fps = 50.0
    t = np.arange(200) / fps
    area = 1000 + 100 * np.sin(2 * np.pi * 5 * t)
    ed, _ = cardiac.detect_ed_es(area, fps)
    assert np.all(np.diff(ed) >= int(fps * 60 / cardiac.MAX_HEART_RATE_BPM))


def test_temporal_consistency_measures_flicker():
    fps = 50.0
    smooth, _, _ = _area_curve(fps, 4.0, 72.0)
    noisy, _, _ = _area_curve(fps, 4.0, 72.0, noise=40.0)
    assert cardiac.high_frequency_share(smooth, fps) < 0.01
    assert cardiac.high_frequency_share(noisy, fps) > 5 * cardiac.high_frequency_share(smooth, fps)
    # a pure tone above the cut-off is all high-frequency energy, one below none
    t = np.arange(400) / fps
    assert cardiac.high_frequency_share(1000 + np.sin(2 * np.pi * 15 * t), fps) > 0.99
    assert cardiac.high_frequency_share(1000 + np.sin(2 * np.pi * 2 * t), fps) < 0.01
    assert math.isnan(cardiac.high_frequency_share(smooth, fps=15.0))  # Nyquist below the cut-off
    assert cardiac.high_frequency_share(np.full(50, 7.0), fps) == 0.0
    assert cardiac.high_frequency_share(np.linspace(5, 9, 50), fps) == 0.0
    # jitter: straight line 0, by hand for a zig-zag: |2nd diff| = 4 everywhere, mean area 11
    assert cardiac.jitter(np.linspace(10, 20, 30)) == pytest.approx(0.0, abs=1e-12)
    assert cardiac.jitter(np.array([10.0, 12, 10, 12, 10, 12])) == pytest.approx(4 / 11)
    assert cardiac.jitter(noisy) > 3 * cardiac.jitter(smooth)


def test_video_readout_beat_by_beat_ef():
    # a mask video of an ellipse whose axes follow a beating curve: beat EF = the spheroid ratio
    fps, hr = 50.0, 75.0
    _, t, phase = _area_curve(fps, 3.0, hr)
    s = np.where(phase < 0.35, 0.5 * (1 + np.cos(np.pi * phase / 0.35)), 0.5 * (1 - np.cos(np.pi * (phase - 0.35) / 0.65)))
    a = 32 + 8 * s
    b = 14 + 6 * s
    video = np.stack([ellipse_mask(ai, bi, 0.2) for ai, bi in zip(a, b)])
    r = cardiac.video_readout(video, fps)
    true_ef = 100 * (1 - 32 * 14**2 / (40 * 20**2))
    assert len(r["beats"]) >= 2
    assert r["ef_beats_mean"] == pytest.approx(true_ef, abs=2.0)
    assert r["heart_rate_bpm"] == pytest.approx(hr, rel=0.05)
    assert len(r["area"]) == len(video) and r["hf_share"] < 0.01


def test_beat_from_a_lost_mask_gives_no_ef():
    fps, hr = 50.0, 75.0
    _, t, phase = _area_curve(fps, 3.0, hr)
    s = np.where(phase < 0.35, 0.5 * (1 + np.cos(np.pi * phase / 0.35)), 0.5 * (1 - np.cos(np.pi * (phase - 0.35) / 0.65)))
    video = np.stack([ellipse_mask(32 + 8 * si, 14 + 6 * si, 0.2) for si in s])
    good = cardiac.video_readout(video, fps)
    es = good["beats"][1]["es"]
    video[es] = 0  # the mask loses the LV at one ES: that beat's "EF" is 100 %
    r = cardiac.video_readout(video, fps)
    lost = [b for b in r["beats"] if b["es"] == es]
    assert len(lost) == 1 and lost[0]["ef"] == pytest.approx(100.0)
    assert f"frame {es} holds 0 pixels" in lost[0]["ef_problem"]
    assert all(b["ef_problem"] is None for b in r["beats"] if b["es"] != es)
    assert r["ef_beats_mean"] == pytest.approx(good["ef_beats_mean"], abs=2.0)
    assert cardiac.ef_problem(-18.0, 400, 500, 50, 70).startswith("ED frame 50 / ES frame 70 EF -18.0%")
    assert cardiac.ef_problem(55.0, 400, 180) is None


@pytest.mark.parametrize("seed", [0, 2, 5])
def test_phantom_ground_truth_masks_reproduce_tracing_ef_and_ed_es(seed):
    # the phantom knows its cavity in every frame: EF from those masks (long axis found from the mask)
    # must match EF from the phantom's EchoNet-style tracings, and the detected ED/ES hit the traced frames
    from unilvseg_nnunet.data.echonet import ejection_fraction
    from unilvseg_nnunet.data.phantom import synthesize_video

    v = synthesize_video(seed, n_frames=120)
    ef_tracings = ejection_fraction(volume_by_disks(*v.tracings[v.ed_frame].T), volume_by_disks(*v.tracings[v.es_frame].T))
    ef_masks = cardiac.ef_from_volumes(cardiac.mask_volume(v.masks[v.ed_frame]), cardiac.mask_volume(v.masks[v.es_frame]))
    assert ef_masks == pytest.approx(ef_tracings, abs=1.5)
    r = cardiac.video_readout(v.masks, v.params.fps)
    assert r["ef_beats_mean"] == pytest.approx(ef_tracings, abs=2.0)
    assert r["heart_rate_bpm"] == pytest.approx(60 * v.params.fps / v.params.period, rel=0.03)
    if v.ed_frame > 3:  # a maximum on the first frames cannot be a detected peak
        assert cardiac.nearest_error(np.array(r["ed_frames"]), v.ed_frame) <= 1
    assert cardiac.nearest_error(np.array(r["es_frames"]), v.es_frame) <= 1


def test_event_error_against_truth_events():
    # mean over the truth's events of the distance to the nearest detected one, by hand
    assert cardiac.event_error([10, 52, 90], [12, 50, 95]) == pytest.approx((2 + 2 + 5) / 3)
    assert cardiac.event_error([10, 11, 12, 50], [11, 50]) == 0.0  # extra detections cost nothing here
    assert math.isnan(cardiac.event_error([], [3])) and math.isnan(cardiac.event_error([3], []))


def test_match_beats_within_half_the_systole():
    truth = [(10, 30), (50, 70), (90, 110)]
    # beat 0 shifted by 3 frames (inside the 10-frame tolerance), beat 1 missed, an extra beat, beat 2 off by 12
    pred = [(13, 32), (120, 140), (102, 110)]
    assert cardiac.match_beats(pred, truth) == [(0, 0)]
    # each predicted beat is used once, the nearest wins
    assert cardiac.match_beats([(11, 31), (10, 30)], [(10, 30), (11, 31)]) == [(0, 1), (1, 0)]
    assert cardiac.match_beats([], truth) == [] and cardiac.match_beats(pred, []) == []
    # short systoles keep a tolerance of 2 frames
    assert cardiac.match_beats([(12, 14)], [(10, 13)]) == [(0, 0)]


def test_area_swing_is_the_slope_on_the_true_curve():
    t = np.arange(200)
    truth = 1000 + 200 * np.sin(2 * np.pi * t / 50)
    assert cardiac.area_swing(truth, truth) == pytest.approx(1.0)
    damped = truth.mean() + 0.7 * (truth - truth.mean()) + 35  # ED too small, ES too large, offset
    assert cardiac.area_swing(damped, truth) == pytest.approx(0.7)
    noisy = truth + np.random.default_rng(0).normal(0, 40, len(t))  # frame noise does not bias it
    assert cardiac.area_swing(noisy, truth) == pytest.approx(1.0, abs=0.05)
    assert math.isnan(cardiac.area_swing(truth, np.full(200, 900.0)))
