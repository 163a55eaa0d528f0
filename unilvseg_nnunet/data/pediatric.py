"""EchoNet-Pediatric on disk, and its conversion into an nnU-Net v2 raw dataset.

The dataset has one folder per view, ``A4C/`` and ``PSAX/``, each in EchoNet's layout: ``Videos/*.avi``,
``FileList.csv`` (FileName, EF, Sex, Age, Weight, Height, and Split: a cross-validation fold 0-9) and
``VolumeTracings.csv`` whose rows are the points of each traced outline (FileName, X, Y, Frame) instead of
EchoNet-Dynamic's chord pairs; a Frame such as "No Systolic" marks a missing trace. Masks follow its
authors' loader (EchoNet's ``echo.py``): the outline points in file order, filled with
``skimage.draw.polygon(rint(y), rint(x), (H, W))`` (:func:`unilvseg_nnunet.data.echonet.rows_mask`); ED and ES
are the traced frames with the largest and smallest area, as for EchoNet-Dynamic.

One case per video, ``{VIEW}_{FileName}``, converted by the EchoNet-Dynamic converter's per-video code
(:func:`unilvseg_nnunet.data.conversion.convert_case`: the same quirk report, resumable, frame rate from the
video file). ``splits_final.json`` holds the ten folds: nnU-Net fold k validates on the videos of Split k
and trains on the others; case metadata ``split`` is ``FOLD{k}``. ``test_fold`` K puts Split K's videos into
imagesTs instead (split ``TEST``); the other nine folds then make splits_final.json, in Split order (the
conversion report's ``folds`` maps nnU-Net fold to Split).
"""
from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from unilvseg_nnunet.data import echonet
from unilvseg_nnunet.data.conversion import (
    SKIP_VIDEO,
    CaseTask,
    ConversionError,
    DatasetKind,
    case_files,
    check_options,
    check_views,
    completed_metadata,
    convert_case,
    dataset_folder,
    issue,
    run_conversion,
)
from unilvseg_nnunet.data.dataset import LABELS
from unilvseg_nnunet.errors import UnilvsegError

VIEWS = ("A4C", "PSAX")
NUM_FOLDS = 10
FILELIST_COLUMNS = ("FileName", "EF", "Split")  # the ones read
COORDINATES = ("X", "Y")
TEST = "TEST"
SPLIT_NAMES = (*(f"FOLD{k}" for k in range(NUM_FOLDS)), TEST)
ABOUT = dict(
    description="EchoNet-Pediatric echo videos (A4C and PSAX), one case per whole video (frames, H, W); only "
                "traced frames are labeled (LV from the traced outline), every other frame is the ignore label",
    reference="https://echonet.github.io/pediatric/",
    license="see the EchoNet-Pediatric research use agreement",
    converted_by="unilvseg-nnunet conversion/echonet_pediatric_to_nnunet.py",
)


class PediatricFormatError(UnilvsegError, ValueError):
    """A problem with the EchoNet-Pediatric folder as a whole (missing view folder, CSV or column)."""


def read_filelist(path: Path) -> list[dict]:
    """Rows of a view's FileList.csv in file order: FileName without ``.avi``, EF (float, NaN when empty),
    Split as written (stripped)."""
    cols = echonet._read_csv(path, FILELIST_COLUMNS)
    ef = echonet._floats(cols["EF"]).tolist()
    return [{"FileName": echonet.normalize_name(name), "EF": ef[i], "Split": cols["Split"][i].strip()}
            for i, name in enumerate(cols["FileName"])]


def fold_splits(metas: list[dict], test_fold: int | None = None) -> list[dict]:
    """splits_final.json: per Split k (but ``test_fold``), validate on FOLD{k}, train on the other folds."""
    folds = {s: sorted(m["case"] for m in metas if m["split"] == s) for s in SPLIT_NAMES}
    return [{"train": sorted(c for s in SPLIT_NAMES[:NUM_FOLDS] if s != f"FOLD{k}" for c in folds[s]),
             "val": folds[f"FOLD{k}"]} for k in range(NUM_FOLDS) if k != test_fold]


def _files(dataset_dir: Path, meta: dict) -> list[Path]:
    return case_files(dataset_dir, meta["subset"], meta["case"], meta["conversion_options"], meta.get("dense_truth"))


def plan_view(folder: Path, view: str, dataset_dir: Path, options: dict, test_fold: int | None,
              max_cases: int | None):
    """Read one view folder's CSVs and turn each FileList row into a CaseTask or a report entry.

    Returns (tasks, skipped {case: entry}, dataset issues, rows listed)."""
    for name in (echonet.FILELIST, echonet.TRACINGS, echonet.VIDEOS_DIR):
        if not (folder / name).exists():
            raise PediatricFormatError(f"{folder / name}: not found (each EchoNet-Pediatric view folder, A4C/ "
                                       f"and PSAX/, holds {echonet.FILELIST}, {echonet.TRACINGS} and "
                                       f"{echonet.VIDEOS_DIR}/)")
    rows = read_filelist(folder / echonet.FILELIST)
    tracings = echonet.read_tracings(folder / echonet.TRACINGS, COORDINATES)
    dataset_issues = []
    orphans = sorted(set(tracings) - {r["FileName"] for r in rows})
    if orphans:
        dataset_issues.append({"problem": "tracings_without_video", "action": "ignored", "videos": orphans,
                               "message": f"{len(orphans)} video(s) in {folder / echonet.TRACINGS} are not in "
                                          f"{echonet.FILELIST}"})
    tasks, skipped, seen = [], {}, set()
    for row in rows[:max_cases]:
        name = row["FileName"]
        case = f"{view}_{name}"
        if case in seen:
            dataset_issues.append({"problem": "duplicate_filelist_row", "action": "ignored", "videos": [case],
                                   "message": f"{name} is listed more than once in {folder / echonet.FILELIST}; "
                                              f"the first row is used"})
            continue
        seen.add(case)
        fold = int(row["Split"]) if re.fullmatch(r"\d+", row["Split"]) else None
        split = row["Split"] if fold is None else TEST if fold == test_fold else f"FOLD{fold}"
        skip = lambda problem, message: {"outcome": "skipped", "split": split, "issues": [
            issue(problem, SKIP_VIDEO, message)]}
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
            skipped[case] = skip("invalid_name", f"FileName {name!r} is not a valid case identifier")
        elif fold is None or fold >= NUM_FOLDS:
            skipped[case] = skip("unknown_split", f"Split {row['Split']!r} is no fold 0-{NUM_FOLDS - 1}")
        elif not tracings.get(name):
            skipped[case] = skip("no_tracings", f"no tracing in {folder / echonet.TRACINGS}")
        else:
            tasks.append(CaseTask(case, split, "imagesTs" if split == TEST else "imagesTr",
                                  folder / echonet.VIDEOS_DIR / f"{name}.avi", tracings[name], {"EF": row["EF"]},
                                  dataset_dir, options))
    return tasks, skipped, dataset_issues, len(rows)


def convert_pediatric(pediatric_dir, dataset_id: int, name: str = "EchoNetPediatric", views=VIEWS,
                      test_fold: int | None = None, num_processes: int = 2, keep_color: bool = False,
                      max_cases: int | None = None, file_ending: str = ".mha", compress: bool = False,
                      progress: bool = True) -> Path:
    """Convert an EchoNet-Pediatric folder (``A4C/``, ``PSAX/``) into $nnUNet_raw/DatasetIDDD_NAME; return that path.

    ``views``: any of :data:`VIEWS`; ``test_fold``: hold that Split out as imagesTs; ``max_cases``: only the
    first K rows of each view's FileList.csv; the other options as for EchoNet-Dynamic
    (:func:`unilvseg_nnunet.data.conversion.convert_echonet`). Dataset-level problems raise before anything is
    written; problems of one video go to the conversion report."""
    views = check_views(views, VIEWS)
    if test_fold is not None and not 0 <= test_fold < NUM_FOLDS:
        raise ConversionError(f"--test-fold must be a fold 0-{NUM_FOLDS - 1}, got {test_fold}")
    check_options(file_ending, max_cases)
    root = Path(pediatric_dir)
    dataset_dir = dataset_folder(dataset_id, name)
    options = {"keep_color": bool(keep_color), "file_ending": file_ending, "compress": bool(compress)}
    tasks, report_cases, dataset_issues, listed = [], {}, [], 0
    for view in views:
        if not (root / view).is_dir():
            raise PediatricFormatError(f"{root / view}: folder not found (EchoNet-Pediatric holds "
                                       f"{' and '.join(f'{v}/' for v in VIEWS)})")
        t, s, d, n = plan_view(root / view, view, dataset_dir, options, test_fold, max_cases)
        tasks, listed = tasks + t, listed + n
        report_cases.update(s)
        dataset_issues += d
    folds = [k for k in range(NUM_FOLDS) if k != test_fold]
    kind = DatasetKind(convert=convert_case, completed=completed_metadata, files=_files,
                       make_splits=partial(fold_splits, test_fold=test_fold), split_names=SPLIT_NAMES,
                       labels=LABELS, about=ABOUT)
    report = {"source": str(root.resolve()),
              "options": {**options, "views": list(views), "test_fold": test_fold, "max_cases": max_cases},
              "folds": {f"fold {i}": f"Split {k}" for i, k in enumerate(folds)},
              "summary": {"videos_listed": listed, "videos_selected": len(tasks) + len(report_cases)}}
    run_conversion(kind, tasks, dataset_dir, options, report, report_cases, dataset_issues, num_processes, progress)
    return dataset_dir
