"""The raw-dataset contract between conversion, training and evaluation.

One nnU-Net case is one whole video, image ``{case}_0000{FILE_ENDING}`` of shape (frames, H, W),
spacing (1, 1, 1). Its label volume holds ``BACKGROUND``/``LV`` on traced frames and ``IGNORE``
(nnU-Net's ignore label, the highest value) on every untraced frame. Beside ``imagesTr`` etc. the
folder ``METADATA_DIR`` holds one JSON per case (see :data:`METADATA_FIELDS`); it is written last,
so its presence marks a case as completely converted.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from .files import write_json

BACKGROUND, LV, IGNORE = 0, 1, 2
LABELS = {"background": BACKGROUND, "LV": LV, "ignore": IGNORE}
FILE_ENDING = ".mha"  # uncompressed MetaImage: SimpleITKIO reads it, ~2x faster to write than .nii.gz
METADATA_DIR = "unilvseg_metadata"
CONVERSION_REPORT = "conversion_report.json"

METADATA_FIELDS = {
    "case": "nnU-Net case identifier = EchoNet FileName without extension",
    "split": "TRAIN, VAL, TEST, or UNLABELED (videos without tracings, kept for self-supervision)",
    "subset": "imagesTr or imagesTs",
    "num_frames": "decoded frame count (the image length)",
    "filelist_num_frames": "NumberOfFrames from FileList.csv (may differ from num_frames)",
    "fps": "frames per second from FileList.csv",
    "height": "frame height in pixels",
    "width": "frame width in pixels",
    "traced_frames": "sorted list of labeled frame indices (0-based)",
    "ed_frame": "end-diastole frame index (the traced frame with the larger area) or null",
    "es_frame": "end-systole frame index (the traced frame with the smaller area) or null",
    "ef": "EF from FileList.csv (percent) or null",
    "edv": "EDV from FileList.csv (ml) or null",
    "esv": "ESV from FileList.csv (ml) or null",
    "ef_tracings": "EF recomputed from the tracings by the method of disks (percent) or null",
    "issues": "list of problems found for this case that were handled (see the conversion report)",
}


def metadata_path(dataset_dir: str | os.PathLike, case: str) -> Path:
    return Path(dataset_dir) / METADATA_DIR / f"{case}.json"


def write_case_metadata(dataset_dir: str | os.PathLike, meta: dict) -> None:
    missing = set(METADATA_FIELDS) - set(meta)
    if missing:
        raise ValueError(f"case metadata for {meta.get('case')!r} lacks fields {sorted(missing)}")
    write_json(metadata_path(dataset_dir, meta["case"]), meta)


def read_case_metadata(dataset_dir: str | os.PathLike, case: str) -> dict:
    path = metadata_path(dataset_dir, case)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no case metadata (was {case!r} converted by unilvseg?)")
    return json.loads(path.read_text())


def iter_case_metadata(dataset_dir: str | os.PathLike) -> Iterator[dict]:
    folder = Path(dataset_dir) / METADATA_DIR
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no case metadata folder; convert the dataset with conversion/echonet_to_nnunet.py")
    for path in sorted(folder.glob("*.json")):
        yield json.loads(path.read_text())


def labeled_frames(label_volume: np.ndarray) -> np.ndarray:
    """Indices of frames that carry a label (any voxel other than IGNORE)."""
    lab = np.asarray(label_volume)
    return np.flatnonzero((lab != IGNORE).reshape(lab.shape[0], -1).any(axis=1))
