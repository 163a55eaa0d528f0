"""The echo phantom writes a valid EchoNet-Dynamic folder whose tracings, volumes and EF agree with its ground truth."""
from __future__ import annotations

import csv
import dataclasses
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import PHANTOM_FRAMES, PHANTOM_SPLITS

from unilvseg_nnunet.data import echonet, phantom
from unilvseg_nnunet.data.echonet import ejection_fraction, tracing_mask, volume_by_disks
from unilvseg_nnunet.errors import UnilvsegError

FILE_NAME_CHARS = set("0123456789ABCDEF")


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def tracings_by_video(folder: Path) -> dict:
    """{FileName.avi: {frame: (rows, 4) array X1, Y1, X2, Y2 in file order}}."""
    out: dict = defaultdict(lambda: defaultdict(list))
    for row in read_csv(folder / "VolumeTracings.csv"):
        out[row["FileName"]][int(row["Frame"])].append([float(row[k]) for k in ("X1", "Y1", "X2", "Y2")])
    return {name: {fr: np.array(rows) for fr, rows in frames.items()} for name, frames in out.items()}


@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory) -> Path:
    """The tests' phantom (conftest) at the phantom's default, EchoNet's frame size (112x112): the format is tested
    here as users get it, while the other tests train on smaller frames."""
    out = tmp_path_factory.mktemp("echonet_phantom_112")
    phantom.synthesize(out, n=12, seed=0, frames=PHANTOM_FRAMES, splits=PHANTOM_SPLITS)
    return out


@pytest.fixture(scope="module")
def truth(phantom_dir) -> dict:
    """Ground truth of every phantom video, re-rendered once: {FileName.avi: PhantomVideo}."""
    return {f"{r['FileName']}.avi": phantom.load_video(phantom_dir, r["FileName"]) for r in read_csv(phantom_dir / "FileList.csv")}


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * (a & b).sum() / (a.sum() + b.sum())


def test_layout_and_filelist(phantom_dir):
    assert (phantom_dir / "Videos").is_dir()
    with open(phantom_dir / "FileList.csv", newline="") as f:
        # EchoNet-Dynamic's own header, in its order
        assert next(csv.reader(f)) == ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split"]
    with open(phantom_dir / "VolumeTracings.csv", newline="") as f:
        assert next(csv.reader(f)) == ["FileName", "X1", "Y1", "X2", "Y2", "Frame"]
    with open(phantom_dir / "CorruptedFrames.csv", newline="") as f:
        assert next(csv.reader(f)) == ["FileName", "Frame", "Kind"]
    rows = read_csv(phantom_dir / "FileList.csv")
    assert len(rows) == 12
    assert [[r["Split"] for r in rows].count(s) for s in ("TRAIN", "VAL", "TEST")] == list(PHANTOM_SPLITS)
    names = [r["FileName"] for r in rows]
    assert len(set(names)) == 12
    for r in rows:
        name = r["FileName"]
        assert len(name) == 18 and name.startswith("0X") and set(name[2:]) <= FILE_NAME_CHARS
        assert (phantom_dir / "Videos" / f"{name}.avi").is_file()
        assert int(r["FrameHeight"]) == int(r["FrameWidth"]) == 112
        assert float(r["FPS"]) == 50.0
        assert PHANTOM_FRAMES[0] <= int(r["NumberOfFrames"]) <= PHANTOM_FRAMES[1]
        assert 0 < float(r["ESV"]) < float(r["EDV"])
        assert 0 < float(r["EF"]) < 100
    assert sorted(p.name for p in (phantom_dir / "Videos").iterdir()) == sorted(f"{n}.avi" for n in names)
    assert sorted(p.name for p in (phantom_dir / "DenseTruth").iterdir()) == sorted(f"{n}.npz" for n in names)


def test_dense_truth_and_corrupted_frames_are_the_rendered_ones(phantom_dir, truth):
    """DenseTruth/<name>.npz holds the phantom's true cavity of every frame; CorruptedFrames.csv lists exactly the
    frame artefacts it rendered (default level: noisy, blank and shadowed frames)."""
    listed = echonet.read_corrupted_frames(phantom_dir / "CorruptedFrames.csv")
    for name, video in truth.items():
        masks = echonet.read_dense_truth(echonet.dense_truth_path(phantom_dir, name))
        np.testing.assert_array_equal(masks, video.masks)
        expected: dict = defaultdict(list)
        for t, kind in phantom.corrupted_frames(video.params):
            expected[t].append(kind)
        assert listed.get(name[:-4], {}) == expected
        assert set(video.params.noisy_frames) <= set(expected)
    assert any(listed.values())


def test_videos_decode_to_filelist_frames(phantom_dir):
    for r in read_csv(phantom_dir / "FileList.csv"):
        cap = cv2.VideoCapture(str(phantom_dir / "Videos" / f"{r['FileName']}.avi"))
        frames = []
        ok, frame = cap.read()
        while ok:
            frames.append(frame)
            ok, frame = cap.read()
        cap.release()
        assert len(frames) == int(r["NumberOfFrames"]), r["FileName"]
        video = np.stack(frames)
        assert video.shape[1:] == (112, 112, 3)
        # grey content in three channels, black outside the sector, not a blank video
        assert np.abs(video[..., 0].astype(int) - video[..., 2].astype(int)).max() <= 3
        assert video[:, 2:10, :8].max() < 10
        assert video.mean() > 10


def test_tracings_layout_and_ef(phantom_dir):
    tracings = tracings_by_video(phantom_dir)
    filelist = {r["FileName"]: r for r in read_csv(phantom_dir / "FileList.csv")}
    assert set(tracings) == {f"{n}.avi" for n in filelist}
    for name, frames in tracings.items():
        row = filelist[name[:-4]]
        assert len(frames) == 2, name
        for fr, rows in frames.items():
            assert rows.shape == (21, 4)
            assert 0 <= fr < int(row["NumberOfFrames"])
            assert rows.min() >= 0 and rows.max() <= 111
        vols = sorted(volume_by_disks(*rows.T) for rows in frames.values())
        esv, edv = vols
        assert edv > esv
        assert float(row["EDV"]) == pytest.approx(edv, rel=1e-9)
        assert float(row["ESV"]) == pytest.approx(esv, rel=1e-9)
        assert float(row["EF"]) == pytest.approx(ejection_fraction(edv, esv), abs=1e-9)


def test_tracing_geometry_matches_truth(phantom_dir, truth):
    """Row 0 runs from the apex to the middle of the basal chord; chords are perpendicular to it, evenly spaced,
    and EchoNet's mask of the rows covers the phantom's true cavity (Dice >= 0.9); ED is the larger one."""
    tracings = tracings_by_video(phantom_dir)
    for name, frames in tracings.items():
        video = truth[name]
        assert set(frames) == {video.ed_frame, video.es_frame}
        assert video.volume_curve[video.ed_frame] > video.volume_curve[video.es_frame]
        for fr, rows in frames.items():
            np.testing.assert_allclose(rows, video.tracings[fr], atol=1e-6)
            axis = rows[0, 2:] - rows[0, :2]
            chord = rows[1:, 2:] - rows[1:, :2]
            cos = np.abs(chord @ axis) / (np.linalg.norm(chord, axis=1) * np.linalg.norm(axis))
            assert cos.max() < 1e-6
            mids = (rows[1:, :2] + rows[1:, 2:]) / 2
            along = (mids - rows[0, :2]) @ axis / np.linalg.norm(axis) ** 2
            np.testing.assert_allclose(np.diff(along), 1 / 20, atol=0.02)
            mask = tracing_mask(*rows.T, (112, 112))
            assert dice(mask, video.masks[fr]) >= 0.9, (name, fr)
        ed_area = tracing_mask(*frames[video.ed_frame].T, (112, 112)).sum()
        es_area = tracing_mask(*frames[video.es_frame].T, (112, 112)).sum()
        assert ed_area > es_area


def test_traced_frame_order_varies(phantom_dir, truth):
    """Like the real data, the CSV does not always list ED before ES."""
    first = {}
    for row in read_csv(phantom_dir / "VolumeTracings.csv"):
        first.setdefault(row["FileName"], int(row["Frame"]))
    ed_first = [truth[name].ed_frame == fr for name, fr in first.items()]
    assert any(ed_first) and not all(ed_first)


def test_variety_across_videos(phantom_dir, truth):
    videos = list(truth.values())
    efs = np.array([float(r["EF"]) for r in read_csv(phantom_dir / "FileList.csv")])
    assert efs.max() - efs.min() > 25
    bpm = np.array([60 * v.params.fps / v.params.period for v in videos])
    assert bpm.max() - bpm.min() > 25
    tilts = np.rad2deg([v.params.tilt for v in videos])
    assert tilts.max() - tilts.min() > 10
    eds = np.array([v.masks[v.ed_frame].sum() for v in videos])
    assert eds.max() > 1.3 * eds.min()
    # artefacts exist somewhere in the set
    assert any(v.params.dropouts for v in videos) and any(v.params.shadow for v in videos)
    assert any(v.params.noisy_frames for v in videos)


def test_volume_curve_is_periodic_with_ed_max_es_min():
    phase = np.linspace(0, 1, 1001)
    for systole in (0.3, 0.42):
        f = phantom.volume_curve(phase, systole)
        assert f.max() == pytest.approx(1.0) and f.min() == pytest.approx(0.0, abs=1e-12)
        assert phantom.volume_curve(0.0, systole) == pytest.approx(1.0)
        assert phantom.volume_curve(systole, systole) == pytest.approx(0.0)
        assert phantom.volume_curve(1.0, systole) == pytest.approx(1.0)
        assert np.abs(np.diff(f)).max() < 0.02  # no jumps


def test_synthesize_video_truth():
    video = phantom.synthesize_video(np.random.default_rng(3), n_frames=60)
    assert video.frames.shape == video.masks.shape == (60, 112, 112)
    assert video.frames.dtype == video.masks.dtype == np.uint8
    # the true cavity is largest at the traced ED and smallest at the traced ES of its beat
    areas = video.masks.reshape(60, -1).sum(1).astype(float)
    near = lambda t: areas[max(0, t - int(video.params.period / 4)): t + int(video.params.period / 4) + 1]
    assert areas[video.ed_frame] >= 0.98 * near(video.ed_frame).max()
    assert areas[video.es_frame] <= 1.02 * near(video.es_frame).min()
    assert areas[video.ed_frame] > 1.1 * areas[video.es_frame]
    # the cavity is darker than its wall in the rendered frames (blank frames aside)
    good = [t for t in range(60) if t not in video.params.blank_frames]
    cavity = video.frames[good][video.masks[good] == 1].mean()
    ring = cv2.dilate(video.masks[video.ed_frame], np.ones((7, 7), np.uint8)) - video.masks[video.ed_frame]
    assert cavity < 0.6 * video.frames[video.ed_frame][ring == 1].mean()


def test_determinism(tmp_path):
    a = phantom.synthesize(tmp_path / "a", n=3, seed=5, frames=(28, 40))
    b = phantom.synthesize(tmp_path / "b", n=3, seed=5, frames=(28, 40))
    c = phantom.synthesize(tmp_path / "c", n=3, seed=6, frames=(28, 40))
    for csv_name in ("FileList.csv", "VolumeTracings.csv"):
        assert (a / csv_name).read_bytes() == (b / csv_name).read_bytes()
        assert (a / csv_name).read_bytes() != (c / csv_name).read_bytes()
    name = read_csv(a / "FileList.csv")[0]["FileName"]
    assert (a / "Videos" / f"{name}.avi").read_bytes() == (b / "Videos" / f"{name}.avi").read_bytes()
    # default splits about 70/15/15
    d = phantom.synthesize(tmp_path / "d", n=20, seed=1, frames=(28, 30))
    assert [r["Split"] for r in read_csv(d / "FileList.csv")].count("TRAIN") == 14


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="splits"):
        phantom.synthesize(tmp_path / "x", n=4, splits=(2, 1, 2))
    with pytest.raises(ValueError, match="frames"):
        phantom.synthesize(tmp_path / "x", n=4, frames=(40, 30))


def test_cli_synth(tmp_path):
    exe = Path(sys.executable).parent / "unilvseg"
    out = tmp_path / "cli"
    proc = subprocess.run([str(exe), "synth", str(out), "--n", "3", "--seed", "2", "--min-frames", "28",
                           "--max-frames", "32", "--splits", "1", "1", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = read_csv(out / "FileList.csv")
    assert sorted(r["Split"] for r in rows) == ["TEST", "TRAIN", "VAL"]
    assert all(28 <= int(r["NumberOfFrames"]) <= 32 for r in rows)
    assert len(read_csv(out / "VolumeTracings.csv")) == 3 * 2 * 21
    bad = subprocess.run([str(exe), "synth", str(tmp_path / "bad"), "--n", "3", "--splits", "1", "1", "2"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "splits" in bad.stderr


def test_rewrite_replaces_previous_phantom_and_protects_real_data(tmp_path):
    out = tmp_path / "p"
    phantom.synthesize(out, n=3, seed=1, frames=(28, 30))
    phantom.synthesize(out, n=2, seed=2, frames=(28, 30))
    names = {r["FileName"] for r in read_csv(out / "FileList.csv")}
    assert {p.stem for p in (out / "Videos").iterdir()} == names
    real = tmp_path / "echonet"
    real.mkdir()
    (real / "FileList.csv").write_text("FileName\n")
    with pytest.raises(ValueError, match="not a phantom"):
        phantom.synthesize(real, n=2)
    assert (real / "FileList.csv").read_text() == "FileName\n"


def test_systoles_are_volume_extrema():
    for seed in range(5):
        p = phantom.sample_params(np.random.default_rng(seed), 150)
        beats = phantom.systoles(p)
        assert len(beats) >= 2 and phantom.traced_beat(p) in beats
        f = phantom.volume_curve((np.arange(150) - p.t_ed) / p.period, p.systole)
        for ed, es in beats:
            assert 0 <= ed < es < 150
            assert f[ed] > 0.98 and f[es] < 0.02


def test_blank_and_noisy_frames_break_single_frames():
    """Artefact frames differ from their neighbours far more than the heart moves from frame to frame."""
    p = next(p for p in (phantom.sample_params(np.random.default_rng(s), 60) for s in range(200))
             if p.blank_frames and p.noisy_frames and min(p.noisy_frames) > 0)
    frames, _ = phantom.render(p)
    means = frames.reshape(60, -1).mean(1)
    for t in p.blank_frames:
        assert means[t] < 0.2 * np.median(means)
        assert t not in phantom.traced_beat(p)
    change = np.abs(np.diff(frames.astype(float), axis=0)).mean((1, 2))
    bad = set(p.blank_frames) | set(p.noisy_frames)
    typical = np.median([c for t, c in enumerate(change) if t not in bad and t + 1 not in bad])
    for t in p.noisy_frames:
        assert change[t - 1] > 1.3 * typical


def test_severe_artefacts_hit_a_quarter_of_every_video_traced_frames_included(tmp_path):
    out = phantom.synthesize(tmp_path / "severe", n=8, seed=4, frames=(40, 64), artefacts="severe")
    listed = echonet.read_corrupted_frames(out / "CorruptedFrames.csv")
    tracings = echonet.read_tracings(out / "VolumeTracings.csv")
    kinds, traced_hit = set(), 0
    for r in echonet.read_filelist(out / "FileList.csv"):
        frames = listed[r["FileName"]]
        assert len(frames) == round(r["NumberOfFrames"] / 4)
        assert all(len(k) == 1 for k in frames.values())  # one artefact per frame at this level
        kinds |= {k[0] for k in frames.values()}
        traced_hit += len(set(tracings[r["FileName"]]) & set(frames))
    assert kinds == set(phantom.FRAME_ARTEFACTS)
    assert traced_hit >= 2  # traced frames are not spared
    # re-rendered without its frame artefacts, a video differs exactly on the listed frames
    p = phantom.load_video(out, r["FileName"]).params
    frames, masks = phantom.render(p)
    clean, clean_masks = phantom.render(dataclasses.replace(p, events=[]))
    diff = np.abs(frames.astype(int) - clean).reshape(len(frames), -1)
    hit = sorted(listed[r["FileName"]])
    assert (diff[hit].mean(1) > 1.0).all() and diff[[t for t in range(len(frames)) if t not in hit]].max() == 0
    np.testing.assert_array_equal(masks, clean_masks)  # the truth does not move with the artefacts


def test_artefact_levels_none_and_moderate():
    rng = np.random.default_rng(1)
    p = phantom.sample_params(rng, 80)
    assert phantom.apply_artefacts(p, "mild", rng) is p
    none = phantom.apply_artefacts(p, "none", rng)
    assert phantom.corrupted_frames(none) == [] and none.dropouts == [] and none.clutter[0] == 0.0
    moderate = phantom.apply_artefacts(p, "moderate", rng)
    assert len({t for t, _ in phantom.corrupted_frames(moderate)}) == 10 and moderate.dropouts == p.dropouts
    with pytest.raises(phantom.PhantomError, match="artefact level"):
        phantom.apply_artefacts(p, "extreme", rng)


def test_low_label_setting(tmp_path):
    """Only the first K TRAIN videos get tracings; the others stay listed (with FileList EF), untraced."""
    out = phantom.synthesize(tmp_path / "low", n=7, seed=3, frames=(28, 32), splits=(5, 1, 1), labeled_train=2)
    rows = echonet.read_filelist(out / "FileList.csv")
    traced = set(echonet.read_tracings(out / "VolumeTracings.csv"))
    train = [r["FileName"] for r in rows if r["Split"] == "TRAIN"]
    assert traced == set(train[:2]) | {r["FileName"] for r in rows if r["Split"] != "TRAIN"}
    assert all(np.isfinite(r["EF"]) for r in rows) and len(list((out / "DenseTruth").iterdir())) == 7
    with pytest.raises(UnilvsegError, match="labeled_train must be between 0 and the 5 TRAIN videos"):
        phantom.synthesize(tmp_path / "bad", n=7, splits=(5, 1, 1), labeled_train=6)


def test_cli_synth_artefacts_and_low_label(tmp_path):
    exe = Path(sys.executable).parent / "unilvseg"
    out = tmp_path / "cli"
    proc = subprocess.run([str(exe), "synth", str(out), "--n", "4", "--min-frames", "28", "--max-frames", "32",
                           "--splits", "2", "1", "1", "--artefacts", "severe", "--labeled-train", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "2 TRAIN, 1 VAL, 1 TEST, 1 TRAIN traced" in proc.stdout and "artefacts severe" in proc.stdout
    assert len(echonet.read_tracings(out / "VolumeTracings.csv")) == 3
    bad = subprocess.run([str(exe), "synth", str(tmp_path / "bad"), "--n", "3", "--splits", "1", "1", "1",
                          "--labeled-train", "2"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("unilvseg synth: error: labeled_train") and not bad.stdout
    assert "Traceback" not in bad.stderr
