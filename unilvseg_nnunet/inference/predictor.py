"""Trained nnU-Net model folders: checks, loading with our trainers visible, and segmentation of a video.

The one place where ``unilvseg`` commands (predict-video, compare, benchmarks) turn a model folder
``$nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIG`` into masks.

A whole-video configuration (its network a :class:`~unilvseg_nnunet.inference.window.VideoWindowNet`)
is segmented here as ``nnUNetv2_predict`` segments it, but streamed: nnU-Net's preprocessing
(crop to the non-zero box, z-score per channel) is applied window by window to the decoded video
and each window's logits are reduced to labels at once, so memory grows with a video by about
the video and its mask. Other configurations (stock ``2d``, super images, plans without an
inference window) go through nnU-Net's own ``predict_single_npy_array``.
"""
from __future__ import annotations

import itertools
import os
from copy import deepcopy
from pathlib import Path

import numpy as np

from unilvseg_nnunet.errors import UnilvsegError
from unilvseg_nnunet.inference.precision import inference_autocast
from unilvseg_nnunet.inference.time_filter import filter_stream, filtered_labels
from unilvseg_nnunet.inference.window import VideoWindowNet
from unilvseg_nnunet.training import TRAINER_FOLDER

CHUNK_FRAMES = 64  # frames per step when scanning a video for its statistics


class PredictionError(UnilvsegError, RuntimeError):
    """Bad model folder or video; the message names the file."""


def ensure_ext_trainer_path() -> str:
    """Point ``nnUNet_extTrainer`` at :data:`TRAINER_FOLDER` when it is unset; return the value in effect."""
    return os.environ.setdefault("nnUNet_extTrainer", str(TRAINER_FOLDER))


def default_device() -> str:
    """"cuda" when PyTorch sees a GPU, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def parse_folds(values: list[str] | None) -> list | None:
    """``-f`` values as nnU-Net takes them: fold numbers or 'all'; None keeps the model's folds."""
    if values is None:
        return None
    bad = [f for f in values if not (f == "all" or f.isdigit())]
    if bad:
        raise PredictionError(f"-f takes fold numbers or 'all', got {bad} (put -f after the other arguments)")
    return [f if f == "all" else int(f) for f in values]


def check_model_folder(model_folder, folds=None, checkpoint: str = "checkpoint_final.pth") -> list:
    """Validate an nnU-Net trainer output folder; return the folds to use (all with ``checkpoint`` if None)."""
    mf = Path(model_folder)
    if not mf.is_dir():
        raise PredictionError(f"{mf}: model folder not found "
                              f"(expected $nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIG)")
    for name in ("plans.json", "dataset.json"):
        if not (mf / name).is_file():
            raise PredictionError(f"{mf / name}: missing; {mf} is not an nnU-Net trainer output folder")
    if folds is None:
        # like nnU-Net's auto-detection: numbered folds only (fold_all must be asked for)
        folds = sorted(int(p.name[5:]) for p in mf.glob("fold_*")
                       if p.name[5:].isdigit() and (p / checkpoint).is_file())
        if not folds:
            raise PredictionError(f"{mf}: no fold_*/{checkpoint} (train the model first, or pick another --checkpoint)")
    for f in folds:
        ck = mf / f"fold_{f}" / checkpoint
        if not ck.is_file():
            raise PredictionError(f"{ck}: checkpoint not found")
    return list(folds)


def load_predictor(model_folder, folds=None, checkpoint: str = "checkpoint_final.pth", device: str | None = None,
                   tta: bool = False):
    """An ``nnUNetPredictor`` initialised from a trained model folder (our trainers made visible);
    ``device`` None: :func:`default_device`."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    folds = check_model_folder(model_folder, folds, checkpoint)
    ensure_ext_trainer_path()
    dev = torch.device(device or default_device())
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=tta,
                                perform_everything_on_device=dev.type == "cuda", device=dev,
                                verbose=False, allow_tqdm=False)
    try:
        predictor.initialize_from_trained_model_folder(str(model_folder), folds, checkpoint)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise PredictionError(f"{model_folder}: cannot load the model ({type(e).__name__}: {first})") from e
    return predictor


def model_wants_color(predictor) -> bool:
    """True for a model trained on three-channel (R, G, B) conversions (``--keep-color``), False for grey."""
    n = len(predictor.dataset_json["channel_names"])
    if n not in (1, 3):
        raise PredictionError(f"the model expects {n} input channels; videos give 1 (grey) or 3 (RGB)")
    return n == 3


def model_frame_size(predictor) -> tuple[int, int]:
    """(height, width) of the frames the model was trained on (its configuration's median in-plane size)."""
    size = predictor.configuration_manager.configuration["median_image_size_in_voxels"]
    return int(round(size[-2])), int(round(size[-1]))


def segment(predictor, frames: np.ndarray, spacing=(1.0, 1.0, 1.0), time_filter: float = 0.0) -> np.ndarray:
    """(F, H, W) uint8 label map (the model's labels; 1 = LV) of a (F, H, W) grey or (F, H, W, 3) RGB video
    with voxel ``spacing`` (frames, H, W; 1 for EchoNet-style videos, as the conversion writes them); with
    ``time_filter`` > 0, the labels of its probabilities filtered along time with a Gaussian of that many
    frames (:mod:`~unilvseg_nnunet.inference.time_filter`, as ``unilvseg time-filter`` on nnUNetv2_predict's)."""
    frames = np.asarray(frames)
    spacing = [float(s) for s in spacing]
    labels = segment_streaming(predictor, frames, time_filter) if streams(predictor, spacing) else None
    if labels is not None:
        return labels
    x = np.moveaxis(frames, -1, 0) if frames.ndim == 4 else frames[None]
    if not time_filter:
        return np.asarray(predictor.predict_single_npy_array(x.astype(np.float32), {"spacing": spacing})).astype(np.uint8)
    _, probabilities = predictor.predict_single_npy_array(x.astype(np.float32), {"spacing": spacing},
                                                          save_or_return_probabilities=True)
    return filtered_labels(np.asarray(probabilities), time_filter)


def streams(predictor, spacing) -> bool:
    """Whether :func:`segment_streaming` reproduces nnU-Net's preprocessing for this model and ``spacing``: a
    whole-video network, no axis transposition, z-score normalisation over the whole image, no resampling."""
    cm, pm = predictor.configuration_manager, predictor.plans_manager
    return (isinstance(predictor.network, VideoWindowNet) and list(pm.transpose_forward) == list(range(3))
            and set(cm.normalization_schemes) == {"ZScoreNormalization"} and not any(cm.use_mask_for_norm)
            and [float(s) for s in cm.spacing] == list(spacing))


def nonzero_box(x: np.ndarray) -> tuple[slice, ...] | None:
    """Slices (frames, rows, columns) of the box holding every non-zero voxel of ``x`` (C, F, H, W), as
    nnU-Net's crop_to_nonzero; None when every voxel is 0."""
    t, h, w = np.zeros(x.shape[1], bool), np.zeros(x.shape[2], bool), np.zeros(x.shape[3], bool)
    for a in range(0, x.shape[1], CHUNK_FRAMES):
        nz = np.any(x[:, a:a + CHUNK_FRAMES] != 0, axis=0)
        t[a:a + CHUNK_FRAMES] = nz.any((1, 2))
        h |= nz.any((0, 2))
        w |= nz.any((0, 1))
    if not t.any():
        return None
    return tuple(slice(int(np.argmax(m)), len(m) - int(np.argmax(m[::-1]))) for m in (t, h, w))


def zscore_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of ``x`` (C, F, H, W) as float32, nnU-Net's ZScoreNormalization
    (std at least 1e-8), accumulated in float64 over chunks of frames."""
    s1 = np.zeros(x.shape[0])
    s2 = np.zeros(x.shape[0])
    for a in range(0, x.shape[1], CHUNK_FRAMES):
        chunk = x[:, a:a + CHUNK_FRAMES].astype(np.float64)
        s1 += chunk.sum((1, 2, 3))
        s2 += (chunk * chunk).sum((1, 2, 3))
    n = x[0].size
    mean = s1 / n
    std = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-8).astype(np.float32)


def segment_streaming(predictor, frames: np.ndarray, time_filter: float = 0.0) -> np.ndarray | None:
    """(F, H, W) uint8 labels of a video for a whole-video network, window by window (see the module doc); None
    when its frames, cropped to their non-zero box, exceed the patch in-plane (nnU-Net would tile them).

    The same computation as nnUNetv2_predict on the same video (crop to the non-zero box, per-channel
    z-score, zero padding in-plane up to the patch, the network's mirrored ends, windows and cross-fades, test-time
    mirroring when the predictor has it, fold ensemble by mean logits, argmax, zeros outside the box) up
    to float rounding. With ``time_filter`` > 0, the softmax of the video's frames is filtered along time as
    it streams (:func:`~unilvseg_nnunet.inference.time_filter.filter_stream`) before the argmax.
    """
    import torch

    x = np.moveaxis(frames, -1, 0) if frames.ndim == 4 else frames[None]  # (C, F, H, W), a view
    labels = np.zeros(x.shape[1:], np.uint8)
    box = nonzero_box(x)
    if box is None:
        return labels
    crop = x[(slice(None), *box)]
    patch = predictor.configuration_manager.patch_size[1:]
    if any(n > p for n, p in zip(crop.shape[2:], patch)):
        return None
    pad = [(0, 0), (0, 0)] + [((p - n) // 2, p - n - (p - n) // 2) for n, p in zip(crop.shape[2:], patch)]
    inside = (slice(None), slice(None), slice(None), *(slice(a, a + n) for (a, _), n in zip(pad[2:], crop.shape[2:])))
    mean, std = zscore_stats(crop)
    shape = (-1, 1, 1, 1)
    lo, hi = _content_frames(crop, mean.reshape(shape))
    net, device = predictor.network, predictor.device
    nets = _fold_networks(predictor)
    axes = predictor.allowed_mirroring_axes if predictor.use_mirroring else None
    flips = [tuple(a + 2 for a in c) for i in range(len(axes or ())) for c in itertools.combinations(axes, i + 1)]

    def predict(index: torch.Tensor) -> torch.Tensor:
        window = (crop[:, lo + index.numpy()].astype(np.float32) - mean.reshape(shape)) / std.reshape(shape)
        xw = torch.from_numpy(np.pad(window, pad))[None].to(device)  # zeros around, as nnU-Net pads to the patch
        total = None
        for inner in nets:
            y = inner(xw).float()
            for f in flips:
                y += torch.flip(inner(torch.flip(xw, f)), f).float()
            total = y if total is None else total + y
        return total / (len(nets) * (len(flips) + 1))

    autocast = torch.autocast(device.type, enabled=True) if device.type == "cuda" else inference_autocast(device)
    with torch.inference_mode(), autocast:
        windows = net.segments(hi - lo, predict)
        if time_filter:  # every frame enters the filter with nnU-Net's probabilities, those it gives no network pass too
            out, first = labels[(slice(None), *box[1:])], 0  # the stream holds every frame of the video
            probabilities = (torch.softmax(y[inside][0], 0).cpu().numpy() for _, _, y in windows)
            chunks = filter_stream(_with_unseen_frames(probabilities, predictor.label_manager.num_segmentation_heads,
                                                       crop.shape[2:], box[0].start + lo, hi - lo, box[0], len(labels)),
                                   time_filter)
        else:
            out, first = labels[box], lo
            chunks = ((start, y[inside][0].argmax(0).to(torch.uint8).cpu().numpy()) for start, _, y in windows)
        for start, chunk in chunks:
            out[first + start:first + start + len(chunk)] = chunk
    return labels


def _with_unseen_frames(chunks, classes: int, size, first: int, n_content: int, box: slice, n_frames: int):
    """The probability chunks (classes, frames, *size) of a video's ``n_content`` frames from ``first``, between
    nnU-Net's probabilities of the frames no network pass sees: uniform for the frames of the crop ``box`` at the
    mean grey (zero logits, :func:`~unilvseg_nnunet.inference.window.content_range`), background outside it."""
    def constant(n: int, probabilities: np.ndarray) -> list:
        return [np.broadcast_to(probabilities.reshape(classes, 1, *[1] * len(size)), (classes, n, *size))] if n > 0 else []

    background, uniform = np.eye(classes, dtype=np.float32)[0], np.full(classes, 1.0 / classes, np.float32)
    return itertools.chain(constant(box.start, background), constant(first - box.start, uniform), chunks,
                           constant(box.stop - first - n_content, uniform), constant(n_frames - box.stop, background))


def _content_frames(crop: np.ndarray, mean: np.ndarray) -> tuple[int, int]:
    """[first, last + 1) of the frames that are not exactly 0 after normalisation (every voxel at its channel's
    mean), as :func:`~unilvseg_nnunet.inference.window.content_range` sees them in nnU-Net's tile."""
    flat = np.ones(crop.shape[1], bool)
    for a in range(0, crop.shape[1], CHUNK_FRAMES):
        flat[a:a + CHUNK_FRAMES] = np.all(crop[:, a:a + CHUNK_FRAMES].astype(np.float32) == mean, axis=(0, 2, 3))
    content = np.flatnonzero(~flat)
    return (int(content[0]), int(content[-1]) + 1) if content.size else (0, crop.shape[1])


def _fold_networks(predictor) -> list:
    """The inner network of every fold, in eval mode on the predictor's device (one copy per extra fold)."""
    net = predictor.network.to(predictor.device).eval()
    params = predictor.list_of_parameters
    net.load_state_dict(params[0])
    nets = [net.net]
    for p in params[1:]:
        other = deepcopy(net)
        other.load_state_dict(p)
        nets.append(other.net)
    return nets
