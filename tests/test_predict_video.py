"""`unilvseg predict-video` end to end: a tiny trained model (real nnU-Net training on the phantom, CPU)
segments raw phantom AVIs; outputs are consistent with each other; bad inputs name the file; a folder
split in parts gives exactly the files of one run, and a part run again resumes; long videos are
segmented without seams and as nnUNetv2_predict segments them; inputs a user brings are checked."""
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import PHANTOM_SIZE

from unilvseg_nnunet.cli import main
from unilvseg_nnunet.data.echonet import decode_video
from unilvseg_nnunet.evaluation import cardiac
from unilvseg_nnunet.files import read_volume, write_video, write_volume
from unilvseg_nnunet.inference import precision
from unilvseg_nnunet.inference.predictor import PredictionError, check_model_folder, default_device
from unilvseg_nnunet.inference.video import (
    describe,
    ef_readout,
    frame_motion,
    predict_videos,
    resize_frames,
    resize_labels,
    shard,
)


@pytest.fixture(scope="module")
def model_folder(tiny_3d_model):
    return tiny_3d_model


def _test_videos(phantom_dir, n):
    names = [r.split(",")[0] for r in (phantom_dir / "FileList.csv").read_text().splitlines()[1:] if r.endswith("TEST")]
    return [phantom_dir / "Videos" / f"{name}.avi" for name in names[:n]]


@pytest.mark.nnunet
def test_predict_video_folder_end_to_end(model_folder, phantom_dir, nnunet_env, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    good = _test_videos(phantom_dir, 2)
    for v in good:
        shutil.copy(v, videos)
    (videos / "broken.avi").write_bytes(b"RIFF this is not a video")
    dark = decode_video(good[0])
    dark[-1] = 0
    write_video(videos / "dark.avi", dark, 50.0)  # an all-black last frame: flagged, not silently an empty mask
    out = tmp_path / "out"
    env = {k: v for k, v in nnunet_env.items() if k != "nnUNet_extTrainer"}  # set automatically from the repo
    proc = subprocess.run([str(Path(sys.executable).parent / "unilvseg"), "predict-video", str(videos),
                           "-m", str(model_folder), "-o", str(out),
                           "-f", "0", "-device", "cpu"], env=env, capture_output=True, text=True, timeout=900)
    # one bad video does not stop the others; it is reported by name and the exit status says so
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "FAILED" in proc.stdout and "broken.avi" in proc.stdout and "3 video(s) segmented" in proc.stdout
    assert "1 video(s) hold all-black frames, with no image to segment (frames in their JSON): dark.avi" in proc.stdout
    summary = json.loads((out / "predict_video_summary.json").read_text())
    assert [f["video"].endswith("broken.avi") for f in summary["failed"]] == [True]
    assert len(summary["results"]) == 3 and summary["flags"]["black_frames"] == ["dark.avi"]

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


@pytest.mark.nnunet
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


def _beat(ed, es, ef, area=(400.0,) * 80):
    return {"ed": ed, "es": es, "edv": 100.0, "esv": 100.0 - ef, "ef": ef,
            "ef_problem": cardiac.ef_problem(ef, area[ed], area[es], ed, es)}


def test_ef_is_reported_only_from_clear_beats():
    ok = {"beats": [_beat(3, 20, 55.0), _beat(50, 70, 57.0)], "ef_beats_mean": 56.0, "hf_share": 0.05,
          "hf_cutoff_hz": 10.0, "area": [400.0] * 80}
    assert ef_readout(ok) == (56.0, None)
    empty_es = [400.0] * 80
    empty_es[70] = 3.0  # an "ES" where the mask holds almost nothing: EF 99% of noise
    ef, why = ef_readout({**ok, "beats": [_beat(3, 20, 55.0), _beat(50, 70, 99.0, empty_es)], "area": empty_es})
    assert np.isnan(ef) and "frame 70 holds 3 pixels" in why and "no LV" in why
    ef, why = ef_readout({**ok, "beats": []})
    assert np.isnan(ef) and "no complete beat" in why
    ef, why = ef_readout({**ok, "beats": [_beat(3, 20, 55.0), _beat(50, 70, -18.0)], "ef_beats_mean": 18.5})
    assert np.isnan(ef) and "EF -18.0%" in why and "outside 0-90" in why and "ED frame 50" in why
    ef, why = ef_readout({**ok, "beats": [_beat(3, 20, 55.0), _beat(50, 70, 99.9)], "ef_beats_mean": 77.5})
    assert np.isnan(ef) and "EF 99.9%" in why and "outside 0-90" in why
    ef, why = ef_readout({**ok, "hf_share": 0.8})
    assert np.isnan(ef) and "80%" in why and "flickers" in why
    still = np.full((40, 16, 16), 90, np.uint8)
    ef, why = ef_readout(ok, frame_motion(still))
    assert np.isnan(ef) and "still" in why and "0.00 grey levels" in why
    moving = still.copy()
    moving[::2, :8] = 100  # half the pixels change by 10 grey levels at every frame
    assert frame_motion(moving) == pytest.approx(5.0) and ef_readout(ok, frame_motion(moving)) == (56.0, None)


def test_shards_follow_nnunet_and_cover_the_folder_once():
    videos = [Path(f"v{i}.avi") for i in range(7)]
    parts = [shard(videos, 3, k) for k in range(3)]
    assert parts[1] == videos[1::3] and sorted(sum(parts, [])) == videos
    for bad in ((3, 3), (0, 0), (2, -1)):
        with pytest.raises(PredictionError, match="part_id"):
            shard(videos, *bad)


def test_frames_resampled_to_the_model_and_labels_back():
    video = np.zeros((3, 160, 224), np.uint8)
    video[:, 40:120, 60:160] = 200
    small = resize_frames(video, (112, 112))
    assert small.shape == (3, 112, 112) and small.dtype == np.uint8
    labels = (resize_frames(video, (112, 112)) > 100).astype(np.uint8)
    back = resize_labels(labels, (160, 224))
    assert back.shape == (3, 160, 224) and (back == (video > 100)).mean() > 0.99


def test_device_defaults_to_cuda_when_present(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_device() == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_device() == "cpu"
    import argparse

    from unilvseg_nnunet.cli import predict_video

    parser = argparse.ArgumentParser()
    predict_video.add_arguments(parser)
    assert parser.parse_args(["v.avi", "-m", "m", "-o", "o"]).device is None  # resolved by default_device()


def _outputs(folder: Path) -> dict:
    """Every file of a prediction folder, JSON without its timing (the one thing that differs between runs)."""
    files = {}
    for f in sorted(folder.iterdir()):
        if f.suffix == ".json":
            d = json.loads(f.read_text())
            d.pop("timing", None)
            files[f.name] = d
        else:
            files[f.name] = f.read_bytes()
    return files


@pytest.mark.nnunet
def test_sharded_runs_give_the_files_of_one_run_and_resume(model_folder, phantom_dir, nnunet_env, tmp_path,
                                                            monkeypatch):
    for k, v in nnunet_env.items():
        monkeypatch.setenv(k, v)
    videos = tmp_path / "videos"
    videos.mkdir()
    for v in _test_videos(phantom_dir, 3):
        shutil.copy(v, videos)
    (videos / "broken.avi").write_bytes(b"RIFF not a video")
    quiet = dict(folds=[0], device="cpu", progress=False, log=lambda s: None)
    one = predict_videos(videos, model_folder, tmp_path / "one", **quiet)
    assert len(one["results"]) == 3 and len(one["failed"]) == 1 and one["summary"]["complete"]
    for part in (1, 0):  # parts in any order, each unaware of the other
        done = predict_videos(videos, model_folder, tmp_path / "parts", num_parts=2, part_id=part, **quiet)
        assert len(done["results"]) + len(done["failed"]) == 2
        assert done["summary"]["complete"] == (part == 0) and len(done["summary"]["pending"]) == (2 if part == 1 else 0)
    assert _outputs(tmp_path / "one") == _outputs(tmp_path / "parts")

    # a part run again keeps its finished videos (files untouched) and retries the failed one
    before = {f.name: f.stat().st_mtime_ns for f in (tmp_path / "one").iterdir()}
    again = predict_videos(videos, model_folder, tmp_path / "one", **quiet)
    assert again["results"] == [] and len(again["kept"]) == 3 and len(again["failed"]) == 1
    kept = {n: t for n, t in before.items() if not n.startswith(("broken", "predict"))}
    assert all((tmp_path / "one" / n).stat().st_mtime_ns == t for n, t in kept.items())
    # a video killed before its JSON (written last) was written is not finished: it is done again, and only it
    stem = _test_videos(phantom_dir, 1)[0].stem
    (tmp_path / "one" / f"{stem}.json").unlink()
    again = predict_videos(videos, model_folder, tmp_path / "one", **quiet)
    assert [Path(r["video"]).stem for r in again["results"]] == [stem] and len(again["kept"]) == 2
    assert _outputs(tmp_path / "one") == _outputs(tmp_path / "parts")
    assert not list((tmp_path / "one").glob(".tmp-*"))
    # masks filtered along time are another result: nothing finished without the filter is kept
    other = predict_videos(videos, model_folder, tmp_path / "one", time_filter=1.5, **quiet)
    assert other["kept"] == [] and len(other["results"]) == 3 and other["summary"]["time_filter"] == 1.5
    assert main(["predict-video", str(videos), "-m", str(model_folder), "-o", str(tmp_path / "x"),
                 "--time-filter", "-1"]) == 2


def _with_inference_window(model_folder: Path, dest: Path, **window) -> Path:
    """A copy of the model folder whose plans set a shorter inference window (as a user may edit them)."""
    shutil.copytree(model_folder, dest, symlinks=True)
    plans = json.loads((dest / "plans.json").read_text())
    settings = plans["configurations"][dest.name.split("__")[2]]["unilvseg"]
    settings["inference"] = {**settings["inference"], **window}
    (dest / "plans.json").write_text(json.dumps(plans))
    return dest


@pytest.mark.nnunet
def test_long_video_without_seams_and_as_nnunetv2_predict(model_folder, phantom_dir, nnunet_env, tmp_path, monkeypatch):
    from unilvseg_nnunet.inference import predictor as predictor_module
    from unilvseg_nnunet.inference.predictor import load_predictor, segment
    from unilvseg_nnunet.inference.window import VideoWindowNet

    for k, v in nnunet_env.items():
        monkeypatch.setenv(k, v)
    # float32 throughout, here and in nnU-Net's predictor: window logic is compared pixel for pixel (the first window
    # alone is normalised with its own statistics, which bfloat16 rounding amplifies for a smoke-trained model)
    monkeypatch.setenv(precision.ENV, "0")
    # windows of 72 frames overlapping by 24 (the plans' default is 256 and 32): the test videos end to end, cut to
    # 112 frames (120 with the mirrored ends), are two windows long and cheap to segment
    model = _with_inference_window(model_folder, tmp_path / model_folder.name, max_frames=72, overlap=24)
    predictor = load_predictor(model, [0], device="cpu")
    net = predictor.network
    pieces = [decode_video(v) for v in _test_videos(phantom_dir, 3)]
    long = np.concatenate(pieces * (1 + 120 // sum(map(len, pieces))))[:112]
    assert isinstance(net, VideoWindowNet) and net.max_frames == 72 and len(net.windows(len(long) + 2 * net.mirror)) == 2
    windowed = segment(predictor, long)
    # the same video in one pass (a window longer than the video): windows change almost nothing
    predictor.network = VideoWindowNet(net.net, len(long) + 2 * net.mirror, net.overlap, net.margin, mirror=net.mirror)
    whole = segment(predictor, long)
    predictor.network = net
    # (instance norm statistics differ a little from window to window: 1-3.5% of pixels flip for a smoke-trained model,
    # whose training is not seeded; the area curves below show that no window boundary moves the LV)
    assert (windowed == whole).mean() > 0.95
    area_w, area_a = cardiac.area_curve(windowed), cardiac.area_curve(whole)
    assert np.abs(area_w - area_a).mean() <= 0.02 * max(area_a.mean(), 50.0)  # no step where windows meet
    # the first window predicted alone as a video gives the long video's masks wherever no other window reaches
    # (windows are planned over the video with its mirrored ends: the first opens with net.mirror mirrored frames)
    m = net.mirror
    (lo, hi), (next_lo, _) = net.windows(len(long) + 2 * m)[:2]
    piece = segment(predictor, long[:hi - 2 * m])  # one window, mirrored at both ends
    reach = next_lo - m  # the video frames before the second window
    assert lo == 0 and m == 4 and reach >= net.overlap - m and (piece[:reach] == windowed[:reach]).mean() > 0.999
    # the time filter streamed across the windows labels as the filter of nnU-Net's whole-video probabilities
    # (predict_single_npy_array, the path of a model that does not stream)
    streamed = segment(predictor, long, time_filter=1.5)
    with monkeypatch.context() as m:
        m.setattr(predictor_module, "streams", lambda *_: False)
        offline = segment(predictor, long, time_filter=1.5)
    assert not np.array_equal(streamed, windowed) and (streamed == offline).mean() > 0.999
    # ... also for the frames no network pass sees: all-black ones at either end, which nnU-Net crops away and returns
    # as background, and the mirrored filter fills from the frames beside them
    black = np.concatenate([np.zeros_like(long[:2]), long[:30], np.zeros_like(long[:1])])
    streamed = segment(predictor, black, time_filter=1.5)
    with monkeypatch.context() as m:
        m.setattr(predictor_module, "streams", lambda *_: False)
        offline = segment(predictor, black, time_filter=1.5)
    assert offline[[0, -1]].any() and (streamed == offline).mean() > 0.999

    # nnU-Net's own prediction with its defaults but TTA off (nnUNetv2_predict --disable_tta; here its predictor in
    # this process, without the command's worker processes) gives the same masks (its tile holds the whole video),
    # and a mask for every frame of a video shorter than a training clip
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    images, out = tmp_path / "images", tmp_path / "pred"
    write_volume(images / "long_0000.mha", long)
    write_volume(images / "short_0000.mha", long[:5])
    stock = nnUNetPredictor(use_mirroring=False, device=torch.device("cpu"), allow_tqdm=False)
    stock.initialize_from_trained_model_folder(str(model), (0,))
    out.mkdir()  # the sequential path, unlike predict_from_files, does not create it (nnU-Net 2.8.1)
    stock.predict_from_files_sequential(str(images), str(out))
    assert (read_volume(out / "long.mha") == windowed).mean() > 0.999  # nnU-Net accumulates logits in float16
    short = read_volume(out / "short.mha")
    assert short.shape == long[:5].shape and set(np.unique(short)) <= {0, 1}


@pytest.mark.nnunet
def test_inputs_a_user_brings(model_folder, phantom_dir, nnunet_env, tmp_path, monkeypatch):
    for k, v in nnunet_env.items():
        monkeypatch.setenv(k, v)
    source = decode_video(_test_videos(phantom_dir, 1)[0])
    videos = tmp_path / "videos"
    write_video(videos / "big.avi", resize_frames(source, (160, 224)), 50.0)  # 224x160, the EchoNet field of view
    write_video(videos / "flat.avi", np.full((60, PHANTOM_SIZE, PHANTOM_SIZE), 90, np.uint8), 50.0)  # no beat at all
    write_video(tmp_path / "whole.avi", source, 50.0)
    dark = source.copy()
    dark[[0, 5, -1]] = 0  # all-black frames: at either end (nnU-Net crops them) and inside
    write_video(videos / "dark.avi", dark, 50.0)
    data = (tmp_path / "whole.avi").read_bytes()
    (videos / "cut.avi").write_bytes(data[:int(len(data) * 0.6)])  # header announces every frame, the file holds fewer
    quiet = dict(folds=[0], device="cpu", progress=False, log=lambda s: None)
    done = predict_videos(videos, model_folder, tmp_path / "out", **quiet)
    res = {Path(r["video"]).stem: r for r in done["results"]}
    assert res["big"]["resized"] and res["big"]["model_frame_size"] == [PHANTOM_SIZE] * 2
    assert read_volume(tmp_path / "out" / "big.mha").shape == (len(source), 160, 224)
    assert res["cut"]["truncated"] and res["cut"]["num_frames"] < res["cut"]["header_frames"] == len(source)
    assert not res["big"]["truncated"] and np.isnan(res["flat"]["ef_percent"]) and "still" in res["flat"]["ef_unavailable"]
    assert res["dark"]["black_frames"] == [0, 5, len(source) - 1] and res["big"]["black_frames"] == []
    assert "3 all-black frame(s) [0, 5, " in describe(res["dark"])
    flags = done["summary"]["flags"]
    assert flags["truncated"] == ["cut.avi"] and flags["resized"] == ["big.avi"] and flags["black_frames"] == ["dark.avi"]
    assert "flat.avi" in flags["ef_unavailable"]
    refused = predict_videos(videos / "big.avi", model_folder, tmp_path / "strict", resize=False, **quiet)
    error = refused["failed"][0]["error"]
    assert "big.avi: frames are 224x160" in error and f"{PHANTOM_SIZE}x{PHANTOM_SIZE}" in error
