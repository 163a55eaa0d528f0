"""`unilvseg time-filter`: a Gaussian along time on nnUNetv2_predict's saved probabilities."""
import numpy as np
import pytest
from conftest import DATASET_ID, TEMPORAL_CONFIGURATION, run_cmd

from unilvseg_nnunet.cli import main
from unilvseg_nnunet.data.dataset import FILE_ENDING
from unilvseg_nnunet.files import read_volume
from unilvseg_nnunet.inference.time_filter import (
    TimeFilterError,
    filter_predictions,
    filter_probabilities,
    filter_stream,
    filtered_labels,
)


def beating_probabilities(n_frames: int = 40, blank: int = 20) -> np.ndarray:
    """(2, frames, 16, 16) background/LV probabilities of a disc whose radius beats; frame ``blank`` is all
    background (what a 2d model says on a blank frame)."""
    yy, xx = np.mgrid[:16, :16]
    r = 4 + 2 * np.sin(2 * np.pi * np.arange(n_frames) / 20)
    lv = np.stack([np.clip(ri - np.hypot(yy - 8, xx - 8) + 0.5, 0.02, 0.98) for ri in r]).astype(np.float32)
    lv[blank] = 0.02
    return np.stack([1 - lv, lv])


def test_filter_takes_a_blank_frame_from_its_neighbours():
    p = beating_probabilities()
    assert filtered_labels(p, 0)[20].sum() == 0
    labels = filtered_labels(p, 1.5)
    assert labels[20].sum() > 0.7 * (labels[19].sum() + labels[21].sum()) / 2  # most of the LV back
    smoothed = filter_probabilities(p, 1.5)
    assert np.allclose(smoothed.sum(0), 1, atol=1e-5) and smoothed.shape == p.shape
    assert filter_probabilities(p, 0) is p
    with pytest.raises(ValueError, match="sigma"):
        filter_probabilities(p, -1)


@pytest.mark.parametrize("blank", [0, 39])
def test_a_blank_first_or_last_frame_takes_its_mask_from_the_frames_beside_it(blank):
    """nnU-Net crops an all-black first or last frame away and returns it as background: mirrored edges fill it
    as an inner blank frame is filled (with the edge frame repeated it kept most of its own weight, and no LV)."""
    p = beating_probabilities(40, blank=blank)
    labels = filtered_labels(p, 1.5)
    beside = 1 if blank == 0 else 38
    assert labels[blank].sum() > 0.7 * labels[beside].sum() > 0


def test_filter_edges_mirror_the_video():
    p = beating_probabilities()
    p[:, :8] = p[:, :1]  # a still start: mirrored (radius 4 frames), its first 4 frames stay as they are
    assert np.allclose(filter_probabilities(p, 1.0)[:, :4], p[:, :4], atol=1e-6)
    q = np.random.default_rng(0).random((2, 9, 3, 3)).astype(np.float32)
    mirrored = np.concatenate([q[:, 4:0:-1], q, q[:, -2:-6:-1]], axis=1)  # frames 4..1, 0..8, 7..4
    assert np.allclose(filter_probabilities(q, 1.0), filter_probabilities(mirrored, 1.0)[:, 4:13], atol=1e-6)


def test_bad_folders_are_refused_with_the_file_named(tmp_path):
    with pytest.raises(TimeFilterError, match="dataset.json not found"):
        filter_predictions(tmp_path, tmp_path / "out", 1.0)
    (tmp_path / "dataset.json").write_text('{"labels": {"background": 0, "lv": [1, 2]}, "file_ending": ".mha"}')
    with pytest.raises(TimeFilterError, match="region-based"):
        filter_predictions(tmp_path, tmp_path / "out", 1.0)
    with pytest.raises(TimeFilterError, match="must differ"):
        filter_predictions(tmp_path, tmp_path, 1.0)
    assert main(["time-filter", "-i", str(tmp_path), "-o", str(tmp_path / "o"), "--sigma", "-1"]) == 2


@pytest.mark.nnunet
def test_time_filter_on_nnunet_predict_output(tiny_3d_model, raw_dataset, nnunet_env, tmp_path):
    pred, inputs = tmp_path / "pred", tmp_path / "in"
    inputs.mkdir()
    for image in sorted((raw_dataset / "imagesTs").glob(f"*_0000{FILE_ENDING}"))[:2]:
        (inputs / image.name).symlink_to(image)
    run_cmd(["nnUNetv2_predict", "-i", str(inputs), "-o", str(pred), "-d", str(DATASET_ID),
             "-c", TEMPORAL_CONFIGURATION, "-tr", "SparseTemporalTrainer_smoke", "-f", "0", "-device", "cpu",
             "--disable_tta", "--save_probabilities", "-npp", "1", "-nps", "1"], env=nnunet_env)
    cases = sorted(p.name[:-len(FILE_ENDING)] for p in pred.glob(f"*{FILE_ENDING}"))
    assert len(cases) == 2
    # sigma 0 is nnU-Net's own argmax: the probabilities' axes and the masks' geometry are read right
    assert main(["time-filter", "-i", str(pred), "-o", str(tmp_path / "s0"), "--sigma", "0"]) == 0
    for case in cases:
        assert np.array_equal(read_volume(tmp_path / "s0" / f"{case}{FILE_ENDING}"), read_volume(pred / f"{case}{FILE_ENDING}"))
    # one case without its probabilities is skipped and named; the others are filtered
    (pred / f"{cases[0]}.npz").unlink()
    assert main(["time-filter", "-i", str(pred), "-o", str(tmp_path / "s2"), "--sigma", "2"]) == 1
    written = sorted(p.name for p in (tmp_path / "s2").glob(f"*{FILE_ENDING}"))
    assert written == [f"{c}{FILE_ENDING}" for c in cases[1:]]
    with np.load(pred / f"{cases[1]}.npz") as data:
        expected = filtered_labels(data["probabilities"], 2)
    assert np.array_equal(read_volume(tmp_path / "s2" / written[0]), expected)


@pytest.mark.parametrize("n", [1, 3, 17, 200])
@pytest.mark.parametrize("sigma", [0.75, 1.5, 3.0])
def test_streamed_filter_labels_as_offline_whatever_the_chunks(n, sigma):
    rng = np.random.default_rng(n)
    p = rng.random((3, n, 5, 4)).astype(np.float32)
    p /= p.sum(0)
    for _ in range(4):
        cuts = sorted(rng.choice(np.arange(1, n), size=min(n - 1, int(rng.integers(0, 6))), replace=False)) if n > 1 else []
        bounds = [0, *cuts, n]
        labels = np.full((n, 5, 4), 255, np.uint8)
        starts = []
        for start, chunk in filter_stream((p[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])), sigma):
            labels[start:start + len(chunk)] = chunk
            starts.append(start)
        assert starts == sorted(starts) and np.array_equal(labels, filtered_labels(p, sigma)), bounds
