"""Score a folder of predicted mask videos against the raw dataset: DSC (pooled and mean, with
video-bootstrap 95% CIs) on the traced frames, HD95, temporal consistency on every frame, EF and
ED/ES from the masks. Writes JSON, CSV, Markdown and figures into one output folder.

Bad-input policy. Fatal at once (nothing written): the prediction folder, the dataset or its
labels folder missing, or no case to score. Per-case problems (prediction file missing or
unreadable, shape different from the label volume, prediction values other than 0/1, reference
values other than 0/1/2, case metadata missing) are collected over ALL cases first and then raise
one :class:`EvaluationError` naming every file and problem, before anything is written: scoring
a subset silently would bias a comparison. With ``skip_bad=True`` those cases are skipped instead
and listed under ``"skipped"`` in the JSON and the Markdown. Prediction files of cases outside the
subset are ignored and listed under ``"extra_predictions"``. Every output is written atomically.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from unilvseg_nnunet.data.dataset import IGNORE, LV, labeled_frames, read_case_metadata, resolve_raw_dataset, subset_cases
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


def _load_case(case: str, pred_dir: Path, labels: Path, raw_dir: Path, ending: str):
    """(pred, ref, meta) of one case, or raise ValueError naming the file and problem."""
    pfile, rfile = pred_dir / f"{case}{ending}", labels / f"{case}{ending}"
    if not pfile.is_file():
        raise ValueError(f"{pfile}: prediction missing")
    try:
        meta = read_case_metadata(raw_dir, case)
    except (OSError, ValueError) as e:
        raise ValueError(str(e)) from None
    arrays = []
    for f in (pfile, rfile):
        try:
            arrays.append(read_volume(f))
        except Exception as e:  # SimpleITK raises RuntimeError with a long C++ trace
            raise ValueError(f"{f}: unreadable ({str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__})") from None
    pred, ref = arrays
    if pred.shape != ref.shape:
        raise ValueError(f"{pfile}: shape {pred.shape} differs from the label volume's {ref.shape} ({rfile})")
    for arr, f, allowed in ((pred, pfile, (0, LV)), (ref, rfile, (0, LV, IGNORE))):
        bad = unexpected_values(arr, allowed)
        if bad.size:
            raise ValueError(f"{f}: unexpected label values {bad.tolist()} (allowed {list(allowed)})")
    return pred, ref, meta


def score_case(case: str, pred: np.ndarray, ref: np.ndarray, meta: dict) -> dict:
    """All per-video numbers and per-frame rows of one case (see :func:`evaluate`)."""
    frames = labeled_frames(ref)
    pm, rm = pred[frames] == LV, ref[frames] == LV
    inter, ap, ar = metrics.frame_overlap(pm, rm)
    dice = metrics.dice_from_counts(inter, ap, ar)
    hd = np.array([metrics.hd95(pm[i], rm[i]) for i in range(len(frames))])
    ed, es = meta.get("ed_frame"), meta.get("es_frame")
    phase = np.array(["ED" if f == ed else "ES" if f == es else "" for f in frames])
    sums = {}
    for name, sel in (("overall", np.ones(len(frames), bool)), ("ed", phase == "ED"), ("es", phase == "ES")):
        sums[name] = {"inter": int(inter[sel].sum()), "size": int(ap[sel].sum() + ar[sel].sum()),
                      "dice_sum": float(dice[sel].sum()), "n_frames": int(sel.sum())}
    fps = meta.get("fps")
    fps_assumed = not (isinstance(fps, (int, float)) and fps > 0)
    fps = DEFAULT_FPS if fps_assumed else float(fps)
    readout = cardiac.video_readout(pred, fps)
    has_ed_es = ed is not None and es is not None and ed < len(pred) and es < len(pred)

    def ef_at(vol):
        return cardiac.ef_from_volumes(cardiac.mask_volume(vol[ed]), cardiac.mask_volume(vol[es])) if has_ed_es else math.nan

    def num(x):
        return float(x) if isinstance(x, (int, float)) else math.nan

    return {
        "case": case, "num_frames": int(pred.shape[0]), "fps": fps, "fps_assumed": fps_assumed,
        "frames": frames.tolist(), "phase": phase.tolist(), "dice": dice.tolist(), "hd95": hd.tolist(),
        "area_pred_labeled": ap.tolist(), "area_ref_labeled": ar.tolist(), "sums": sums,
        "dsc": {k: metrics.pooled_dsc(v["inter"], v["size"], 0) if v["n_frames"] else math.nan for k, v in sums.items()},
        "area": readout["area"], "hf_share": readout["hf_share"], "jitter": readout["jitter"],
        "heart_rate_bpm": readout["heart_rate_bpm"],
        "ed_detected": readout["ed_frames"], "es_detected": readout["es_frames"], "beats": readout["beats"],
        "ed_frame": ed, "es_frame": es,
        "ed_error": cardiac.nearest_error(np.array(readout["ed_frames"]), ed),
        "es_error": cardiac.nearest_error(np.array(readout["es_frames"]), es),
        "ef_filelist": num(meta.get("ef")), "ef_tracings": num(meta.get("ef_tracings")),
        "ef_ref_masks": ef_at(ref), "ef_pred_traced": ef_at(pred), "ef_pred_beats": readout["ef_beats_mean"],
    }


def agreement(pred, truth) -> dict:
    """MAE, RMSE, bias (mean pred - truth), R² (coefficient of determination) over finite pairs."""
    p, t = np.asarray(pred, float), np.asarray(truth, float)
    ok = np.isfinite(p) & np.isfinite(t)
    p, t = p[ok], t[ok]
    if not ok.any():
        return {"mae": math.nan, "rmse": math.nan, "bias": math.nan, "r2": math.nan, "n": 0}
    err = p - t
    ss_tot = float(((t - t.mean()) ** 2).sum())
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err**2).mean())), "bias": float(err.mean()),
            "r2": 1.0 - float((err**2).sum()) / ss_tot if ss_tot > 0 else math.nan, "n": int(ok.sum())}


def _stats(values) -> dict:
    v = np.asarray(values, float)
    ok = np.isfinite(v)
    f = v[ok]
    return {"mean": float(f.mean()) if f.size else math.nan, "median": float(np.median(f)) if f.size else math.nan,
            "n": int(ok.sum()), "n_undefined": int((~ok).sum())}


def summarise(records: list[dict], n_boot: int, seed: int) -> dict:
    """Dataset-level numbers from per-case records (the "dsc", "hd95", "temporal", "ef", "ed_es" keys)."""
    dsc = {}
    hd = {}
    for k in PHASES:
        per_video = {f: np.array([r["sums"][k][f] for r in records]) for f in ("inter", "size", "dice_sum", "n_frames")}
        dsc[k] = metrics.dsc_summary(per_video, n_boot=n_boot, seed=seed)
        sel = [h for r in records for h, ph in zip(r["hd95"], r["phase"]) if k == "overall" or ph == k.upper()]
        hd[k] = _stats(sel)
    truth = [r["ef_filelist"] for r in records]
    ef = {name: agreement([r[key] for r in records], truth) for name, key in
          (("pred_traced_frames", "ef_pred_traced"), ("pred_beats", "ef_pred_beats"),
           ("reference_masks", "ef_ref_masks"), ("tracings", "ef_tracings"))}
    return {
        "dsc": dsc, "hd95_px": hd,
        "temporal": {"hf_cutoff_hz": cardiac.HF_CUTOFF_HZ, "hf_share": _stats([r["hf_share"] for r in records]),
                     "jitter": _stats([r["jitter"] for r in records])},
        "ef": ef,
        "ed_es": {"ed_abs_frame_error": _stats([r["ed_error"] for r in records]),
                  "es_abs_frame_error": _stats([r["es_error"] for r in records])},
    }


DEFINITIONS = {
    "pooled_dsc": "2*sum(|A and B|) / sum(|A|+|B|) over all frames of the set (paper / EchoNet-Dynamic)",
    "mean_dsc": "mean of per-frame Dice (1.0 when both masks are empty)",
    "ci95": "95% percentile bootstrap interval (2.5th, 97.5th percentiles), resampling videos with replacement",
    "hd95_px": "per frame, 95th percentile of pooled symmetric boundary distances in pixels; undefined (excluded, counted) when exactly one mask is empty, 0 when both are",
    "hf_share": f"share of the detrended, Hann-windowed area curve's spectral energy above {cardiac.HF_CUTOFF_HZ:g} Hz (3x the 200 bpm fundamental), DC excluded",
    "jitter": "mean |second difference| of the area curve / mean area",
    "ef": "method of disks (20 chords perpendicular to the mask's principal axis), percent; compared to FileList EF",
    "ef_sources": "pred_traced_frames: predicted masks at the traced ED/ES frames; pred_beats: mean over beats detected on the predicted area curve; reference_masks: reference label masks with the same mask method; tracings: ef_tracings from the conversion",
    "ed_es_error": "|traced frame - nearest detected ED (area maximum) / ES (area minimum)| in frames",
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
    records, problems = [], []
    from tqdm import tqdm
    for case in tqdm(cases, desc="evaluate", unit="video", disable=not progress):
        try:
            pred, ref, meta = _load_case(case, pred_dir, labels, raw_dir, ending)
        except ValueError as e:
            problems.append({"case": case, "problem": str(e)})
            continue
        records.append(score_case(case, pred, ref, meta))
    if problems and not skip_bad:
        raise EvaluationError(f"{len(problems)} of {len(cases)} cases have bad input (use --skip-bad to skip them):\n"
                              + "\n".join(f"  {p['problem']}" for p in problems))
    if not records:
        raise EvaluationError(f"{pred_dir}: no case could be scored")
    extra = sorted(set(f.name[: -len(ending)] for f in pred_dir.glob(f"*{ending}")
                       if not f.name.startswith(".")) - set(cases))
    summary = {
        "prediction_dir": str(pred_dir), "dataset_dir": str(raw_dir), "subset": subset,
        "n_cases": len(records), "n_boot": n_boot, "seed": seed, "ci_level": metrics.CI_LEVEL,
        **summarise(records, n_boot, seed),
        "skipped": problems, "extra_predictions": extra,
        "fps_assumed": [r["case"] for r in records if r["fps_assumed"]],  # no fps in the metadata: DEFAULT_FPS used
        "definitions": DEFINITIONS,
    }
    out = Path(out_dir)
    write_outputs(out, records, summary, video_plots)
    return summary
