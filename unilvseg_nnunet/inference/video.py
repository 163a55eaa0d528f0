"""Segment raw echo videos (EchoNet-style AVI) with a trained nnU-Net model folder, no conversion step.

Per video ``<stem>`` in the output folder: ``<stem>.mha`` (label volume (frames, H, W), 1 = LV, and the
model's other structures if it has any — the same naming as nnUNetv2_predict, so the folder can be fed
to ``unilvseg evaluate``), ``<stem>_overlay.avi`` (contour on every frame), ``<stem>_area.csv`` and
``<stem>_area.png`` (LV area curve with detected ED/ES), and last ``<stem>.json`` (ED/ES frames, beats,
EF or why it is unavailable, heart rate, temporal consistency, input checks, timing): a video with its
JSON is finished. A video that fails gets ``<stem>_failed.json`` instead. A folder of videos also gets
``predict_video_summary.json``, rebuilt from those files by every run that ends.

Inputs a user brings: frames of another size than the model's are resampled to it (and the masks
back), unless ``resize=False``, which refuses them; a video that decodes fewer frames than its header
announces is flagged (``truncated``); so are frames that are all black (``black_frames``: no model sees an LV there,
and nnU-Net crops them away at a video's ends, so their masks are empty unless ``--time-filter`` fills them from the
frames beside them); an EF outside 0-90 %, from an empty ED or ES mask, or from a curve without clear beats is
reported as unavailable with the reason.

Many machines: a folder is split like nnU-Net splits its input (``videos[part_id::num_parts]`` of the
sorted list), so parts run anywhere without coordination; every file is written atomically and a
finished video is skipped when a part runs again, so a killed part resumes where it stopped.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from unilvseg_nnunet.data.dataset import LV
from unilvseg_nnunet.data.echonet import DEFAULT_FPS, decode_video
from unilvseg_nnunet.evaluation import cardiac
from unilvseg_nnunet.evaluation.overlay import write_overlay_video
from unilvseg_nnunet.evaluation.reports import jsonable, plot_area_curve, save_figure, to_csv
from unilvseg_nnunet.files import write_json, write_text, write_volume
from unilvseg_nnunet.inference.predictor import (
    PredictionError,
    check_model_folder,
    default_device,
    load_predictor,
    model_frame_size,
    model_wants_color,
    segment,
)

VIDEO_SUFFIXES = (".avi",)
SUMMARY = "predict_video_summary.json"
MAX_HF_SHARE = 0.5  # above this share of area-curve energy above 10 Hz, the curve flickers rather than beats
MIN_MOTION = 0.5  # mean grey-level change between frames below which a video is a still: no heart moves in it
# what must match for a finished video to be kept ("time_filter": None without one, as in outputs made before it)
PROVENANCE_KEYS = ("model_folder", "folds", "checkpoint", "time_filter")


def video_header(path) -> tuple[float | None, int | None]:
    """Frame rate and frame count stored in the video container (None where OpenCV reports none)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) if cap.isOpened() else 0.0
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT) if cap.isOpened() else 0.0
    finally:
        cap.release()
    return (float(fps) if fps and math.isfinite(fps) and fps > 0 else None,
            int(count) if count and math.isfinite(count) and count > 0 else None)


def resize_frames(video: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Frames (F, H, W[, C]) resampled to ``size`` (h, w): OpenCV's area interpolation when shrinking, else linear."""
    import cv2

    h, w = size
    shrink = h * w < video.shape[1] * video.shape[2]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = np.empty((len(video), h, w, *video.shape[3:]), video.dtype)
    for t, frame in enumerate(video):
        out[t] = cv2.resize(frame, (w, h), interpolation=interp)
    return out


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Label maps (F, h, w) resampled to ``size`` (H, W): each label's indicator interpolated linearly, then
    the largest one kept (smooth outlines, unlike nearest-neighbour)."""
    import cv2

    h, w = size
    values = np.unique(labels)
    out = np.empty((len(labels), h, w), labels.dtype)
    for t, frame in enumerate(labels):
        ind = [cv2.resize((frame == v).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) for v in values]
        out[t] = values[np.argmax(np.stack(ind), 0)]
    return out


def black_frames(frames: np.ndarray) -> list[int]:
    """Indices of the frames of ``frames`` (F, H, W[, 3]) whose every pixel is 0."""
    return np.flatnonzero(~np.asarray(frames).reshape(len(frames), -1).any(1)).tolist()


def frame_motion(frames: np.ndarray) -> float:
    """Mean absolute grey-level change between consecutive frames (0 for a still image repeated)."""
    if len(frames) < 2:
        return 0.0
    return float(np.mean([np.abs(b.astype(np.int16) - a).mean() for a, b in zip(frames[:-1], frames[1:])]))


def ef_readout(readout: dict, motion: float = math.inf) -> tuple[float, str | None]:
    """The EF to report (mean over beats) and None, or NaN and the reason it is unavailable.

    ``motion``: the input's :func:`frame_motion`; a still video has no beat, whatever the model's
    masks do at its borders."""
    if motion < MIN_MOTION:
        return math.nan, (f"the video is still (mean change between frames {motion:.2f} grey levels, below "
                          f"{MIN_MOTION:g}): no heart beats in it")
    if not readout["beats"]:
        return math.nan, "no complete beat (an ED followed by an ES) was detected on the LV-area curve"
    hf = readout["hf_share"]
    if math.isfinite(hf) and hf > MAX_HF_SHARE:
        return math.nan, (f"{100 * hf:.0f}% of the LV-area curve's energy lies above {readout['hf_cutoff_hz']:g} Hz: "
                          f"the segmentation flickers from frame to frame, so the curve shows no clear beats")
    problems = [b["ef_problem"] for b in readout["beats"] if b["ef_problem"] is not None]
    if problems:
        return math.nan, problems[0]
    return float(readout["ef_beats_mean"]), None


def output_files(out_dir, stem: str) -> list[Path]:
    """The files a finished video has in ``out_dir``, its JSON last."""
    out = Path(out_dir)
    return [out / f"{stem}{s}" for s in (".mha", "_overlay.avi", "_area.csv", "_area.png", ".json")]


def finished(out_dir, stem: str, provenance: dict) -> bool:
    """Whether ``stem`` was finished in ``out_dir`` with the same model, folds and checkpoint."""
    files = output_files(out_dir, stem)
    if not all(f.is_file() for f in files):
        return False
    try:
        done = json.loads(files[-1].read_text())
    except (OSError, ValueError):
        return False
    return all(done.get(k) == jsonable(provenance.get(k)) for k in PROVENANCE_KEYS)


def predict_one(predictor, video_path, out_dir, fps: float | None = None, overlay_scale: int = 3,
                provenance: dict | None = None, resize: bool = True, time_filter: float = 0.0) -> dict:
    """Segment one video and write its outputs (see module doc); return its JSON dict (``provenance``,
    e.g. the model folder, is copied into it). ``time_filter``: see :func:`~.predictor.segment`."""
    video_path, out = Path(video_path), Path(out_dir)
    color = model_wants_color(predictor)
    try:
        video = decode_video(video_path, keep_color=color)
    except ValueError as e:
        raise PredictionError(str(e)) from None
    header_fps, header_frames = video_header(video_path)
    frames = video.mean(-1).round().astype(np.uint8) if color else video  # grey for the overlay
    fps_source = "argument" if fps else "video"
    fps = fps or header_fps
    if not fps:
        fps, fps_source = DEFAULT_FPS, "default"
    size, model_size = tuple(frames.shape[1:3]), model_frame_size(predictor)
    if size != model_size and not resize:
        raise PredictionError(f"{video_path}: frames are {size[1]}x{size[0]} (width x height), the model was "
                              f"trained on {model_size[1]}x{model_size[0]}; allow resampling (drop --no-resize) "
                              f"or resize the video")
    t0 = time.perf_counter()
    labels = segment(predictor, video if size == model_size else resize_frames(video, model_size),
                     time_filter=time_filter)
    seconds = time.perf_counter() - t0
    del video
    if size != model_size:
        labels = resize_labels(labels, size)
    mask = (labels == LV).astype(np.uint8)  # the read-outs follow the LV (a model may segment other structures)
    readout = cardiac.video_readout(mask, fps)
    motion = frame_motion(frames)
    ef, ef_reason = ef_readout(readout, motion)
    stem = video_path.stem
    write_volume(out / f"{stem}.mha", labels)
    beat_frames = {f for b in readout["beats"] for f in (b["ed"], b["es"])}
    disks = {f: d for f in beat_frames if (d := cardiac.disks_from_mask(mask[f])) is not None}
    write_overlay_video(out / f"{stem}_overlay.avi", frames, mask, fps, overlay_scale, readout["ed_frames"],
                        readout["es_frames"], disks)
    area = np.asarray(readout["area"])
    ed, es = set(readout["ed_frames"]), set(readout["es_frames"])
    rows = [[t, t / fps, a, int(t in ed), int(t in es)] for t, a in enumerate(area.tolist())]
    write_text(out / f"{stem}_area.csv", to_csv(rows, ("frame", "time_s", "area_px", "ed", "es")))
    title = f"{stem}  EF {ef:.1f}% ({len(readout['beats'])} beats)" if ef_reason is None else f"{stem}  EF unavailable"
    save_figure(plot_area_curve(area, fps, title, readout["ed_frames"], readout["es_frames"]), out / f"{stem}_area.png")
    result = {"video": str(video_path), **(provenance or {}), "fps_source": fps_source,
              "height": int(size[0]), "width": int(size[1]), "model_frame_size": list(model_size),
              "resized": size != model_size, "header_frames": header_frames,
              "truncated": header_frames is not None and len(frames) < header_frames, "black_frames": black_frames(frames),
              "frame_motion": motion, "ef_percent": ef, "ef_unavailable": ef_reason, **readout,
              "timing": {"prediction_seconds": seconds,
                         "frames_per_second": len(frames) / seconds if seconds > 0 else math.nan}}
    write_json(out / f"{stem}.json", jsonable(result))  # last: its presence marks the video finished
    (out / f"{stem}_failed.json").unlink(missing_ok=True)
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


def shard(videos: list[Path], num_parts: int = 1, part_id: int = 0) -> list[Path]:
    """Part ``part_id`` of ``num_parts`` of the videos, as nnUNetv2_predict's -num_parts/-part_id split its input."""
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise PredictionError(f"-part_id must be in 0..{num_parts - 1} for -num_parts {num_parts}, got {part_id}")
    return videos[part_id::num_parts]


def describe(result: dict) -> str:
    """One line for the terminal."""
    hr, n = result["heart_rate_bpm"], len(result["beats"])
    ef_text = (f"{result['ef_percent']:.1f}% over {n} beat(s)" if result["ef_unavailable"] is None
               else f"unavailable ({result['ef_unavailable']})")
    hr_text = f"{hr:.0f} bpm" if math.isfinite(hr) else "n/a"
    notes = []
    if result["resized"]:
        h, w = result["model_frame_size"]
        notes.append(f"frames resampled from {result['width']}x{result['height']} to {w}x{h}")
    if result["truncated"]:
        notes.append(f"WARNING: decoded {result['num_frames']} of the {result['header_frames']} frames its header "
                     f"announces (truncated or damaged file)")
    if result.get("black_frames"):
        notes.append(f"{len(result['black_frames'])} all-black frame(s) {result['black_frames'][:8]}: no image to segment")
    return (f"{Path(result['video']).name}: {result['num_frames']} frames @ {result['fps']:g} fps; "
            f"ED frames {result['ed_frames']}, ES frames {result['es_frames']}; EF {ef_text}; HR {hr_text}"
            + "".join(f"; {x}" for x in notes))


def write_summary(videos: list[Path], out_dir, provenance: dict) -> dict:
    """``predict_video_summary.json`` for the folder's ``videos`` from the files in ``out_dir`` (every part's)."""
    out = Path(out_dir)
    keys = ("video", "num_frames", "header_frames", "truncated", "black_frames", "height", "width", "resized", "fps", "ed_frames",
            "es_frames", "ef_percent", "ef_unavailable", "heart_rate_bpm", "hf_share", "jitter")
    results, failed, pending = [], [], []
    for v in videos:
        if finished(out, v.stem, provenance):
            r = json.loads((out / f"{v.stem}.json").read_text())
            results.append({k: r.get(k) for k in keys})
        elif (out / f"{v.stem}_failed.json").is_file():
            failed.append(json.loads((out / f"{v.stem}_failed.json").read_text()))
        else:
            pending.append(str(v))
    flags = {flag: [Path(r["video"]).name for r in results if r[flag]]
             for flag in ("truncated", "black_frames", "resized", "ef_unavailable")}
    summary = {**{k: provenance[k] for k in PROVENANCE_KEYS}, "videos": len(videos), "complete": not pending,
               "flags": flags, "results": results, "failed": failed, "pending": pending}
    write_json(out / SUMMARY, jsonable(summary))
    return summary


def predict_videos(inputs, model_folder, out_dir, folds=None, checkpoint: str = "checkpoint_final.pth",
                   device: str | None = None, fps: float | None = None, num_parts: int = 1, part_id: int = 0,
                   overwrite: bool = False, resize: bool = True, time_filter: float = 0.0, progress: bool = True,
                   log=print) -> dict:
    """Segment one video or this part of a folder of videos (see module doc); a failing video is reported and
    the others go on; finished videos are kept unless ``overwrite`` (or made with another ``time_filter``).

    Returns {"results": [this run's JSON dicts], "kept": [videos finished before], "failed": [{"video", "error"}],
    "summary": the folder summary or None}.
    """
    from tqdm import tqdm

    everything = list_videos(inputs)
    videos = shard(everything, num_parts, part_id)
    device = device or default_device()
    provenance = {"model_folder": str(model_folder), "folds": check_model_folder(model_folder, folds, checkpoint),
                  "checkpoint": checkpoint, "time_filter": float(time_filter) or None, "device": device}
    kept = [v for v in videos if not overwrite and finished(out_dir, v.stem, provenance)]
    todo = [v for v in videos if v not in kept]
    if kept:
        log(f"{len(kept)} video(s) finished before with this model: kept")
    results, failed = [], []
    predictor = load_predictor(model_folder, folds, checkpoint, device) if todo else None
    for v in tqdm(todo, desc="predict-video", unit="video", disable=not progress or len(todo) < 2):
        try:
            r = predict_one(predictor, v, out_dir, fps, provenance=provenance, resize=resize, time_filter=time_filter)
        except (PredictionError, RuntimeError, ValueError, OSError) as e:
            failed.append({"video": str(v), "error": str(e)})
            write_json(Path(out_dir) / f"{v.stem}_failed.json", failed[-1])
            log(f"FAILED {v}: {e}")
            continue
        results.append(r)
        log(describe(r))
    summary = write_summary(everything, out_dir, provenance) if Path(inputs).is_dir() else None
    return {"results": results, "kept": [str(v) for v in kept], "failed": failed, "summary": summary}
