"""Trained nnU-Net model folders: checks, loading with our trainers visible, and segmentation of a video.

The one place where ``unilvseg`` commands (predict-video, compare, benchmarks) turn a model folder
``$nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIG`` into masks.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from unilvseg_nnunet.errors import UnilvsegError
from unilvseg_nnunet.training import TRAINER_FOLDER


class PredictionError(UnilvsegError, RuntimeError):
    """Bad model folder or video; the message names the file."""


def ensure_ext_trainer_path() -> str:
    """Point ``nnUNet_extTrainer`` at :data:`TRAINER_FOLDER` when it is unset; return the value in effect."""
    return os.environ.setdefault("nnUNet_extTrainer", str(TRAINER_FOLDER))


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
        raise PredictionError(f"{mf}: model folder not found (expected $nnUNet_results/DatasetXXX/TRAINER__PLANS__CONFIG)")
    for name in ("plans.json", "dataset.json"):
        if not (mf / name).is_file():
            raise PredictionError(f"{mf / name}: missing; {mf} is not an nnU-Net trainer output folder")
    if folds is None:
        # like nnU-Net's auto-detection: numbered folds only (fold_all must be asked for)
        folds = sorted(int(p.name[5:]) for p in mf.glob("fold_*") if p.name[5:].isdigit() and (p / checkpoint).is_file())
        if not folds:
            raise PredictionError(f"{mf}: no fold_*/{checkpoint} (train the model first, or pick another --checkpoint)")
    for f in folds:
        ck = mf / f"fold_{f}" / checkpoint
        if not ck.is_file():
            raise PredictionError(f"{ck}: checkpoint not found")
    return list(folds)


def load_predictor(model_folder, folds=None, checkpoint: str = "checkpoint_final.pth", device: str = "cpu",
                   tta: bool = False):
    """An ``nnUNetPredictor`` initialised from a trained model folder (our trainers made visible)."""
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    folds = check_model_folder(model_folder, folds, checkpoint)
    ensure_ext_trainer_path()
    dev = torch.device(device)
    predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=tta,
                                perform_everything_on_device=dev.type == "cuda", device=dev,
                                verbose=False, allow_tqdm=False)
    try:
        predictor.initialize_from_trained_model_folder(str(model_folder), folds, checkpoint)
    except Exception as e:
        raise PredictionError(f"{model_folder}: cannot load the model ({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''})") from e
    return predictor


def segment(predictor, frames: np.ndarray) -> np.ndarray:
    """(F, H, W) uint8 mask (1 = LV) of a (F, H, W) grey or (F, H, W, 3) RGB video, spacing (1, 1, 1) like the conversion."""
    x = np.asarray(frames, np.float32)
    x = np.moveaxis(x, -1, 0) if x.ndim == 4 else x[None]
    seg = predictor.predict_single_npy_array(x, {"spacing": [1.0, 1.0, 1.0]})
    return (np.asarray(seg) == 1).astype(np.uint8)


def model_wants_color(predictor) -> bool:
    """True for a model trained on three-channel (R, G, B) conversions (``--keep-color``), False for grey."""
    n = len(predictor.dataset_json["channel_names"])
    if n not in (1, 3):
        raise PredictionError(f"the model expects {n} input channels; videos give 1 (grey) or 3 (RGB)")
    return n == 3


