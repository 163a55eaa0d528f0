"""EchoNet-Dynamic folder -> nnU-Net v2 raw dataset (one case per whole video, sparse labels).

The dataset contract is :mod:`unilvseg_nnunet.data.dataset`. Problems with one video never abort the run:
each is recorded in the conversion report (``CONVERSION_REPORT`` in the dataset folder) and in the
case's metadata, with what was done (``skipped video``, ``dropped frame`` -> that frame stays IGNORE,
or ``kept``). Problems with the dataset as a whole (missing CSV or column, dataset id taken by
another name) raise before anything is written.

Resumable: a case is complete when its metadata JSON exists (written last, atomically), its files
exist and it was written with the same options; such cases are skipped on a re-run. Files of cases
that are no longer part of the dataset, and ``.tmp-`` leftovers of a killed run, are removed.

Videos without any tracing (``include_unlabeled``) become fully-IGNORE cases of split ``UNLABELED``
in imagesTr: nnU-Net preprocesses every case of imagesTr, and a case that is in no list of a fold is
simply unused by that fold. ``splits_final.json`` fold 0 is the official TRAIN/VAL split (labeled
videos only); when unlabeled cases exist, fold 1 = TRAIN + UNLABELED / VAL, for self-supervised
pretraining (``nnUNetv2_train ID CONFIG 1 -tr TemporalMaskingPretrainer``). Unlabeled TEST videos are
never put into imagesTr (that would leak the test set into pretraining).

Dense truth: where the source folder holds ``DenseTruth/<FileName>.npz`` (the phantom writes it), the
every-frame LV masks go to ``unilvseg_dense_truth/<case><file_ending>`` and ``CorruptedFrames.csv`` into
the case metadata (``dense_truth``, ``corrupted_frames``); a truth file that does not fit the decoded
video is reported and left out, never written wrong.
"""
from __future__ import annotations

import json
import math
import multiprocessing
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from unilvseg_nnunet.data import echonet
from unilvseg_nnunet.data.dataset import (
    CONVERSION_REPORT,
    DENSE_TRUTH_DIR,
    IGNORE,
    LABELS,
    METADATA_DIR,
    dense_truth_path,
    metadata_path,
    write_case_metadata,
)
from unilvseg_nnunet.errors import UnilvsegError
from unilvseg_nnunet.files import write_json, write_volume

SPLITS = echonet.SPLITS
UNLABELED = "UNLABELED"
SUBSET_DIRS = {"imagesTr": "labelsTr", "imagesTs": "labelsTs"}
SKIP_VIDEO, DROP_FRAME, KEPT, IGNORED = "skipped video", "dropped frame", "kept", "ignored"


class ConversionError(UnilvsegError, RuntimeError):
    """A dataset-level problem that prevents conversion (reported with the file and the reason)."""


def issue(problem: str, action: str, message: str, frame: int | None = None) -> dict:
    """One entry of a case's issue list (stored in the report and the case metadata)."""
    d = {"problem": problem, "action": action, "message": message}
    if frame is not None:
        d["frame"] = int(frame)
    return d


@dataclass
class CaseTask:
    """Everything a worker needs to convert one video (picklable, no open files)."""

    case: str
    split: str
    subset: str
    video: Path
    tracings: dict  # frame -> (rows, 4) X1, Y1, X2, Y2
    row: dict  # FileList row
    dataset_dir: Path
    options: dict  # keep_color, file_ending, compress
    issues: list = field(default_factory=list)  # found while planning (before decoding)
    truth: Path | None = None  # the source's dense truth (.npz), if it has one
    corrupted: dict = field(default_factory=dict)  # frame -> artefact kinds, from the source's CorruptedFrames.csv


# ------------------------------------------------------------------------------------------------
# Per-case work
# ------------------------------------------------------------------------------------------------

def image_paths(dataset_dir: Path, subset: str, case: str, options: dict) -> list[Path]:
    nch = 3 if options["keep_color"] else 1
    return [dataset_dir / subset / f"{case}_{c:04d}{options['file_ending']}" for c in range(nch)]


def label_path(dataset_dir: Path, subset: str, case: str, options: dict) -> Path:
    return dataset_dir / SUBSET_DIRS[subset] / f"{case}{options['file_ending']}"


def case_files(dataset_dir: Path, subset: str, case: str, options: dict, dense_truth: bool = False) -> list[Path]:
    truth = [dense_truth_path(dataset_dir, case, options["file_ending"])] if dense_truth else []
    return [*image_paths(dataset_dir, subset, case, options), label_path(dataset_dir, subset, case, options), *truth]


def build_label(tracings: dict, num_frames: int, shape: tuple[int, int]):
    """Label volume (frames, H, W) uint8: EchoNet's mask on each usable traced frame, IGNORE elsewhere.

    Returns (label, areas {frame: polygon area}, issues). A traced frame is dropped (left IGNORE) when
    it lies past the decoded length, has a row count other than 21 (chords) or fewer than 3 points
    (EchoNet-Pediatric's outlines, rows of X, Y), non-numeric coordinates, an invalid frame index, or an
    empty mask: a wrong mask is never written.
    """
    label = np.full((num_frames, *shape), IGNORE, np.uint8)
    areas, issues = {}, []
    for frame in sorted(tracings):
        rows = tracings[frame]
        n = len(rows)
        if frame < 0:
            issues.append(issue("invalid_frame_index", DROP_FRAME,
                                f"{n} tracing row(s) with a Frame value that is not a non-negative integer"))
            continue
        if frame >= num_frames:
            issues.append(issue("frame_beyond_length", DROP_FRAME,
                                f"traced frame {frame} is past the decoded length ({num_frames} frames)", frame))
            continue
        if rows.shape[1] == 2 and n < 3:
            issues.append(issue("too_few_points", DROP_FRAME, f"frame {frame} has {n} outline point(s), a polygon "
                                                              f"needs 3", frame))
            continue
        if rows.shape[1] == 4 and n != echonet.ROWS_PER_TRACING:
            times = f" (traced {n // echonet.ROWS_PER_TRACING} times)" if n % echonet.ROWS_PER_TRACING == 0 else ""
            issues.append(issue("wrong_row_count", DROP_FRAME,
                                f"frame {frame} has {n} tracing rows{times}, expected {echonet.ROWS_PER_TRACING}", frame))
            continue
        if not np.isfinite(rows).all():
            issues.append(issue("invalid_coordinates", DROP_FRAME, f"frame {frame} has empty or non-numeric coordinates", frame))
            continue
        mask = echonet.rows_mask(rows, shape)
        if not mask.any():
            issues.append(issue("empty_mask", DROP_FRAME, f"frame {frame}: the tracing polygon covers no pixel of the "
                                                          f"{shape[0]}x{shape[1]} frame", frame))
            continue
        label[frame] = mask
        areas[frame] = echonet.tracing_area(rows)
    return label, areas, issues


def _num(v):
    """FileList number -> float or None (JSON has no NaN)."""
    return None if v is None or not math.isfinite(v) else float(v)


def convert_case(task: CaseTask) -> dict:
    """Decode one video, write its image(s), label and (last) its metadata. Never raises for a
    problem with this video: returns {"case", "split", "status": "converted"|"skipped", "issues", "meta"}."""
    issues = list(task.issues)
    result = {"case": task.case, "split": task.split, "status": "skipped", "issues": issues, "meta": None}
    meta_file = metadata_path(task.dataset_dir, task.case)
    if meta_file.exists():  # stale (other options or incomplete): it must not mark the case complete
        meta_file.unlink()
    if not task.video.is_file():
        issues.append(issue("missing_video", SKIP_VIDEO, f"{task.video} not found"))
        return result
    try:
        video = echonet.decode_video(task.video, keep_color=task.options["keep_color"])
    except Exception as e:  # undecodable file: report, never abort the dataset
        issues.append(issue("undecodable_video", SKIP_VIDEO, str(e)))
        return result
    num_frames, height, width = video.shape[:3]
    listed = task.row.get("NumberOfFrames")
    if listed is not None and listed != num_frames:
        issues.append(issue("frame_count_mismatch", KEPT, f"decoded {num_frames} frames, FileList.csv says "
                                                          f"NumberOfFrames={listed}; the decoded frames are used"))

    label, areas, frame_issues = build_label(task.tracings, num_frames, (height, width))
    issues.extend(frame_issues)
    if task.split != UNLABELED:
        if not areas:
            issues.append(issue("no_valid_tracing", SKIP_VIDEO, "no traced frame is usable (see the dropped frames)"))
            return result
        if len(areas) > 2:
            issues.append(issue("more_than_two_traced_frames", KEPT, f"{len(areas)} traced frames {sorted(areas)}: all "
                                                                     "are labeled; ED = largest area, ES = smallest"))
        elif len(areas) == 1:
            issues.append(issue("single_traced_frame", KEPT, f"only frame {next(iter(areas))} is traced: it is "
                                                             "labeled; ED and ES are unknown (null)"))
    ed, es = echonet.ed_es_frames(areas)

    ef_tracings = None
    if ed is not None and es is not None and task.tracings[ed].shape[1] == 4:  # chords: method of disks
        t_ed, t_es = task.tracings[ed], task.tracings[es]
        edv = echonet.volume_by_disks(t_ed[:, 0], t_ed[:, 1], t_ed[:, 2], t_ed[:, 3])
        esv = echonet.volume_by_disks(t_es[:, 0], t_es[:, 1], t_es[:, 2], t_es[:, 3])
        ef_tracings = echonet.ejection_fraction(edv, esv) if edv > 0 else None

    truth = _dense_truth(task, (num_frames, height, width), issues)
    corrupted = _corrupted_list(task.corrupted, num_frames)
    if len(corrupted) < len(task.corrupted):
        issues.append(issue("corrupted_frame_beyond_length", IGNORED, f"{echonet.CORRUPTED_FRAMES} lists frames past "
                            f"the decoded length ({num_frames} frames)"))

    channels = [video] if video.ndim == 3 else [video[..., c] for c in range(video.shape[-1])]
    for path, channel in zip(image_paths(task.dataset_dir, task.subset, task.case, task.options), channels):
        write_volume(path, channel, compress=task.options["compress"])
    # labels are mostly one value: compressed they take ~2 KiB instead of 2 MiB and write faster
    write_volume(label_path(task.dataset_dir, task.subset, task.case, task.options), label, compress=True)
    if truth is not None:
        write_volume(dense_truth_path(task.dataset_dir, task.case, task.options["file_ending"]), truth, compress=True)

    meta = {
        "case": task.case,
        "split": task.split,
        "subset": task.subset,
        "num_frames": int(num_frames),
        "filelist_num_frames": listed,
        "fps": _num(task.row.get("FPS")) if "FPS" in task.row else echonet.video_fps(task.video),
        "height": int(height),
        "width": int(width),
        "traced_frames": sorted(int(f) for f in areas),
        "ed_frame": ed,
        "es_frame": es,
        "ef": _num(task.row.get("EF")),
        "edv": _num(task.row.get("EDV")),
        "esv": _num(task.row.get("ESV")),
        "ef_tracings": ef_tracings,
        "issues": issues,
        "source_video": str(task.video),
        "conversion_options": task.options,
        "dense_truth": truth is not None,
        "corrupted_frames": corrupted,
    }
    write_case_metadata(task.dataset_dir, meta)  # last: marks the case complete
    result.update(status="converted", meta=meta)
    return result


def _corrupted_list(corrupted: dict, num_frames: int) -> list[dict]:
    """The metadata form of a case's corrupted frames: [{frame, kinds}] in frame order, within the video."""
    return [{"frame": f, "kinds": corrupted[f]} for f in sorted(corrupted) if f < num_frames]


def _dense_truth(task: CaseTask, shape: tuple, issues: list) -> np.ndarray | None:
    """The case's every-frame truth (frames, H, W) if the source has a usable one; problems go to ``issues``."""
    if task.truth is None:
        return None
    try:
        truth = echonet.read_dense_truth(task.truth)
    except ValueError as e:
        issues.append(issue("unreadable_dense_truth", IGNORED, str(e)))
        return None
    if truth.shape != shape:
        issues.append(issue("dense_truth_mismatch", IGNORED, f"{task.truth}: shape {truth.shape} differs from the "
                                                             f"decoded video's {shape}; no dense truth for this case"))
        return None
    return truth


def completed_metadata(task: CaseTask) -> dict | None:
    """The metadata of a case already converted with the same options and split, else None."""
    path = metadata_path(task.dataset_dir, task.case)
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("conversion_options") != task.options or meta.get("split") != task.split or meta.get("subset") != task.subset:
        return None
    truth_refused = any(i["problem"] in ("unreadable_dense_truth", "dense_truth_mismatch") for i in meta["issues"])
    if (task.truth is not None) != (meta.get("dense_truth") or truth_refused):  # the source gained or lost a truth
        return None
    if meta.get("corrupted_frames", []) != _corrupted_list(task.corrupted, meta["num_frames"]):
        return None
    if not all(p.is_file() for p in case_files(task.dataset_dir, task.subset, task.case, task.options, meta.get("dense_truth"))):
        return None
    return meta


# ------------------------------------------------------------------------------------------------
# Dataset level
# ------------------------------------------------------------------------------------------------

def check_options(file_ending: str, max_count: int | None, max_flag: str = "--max-cases") -> None:
    """The options every converter shares: a supported file ending, a positive ``max_flag`` if given."""
    if file_ending not in (".mha", ".nii.gz"):
        raise ConversionError(f"file ending {file_ending!r} is not supported (use .mha or .nii.gz)")
    if max_count is not None and max_count < 1:
        raise ConversionError(f"{max_flag} must be positive, got {max_count}")


def check_views(views, allowed) -> tuple:
    """``views`` without repeats, in order; each must be one of ``allowed``."""
    views = tuple(dict.fromkeys(views))
    if not views or set(views) - set(allowed):
        raise ConversionError(f"views must be among {', '.join(allowed)}, got {', '.join(views) or 'none'}")
    return views


def dataset_folder(dataset_id: int, name: str) -> Path:
    """$nnUNet_raw/DatasetIDDD_NAME; refuses an id already used under another name."""
    raw = os.environ.get("nnUNet_raw")
    if not raw:
        raise ConversionError("nnUNet_raw is not set: export nnUNet_raw=/path/to/nnUNet_raw (see `unilvseg env`)")
    if not 1 <= int(dataset_id) <= 999:
        raise ConversionError(f"dataset id {dataset_id} must be between 1 and 999")
    if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
        raise ConversionError(f"dataset name {name!r} may hold only letters, digits, '_' and '-'")
    folder = Path(raw) / f"Dataset{int(dataset_id):03d}_{name}"
    others = [p.name for p in Path(raw).glob(f"Dataset{int(dataset_id):03d}_*") if p.name != folder.name]
    if others:
        raise ConversionError(f"{raw}: dataset id {dataset_id} is already used by {', '.join(others)}; choose another -d")
    return folder


def plan_cases(echonet_dir: Path, dataset_dir: Path, options: dict, include_unlabeled: bool, max_cases: int | None):
    """Read the CSVs (dataset-level errors raise here, before anything is written) and turn each
    FileList row into a CaseTask, or into a report entry when it is skipped at once.

    Returns (tasks, skipped {case: entry}, dataset_issues, num_listed)."""
    videos_dir = echonet_dir / echonet.VIDEOS_DIR
    if not videos_dir.is_dir():
        raise echonet.EchoNetFormatError(f"{videos_dir}: folder not found (an EchoNet-Dynamic folder holds "
                                         f"{echonet.FILELIST}, {echonet.TRACINGS} and {echonet.VIDEOS_DIR}/)")
    rows = echonet.read_filelist(echonet_dir / echonet.FILELIST)
    selected = rows[:max_cases] if max_cases is not None else rows
    tracings = echonet.read_tracings(echonet_dir / echonet.TRACINGS, videos={r["FileName"] for r in selected})
    has_truth = (echonet_dir / echonet.DENSE_TRUTH_DIR).is_dir()
    corrupted = (echonet.read_corrupted_frames(echonet_dir / echonet.CORRUPTED_FRAMES)
                 if (echonet_dir / echonet.CORRUPTED_FRAMES).is_file() else {})
    dataset_issues = []
    listed = {r["FileName"] for r in rows}
    orphans = sorted(set(tracings) - listed)
    if orphans:
        dataset_issues.append({"problem": "tracings_without_video", "action": "ignored",
                               "message": f"{len(orphans)} video(s) in {echonet.TRACINGS} are not in {echonet.FILELIST}",
                               "videos": orphans})
    tasks, skipped, seen = [], {}, set()
    for row in selected:
        case = row["FileName"]
        if case in seen:
            dataset_issues.append({"problem": "duplicate_filelist_row", "action": "ignored",
                                   "message": f"{case} is listed more than once in {echonet.FILELIST}; the first row "
                                              "is used", "videos": [case]})
            continue
        seen.add(case)
        split, traces = row["Split"], tracings.get(case, {})
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", case):
            skipped[case] = _skip(split, issue("invalid_name", SKIP_VIDEO, f"FileName {case!r} is not a valid case identifier"))
            continue
        if split not in SPLITS:
            skipped[case] = _skip(split, issue("unknown_split", SKIP_VIDEO, f"Split {split!r} is none of {', '.join(SPLITS)}"))
            continue
        if not traces:
            if not include_unlabeled:
                skipped[case] = _skip(split, issue("no_tracings", SKIP_VIDEO, f"no tracing in {echonet.TRACINGS} "
                                                   "(--include-unlabeled keeps such videos for self-supervision)"))
                continue
            if split == "TEST":
                skipped[case] = _skip(split, issue("no_tracings", SKIP_VIDEO, "TEST video without tracing: not kept, "
                                                   "to keep the test set out of pretraining"))
                continue
            split = UNLABELED
        subset = "imagesTs" if split == "TEST" else "imagesTr"
        truth = echonet.dense_truth_path(echonet_dir, case) if has_truth else None
        tasks.append(CaseTask(case, split, subset, videos_dir / f"{case}.avi", traces, row, dataset_dir, options,
                              truth=truth if truth is not None and truth.is_file() else None,
                              corrupted=corrupted.get(case, {})))
    return tasks, skipped, dataset_issues, len(rows)


def _skip(split: str, entry: dict) -> dict:
    return {"outcome": "skipped", "split": split, "issues": [entry]}


def remove_stale_files(dataset_dir: Path, keep: set[Path]) -> int:
    """Delete files in our case folders that belong to no current case (earlier runs with other
    options or a larger --max-cases, ``.tmp-`` leftovers of a killed run). Returns how many."""
    removed = 0
    for sub in (*SUBSET_DIRS, *SUBSET_DIRS.values(), METADATA_DIR, DENSE_TRUTH_DIR):
        folder = dataset_dir / sub
        if folder.is_dir():
            for p in folder.iterdir():
                if p.is_file() and p not in keep:
                    p.unlink()
                    removed += 1
    return removed


ECHONET_ABOUT = dict(  # dataset.json's free-text fields for EchoNet-Dynamic
    description="EchoNet-Dynamic-format echo videos, one case per whole video (frames, H, W); "
                "only traced frames are labeled, every other frame is the ignore label",
    reference="https://echonet.github.io/dynamic/",
    license="see the EchoNet-Dynamic research use agreement",
    converted_by="unilvseg-nnunet conversion/echonet_to_nnunet.py",
)


def write_dataset_json(dataset_dir: Path, num_training: int, options: dict, labels: dict = LABELS,
                       about: dict = ECHONET_ABOUT) -> None:
    """dataset.json through nnU-Net's own generate_dataset_json, moved into place atomically.

    Channel names other than "CT" give nnU-Net's z-score normalisation, which suits echo intensities.
    ``labels``: name -> value, the ignore label last; ``about``: description, reference, license, converted_by."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    channels = {"0": "R", "1": "G", "2": "B"} if options.get("keep_color") else {"0": "echo"}
    with tempfile.TemporaryDirectory(prefix=".tmp-", dir=dataset_dir) as tmp:
        generate_dataset_json(tmp, channels, dict(labels), num_training, options["file_ending"],
                              dataset_name=dataset_dir.name, **about)
        os.replace(Path(tmp) / "dataset.json", dataset_dir / "dataset.json")


def make_splits(metas: list[dict]) -> list[dict]:
    """Fold 0 = official TRAIN/VAL; fold 1 (only if unlabeled cases exist) adds them to train."""
    by = {s: sorted(m["case"] for m in metas if m["split"] == s) for s in ("TRAIN", "VAL", UNLABELED)}
    splits = [{"train": by["TRAIN"], "val": by["VAL"]}]
    if by[UNLABELED]:
        splits.append({"train": sorted(by["TRAIN"] + by[UNLABELED]), "val": by["VAL"]})
    return splits


def convert_echonet(echonet_dir, dataset_id: int, name: str = "EchoNetDynamic", num_processes: int = 2,
                    keep_color: bool = False, include_unlabeled: bool = False, max_cases: int | None = None,
                    file_ending: str = ".mha", compress: bool = False, progress: bool = True) -> Path:
    """Convert an EchoNet-Dynamic folder into $nnUNet_raw/DatasetIDDD_NAME and return that path.

    ``keep_color``: three image channels R, G, B instead of one grey channel "echo"; ``include_unlabeled``:
    keep TRAIN/VAL videos without tracing (split UNLABELED, fold 1); ``max_cases``: only the first K rows
    of FileList.csv; ``compress``: compress the images (labels are always compressed: they are almost
    constant, so it is free). Raises :class:`echonet.EchoNetFormatError` / :class:`ConversionError` for
    dataset-level problems before writing anything; per-video problems go to the conversion report."""
    check_options(file_ending, max_cases)
    echonet_dir = Path(echonet_dir)
    dataset_dir = dataset_folder(dataset_id, name)
    options = {"keep_color": bool(keep_color), "file_ending": file_ending, "compress": bool(compress)}
    tasks, report_cases, dataset_issues, num_listed = plan_cases(echonet_dir, dataset_dir, options, include_unlabeled, max_cases)

    report = {"source": str(echonet_dir.resolve()),
              "options": {**options, "include_unlabeled": include_unlabeled, "max_cases": max_cases},
              "summary": {"videos_listed": num_listed, "videos_selected": min(num_listed, max_cases or num_listed)}}
    run_conversion(ECHONET, tasks, dataset_dir, options, report, report_cases, dataset_issues, num_processes, progress)
    return dataset_dir


def summary_line(dataset_dir: str | os.PathLike) -> str:
    """One line for the terminal from a dataset's conversion report."""
    dataset_dir = Path(dataset_dir)
    summary = json.loads((dataset_dir / CONVERSION_REPORT).read_text())["summary"]
    problems = ", ".join(f"{k} {v}" for k, v in summary["problems"].items()) or "none"
    return (f"{dataset_dir.name}: {summary['cases']} cases ({summary['imagesTr']} imagesTr, {summary['imagesTs']} imagesTs; "
            f"{summary['converted_now']} converted now, {summary['reused_from_earlier_run']} reused), "
            f"{summary['skipped_videos']} videos skipped, {summary['dropped_frames']} frames dropped, problems: {problems}; "
            f"report: {dataset_dir / CONVERSION_REPORT}")


# ------------------------------------------------------------------------------------------------
# The dataset-level run every converter shares (EchoNet-Dynamic, EchoNet-Pediatric, CAMUS)
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetKind:
    """What one kind of source dataset gives :func:`run_conversion`. The functions live at module level,
    so that worker processes can run them."""

    convert: Callable  # task -> {"case", "split", "status": "converted" | "skipped", "issues", "meta"}; never raises
    completed: Callable  # task -> its metadata if an earlier run converted it the same way, else None
    files: Callable  # (dataset_dir, metadata) -> the files of a converted case
    make_splits: Callable  # metadata of every case -> splits_final.json
    split_names: tuple  # the split values the summary counts
    labels: dict  # dataset.json labels, the ignore label last
    about: dict  # dataset.json description, reference, license, converted_by


def _convert_all(convert, todo: list, num_processes: int, progress: bool, desc: str) -> list[dict]:
    """``convert`` of every task, in ``num_processes`` worker processes when there are several."""
    from tqdm import tqdm

    results = []
    bar = tqdm(total=len(todo), desc=desc, unit="video", disable=not progress or not todo, file=sys.stderr)
    if num_processes > 1 and len(todo) > 1:
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None  # fork: no re-import
        with multiprocessing.get_context(method).Pool(min(num_processes, len(todo))) as pool:
            for r in pool.imap_unordered(convert, todo, chunksize=1):
                results.append(r)
                bar.update()
    else:
        for t in todo:
            results.append(convert(t))
            bar.update()
    bar.close()
    return results


def run_conversion(kind: DatasetKind, tasks: list, dataset_dir: Path, options: dict, report: dict,
                   report_cases: dict, dataset_issues: list, num_processes: int = 2, progress: bool = True) -> list[dict]:
    """Convert ``tasks`` (each with ``case``, ``split`` and ``subset``) into ``dataset_dir``: cases complete from an
    earlier run are reused, the others converted in worker processes; files of no current case are removed;
    then splits_final.json, dataset.json and the conversion report are written. ``report`` holds the report's
    "source", "options" and other head entries, and under "summary" the first summary entries; ``report_cases``
    and ``dataset_issues`` hold what planning found. Returns the metadata of every case; raises
    :class:`ConversionError` (after writing the report) when no case could be converted."""
    for sub in (*SUBSET_DIRS, *SUBSET_DIRS.values(), METADATA_DIR):
        (dataset_dir / sub).mkdir(parents=True, exist_ok=True)
    metas, todo = [], []
    for t in tasks:
        meta = kind.completed(t)
        (todo if meta is None else metas).append(t if meta is None else meta)
    reused = len(metas)
    for r in _convert_all(kind.convert, todo, num_processes, progress, f"converting {dataset_dir.name}"):
        if r["status"] == "converted":
            metas.append(r["meta"])
        else:
            report_cases[r["case"]] = {"outcome": "skipped", "split": r["split"], "issues": r["issues"]}
    for m in metas:
        if m["issues"]:
            report_cases[m["case"]] = {"outcome": "converted", "split": m["split"], "issues": m["issues"]}

    keep = {metadata_path(dataset_dir, m["case"]) for m in metas}
    keep.update(p for m in metas for p in kind.files(dataset_dir, m))
    removed = remove_stale_files(dataset_dir, keep)
    num_training = sum(m["subset"] == "imagesTr" for m in metas)
    splits = kind.make_splits(metas)
    write_json(dataset_dir / "splits_final.json", splits)
    write_dataset_json(dataset_dir, num_training, options, kind.labels, kind.about)

    all_issues = [i for c in report_cases.values() for i in c["issues"]]
    summary = {
        **report.get("summary", {}),
        "cases": len(metas),
        "imagesTr": num_training,
        "imagesTs": len(metas) - num_training,
        "splits": {s: sum(m["split"] == s for m in metas) for s in kind.split_names},
        "converted_now": len(metas) - reused,
        "reused_from_earlier_run": reused,
        "skipped_videos": sum(c["outcome"] == "skipped" for c in report_cases.values()),
        "dropped_frames": sum(i["action"] == DROP_FRAME for i in all_issues),
        "cases_with_issues": len(report_cases),
        "problems": {p: sum(i["problem"] == p for i in all_issues) for p in sorted({i["problem"] for i in all_issues})},
        "stale_files_removed": removed,
    }
    for k, fold in enumerate(splits):
        if not fold["train"] or not fold["val"]:
            dataset_issues.append({"problem": "empty_fold", "action": "kept",
                                   "message": f"fold {k} has {len(fold['train'])} train and {len(fold['val'])} val cases"})
    write_json(dataset_dir / CONVERSION_REPORT, {
        "source": report["source"], "dataset": str(dataset_dir),
        **{k: v for k, v in report.items() if k not in ("source", "summary")},
        "summary": summary, "dataset_issues": dataset_issues, "cases": dict(sorted(report_cases.items())),
    })
    if not metas:
        raise ConversionError(f"{report['source']}: no video could be converted (see {dataset_dir / CONVERSION_REPORT})")
    return metas


def _echonet_files(dataset_dir: Path, meta: dict) -> list[Path]:
    return case_files(dataset_dir, meta["subset"], meta["case"], meta["conversion_options"], meta.get("dense_truth"))


ECHONET = DatasetKind(convert=convert_case, completed=completed_metadata, files=_echonet_files, make_splits=make_splits,
                      split_names=(*SPLITS, UNLABELED), labels=LABELS, about=ECHONET_ABOUT)
