"""The raw-dataset contract between conversion, training and evaluation.

One nnU-Net case is one whole video, image ``{case}_0000{FILE_ENDING}`` of shape (frames, H, W),
spacing (1, 1, 1). Its label volume holds ``BACKGROUND``/``LV`` on traced frames and ``IGNORE``
(nnU-Net's ignore label, the highest value) on every untraced frame. Beside ``imagesTr`` etc. the
folder ``METADATA_DIR`` holds one JSON per case (see :data:`METADATA_FIELDS` and
:data:`OPTIONAL_METADATA_FIELDS`); it is written last, so its presence marks a case as completely
converted. Where the source knows the LV of every frame, ``DENSE_TRUTH_DIR`` holds it ("dense truth").
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from unilvseg_nnunet.errors import UnilvsegError
from unilvseg_nnunet.files import write_json

BACKGROUND, LV, IGNORE = 0, 1, 2
LABELS = {"background": BACKGROUND, "LV": LV, "ignore": IGNORE}
FILE_ENDING = ".mha"  # the conversion default (uncompressed MetaImage, ~2x faster to write than .nii.gz);
# readers take a dataset's own ending from its dataset.json (:func:`file_ending`)
METADATA_DIR = "unilvseg_metadata"
CONVERSION_REPORT = "conversion_report.json"
# Dense truth, where a source dataset knows the LV of every frame (the phantom; CAMUS's full-cycle labels):
# DENSE_TRUTH_DIR/<case><file_ending>, (frames, H, W) uint8, 1 = LV (and the dataset's other structures, as
# CAMUS's), 0 elsewhere, on every frame. nnU-Net never reads it; the evaluation scores every frame against it.
DENSE_TRUTH_DIR = "unilvseg_dense_truth"

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
OPTIONAL_METADATA_FIELDS = {
    "dense_truth": "true when DENSE_TRUTH_DIR holds this case's every-frame truth (absent or false otherwise)",
    "corrupted_frames": "frames with a known acquisition artefact, [{frame, kinds: [...]}] (dense-truth sources)",
}


def dense_truth_path(dataset_dir: str | os.PathLike, case: str, ending: str) -> Path:
    return Path(dataset_dir) / DENSE_TRUTH_DIR / f"{case}{ending}"


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


def labeled_frames(label_volume: np.ndarray, ignore: int = IGNORE) -> np.ndarray:
    """Indices of frames that carry a label (any voxel other than the dataset's ignore label)."""
    lab = np.asarray(label_volume)
    return np.flatnonzero((lab != ignore).reshape(lab.shape[0], -1).any(axis=1))


class DatasetError(UnilvsegError):
    """A raw dataset that cannot be found or read; the message names the folder or file."""


def resolve_raw_dataset(dataset: str | os.PathLike) -> Path:
    """A raw dataset folder, given as a path or as an nnU-Net dataset id/name under $nnUNet_raw."""
    p = Path(dataset)
    if p.is_dir():
        return p
    raw = os.environ.get("nnUNet_raw")
    if not raw:
        raise DatasetError(f"{dataset}: not a folder, and nnUNet_raw is not set to look it up as a dataset id")
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    try:
        name = maybe_convert_to_dataset_name(str(dataset))
    except (RuntimeError, ValueError) as e:
        raise DatasetError(f"{dataset}: no such dataset under nnUNet_raw={raw} ({str(e).splitlines()[0]})") from None
    p = Path(raw) / name
    if not p.is_dir():
        raise DatasetError(f"{p}: raw dataset folder not found")
    return p


def file_ending(raw_dir: str | os.PathLike) -> str:
    """The image file ending of a raw dataset, from its dataset.json (".mha", ".nii.gz", ...)."""
    path = Path(raw_dir) / "dataset.json"
    try:
        ending = json.loads(path.read_text())["file_ending"]
    except (OSError, ValueError, KeyError) as e:
        raise DatasetError(f"{path}: cannot read the dataset's file_ending ({type(e).__name__}: {e})") from None
    return ending


def structure_labels(raw_dir: str | os.PathLike) -> tuple[dict[str, int], int]:
    """({structure name: label value}, ignore label) of a raw dataset, from its dataset.json: every label but
    "background" and "ignore" is a structure ({"LV": 1} for EchoNet; LV, myocardium, left atrium for CAMUS)."""
    path = Path(raw_dir) / "dataset.json"
    try:
        labels = {k: int(v) for k, v in json.loads(path.read_text())["labels"].items()}
        ignore = labels.pop("ignore")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{path}: cannot read the dataset's labels with an ignore label "
                           f"({type(e).__name__}: {e})") from None
    labels.pop("background", None)
    return labels, ignore


def subset_cases(raw_dir: str | os.PathLike, subset: str) -> tuple[Path, list[str], str]:
    """The labels folder of ``subset`` (imagesTs -> labelsTs), its case names and the file ending."""
    ending = file_ending(raw_dir)
    labels = Path(raw_dir) / subset.replace("images", "labels")
    if not labels.is_dir():
        raise DatasetError(f"{labels}: labels folder not found (subset {subset})")
    cases = sorted(f.name[: -len(ending)] for f in labels.iterdir() if f.name.endswith(ending) and not f.name.startswith("."))
    if not cases:
        raise DatasetError(f"{labels}: no *{ending} label files")
    return labels, cases, ending
