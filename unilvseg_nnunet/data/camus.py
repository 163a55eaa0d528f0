"""CAMUS (Leclerc et al., IEEE TMI 2019) on disk, and its conversion into an nnU-Net v2 raw dataset.

Both public distributions are read, patient by patient and view by view (``2CH``, ``4CH``), wherever the
patient folders ``patientXXXX/`` lie under the given folder (at most two levels down):

- NIfTI (``database_nifti/``): ``patientXXXX_{VIEW}_half_sequence.nii.gz`` (ED to ES) with
  ``_half_sequence_gt`` (labels on every frame), ``_ED_gt``, ``_ES_gt``, ``Info_{VIEW}.cfg``; the split in
  ``database_split/subgroup_{training,validation,testing}.txt``;
- MetaImage (the original release): ``patientXXXX_{VIEW}_sequence.mhd/.raw``, ``_ED_gt``, ``_ES_gt``,
  ``Info_{VIEW}.cfg`` (a ``_sequence_gt`` beside it is read like the NIfTI release's ``_half_sequence_gt``).

``Info_{VIEW}.cfg`` holds "key: value" lines: ED and ES (1-based frame numbers), NbFrame, ImageQuality, and
EF, EDV, ESV as ``LVef``, ``LVedv``, ``LVesv`` (the NIfTI release writes EF as ``EF``).

One nnU-Net case per patient and view, ``patientXXXX_{VIEW}``: the sequence (frames, H, W) with the source's
pixel spacing in mm (time spacing 1: nnU-Net never resamples along time); labels 0 background, 1 LV, 2
myocardium, 3 left atrium on the ED and ES frames (``_ED_gt``/``_ES_gt``, else those frames of the
sequence labels) and ``ignore`` on every other frame; with ``dense_truth`` the every-frame labels also go to
the dense-truth folder, for evaluation only. The official split is used when its files are present, else a
seeded patient-level split that the conversion report writes down. What a file does not hold is a reported
problem (conversion report and case metadata), never a guess.

Case metadata: the common fields (ED/ES frames from Info, ``filelist_num_frames`` = NbFrame, ``fps`` =
FrameRate when given, EF/EDV/ESV or null) plus ``patient``, ``view``, ``spacing`` (mm, frames/H/W),
``image_quality``, ``info`` (the whole Info file), ``dense_truth``, ``source_format`` and ``source_files``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unilvseg_nnunet.data.conversion import (
    DROP_FRAME,
    IGNORED,
    KEPT,
    SKIP_VIDEO,
    DatasetKind,
    check_options,
    check_views,
    dataset_folder,
    image_paths,
    issue,
    label_path,
    make_splits,
    run_conversion,
)
from unilvseg_nnunet.data.dataset import dense_truth_path, metadata_path, write_case_metadata
from unilvseg_nnunet.errors import UnilvsegError
from unilvseg_nnunet.files import read_volume_spacing, write_volume

VIEWS = ("2CH", "4CH")
LABELS = {"background": 0, "LV": 1, "myocardium": 2, "left_atrium": 3, "ignore": 4}
IGNORE = LABELS["ignore"]
STRUCTURE_VALUES = (0, 1, 2, 3)
SPLITS = ("TRAIN", "VAL", "TEST")
SPLIT_DIR = "database_split"
SPLIT_FILES = {"TRAIN": "subgroup_training.txt", "VAL": "subgroup_validation.txt", "TEST": "subgroup_testing.txt"}
SEEDED_FRACTIONS = (0.8, 0.1, 0.1)  # TRAIN, VAL, TEST: the official split's 400/50/50 patients
IMAGE_ENDINGS = (".nii.gz", ".nii", ".mhd")
# per distribution: the sequence and its every-frame labels
SEQUENCES = {"nifti": ("_half_sequence", "_half_sequence_gt"), "mhd": ("_sequence", "_sequence_gt")}
INFO_NUMBERS = {"ef": ("LVef", "EF"), "edv": ("LVedv",), "esv": ("LVesv",), "fps": ("FrameRate",)}
PATIENT = re.compile(r"patient\d{4}")
ABOUT = dict(
    description="CAMUS apical 2- and 4-chamber half sequences (ED to ES), one case per patient and view "
                "(frames, H, W) with the source's pixel spacing; labels 1 LV, 2 myocardium, 3 left atrium on the "
                "ED and ES frames, the ignore label on every other frame",
    reference="https://www.creatis.insa-lyon.fr/Challenge/camus/",
    license="see the CAMUS terms of use",
    converted_by="unilvseg-nnunet conversion/camus_to_nnunet.py",
)


class CamusFormatError(UnilvsegError, ValueError):
    """A problem with the CAMUS folder as a whole (no patient, incomplete split files): nothing is converted."""


# ------------------------------------------------------------------------------------------------
# Reading the CAMUS folder
# ------------------------------------------------------------------------------------------------

def find_patients(root: Path) -> tuple[dict[str, Path], list[dict]]:
    """{patient id: folder} of the ``patientXXXX`` folders in ``root`` or up to two levels below, and the
    dataset issues (a patient found twice: the first folder in path order is used)."""
    found: dict[str, Path] = {}
    issues = []
    for folder in sorted(p for pattern in ("*", "*/*", "*/*/*") for p in root.glob(pattern)):
        if not (folder.is_dir() and PATIENT.fullmatch(folder.name)):
            continue
        if folder.name in found:
            issues.append({"problem": "duplicate_patient", "action": "ignored",
                           "message": f"{folder}: {folder.name} was found before in {found[folder.name]}, "
                                      f"which is used"})
            continue
        found[folder.name] = folder
    return found, issues


def find_image(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` with the first image ending of :data:`IMAGE_ENDINGS` that exists, else None."""
    return next((folder / f"{stem}{e}" for e in IMAGE_ENDINGS if (folder / f"{stem}{e}").is_file()), None)


def view_files(folder: Path, patient: str, view: str) -> dict:
    """The files of one view: "format" ("nifti", "mhd" or None when there is no sequence), "sequence",
    "sequence_gt", "ED_gt", "ES_gt" (Path or None) and "info" (Path, existing or not)."""
    files = {"format": None, "sequence": None, "sequence_gt": None}
    for fmt, (seq, gt) in SEQUENCES.items():
        sequence = find_image(folder, f"{patient}_{view}{seq}")
        if sequence is not None:
            files.update(format=fmt, sequence=sequence, sequence_gt=find_image(folder, f"{patient}_{view}{gt}"))
            break
    for phase in ("ED", "ES"):
        files[f"{phase}_gt"] = find_image(folder, f"{patient}_{view}_{phase}_gt")
    files["info"] = folder / f"Info_{view}.cfg"
    return files


def read_info(path: Path) -> dict[str, str]:
    """The "key: value" lines of an ``Info_{VIEW}.cfg`` file; ValueError naming the file if it is no such text."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    info = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            info[key.strip()] = value.strip()
    if not info:
        raise ValueError(f"{path}: no 'key: value' line")
    return info


def info_frame(info: dict, key: str, path: Path) -> int:
    """0-based frame index of the 1-based ``key`` (ED, ES) of an Info file; ValueError naming file and key."""
    value = info.get(key)
    if value is None or not value.isdigit() or int(value) < 1:
        raise ValueError(f"{path}: {key} is {'missing' if value is None else repr(value)}, "
                         f"expected a frame number from 1")
    return int(value) - 1


def info_number(info: dict, keys: tuple) -> float | None:
    """The first of ``keys`` present in ``info`` as a float, None when absent or not a number."""
    for k in keys:
        if k in info:
            try:
                return float(info[k])
            except ValueError:
                return None
    return None


def read_image(path: Path) -> tuple[np.ndarray, list[float]]:
    """Array and spacing (array order) of an image file; ValueError naming the file when unreadable."""
    try:
        arr, spacing = read_volume_spacing(path)
    except Exception as e:  # SimpleITK raises RuntimeError with a long C++ trace
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise ValueError(f"{path}: unreadable ({msg})") from None
    return arr, list(spacing)


def read_label_frame(path: Path, shape: tuple) -> np.ndarray:
    """A 2D label image (H, W) (a (1, H, W) volume is taken as 2D); ValueError naming the file when it is
    unreadable, of another shape than the sequence's frames, or holds values other than 0-3."""
    arr, _ = read_image(path)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.shape != tuple(shape):
        raise ValueError(f"{path}: shape {arr.shape} differs from the sequence's frames {tuple(shape)}")
    check_label_values(arr, path)
    return arr.astype(np.uint8)


def check_label_values(arr: np.ndarray, path: Path) -> None:
    bad = np.setdiff1d(np.unique(arr), STRUCTURE_VALUES)
    if bad.size:
        raise ValueError(f"{path}: label values {bad.tolist()} other than {list(STRUCTURE_VALUES)}")


def read_splits(root: Path) -> tuple[dict[str, str], list[Path]] | None:
    """{patient: TRAIN | VAL | TEST} from the official split files (``database_split/`` in ``root`` or one level
    down) and those files; None when there is no such folder. An incomplete or ambiguous split raises."""
    folders = [p for p in (root / SPLIT_DIR, *sorted(root.glob(f"*/{SPLIT_DIR}"))) if p.is_dir()]
    if not folders:
        return None
    folder = folders[0]
    split_of: dict[str, str] = {}
    files = []
    for split, name in SPLIT_FILES.items():
        path = folder / name
        if not path.is_file():
            raise CamusFormatError(f"{path}: split file missing ({folder} holds {', '.join(SPLIT_FILES.values())})")
        for line in path.read_text().splitlines():
            patient = line.strip()
            if not patient:
                continue
            if patient in split_of:
                raise CamusFormatError(f"{path}: {patient} is also listed for {split_of[patient]}")
            split_of[patient] = split
        files.append(path)
    return split_of, files


def seeded_split(patients: list[str], seed: int) -> dict[str, str]:
    """{patient: split} for patients without an official split: :data:`SEEDED_FRACTIONS` of a seeded shuffle
    (at least one VAL and one TEST patient from three patients on)."""
    patients = sorted(patients)
    order = [patients[i] for i in np.random.default_rng(seed).permutation(len(patients))]
    n = len(order)
    n_val, n_test = (max(1, round(f * n)) if n >= 3 else 0 for f in SEEDED_FRACTIONS[1:])
    return {p: "VAL" if i < n_val else "TEST" if i < n_val + n_test else "TRAIN" for i, p in enumerate(order)}


# ------------------------------------------------------------------------------------------------
# Conversion, one case per patient and view
# ------------------------------------------------------------------------------------------------

@dataclass
class CamusTask:
    """Everything a worker needs to convert one patient's view (picklable, no open files)."""

    case: str
    split: str
    subset: str
    patient: str
    view: str
    files: dict
    info: dict  # Info_{VIEW}.cfg, read while planning
    dataset_dir: Path
    options: dict  # file_ending, compress, dense_truth, keep_color (always False: CAMUS is grey)
    issues: list = field(default_factory=list)


def case_files(dataset_dir: Path, meta: dict) -> list[Path]:
    """The files of a converted case: image, label and, when written, its dense truth."""
    options = meta["conversion_options"]
    files = [*image_paths(dataset_dir, meta["subset"], meta["case"], options),
             label_path(dataset_dir, meta["subset"], meta["case"], options)]
    truth = [dense_truth_path(dataset_dir, meta["case"], options["file_ending"])] if meta["dense_truth"] else []
    return files + truth


def _source_files(task: CamusTask) -> dict:
    return {k: None if v is None else str(v) for k, v in task.files.items() if k != "format"}


def completed_metadata(task: CamusTask) -> dict | None:
    """The metadata of a case converted before with the same options, split and source files, else None."""
    try:
        meta = json.loads(metadata_path(task.dataset_dir, task.case).read_text())
    except (OSError, ValueError):
        return None
    same = (meta.get("conversion_options") == task.options and meta.get("split") == task.split
            and meta.get("subset") == task.subset and meta.get("source_files") == _source_files(task)
            and meta.get("info") == task.info)
    return meta if same and all(p.is_file() for p in case_files(task.dataset_dir, meta)) else None


def _frame_labels(task: CamusTask, frames: dict, dense, shape: tuple, issues: list) -> dict:
    """{frame: (H, W) labels} of the ED and ES frames: ``_ED_gt``/``_ES_gt``, else the sequence labels' frame.
    A frame without a usable label is dropped (stays ignore) with a reported problem."""
    out = {}
    for phase, t in frames.items():
        gt = task.files[f"{phase}_gt"]
        if not 0 <= t < shape[0]:
            issues.append(issue("frame_beyond_length", DROP_FRAME, f"{task.files['info']}: {phase} is frame {t + 1}, "
                                f"the sequence has {shape[0]} frames", t))
            continue
        if gt is None and dense is None:
            issues.append(issue("missing_label", DROP_FRAME, f"{phase} frame {t}: neither "
                                f"{task.patient}_{task.view}_{phase}_gt nor sequence labels found", t))
            continue
        try:
            label = read_label_frame(gt, shape[1:]) if gt is not None else dense[t]
        except ValueError as e:
            issues.append(issue("unusable_label", DROP_FRAME, str(e), t))
            continue
        if gt is not None and dense is not None and not np.array_equal(label, dense[t]):
            issues.append(issue("labels_disagree", KEPT, f"{gt} differs from frame {t} of "
                                f"{task.files['sequence_gt']} in {int((label != dense[t]).sum())} pixels; "
                                f"{gt.name} is used", t))
        out[t] = label
    return out


def _dense_labels(task: CamusTask, shape: tuple, issues: list) -> np.ndarray | None:
    """The sequence's every-frame labels (frames, H, W) uint8, or None (absent or unusable: reported)."""
    path = task.files["sequence_gt"]
    if path is None:
        return None
    try:
        dense, _ = read_image(path)
        if dense.shape != shape:
            raise ValueError(f"{path}: shape {dense.shape} differs from the sequence's {shape}")
        check_label_values(dense, path)
    except ValueError as e:
        issues.append(issue("unusable_dense_labels", IGNORED, str(e)))
        return None
    return dense.astype(np.uint8)


def convert_case(task: CamusTask) -> dict:
    """Read one view, write its image, label, dense truth (option) and, last, its metadata. Never raises for a
    problem of this view: returns {"case", "split", "status": "converted"|"skipped", "issues", "meta"}."""
    issues = list(task.issues)
    result = {"case": task.case, "split": task.split, "status": "skipped", "issues": issues, "meta": None}
    metadata_path(task.dataset_dir, task.case).unlink(missing_ok=True)  # a stale one must not mark the case complete
    info, info_path = task.info, task.files["info"]
    ed, es = info_frame(info, "ED", info_path), info_frame(info, "ES", info_path)  # checked while planning
    try:
        video, spacing = read_image(task.files["sequence"])
        if video.ndim != 3:
            raise ValueError(f"{task.files['sequence']}: shape {video.shape}, expected a grey sequence (frames, H, W)")
    except ValueError as e:
        issues.append(issue("unreadable_sequence", SKIP_VIDEO, str(e)))
        return result
    num_frames, height, width = video.shape
    listed = info.get("NbFrame")
    if listed != str(num_frames):
        issues.append(issue("frame_count_mismatch", KEPT, f"{info_path}: NbFrame is {listed!r}, the sequence has "
                            f"{num_frames} frames; the sequence is used"))
    if es < ed:
        issues.append(issue("es_before_ed", KEPT, f"{info_path}: ES (frame {es + 1}) comes before ED (frame {ed + 1})"))

    dense = _dense_labels(task, video.shape, issues)
    labels = _frame_labels(task, {"ED": ed, "ES": es} if ed != es else {"ED": ed}, dense, video.shape, issues)
    if ed == es:
        issues.append(issue("ed_equals_es", KEPT, f"{info_path}: ED and ES are both frame {ed + 1}", ed))
    if not labels:
        issues.append(issue("no_valid_label", SKIP_VIDEO, "neither the ED nor the ES frame has a usable label"))
        return result
    label = np.full(video.shape, IGNORE, np.uint8)
    for t, frame_label in labels.items():
        label[t] = frame_label

    spacing = [1.0, *spacing[1:]]
    write_volume(image_paths(task.dataset_dir, task.subset, task.case, task.options)[0], video, spacing,
                 compress=task.options["compress"])
    write_volume(label_path(task.dataset_dir, task.subset, task.case, task.options), label, spacing, compress=True)
    truth = task.options["dense_truth"] and dense is not None
    if truth:
        write_volume(dense_truth_path(task.dataset_dir, task.case, task.options["file_ending"]), dense, spacing,
                     compress=True)
    in_range = lambda t: t if 0 <= t < num_frames else None
    meta = {
        "case": task.case, "split": task.split, "subset": task.subset,
        "num_frames": int(num_frames), "filelist_num_frames": int(listed) if (listed or "").isdigit() else None,
        "fps": info_number(info, INFO_NUMBERS["fps"]), "height": int(height), "width": int(width),
        "traced_frames": sorted(int(t) for t in labels), "ed_frame": in_range(ed), "es_frame": in_range(es),
        "ef": info_number(info, INFO_NUMBERS["ef"]), "edv": info_number(info, INFO_NUMBERS["edv"]),
        "esv": info_number(info, INFO_NUMBERS["esv"]), "ef_tracings": None, "issues": issues,
        "patient": task.patient, "view": task.view, "spacing": spacing, "image_quality": info.get("ImageQuality"),
        "info": info, "dense_truth": bool(truth), "source_format": task.files["format"],
        "source_files": _source_files(task), "conversion_options": task.options,
    }
    write_case_metadata(task.dataset_dir, meta)  # last: marks the case complete
    result.update(status="converted", meta=meta)
    return result


KIND = DatasetKind(convert=convert_case, completed=completed_metadata, files=case_files, make_splits=make_splits,
                   split_names=SPLITS, labels=LABELS, about=ABOUT)


def _plan_view(case: str, folder: Path, patient: str, view: str, split: str, dataset_dir: Path, options: dict):
    """A task for one view, or a report entry when the view is skipped at once (no sequence, unusable Info)."""
    files = view_files(folder, patient, view)
    if files["format"] is None:
        names = " or ".join(f"{case}{seq}{{{','.join(IMAGE_ENDINGS)}}}" for seq, _ in SEQUENCES.values())
        return _skip(split, issue("missing_sequence", SKIP_VIDEO, f"{folder}: no {names}"))
    try:
        info = read_info(files["info"])
        for key in ("ED", "ES"):
            info_frame(info, key, files["info"])
    except ValueError as e:
        missing = not files["info"].is_file()
        return _skip(split, issue("missing_info" if missing else "invalid_info", SKIP_VIDEO,
                                  f"{files['info']} not found" if missing else str(e)))
    issues = []
    if info_number(info, INFO_NUMBERS["ef"]) is None:
        issues.append(issue("info_missing_value", KEPT, f"{files['info']}: no number for "
                            f"{' or '.join(INFO_NUMBERS['ef'])}; EF is null"))
    return CamusTask(case, split, "imagesTs" if split == "TEST" else "imagesTr", patient, view, files, info,
                     dataset_dir, options, issues)


def _skip(split: str | None, entry: dict) -> dict:
    return {"outcome": "skipped", "split": split, "issues": [entry]}


def plan_cases(root: Path, dataset_dir: Path, options: dict, views, seed: int, max_patients: int | None):
    """Find the patients and their split, read the Info files, and turn each selected patient's view into a
    task or a report entry. Returns (tasks, report entries {case: entry}, dataset issues, split description,
    number of patients found)."""
    if not root.is_dir():
        raise CamusFormatError(f"{root}: folder not found")
    patients, dataset_issues = find_patients(root)
    if not patients:
        raise CamusFormatError(f"{root}: no patientXXXX folder here or up to two levels down "
                               f"(CAMUS's database_nifti/ or training/ folders hold them)")
    official = read_splits(root)
    if official is not None:
        split_of, files = official
        split = {"source": "official", "files": [str(f) for f in files]}
    else:
        split_of = seeded_split(list(patients), seed)
        split = {"source": "seeded", "seed": seed, "fractions": dict(zip(SPLITS, SEEDED_FRACTIONS)),
                 "patients": {s: sorted(p for p, v in split_of.items() if v == s) for s in SPLITS}}
    skipped = {}
    for patient in sorted(set(split_of) - set(patients)):
        for view in views:
            skipped[f"{patient}_{view}"] = _skip(split_of[patient], issue(
                "missing_patient", SKIP_VIDEO, f"{patient} is in the split files but has no folder under {root}"))
    tasks = []
    for patient in sorted(patients)[:max_patients]:
        for view in views:
            case = f"{patient}_{view}"
            if patient not in split_of:
                skipped[case] = _skip(None, issue("not_in_split", SKIP_VIDEO, f"{patient} is in none of the split "
                                                  f"files {', '.join(SPLIT_FILES.values())}"))
                continue
            planned = _plan_view(case, patients[patient], patient, view, split_of[patient], dataset_dir, options)
            if isinstance(planned, CamusTask):
                tasks.append(planned)
            else:
                skipped[case] = planned
    no_dense = sorted(t.case for t in tasks if t.files["sequence_gt"] is None)
    if options["dense_truth"] and no_dense:
        dataset_issues.append({"problem": "no_dense_labels", "action": "kept", "videos": no_dense,
                               "message": f"{len(no_dense)} view(s) have no every-frame labels (the MetaImage "
                                          f"release has none): no dense truth for these cases"})
    no_volumes = sorted(t.case for t in tasks if None in (info_number(t.info, INFO_NUMBERS[k]) for k in ("edv", "esv")))
    if no_volumes:
        dataset_issues.append({"problem": "info_without_volumes", "action": "kept", "videos": no_volumes,
                               "message": f"{len(no_volumes)} Info file(s) hold no LVedv/LVesv (CAMUS's NIfTI release "
                                          f"has none): EDV and ESV of these cases are null"})
    return tasks, skipped, dataset_issues, split, len(patients)


def convert_camus(camus_dir, dataset_id: int, name: str = "CAMUS", views=VIEWS, dense_truth: bool = False,
                  seed: int = 0, max_patients: int | None = None, num_processes: int = 2, file_ending: str = ".mha",
                  compress: bool = False, progress: bool = True) -> Path:
    """Convert a CAMUS folder (either distribution) into $nnUNet_raw/DatasetIDDD_NAME and return that path.

    ``views``: any of :data:`VIEWS`; ``dense_truth``: also keep the every-frame labels as dense truth;
    ``seed``: of the patient-level split used when there are no official split files; ``max_patients``: only
    the first K patients (in id order). Dataset-level problems raise before anything is written; problems of
    one patient or view go to the conversion report. Re-running resumes."""
    views = check_views(views, VIEWS)
    check_options(file_ending, max_patients, "--max-patients")
    root = Path(camus_dir)
    options = {"keep_color": False, "file_ending": file_ending, "compress": bool(compress),
               "dense_truth": bool(dense_truth)}
    dataset_dir = dataset_folder(dataset_id, name)
    tasks, report_cases, dataset_issues, split, num_found = plan_cases(root, dataset_dir, options, views, seed,
                                                                       max_patients)
    report = {"source": str(root.resolve()),
              "options": {**options, "views": list(views), "max_patients": max_patients, "seed": seed},
              "split": split,
              "summary": {"patients_found": num_found, "patients_selected": min(num_found, max_patients or num_found),
                          "views": list(views)}}
    run_conversion(KIND, tasks, dataset_dir, options, report, report_cases, dataset_issues, num_processes, progress)
    return dataset_dir
