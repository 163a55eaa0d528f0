"""`unilvseg predict-video` end to end: a tiny trained model (real nnU-Net training on the phantom, CPU)
segments raw phantom AVIs; outputs are consistent with each other; bad inputs name the file."""
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from unilvseg_nnunet.evaluation import cardiac
from unilvseg_nnunet.data.echonet import decode_video
from unilvseg_nnunet.files import read_volume
from unilvseg_nnunet.inference.predictor import PredictionError, check_model_folder
from unilvseg_nnunet.inference.video import predict_videos

pytestmark = pytest.mark.nnunet


@pytest.fixture(scope="module")
def model_folder(tiny_3d_model):
    return tiny_3d_model


def _test_videos(phantom_dir, n):
    names = [r.split(",")[0] for r in (phantom_dir / "FileList.csv").read_text().splitlines()[1:] if r.endswith("TEST")]
    return [phantom_dir / "Videos" / f"{name}.avi" for name in names[:n]]


def test_predict_video_folder_end_to_end(model_folder, phantom_dir, nnunet_env, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    good = _test_videos(phantom_dir, 2)
    for v in good:
        shutil.copy(v, videos)
    (videos / "broken.avi").write_bytes(b"RIFF this is not a video")
    out = tmp_path / "out"
    env = {k: v for k, v in nnunet_env.items() if k != "nnUNet_extTrainer"}  # set automatically from the repo
    proc = subprocess.run([str(Path(sys.executable).parent / "unilvseg"), "predict-video", str(videos), "-m", str(model_folder), "-o", str(out),
                           "-f", "0", "-device", "cpu"], env=env, capture_output=True, text=True, timeout=900)
    # one bad video does not stop the others; it is reported by name and the exit status says so
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "FAILED" in proc.stdout and "broken.avi" in proc.stdout and "2 video(s) segmented" in proc.stdout
    summary = json.loads((out / "predict_video_summary.json").read_text())
    assert [f["video"].endswith("broken.avi") for f in summary["failed"]] == [True]
    assert len(summary["results"]) == 2

    for v in good:
        stem = v.stem
        frames = decode_video(v)
        mask = read_volume(out / f"{stem}.mha")
        assert mask.shape == frames.shape and set(np.unique(mask)) <= {0, 1}
        info = json.loads((out / f"{stem}.json").read_text())
        assert info["num_frames"] == len(frames) and info["fps"] == 50.0 and info["fps_source"] == "video"
        assert info["model_folder"] == str(model_folder) and info["folds"] == [0]
        # the JSON read-out is exactly what the mask gives
        again = cardiac.video_readout(mask, 50.0)
        assert info["area"] == again["area"] and info["ed_frames"] == again["ed_frames"] and info["es_frames"] == again["es_frames"]
        rows = list(csv.DictReader((out / f"{stem}_area.csv").open()))
        assert len(rows) == len(frames)
        assert [float(r["area_px"]) for r in rows] == mask.reshape(len(mask), -1).sum(1).astype(float).tolist()
        cap = cv2.VideoCapture(str(out / f"{stem}_overlay.avi"))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, first = cap.read()
        cap.release()
        assert ok and n == len(frames) and first.shape == (3 * frames.shape[1], 3 * frames.shape[2], 3)
        assert (out / f"{stem}_area.png").stat().st_size > 1000
        assert stem in proc.stdout and "EF" in proc.stdout
    assert not list(out.glob(".tmp-*"))


def test_predict_video_bad_inputs(model_folder, nnunet_env, tmp_path, monkeypatch):
    for k, v in nnunet_env.items():
        monkeypatch.setenv(k, v)
    # a model folder without the checkpoint
    empty = tmp_path / "model"
    (empty / "fold_0").mkdir(parents=True)
    for name in ("plans.json", "dataset.json"):
        shutil.copy(model_folder / name, empty)
    with pytest.raises(PredictionError, match=r"fold_0/checkpoint_final.pth: checkpoint not found"):
        check_model_folder(empty, [0])
    with pytest.raises(PredictionError, match=r"no fold_\*/checkpoint_final.pth"):
        check_model_folder(empty)
    with pytest.raises(PredictionError, match="plans.json: missing"):
        check_model_folder(tmp_path)
    with pytest.raises(PredictionError, match="no_such_checkpoint.pth: checkpoint not found"):
        check_model_folder(model_folder, [0], "no_such_checkpoint.pth")
    # a single undecodable video: a clear error naming it
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"\x00" * 100)
    res = predict_videos(bad, model_folder, tmp_path / "o", folds=[0], progress=False, log=lambda s: None)
    assert res["results"] == [] and "bad.avi" in res["failed"][0]["error"]
    with pytest.raises(PredictionError, match="no such video or folder"):
        predict_videos(tmp_path / "missing.avi", model_folder, tmp_path / "o", folds=[0])
