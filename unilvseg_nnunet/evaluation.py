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

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from . import cardiac, metrics
from .dataset import FILE_ENDING, IGNORE, LV, labeled_frames, read_case_metadata
from .files import atomic_path, read_volume, write_json, write_text

DEFAULT_FPS = 50.0  # EchoNet-Dynamic's typical frame rate, used only when a case has no fps
PHASES = ("overall", "ed", "es")


class EvaluationError(RuntimeError):
    """Bad input for the evaluation; the message names each file and problem."""


def resolve_raw_dataset(dataset: str | os.PathLike) -> Path:
    """A raw dataset folder, given as a path or as an nnU-Net dataset id/name under $nnUNet_raw."""
    p = Path(dataset)
    if p.is_dir():
        return p
    raw = os.environ.get("nnUNet_raw")
    if not raw:
        raise EvaluationError(f"{dataset}: not a folder, and nnUNet_raw is not set to look it up as a dataset id")
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name
    try:
        name = maybe_convert_to_dataset_name(str(dataset))
    except (RuntimeError, ValueError) as e:
        raise EvaluationError(f"{dataset}: no such dataset under nnUNet_raw={raw} ({str(e).splitlines()[0]})") from None
    p = Path(raw) / name
    if not p.is_dir():
        raise EvaluationError(f"{p}: raw dataset folder not found")
    return p


def subset_cases(raw_dir: Path, subset: str) -> tuple[Path, list[str]]:
    """The labels folder of ``subset`` (imagesTs -> labelsTs) and its case names."""
    labels = raw_dir / subset.replace("images", "labels")
    if not labels.is_dir():
        raise EvaluationError(f"{labels}: labels folder not found (subset {subset})")
    cases = sorted(f.name[: -len(FILE_ENDING)] for f in labels.iterdir()
                   if f.name.endswith(FILE_ENDING) and not f.name.startswith("."))
    if not cases:
        raise EvaluationError(f"{labels}: no *{FILE_ENDING} label files")
    return labels, cases


def unexpected_values(arr: np.ndarray, allowed) -> np.ndarray:
    """Values of ``arr`` not in ``allowed`` (a bincount for uint8 masks: O(n), no sort)."""
    if arr.dtype == np.uint8:
        present = np.flatnonzero(np.bincount(arr.ravel(), minlength=1))
    else:
        present = np.unique(arr)
    return np.setdiff1d(present, np.asarray(allowed))


def _load_case(case: str, pred_dir: Path, labels: Path, raw_dir: Path):
    """(pred, ref, meta) of one case, or raise ValueError naming the file and problem."""
    pfile, rfile = pred_dir / f"{case}{FILE_ENDING}", labels / f"{case}{FILE_ENDING}"
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
    labels, cases = subset_cases(raw_dir, subset)
    records, problems = [], []
    from tqdm import tqdm
    for case in tqdm(cases, desc="evaluate", unit="video", disable=not progress):
        try:
            pred, ref, meta = _load_case(case, pred_dir, labels, raw_dir)
        except ValueError as e:
            problems.append({"case": case, "problem": str(e)})
            continue
        records.append(score_case(case, pred, ref, meta))
    if problems and not skip_bad:
        raise EvaluationError(f"{len(problems)} of {len(cases)} cases have bad input (use --skip-bad to skip them):\n"
                              + "\n".join(f"  {p['problem']}" for p in problems))
    if not records:
        raise EvaluationError(f"{pred_dir}: no case could be scored")
    extra = sorted(set(f.name[: -len(FILE_ENDING)] for f in pred_dir.glob(f"*{FILE_ENDING}")
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


# ----------------------------------------------------------------------------------------- output

PER_VIDEO_COLUMNS = ("case", "num_frames", "fps", "dsc_overall", "dsc_ed", "dsc_es", "hf_share", "jitter",
                     "heart_rate_bpm", "ed_frame", "es_frame", "ed_detected", "es_detected", "ed_error",
                     "es_error", "n_beats", "ef_filelist", "ef_tracings", "ef_ref_masks", "ef_pred_traced",
                     "ef_pred_beats")


def to_csv(rows: list[list], header) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows([["" if isinstance(v, float) and not math.isfinite(v) else
                  (f"{v:.6g}" if isinstance(v, float) else v) for v in row] for row in rows])
    return buf.getvalue()


def jsonable(obj):
    """NaN/inf -> None (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def _pct(x: float) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.2f}"


def _num(x: float, fmt: str = ".2f") -> str:
    return "n/a" if x is None or not math.isfinite(x) else format(x, fmt)


def markdown_report(summary: dict) -> str:
    d, hd = summary["dsc"], summary["hd95_px"]
    lines = [f"# Evaluation: {summary['prediction_dir']}", "",
             f"Dataset `{summary['dataset_dir']}` ({summary['subset']}), {summary['n_cases']} videos. "
             f"DSC in percent; intervals are **95%** percentile-bootstrap intervals over videos "
             f"({summary['n_boot']} resamples, seed {summary['seed']}).", "",
             "| Frames | Pooled DSC (95% CI) | Mean DSC (95% CI) | HD95 px (mean) | Frames scored |",
             "|---|---|---|---|---|"]
    for k in PHASES:
        s = d[k]
        lines.append(f"| {'Overall' if k == 'overall' else k.upper()} | {_pct(s['pooled_dsc'])} ({_pct(s['pooled_dsc_ci95'][0])}–{_pct(s['pooled_dsc_ci95'][1])}) "
                     f"| {_pct(s['mean_dsc'])} ({_pct(s['mean_dsc_ci95'][0])}–{_pct(s['mean_dsc_ci95'][1])}) "
                     f"| {_num(hd[k]['mean'])} | {s['n_frames']} |")
    t = summary["temporal"]
    lines += ["", "## Temporal consistency (every frame)", "",
              f"High-frequency energy share above {t['hf_cutoff_hz']:g} Hz: mean {_pct(t['hf_share']['mean'])}%, "
              f"median {_pct(t['hf_share']['median'])}% ({t['hf_share']['n']} videos). "
              f"Jitter (mean |second difference| / mean area): mean {_pct(t['jitter']['mean'])}%, median {_pct(t['jitter']['median'])}%.",
              "", "## Ejection fraction vs FileList EF", "",
              "| EF source | MAE | RMSE | Bias | R² | Videos |", "|---|---|---|---|---|---|"]
    for name, a in summary["ef"].items():
        lines.append(f"| {name} | {_num(a['mae'])} | {_num(a['rmse'])} | {_num(a['bias'])} | {_num(a['r2'], '.3f')} | {a['n']} |")
    e = summary["ed_es"]
    lines += ["", "## ED/ES detection on the predicted area curve", "",
              f"|traced − nearest detected| frames: ED mean {_num(e['ed_abs_frame_error']['mean'])} "
              f"({e['ed_abs_frame_error']['n']} videos, {e['ed_abs_frame_error']['n_undefined']} without a detection), "
              f"ES mean {_num(e['es_abs_frame_error']['mean'])} "
              f"({e['es_abs_frame_error']['n']} videos, {e['es_abs_frame_error']['n_undefined']} without a detection)."]
    if summary["skipped"]:
        lines += ["", "## Skipped cases", ""] + [f"- {p['problem']}" for p in summary["skipped"]]
    if summary["extra_predictions"]:
        lines += ["", f"Predictions outside the subset, ignored: {', '.join(summary['extra_predictions'])}"]
    lines += ["", "## Definitions", ""] + [f"- **{k}**: {v}" for k, v in summary["definitions"].items()]
    return "\n".join(lines) + "\n"


def save_figure(fig, path) -> None:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_area_curve(area, fps: float, title: str, ed=(), es=(), ref_frames=(), ref_area=(),
                    traced_ed=None, traced_es=None):
    """Figure of one video's LV-area curve with detected ED/ES and, if given, the reference areas."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    area = np.asarray(area, float)
    t = np.arange(len(area)) / fps
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(t, area, "-", color="tab:blue", lw=1.2, label="predicted area")
    ax.plot(t, cardiac.smooth_area(area, fps), "--", color="tab:gray", lw=0.8, label="smoothed (ED/ES detection)")
    ed, es = np.asarray(ed, int), np.asarray(es, int)
    for idx, marker, colour, label in ((ed, "v", "tab:red", "detected ED"), (es, "^", "tab:green", "detected ES")):
        if len(idx):
            ax.plot(t[idx], area[idx], marker, color=colour, label=label)
    if len(ref_frames):
        ax.plot(np.asarray(ref_frames) / fps, ref_area, "o", mfc="none", color="k", label="reference (traced)")
    for f, c in ((traced_ed, "tab:red"), (traced_es, "tab:green")):
        if f is not None:
            ax.axvline(f / fps, color=c, ls=":", lw=1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("LV area (pixels)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return fig


def dataset_figures(out: Path, records: list[dict]) -> None:
    """dsc.png (per-video pooled DSC), ef.png (EF vs FileList), temporal.png (consistency, ED/ES error)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for k in PHASES:
        v = np.array([r["dsc"][k] for r in records], float)
        ax.hist(100 * v[np.isfinite(v)], bins=30, alpha=0.5, label=k)
    ax.set_xlabel("per-video DSC (%)")
    ax.set_ylabel("videos")
    ax.legend()
    save_figure(fig, out / "dsc.png")

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    truth = np.array([r["ef_filelist"] for r in records], float)
    for key, m in (("ef_pred_traced", "o"), ("ef_pred_beats", "x"), ("ef_ref_masks", ".")):
        ax.plot(truth, [r[key] for r in records], m, alpha=0.6, label=key)
    lim = [0, 100]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_xlabel("FileList EF (%)")
    ax.set_ylabel("EF from masks (%)")
    ax.legend(fontsize=7)
    save_figure(fig, out / "ef.png")

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, key, label in ((axes[0], "hf_share", f"energy share > {cardiac.HF_CUTOFF_HZ:g} Hz"), (axes[1], "jitter", "jitter")):
        v = np.array([r[key] for r in records], float)
        ax.hist(v[np.isfinite(v)], bins=30)
        ax.set_xlabel(label)
        ax.set_ylabel("videos")
    for key, label in (("ed_error", "ED"), ("es_error", "ES")):
        v = np.array([r[key] for r in records], float)
        axes[2].hist(v[np.isfinite(v)], bins=np.arange(0, 21) - 0.5, alpha=0.5, label=label)
    axes[2].set_xlabel("|detected - traced| (frames)")
    axes[2].legend()
    save_figure(fig, out / "temporal.png")


def write_outputs(out: Path, records: list[dict], summary: dict, video_plots: bool) -> None:
    """summary.json, report.md, per_frame.csv, per_video.csv, dataset figures, area curves."""
    out.mkdir(parents=True, exist_ok=True)
    frame_rows = [[r["case"], f, ph, d, h, ap, ar] for r in records
                  for f, ph, d, h, ap, ar in zip(r["frames"], r["phase"], r["dice"], r["hd95"],
                                                 r["area_pred_labeled"], r["area_ref_labeled"])]
    write_text(out / "per_frame.csv", to_csv(frame_rows, ("case", "frame", "phase", "dice", "hd95_px", "area_pred", "area_ref")))
    video_rows = [[r["case"], r["num_frames"], r["fps"], r["dsc"]["overall"], r["dsc"]["ed"], r["dsc"]["es"],
                   r["hf_share"], r["jitter"], r["heart_rate_bpm"], r["ed_frame"], r["es_frame"],
                   " ".join(map(str, r["ed_detected"])), " ".join(map(str, r["es_detected"])),
                   r["ed_error"], r["es_error"], len(r["beats"]), r["ef_filelist"], r["ef_tracings"],
                   r["ef_ref_masks"], r["ef_pred_traced"], r["ef_pred_beats"]] for r in records]
    write_text(out / "per_video.csv", to_csv(video_rows, PER_VIDEO_COLUMNS))
    dataset_figures(out, records)
    if video_plots:
        for r in records:
            fig = plot_area_curve(r["area"], r["fps"], f"{r['case']}  DSC {_pct(r['dsc']['overall'])}%",
                                  r["ed_detected"], r["es_detected"], r["frames"], r["area_ref_labeled"],
                                  r["ed_frame"], r["es_frame"])
            save_figure(fig, out / "area_curves" / f"{r['case']}.png")
    write_text(out / "report.md", markdown_report(summary))
    write_json(out / "summary.json", jsonable(summary))
