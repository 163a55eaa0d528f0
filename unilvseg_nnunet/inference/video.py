"""Segment raw echo videos (EchoNet-style AVI) with a trained nnU-Net model folder, no conversion step.

Per video ``<stem>`` in the output folder: ``<stem>.mha`` (mask volume (frames, H, W), 0/1 — the
same naming as nnUNetv2_predict, so the folder can be fed to ``unilvseg evaluate``),
``<stem>_overlay.avi`` (contour on every frame), ``<stem>_area.csv`` and ``<stem>_area.png`` (LV
area curve with detected ED/ES), ``<stem>.json`` (ED/ES frames, beats, EF, heart rate, temporal
consistency, timing). A folder of videos also gets ``predict_video_summary.json``.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from unilvseg_nnunet.evaluation import cardiac
from unilvseg_nnunet.data.echonet import DEFAULT_FPS, decode_video, video_fps
from unilvseg_nnunet.evaluation.reports import jsonable, plot_area_curve, save_figure, to_csv
from unilvseg_nnunet.files import write_json, write_text, write_volume
from unilvseg_nnunet.inference.predictor import PredictionError, check_model_folder, load_predictor, model_wants_color, segment
from unilvseg_nnunet.evaluation.overlay import write_overlay_video

VIDEO_SUFFIXES = (".avi",)


def predict_one(predictor, video_path, out_dir, fps: float | None = None, overlay_scale: int = 3,
                provenance: dict | None = None) -> dict:
    """Segment one video and write its outputs (see module doc); return the readout dict
    (``provenance``, e.g. the model folder, is copied into it)."""
    video_path, out = Path(video_path), Path(out_dir)
    color = model_wants_color(predictor)
    try:
        video = decode_video(video_path, keep_color=color)
    except ValueError as e:
        raise PredictionError(str(e)) from None
    frames = video.mean(-1).round().astype(np.uint8) if color else video  # grey for the overlay
    fps_source = "argument" if fps else "video"
    fps = fps or video_fps(video_path)
    if not fps:
        fps, fps_source = DEFAULT_FPS, "default"
    t0 = time.perf_counter()
    mask = segment(predictor, video)
    seconds = time.perf_counter() - t0
    readout = cardiac.video_readout(mask, fps)
    stem = video_path.stem
    write_volume(out / f"{stem}.mha", mask)
    beat_frames = {f for b in readout["beats"] for f in (b["ed"], b["es"])}
    disks = {f: d for f in beat_frames if (d := cardiac.disks_from_mask(mask[f])) is not None}
    write_overlay_video(out / f"{stem}_overlay.avi", frames, mask, fps, overlay_scale, readout["ed_frames"],
                        readout["es_frames"], disks)
    area = np.asarray(readout["area"])
    ed, es = set(readout["ed_frames"]), set(readout["es_frames"])
    rows = [[t, t / fps, a, int(t in ed), int(t in es)] for t, a in enumerate(area.tolist())]
    write_text(out / f"{stem}_area.csv", to_csv(rows, ("frame", "time_s", "area_px", "ed", "es")))
    ef = readout["ef_beats_mean"]
    save_figure(plot_area_curve(area, fps, f"{stem}  EF {ef:.1f}% ({len(readout['beats'])} beats)" if math.isfinite(ef)
                                else f"{stem}  no complete beat detected", readout["ed_frames"], readout["es_frames"]),
                out / f"{stem}_area.png")
    result = {"video": str(video_path), **(provenance or {}), "fps_source": fps_source, "prediction_seconds": seconds,
              "frames_per_second": len(frames) / seconds if seconds > 0 else math.nan,
              "height": int(frames.shape[1]), "width": int(frames.shape[2]), **readout}
    write_json(out / f"{stem}.json", jsonable(result))
    return result


def list_videos(path) -> list[Path]:
    """The video itself, or the videos (``*.avi``, any case) of a folder, sorted."""
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        vids = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES)
        if not vids:
            raise PredictionError(f"{p}: no {'/'.join(VIDEO_SUFFIXES)} video in this folder")
        return vids
    raise PredictionError(f"{p}: no such video or folder")


def describe(result: dict) -> str:
    """One line for the terminal."""
    ef, hr, n = result["ef_beats_mean"], result["heart_rate_bpm"], len(result["beats"])
    ef_text = f"{ef:.1f}% over {n} beat(s)" if math.isfinite(ef) else "n/a (no complete beat)"
    hr_text = f"{hr:.0f} bpm" if math.isfinite(hr) else "n/a"
    return (f"{Path(result['video']).name}: {result['num_frames']} frames @ {result['fps']:g} fps; "
            f"ED frames {result['ed_frames']}, ES frames {result['es_frames']}; EF {ef_text}; HR {hr_text}")


def predict_videos(inputs, model_folder, out_dir, folds=None, checkpoint: str = "checkpoint_final.pth",
                   device: str = "cpu", fps: float | None = None, progress: bool = True, log=print) -> dict:
    """Segment one video or a folder of videos; a failing video is reported and the others go on.

    Returns {"results": [...], "failed": [{"video", "error"}]}; a folder also writes
    ``predict_video_summary.json``.
    """
    from tqdm import tqdm

    videos = list_videos(inputs)
    predictor = load_predictor(model_folder, folds, checkpoint, device)
    results, failed = [], []
    provenance = {"model_folder": str(model_folder), "folds": check_model_folder(model_folder, folds, checkpoint),
                  "checkpoint": checkpoint, "device": device}
    for v in tqdm(videos, desc="predict-video", unit="video", disable=not progress or len(videos) == 1):
        try:
            r = predict_one(predictor, v, out_dir, fps, provenance=provenance)
        except (PredictionError, RuntimeError, ValueError, OSError) as e:
            failed.append({"video": str(v), "error": str(e)})
            log(f"FAILED {v}: {e}")
            continue
        results.append(r)
        log(describe(r))
    summary = {**provenance, "results": [{k: r[k] for k in ("video", "num_frames", "fps", "ed_frames", "es_frames", "ef_beats_mean",
                                              "heart_rate_bpm", "hf_share", "jitter", "frames_per_second")} for r in results],
               "failed": failed}
    if Path(inputs).is_dir():
        write_json(Path(out_dir) / "predict_video_summary.json", jsonable(summary))
    return summary
