"""Reports of the evaluation stage: CSV, strict JSON, Markdown tables and matplotlib figures.

Every writer is atomic (:mod:`unilvseg_nnunet.files`); the number formatter :func:`fmt_num` is the
one every table of the package uses.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from unilvseg_nnunet.evaluation import cardiac
from unilvseg_nnunet.files import atomic_path, write_json, write_text

PHASES = ("overall", "ed", "es")


PER_VIDEO_COLUMNS = ("case", "num_frames", "fps", "dsc_overall", "dsc_ed", "dsc_es", "hf_share", "jitter",
                     "heart_rate_bpm", "ed_frame", "es_frame", "ed_detected", "es_detected", "ed_error",
                     "es_error", "n_beats", "ef_filelist", "ef_tracings", "ef_ref_masks", "ef_pred_traced",
                     "ef_pred_beats")
# every-frame scores (empty without a dense truth)
DENSE_VIDEO_COLUMNS = tuple(f"dense_{k}" for k in (
    "dsc", "dsc_corrupted", "dsc_clean", "n_corrupted", "worst_dsc", "worst_frame", "hf_share_truth", "hf_ratio",
    "jitter_truth", "jitter_ratio", "area_swing", "ed_truth", "es_truth", "ed_error", "es_error", "n_beats_truth", "n_beats_matched",
    "ef_beat_mae"))
PER_FRAME_DENSE_COLUMNS = ("case", "frame", "artefacts", "dice", "area_pred", "area_truth")


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


def fmt_num(x, fmt: str = ".2f", scale: float = 1.0) -> str:
    """``x * scale`` formatted, or "n/a" for None, NaN and infinity (every table of the package uses this)."""
    return "n/a" if x is None or not math.isfinite(x) else format(scale * x, fmt)


def _pct(x) -> str:
    return fmt_num(x, scale=100)


_num = fmt_num


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
        lines.append(f"| {'Overall' if k == 'overall' else k.upper()} | {_pct(s['pooled_dsc'])} "
                     f"({_pct(s['pooled_dsc_ci95'][0])}–{_pct(s['pooled_dsc_ci95'][1])}) "
                     f"| {_pct(s['mean_dsc'])} ({_pct(s['mean_dsc_ci95'][0])}–{_pct(s['mean_dsc_ci95'][1])}) "
                     f"| {_num(hd[k]['mean'])} | {s['n_frames']} |")
    if "hd95_mm" in summary:
        lines += ["", "HD95 in mm at the pixel spacing: " + ", ".join(
            f"{'overall' if k == 'overall' else k.upper()} {_num(summary['hd95_mm'][k]['mean'])}" for k in PHASES) + "."]
    if "dsc_by_structure" in summary:
        lines += _structures_markdown(summary)
    if summary.get("dense"):
        lines += _dense_markdown(summary["dense"])
    t = summary["temporal"]
    lines += ["", "## Temporal consistency (every frame)", "",
              f"High-frequency energy share above {t['hf_cutoff_hz']:g} Hz: mean {_pct(t['hf_share']['mean'])}%, "
              f"median {_pct(t['hf_share']['median'])}% ({t['hf_share']['n']} videos). "
              f"Jitter (mean |second difference| / mean area): mean {_pct(t['jitter']['mean'])}%, median {_pct(t['jitter']['median'])}%.",
              "", "## Ejection fraction vs FileList EF", "",
              "| EF source | MAE | RMSE | Bias | R² | Videos | Unavailable |", "|---|---|---|---|---|---|---|"]
    for name, a in summary["ef"].items():
        lines.append(f"| {name} | {_num(a['mae'])} | {_num(a['rmse'])} | {_num(a['bias'])} | {_num(a['r2'], '.3f')} "
                     f"| {a['n']} | {a['n_unavailable']} |")
    lines += ["", "Unavailable: videos with a FileList EF whose EF from the masks is outside 0-90 % or comes from an "
              "ED or ES mask under 20 pixels (a mask that lost the LV); they are not averaged."]
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


def _ci(s: dict) -> str:
    return f"{_pct(s['pooled_dsc'])} ({_pct(s['pooled_dsc_ci95'][0])}–{_pct(s['pooled_dsc_ci95'][1])})"


def _structures_markdown(summary: dict) -> list[str]:
    """Per-structure table (datasets with several structures): pooled DSC per frame set, HD95 (mm if known)."""
    unit = "mm" if "hd95_mm_by_structure" in summary else "px"
    hd = summary[f"hd95_{unit}_by_structure"]
    lines = ["", "## Structures (traced frames)", "",
             f"| Structure | Pooled DSC overall (95% CI) | ED | ES | HD95 {unit} (mean) |", "|---|---|---|---|---|"]
    for name, d in summary["dsc_by_structure"].items():
        lines.append(f"| {name} | {_ci(d['overall'])} | {_ci(d['ed'])} | {_ci(d['es'])} | {_num(hd[name]['overall']['mean'])} |")
    dense = (summary.get("dense") or {}).get("dsc_by_structure")
    if dense:
        lines += ["", "Every frame against the dense truth, pooled DSC (95% CI): "
                  + "; ".join(f"{name} {_ci(d)}" for name, d in dense.items()) + "."]
    return lines


def _dense_markdown(d: dict) -> list[str]:
    """The every-frame section of report.md (see scoring.summarise_dense)."""
    def row(label, s):
        return (f"| {label} | {_pct(s['pooled_dsc'])} ({_pct(s['pooled_dsc_ci95'][0])}–"
                f"{_pct(s['pooled_dsc_ci95'][1])}) "
                f"| {_pct(s['mean_dsc'])} | {s['n_frames']} |")
    t, e, b, w = d["temporal"], d["ed_es"], d["ef_beats"], d["worst_frame_dsc"]
    lines = ["", "## Every frame, against the dense truth", "",
             f"{d['n_videos']} videos, {d['n_frames']} frames.", "",
             "| Frames | Pooled DSC (95% CI) | Mean DSC | Frames |", "|---|---|---|---|",
             row("All", d["dsc"]["all"]), row("Corrupted", d["dsc"]["corrupted"]), row("Clean", d["dsc"]["clean"])]
    lines += [row(f"Artefact: {k}", s) for k, s in d["dsc_by_kind"].items()]
    lines += ["", f"Worst frame per video: mean DSC {_pct(w['mean'])} ({_pct(w['ci95'][0])}–{_pct(w['ci95'][1])}), "
                  f"median {_pct(w['median'])}.",
              f"Area curve vs the truth's: HF energy share {_pct(t['hf_share_pred'])}% vs {_pct(t['hf_share_truth'])}% "
              f"(ratio {_num(t['hf_ratio'])}), jitter {_pct(t['jitter_pred'])}% vs {_pct(t['jitter_truth'])}% "
              f"(ratio {_num(t['jitter_ratio'])}); swing of the area curve {_num(d['area_swing']['mean'])} of the "
              "truth's (least-squares slope; below 1 lowers EF).",
              f"ED/ES detection against the truth's curve: ED {_num(e['ed_abs_frame_error']['mean'])} frames, "
              f"ES {_num(e['es_abs_frame_error']['mean'])} frames (mean).",
              f"Beat-by-beat EF against the truth: MAE {_num(b['mae'])}, bias {_num(b['bias'])} "
              f"({b['n_beats_matched']} of {b['n_beats_truth']} beats matched, {b['n_beats_unavailable']} of them "
              "with an implausible EF and not averaged)."]
    return lines


def save_figure(fig, path) -> None:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_area_curve(area, fps: float, title: str, ed=(), es=(), ref_frames=(), ref_area=(),
                    traced_ed=None, traced_es=None, truth_area=None):
    """Figure of one video's LV-area curve with detected ED/ES and, if given, the reference areas and the
    true area of every frame."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    area = np.asarray(area, float)
    t = np.arange(len(area)) / fps
    fig, ax = plt.subplots(figsize=(8, 3))
    if truth_area is not None:
        ax.plot(t, truth_area, "-", color="k", lw=0.8, alpha=0.6, label="true area")
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


def _frames(frames) -> str:
    """Frame indices as one CSV cell ("9 41 57")."""
    return " ".join(map(str, frames))


def _dense_columns(d: dict | None) -> list:
    """The per-video CSV's dense_* values of one case (NaN, written empty, without a dense truth)."""
    if d is None:
        return [math.nan] * len(DENSE_VIDEO_COLUMNS)
    ef = np.abs(np.asarray(d["ef_beat_errors"], float))
    return [d["dsc"]["all"], d["dsc"]["corrupted"], d["dsc"]["clean"], d["sums"]["corrupted"]["n_frames"],
            d["worst_dsc"], d["worst_frame"], d["hf_share_truth"], d["hf_ratio"],
            d["jitter_truth"], d["jitter_ratio"], d["area_swing"], _frames(d["ed_truth"]), _frames(d["es_truth"]),
            d["ed_error"], d["es_error"], d["n_beats_truth"],
            d["n_beats_matched"], float(np.nanmean(ef)) if np.isfinite(ef).any() else math.nan]


def write_outputs(out: Path, records: list[dict], summary: dict, video_plots: bool) -> None:
    """summary.json, report.md, per_frame.csv, per_video.csv, per_frame_dense.csv (with a dense truth),
    dataset figures, area curves."""
    out.mkdir(parents=True, exist_ok=True)
    frame_rows = [[r["case"], f, ph, d, h, ap, ar] for r in records
                  for f, ph, d, h, ap, ar in zip(r["frames"], r["phase"], r["dice"], r["hd95"],
                                                 r["area_pred_labeled"], r["area_ref_labeled"])]
    write_text(out / "per_frame.csv", to_csv(frame_rows, ("case", "frame", "phase", "dice", "hd95_px", "area_pred", "area_ref")))
    video_rows = [[r["case"], r["num_frames"], r["fps"], r["dsc"]["overall"], r["dsc"]["ed"], r["dsc"]["es"],
                   r["hf_share"], r["jitter"], r["heart_rate_bpm"], r["ed_frame"], r["es_frame"],
                   _frames(r["ed_detected"]), _frames(r["es_detected"]),
                   r["ed_error"], r["es_error"], len(r["beats"]), r["ef_filelist"], r["ef_tracings"],
                   r["ef_ref_masks"], r["ef_pred_traced"], r["ef_pred_beats"], *_dense_columns(r["dense"])]
                  for r in records]
    write_text(out / "per_video.csv", to_csv(video_rows, PER_VIDEO_COLUMNS + DENSE_VIDEO_COLUMNS))
    dense_rows = [[r["case"], f, "+".join(k), d, ap, at] for r in records if r["dense"] is not None
                  for f, (k, d, ap, at) in enumerate(zip(r["dense"]["kinds"], r["dense"]["dice"], r["area"],
                                                         r["dense"]["area_truth"]))]
    if dense_rows:
        write_text(out / "per_frame_dense.csv", to_csv(dense_rows, PER_FRAME_DENSE_COLUMNS))
    dataset_figures(out, records)
    if video_plots:
        for r in records:
            fig = plot_area_curve(r["area"], r["fps"], f"{r['case']}  DSC {_pct(r['dsc']['overall'])}%",
                                  r["ed_detected"], r["es_detected"], r["frames"], r["area_ref_labeled"],
                                  r["ed_frame"], r["es_frame"], r["dense"]["area_truth"] if r["dense"] else None)
            save_figure(fig, out / "area_curves" / f"{r['case']}.png")
    write_text(out / "report.md", markdown_report(summary))
    write_json(out / "summary.json", jsonable(summary))
