"""Score a folder of predicted mask videos against the raw dataset: DSC (pooled and mean, with
video-bootstrap 95% CIs) on the traced frames, HD95, temporal consistency on every frame, EF and
ED/ES from the masks. Writes JSON, CSV, Markdown and figures into one output folder.

Where the dataset holds a dense truth (the LV of every frame, :data:`~unilvseg_nnunet.data.dataset.DENSE_TRUTH_DIR`,
e.g. a converted phantom), every frame is scored as well (:func:`score_dense`, summary key ``"dense"``):
pooled DSC over all, corrupted and clean frames, worst frame per video, the area curve's HF energy share
and jitter relative to the truth's own curve, ED/ES detection and beat-by-beat EF against the truth.
Real data keeps the traced-frame scoring alone (``"dense"`` is null).

Structures are the labels of the dataset's dataset.json other than background and ignore: the LV alone for
EchoNet; LV, myocardium and left atrium for CAMUS, each then scored on its own (``"dsc_by_structure"``),
while EF, areas and ED/ES follow the LV label. HD95 is given in mm as well where the case metadata holds
the pixel spacing (``"hd95_mm"``).

Bad-input policy. Fatal at once (nothing written): the prediction folder, the dataset or its
labels folder missing, or no case to score. Per-case problems (prediction file missing or
unreadable, shape different from the label volume, prediction values other than background and the
structures, reference values other than those and ignore, case metadata missing) are collected over ALL cases first and then raise
one :class:`EvaluationError` naming every file and problem, before anything is written: scoring
a subset silently would bias a comparison. With ``skip_bad=True`` those cases are skipped instead
and listed under ``"skipped"`` in the JSON and the Markdown. Prediction files of cases outside the
subset are ignored and listed under ``"extra_predictions"``. Every output is written atomically.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from unilvseg_nnunet.data.dataset import (
    IGNORE,
    LV,
    dense_truth_path,
    labeled_frames,
    read_case_metadata,
    resolve_raw_dataset,
    structure_labels,
    subset_cases,
)
from unilvseg_nnunet.data.echonet import DEFAULT_FPS
from unilvseg_nnunet.errors import UnilvsegError
from unilvseg_nnunet.evaluation import cardiac, metrics
from unilvseg_nnunet.evaluation.reports import PHASES, write_outputs
from unilvseg_nnunet.files import read_volume


class EvaluationError(UnilvsegError):
    """Bad input for the evaluation; the message names each file and problem."""


def unexpected_values(arr: np.ndarray, allowed) -> np.ndarray:
    """Values of ``arr`` not in ``allowed`` (a bincount for uint8 masks: O(n), no sort)."""
    if arr.dtype == np.uint8:
        present = np.flatnonzero(np.bincount(arr.ravel(), minlength=1))
    else:
        present = np.unique(arr)
    return np.setdiff1d(present, np.asarray(allowed))


def _load_case(case: str, pred_dir: Path, labels: Path, raw_dir: Path, ending: str, values=(LV,), ignore=IGNORE):
    """(pred, ref, meta, dense truth or None) of one case, or raise ValueError naming the file and problem;
    ``values``: the dataset's structure labels, ``ignore`` its ignore label."""
    pfile, rfile = pred_dir / f"{case}{ending}", labels / f"{case}{ending}"
    if not pfile.is_file():
        raise ValueError(f"{pfile}: prediction missing")
    try:
        meta = read_case_metadata(raw_dir, case)
    except (OSError, ValueError) as e:
        raise ValueError(str(e)) from None
    files = [(pfile, (0, *values)), (rfile, (0, *values, ignore))]
    if meta.get("dense_truth"):
        files.append((dense_truth_path(raw_dir, case, ending), (0, *values)))
    arrays = []
    for f, _ in files:
        if not f.is_file():
            raise ValueError(f"{f}: not found")
        try:
            arrays.append(read_volume(f))
        except Exception as e:  # SimpleITK raises RuntimeError with a long C++ trace
            why = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            raise ValueError(f"{f}: unreadable ({why})") from None
    for (f, _), arr in zip(files, arrays):
        if arr.shape != arrays[1].shape:
            raise ValueError(f"{f}: shape {arr.shape} differs from the label volume's {arrays[1].shape} ({rfile})")
    for arr, (f, allowed) in zip(arrays, files):
        bad = unexpected_values(arr, allowed)
        if bad.size:
            raise ValueError(f"{f}: unexpected label values {bad.tolist()} (allowed {list(allowed)})")
    return arrays[0], arrays[1], meta, arrays[2] if len(arrays) > 2 else None


def _sums(inter, ap, ar, dice, sel) -> dict:
    """Per-video sums of one frame set (what :func:`metrics.dsc_summary` pools and resamples)."""
    return {"inter": int(inter[sel].sum()), "size": int(ap[sel].sum() + ar[sel].sum()),
            "dice_sum": float(dice[sel].sum()), "n_frames": int(sel.sum())}


def _dsc(sums: dict) -> dict:
    """Pooled DSC of each frame set of one video (NaN for an empty set)."""
    return {k: metrics.pooled_dsc(v["inter"], v["size"], 0) if v["n_frames"] else math.nan for k, v in sums.items()}


def _ratio(a: float, b: float) -> float:
    return a / b if np.isfinite(a) and np.isfinite(b) and b > 0 else math.nan


def score_dense(pred: np.ndarray, truth: np.ndarray, corrupted: dict, fps: float, readout: dict | None = None) -> dict:
    """Every-frame scores of one video: ``pred`` and ``truth`` (frames, H, W) LV masks (1 = LV), ``corrupted``
    {frame: [artefact kinds]}; ``readout`` = :func:`cardiac.video_readout` of ``pred`` if already computed.

    Returns per-frame lists (dice, area_truth, kinds), the sums of the frame sets all/corrupted/clean and of each
    artefact kind, the worst frame, the truth's and ratio pred/truth of HF share and jitter, ED/ES errors
    against the truth's detected events and the EF errors of the matched beats (pred - truth)."""
    readout = cardiac.video_readout(pred, fps) if readout is None else readout
    n = len(truth)
    inter, ap, at = metrics.frame_overlap(pred == LV, truth == LV)
    dice = metrics.dice_from_counts(inter, ap, at)
    kinds = [list(corrupted.get(f, ())) for f in range(n)]
    is_corrupted = np.array([bool(k) for k in kinds], bool)
    sets = {"all": np.ones(n, bool), "corrupted": is_corrupted, "clean": ~is_corrupted}
    sets.update({f"kind:{k}": np.array([k in ks for ks in kinds]) for k in sorted({k for ks in kinds for k in ks})})
    truth_readout = cardiac.video_readout(truth, fps)
    pred_beats = [(b["ed"], b["es"]) for b in readout["beats"]]
    truth_beats = [(b["ed"], b["es"]) for b in truth_readout["beats"]]
    pairs = cardiac.match_beats(pred_beats, truth_beats)
    worst = int(np.argmin(dice))
    sums = {name: _sums(inter, ap, at, dice, sel) for name, sel in sets.items()}
    return {
        "dice": dice.tolist(), "area_truth": truth_readout["area"], "kinds": kinds, "sums": sums,
        "dsc": _dsc(sums),
        "worst_dsc": float(dice[worst]), "worst_frame": worst,
        "hf_share_truth": truth_readout["hf_share"], "hf_ratio": _ratio(readout["hf_share"], truth_readout["hf_share"]),
        "jitter_truth": truth_readout["jitter"], "jitter_ratio": _ratio(readout["jitter"], truth_readout["jitter"]),
        "area_swing": cardiac.area_swing(readout["area"], truth_readout["area"]),
        "ed_truth": truth_readout["ed_frames"], "es_truth": truth_readout["es_frames"],
        "ed_error": cardiac.event_error(readout["ed_frames"], truth_readout["ed_frames"]),
        "es_error": cardiac.event_error(readout["es_frames"], truth_readout["es_frames"]),
        "n_beats_truth": len(truth_beats), "n_beats_matched": len(pairs),
        "ef_beat_errors": [math.nan if readout["beats"][j]["ef_problem"] else
                           readout["beats"][j]["ef"] - truth_readout["beats"][i]["ef"] for i, j in pairs],
    }


def structure_scores(pred: np.ndarray, ref: np.ndarray, frames: np.ndarray, phase: np.ndarray, value: int,
                     spacing=None) -> dict:
    """One structure (label ``value``) on the labeled ``frames``: per-frame Dice, areas and HD95 (pixels, and mm
    with the in-plane ``spacing``), and the sums and pooled DSC of the frame sets overall, ED and ES."""
    pm, rm = pred[frames] == value, ref[frames] == value
    inter, ap, ar = metrics.frame_overlap(pm, rm)
    dice = metrics.dice_from_counts(inter, ap, ar)
    sums = {name: _sums(inter, ap, ar, dice, sel)
            for name, sel in (("overall", np.ones(len(frames), bool)), ("ed", phase == "ED"), ("es", phase == "ES"))}
    out = {"dice": dice.tolist(), "area_pred": ap.tolist(), "area_ref": ar.tolist(), "sums": sums, "dsc": _dsc(sums),
           "hd95": [metrics.hd95(pm[i], rm[i]) for i in range(len(frames))]}
    if spacing is not None:
        out["hd95_mm"] = [metrics.hd95(pm[i], rm[i], spacing) for i in range(len(frames))]
    return out


def _dense(pred: np.ndarray, truth: np.ndarray, meta: dict, fps: float, readout: dict, structures: dict) -> dict:
    """:func:`score_dense` on the LV of ``pred`` and ``truth``; with several structures, also each structure's
    sums over every frame (``"structures"``)."""
    corrupted = {c["frame"]: c["kinds"] for c in meta.get("corrupted_frames") or []}
    dense = score_dense((pred == LV).astype(np.uint8), (truth == LV).astype(np.uint8), corrupted, fps, readout)
    if len(structures) > 1:
        every = np.ones(len(truth), bool)
        dense["structures"] = {}
        for name, value in structures.items():
            inter, ap, at = metrics.frame_overlap(pred == value, truth == value)
            dense["structures"][name] = _sums(inter, ap, at, metrics.dice_from_counts(inter, ap, at), every)
    return dense


def score_case(case: str, pred: np.ndarray, ref: np.ndarray, meta: dict, truth: np.ndarray | None = None,
               structures: dict | None = None, ignore: int = IGNORE) -> dict:
    """All per-video numbers and per-frame rows of one case (see :func:`evaluate`); ``truth``: the case's dense
    truth, scored by :func:`score_dense` under ``"dense"`` (None without one). ``structures`` ({name: label},
    default the LV alone) and ``ignore``: the dataset's labels; with several structures each is scored under
    ``"structures"``, while EF, areas and ED/ES come from the LV label. HD95 is also given in mm
    (``"hd95_mm"``) when the metadata holds the pixel spacing."""
    structures = structures or {"LV": LV}
    frames = labeled_frames(ref, ignore)
    ed, es = meta.get("ed_frame"), meta.get("es_frame")
    phase = np.array(["ED" if f == ed else "ES" if f == es else "" for f in frames])
    spacing = meta.get("spacing")
    scores = {name: structure_scores(pred, ref, frames, phase, value, None if spacing is None else spacing[1:])
              for name, value in structures.items()}
    lv_scores = scores["LV"] if "LV" in scores else structure_scores(pred, ref, frames, phase, LV)
    sums, dice, hd = lv_scores["sums"], lv_scores["dice"], lv_scores["hd95"]
    fps = meta.get("fps")
    fps_assumed = not (isinstance(fps, (int, float)) and fps > 0)
    fps = DEFAULT_FPS if fps_assumed else float(fps)
    lv_pred, lv_ref = (pred == LV).astype(np.uint8), (ref == LV).astype(np.uint8)
    readout = cardiac.video_readout(lv_pred, fps)
    has_ed_es = ed is not None and es is not None and ed < len(pred) and es < len(pred)

    def ef_at(vol):
        if not has_ed_es:
            return math.nan
        ef = cardiac.ef_from_volumes(cardiac.mask_volume(vol[ed]), cardiac.mask_volume(vol[es]))
        return math.nan if cardiac.ef_problem(ef, vol[ed].sum(), vol[es].sum()) else ef

    def num(x):
        return float(x) if isinstance(x, (int, float)) else math.nan

    return {
        "case": case, "num_frames": int(pred.shape[0]), "fps": fps, "fps_assumed": fps_assumed,
        "frames": frames.tolist(), "phase": phase.tolist(), "dice": dice, "hd95": hd,
        "area_pred_labeled": lv_scores["area_pred"], "area_ref_labeled": lv_scores["area_ref"], "sums": sums,
        "dsc": _dsc(sums),
        "area": readout["area"], "hf_share": readout["hf_share"], "jitter": readout["jitter"],
        "heart_rate_bpm": readout["heart_rate_bpm"],
        "ed_detected": readout["ed_frames"], "es_detected": readout["es_frames"], "beats": readout["beats"],
        "ed_frame": ed, "es_frame": es,
        "ed_error": cardiac.nearest_error(np.array(readout["ed_frames"]), ed),
        "es_error": cardiac.nearest_error(np.array(readout["es_frames"]), es),
        "ef_filelist": num(meta.get("ef")), "ef_tracings": num(meta.get("ef_tracings")),
        "ef_ref_masks": ef_at(lv_ref), "ef_pred_traced": ef_at(lv_pred), "ef_pred_beats": readout["ef_beats_mean"],
        "dense": None if truth is None else _dense(pred, truth, meta, fps, readout, structures),
        **({"hd95_mm": lv_scores["hd95_mm"]} if "hd95_mm" in lv_scores else {}),
        **({"structures": scores} if len(structures) > 1 else {}),
    }


def agreement(pred, truth) -> dict:
    """MAE, RMSE, bias (mean pred - truth), R² (coefficient of determination) over finite pairs; ``n`` pairs, and
    ``n_unavailable`` cases with a truth but no (plausible) prediction."""
    p, t = np.asarray(pred, float), np.asarray(truth, float)
    ok = np.isfinite(p) & np.isfinite(t)
    missing = int((np.isfinite(t) & ~np.isfinite(p)).sum())
    p, t = p[ok], t[ok]
    if not ok.any():
        return {"mae": math.nan, "rmse": math.nan, "bias": math.nan, "r2": math.nan, "n": 0, "n_unavailable": missing}
    err = p - t
    ss_tot = float(((t - t.mean()) ** 2).sum())
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean())), "bias": float(err.mean()),
            "r2": 1.0 - float((err**2).sum()) / ss_tot if ss_tot > 0 else math.nan, "n": int(ok.sum()),
            "n_unavailable": missing}


def _stats(values) -> dict:
    v = np.asarray(values, float)
    ok = np.isfinite(v)
    f = v[ok]
    return {"mean": float(f.mean()) if f.size else math.nan, "median": float(np.median(f)) if f.size else math.nan,
            "n": int(ok.sum()), "n_undefined": int((~ok).sum())}


def _dsc_sets(sums: list[dict], n_boot: int, seed: int) -> dict:
    """Pooled and mean DSC with bootstrap CIs of each frame set (overall, ED, ES) from the videos' ``sums``."""
    return {k: metrics.dsc_summary({f: np.array([s[k][f] for s in sums]) for f in ("inter", "size", "dice_sum", "n_frames")},
                                   n_boot=n_boot, seed=seed) for k in PHASES}


def _hd_sets(values: list[list], phases: list[list]) -> dict:
    """HD95 statistics of each frame set (overall, ED, ES) from the videos' per-frame values and phases."""
    return {k: _stats([h for vs, ph in zip(values, phases) for h, p in zip(vs, ph) if k == "overall" or p == k.upper()])
            for k in PHASES}


def _structures_summary(records: list[dict], n_boot: int, seed: int) -> dict:
    """Per structure (datasets with several): DSC of each frame set, and HD95 in pixels (and mm with a spacing)."""
    names = records[0]["structures"]
    phases = [r["phase"] for r in records]
    out = {"dsc_by_structure": {n: _dsc_sets([r["structures"][n]["sums"] for r in records], n_boot, seed) for n in names},
           "hd95_px_by_structure": {n: _hd_sets([r["structures"][n]["hd95"] for r in records], phases) for n in names}}
    if all("hd95_mm" in r["structures"][n] for r in records for n in names):
        out["hd95_mm_by_structure"] = {n: _hd_sets([r["structures"][n]["hd95_mm"] for r in records], phases)
                                       for n in names}
    return out


def summarise(records: list[dict], n_boot: int, seed: int) -> dict:
    """Dataset-level numbers from per-case records (the "dsc", "hd95", "temporal", "ef", "ed_es" keys; "hd95_mm"
    when every case has a pixel spacing; per-structure keys when the dataset has several structures)."""
    dsc = _dsc_sets([r["sums"] for r in records], n_boot, seed)
    hd = _hd_sets([r["hd95"] for r in records], [r["phase"] for r in records])
    truth = [r["ef_filelist"] for r in records]
    ef = {name: agreement([r[key] for r in records], truth) for name, key in
          (("pred_traced_frames", "ef_pred_traced"), ("pred_beats", "ef_pred_beats"),
           ("reference_masks", "ef_ref_masks"), ("tracings", "ef_tracings"))}
    mm = all("hd95_mm" in r for r in records)
    return {
        "dsc": dsc, "hd95_px": hd,
        **({"hd95_mm": _hd_sets([r["hd95_mm"] for r in records], [r["phase"] for r in records])} if mm else {}),
        "temporal": {"hf_cutoff_hz": cardiac.HF_CUTOFF_HZ, "hf_share": _stats([r["hf_share"] for r in records]),
                     "jitter": _stats([r["jitter"] for r in records])},
        "ef": ef,
        "ed_es": {"ed_abs_frame_error": _stats([r["ed_error"] for r in records]),
                  "es_abs_frame_error": _stats([r["es_error"] for r in records])},
        **(_structures_summary(records, n_boot, seed) if "structures" in records[0] else {}),
    }


def summarise_dense(records: list[dict], n_boot: int, seed: int) -> dict | None:
    """Dataset-level every-frame numbers over the records that have a dense truth (None if none has)."""
    records = [r for r in records if r["dense"] is not None]
    if not records:
        return None
    dense = [r["dense"] for r in records]

    def pooled(name: str) -> dict:
        per_video = {f: np.array([d["sums"][name][f] if name in d["sums"] else 0 for d in dense], float)
                     for f in ("inter", "size", "dice_sum", "n_frames")}
        return metrics.dsc_summary(per_video, n_boot=n_boot, seed=seed)

    def mean(values) -> float:
        return _stats(values)["mean"]

    worst = np.array([d["worst_dsc"] for d in dense])
    worst_ci = metrics.bootstrap_ratio_ci(worst[None], np.ones((1, len(worst))), n_boot=n_boot, seed=seed)[0]
    kinds = sorted({k.split(":", 1)[1] for d in dense for k in d["sums"] if k.startswith("kind:")})
    ef_err = np.array([e for d in dense for e in d["ef_beat_errors"]], float)
    n_ef_unavailable = int((~np.isfinite(ef_err)).sum())
    ef_err = ef_err[np.isfinite(ef_err)]
    temporal = {}
    for key in ("hf_share", "jitter"):
        pred, truth = mean([r[key] for r in records]), mean([d[f"{key}_truth"] for d in dense])
        name = key.split("_")[0]
        temporal.update({f"{key}_pred": pred, f"{key}_truth": truth, f"{name}_ratio": _ratio(pred, truth),
                         f"{name}_ratio_per_video": _stats([d[f"{name}_ratio"] for d in dense])})
    return {
        "n_videos": len(dense), "n_frames": int(sum(d["sums"]["all"]["n_frames"] for d in dense)),
        "dsc": {name: pooled(name) for name in ("all", "corrupted", "clean")},
        "dsc_by_kind": {k: pooled(f"kind:{k}") for k in kinds},
        "worst_frame_dsc": {**_stats(worst), "ci95": [float(worst_ci[0]), float(worst_ci[1])]},
        "temporal": temporal,
        "area_swing": _stats([d["area_swing"] for d in dense]),
        "ed_es": {"ed_abs_frame_error": _stats([d["ed_error"] for d in dense]),
                  "es_abs_frame_error": _stats([d["es_error"] for d in dense])},
        "ef_beats": {"mae": float(np.abs(ef_err).mean()) if ef_err.size else math.nan,
                     "bias": float(ef_err.mean()) if ef_err.size else math.nan,
                     "n_beats_truth": int(sum(d["n_beats_truth"] for d in dense)),
                     "n_beats_matched": int(sum(d["n_beats_matched"] for d in dense)),
                     "n_beats_unavailable": n_ef_unavailable},
        **({"dsc_by_structure": {n: metrics.dsc_summary(
            {f: np.array([d["structures"][n][f] for d in dense], float) for f in ("inter", "size", "dice_sum", "n_frames")},
            n_boot=n_boot, seed=seed) for n in dense[0]["structures"]}} if "structures" in dense[0] else {}),
    }


DEFINITIONS = {
    "pooled_dsc": "2*sum(|A and B|) / sum(|A|+|B|) over all frames of the set (paper / EchoNet-Dynamic)",
    "mean_dsc": "mean of per-frame Dice (1.0 when both masks are empty)",
    "ci95": "95% percentile bootstrap interval (2.5th, 97.5th percentiles), resampling videos with replacement",
    "hd95_px": "per frame, 95th percentile of pooled symmetric boundary distances in pixels; undefined (excluded, "
               "counted) when exactly one mask is empty, 0 when both are",
    "hf_share": f"share of the detrended, Hann-windowed area curve's spectral energy above {cardiac.HF_CUTOFF_HZ:g} Hz "
                "(3x the 200 bpm fundamental), DC excluded",
    "jitter": "mean |second difference| of the area curve / mean area",
    "ef": "method of disks (20 chords perpendicular to the mask's principal axis), percent; compared to FileList EF",
    "ef_sources": "pred_traced_frames: predicted masks at the traced ED/ES frames; pred_beats: mean over beats "
                  "detected on the predicted area curve; reference_masks: reference label masks with the same mask "
                  "method; tracings: ef_tracings from the conversion. An EF outside 0-90 % or from an ED or ES mask "
                  "under 20 pixels measures a mask that lost the LV, not a heart: it is left out of MAE, RMSE, bias "
                  "and R² and counted in n_unavailable",
    "ed_es_error": "|traced frame - nearest detected ED (area maximum) / ES (area minimum)| in frames",
    "hd95_mm": "HD95 as hd95_px, distances in mm at the pixel spacing of the case metadata",
    "structures": "datasets with several structures (e.g. CAMUS: LV, myocardium, left atrium): dsc_by_structure and "
                  "hd95_*_by_structure score each structure's label on the traced frames like the LV above (and "
                  "dense.dsc_by_structure on every frame); EF, area curves and ED/ES come from the LV label",
    "dense": "every frame scored against the dataset's dense truth (null without one): dsc all / corrupted / clean "
             "frames (corrupted = listed in the case metadata's corrupted_frames) and by artefact kind, same "
             "bootstrap; worst_frame_dsc = the lowest per-frame Dice of each video, mean over videos (bootstrap CI "
             "over videos); temporal: mean HF share and jitter of the predicted and the true area curves and their "
             "ratios pred/truth (ratio of the means; per-video ratios alongside); area_swing: least-squares slope of "
             "the predicted on the true area curve, mean over videos (below 1: the curve swings less than the "
             "truth, EF comes out low); ed_es: mean over the truth's "
             "detected ED (ES) frames of the distance to the nearest ED (ES) detected on the prediction; ef_beats: "
             "EF of each truth beat against the predicted beat whose ED and ES lie within half the beat's "
             "ED-to-ES time (MAE, bias pred - truth, beats matched of the truth's)",
}


def evaluate(pred_dir, dataset, out_dir, subset: str = "imagesTs", n_boot: int = 10_000, seed: int = 0,
             skip_bad: bool = False, video_plots: bool = True, progress: bool = True) -> dict:
    """Evaluate ``pred_dir`` against ``dataset`` (path or id) and write the report into ``out_dir``.

    Returns the summary dict written to ``out_dir/summary.json``.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise EvaluationError(f"{pred_dir}: prediction folder not found")
    raw_dir = resolve_raw_dataset(dataset)
    labels, cases, ending = subset_cases(raw_dir, subset)
    structures, ignore = structure_labels(raw_dir)
    records, problems = [], []
    from tqdm import tqdm
    for case in tqdm(cases, desc="evaluate", unit="video", disable=not progress):
        try:
            pred, ref, meta, truth = _load_case(case, pred_dir, labels, raw_dir, ending, tuple(structures.values()),
                                                ignore)
        except ValueError as e:
            problems.append({"case": case, "problem": str(e)})
            continue
        records.append(score_case(case, pred, ref, meta, truth, structures, ignore))
    if problems and not skip_bad:
        raise EvaluationError(f"{len(problems)} of {len(cases)} cases have bad input (use --skip-bad to skip them):\n"
                              + "\n".join(f"  {p['problem']}" for p in problems))
    if not records:
        raise EvaluationError(f"{pred_dir}: no case could be scored")
    extra = sorted(set(f.name[: -len(ending)] for f in pred_dir.glob(f"*{ending}")
                       if not f.name.startswith(".")) - set(cases))
    dense = summarise_dense(records, n_boot, seed)
    scores = summarise(records, n_boot, seed)
    shown = {"dense": dense, "hd95_mm": "hd95_mm" in scores, "structures": "dsc_by_structure" in scores}
    summary = {
        "prediction_dir": str(pred_dir), "dataset_dir": str(raw_dir), "subset": subset,
        "n_cases": len(records), "n_boot": n_boot, "seed": seed, "ci_level": metrics.CI_LEVEL,
        **scores,
        "dense": dense,
        "skipped": problems, "extra_predictions": extra,
        "fps_assumed": [r["case"] for r in records if r["fps_assumed"]],  # no fps in the metadata: DEFAULT_FPS used
        "definitions": {k: v for k, v in DEFINITIONS.items() if shown.get(k, True)},
    }
    out = Path(out_dir)
    write_outputs(out, records, summary, video_plots)
    return summary
