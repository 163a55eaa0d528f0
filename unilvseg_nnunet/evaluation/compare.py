"""Table-I style comparison of several trained models on one test split (imagesTs).

For each model (an nnU-Net trainer output folder): predict every test video in this process as
``unilvseg predict-video`` does (:func:`unilvseg_nnunet.inference.predictor.segment`: whole-video
configurations streamed window by window, others through ``nnUNetPredictor``; no test-time
augmentation, the same device for all models), timing the end-to-end prediction (preprocessing +
network + labels back at the input size, file I/O excluded) after one untimed warm-up call; evaluate the
predictions with :func:`unilvseg_nnunet.evaluation.scoring.evaluate`;
count parameters and GFLOPs per frame with :func:`unilvseg_nnunet.evaluation.cost.network_cost` (fvcore).
Writes ``comparison.json``, ``comparison.md`` and ``bubble.png`` (x GFLOPs/frame, y pooled DSC with
its 95% CI, bubble area ~ parameters, like the paper's Fig. 1), plus per model
``<folder>/predictions`` and ``<folder>/evaluation`` (folder = the name made file-system safe).
"""
from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import numpy as np

from unilvseg_nnunet.data.dataset import resolve_raw_dataset, subset_cases
from unilvseg_nnunet.errors import UnilvsegError
from unilvseg_nnunet.evaluation.reports import fmt_num as _f
from unilvseg_nnunet.evaluation.reports import jsonable, save_figure
from unilvseg_nnunet.evaluation.scoring import EvaluationError, evaluate
from unilvseg_nnunet.files import read_volume_spacing, write_json, write_text, write_volume
from unilvseg_nnunet.inference.predictor import check_model_folder, default_device, load_predictor, segment

WARMUP_FRAMES = 8


def parse_models(specs: list[str]) -> dict[str, Path]:
    """``NAME=MODEL_FOLDER`` strings -> {name: folder}; names (any text, e.g. "Ours 3D + SSL") must
    be unique and non-empty."""
    models: dict[str, Path] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        name = name.strip()
        if not sep or not name or not folder:
            raise UnilvsegError(f"-m {spec!r}: expected NAME=MODEL_FOLDER")
        if name in models:
            raise UnilvsegError(f"-m: model name {name!r} given twice")
        models[name] = Path(folder)
    return models


def folder_names(names) -> dict[str, str]:
    """A distinct, file-system-safe folder name per model name ("Ours 3D + SSL" -> "Ours_3D_SSL")."""
    out: dict[str, str] = {}
    for name in names:
        slug = re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_.") or "model"
        base, i = slug, 2
        while slug in out.values():
            slug, i = f"{base}_{i}", i + 1
        out[name] = slug
    return out


def model_cost(model_folder: Path) -> dict:
    """Parameters (M) and GFLOPs per frame from the cost module; NaN with the reason if it cannot count."""
    try:
        from unilvseg_nnunet.evaluation.cost import network_cost
        c = network_cost(model_folder)
        return {"params_m": float(c["params_m"]), "gflops_per_frame": float(c["gflops_per_frame"]), "cost_error": None}
    except Exception as e:  # cost is informative: a failure must not lose the DSC results
        return {"params_m": math.nan, "gflops_per_frame": math.nan, "cost_error": f"{type(e).__name__}: {e}"}


def read_case_image(channel_files: list[Path]) -> tuple[np.ndarray, tuple]:
    """(F, H, W) for one channel, (F, H, W, C) for several, and the spacing: what :func:`segment` takes."""
    vols = [read_volume_spacing(f) for f in channel_files]
    return (vols[0][0] if len(vols) == 1 else np.stack([v for v, _ in vols], -1)), vols[0][1]


def predict_timed(predictor, images: dict[str, list[Path]], pred_dir: Path, ending: str, progress: bool = True) -> dict:
    """Segment every case ({case: channel files}) into ``pred_dir/<case><ending>``; return frames, seconds
    and frames/s of the prediction itself (file reading and writing excluded)."""
    import torch
    from tqdm import tqdm

    first, spacing = read_case_image(next(iter(images.values())))
    segment(predictor, first[:WARMUP_FRAMES], spacing)  # untimed warm-up (allocations, lazy initialisation)
    frames, seconds = 0, 0.0
    for case, files in tqdm(images.items(), desc=f"predict {pred_dir.parent.name}", unit="video", disable=not progress):
        img, spacing = read_case_image(files)
        t0 = time.perf_counter()
        seg = segment(predictor, img, spacing)
        seconds += time.perf_counter() - t0
        frames += len(img)
        write_volume(pred_dir / f"{case}{ending}", seg, spacing)
    return {"frames": frames, "seconds": seconds, "frames_per_second": frames / seconds if seconds > 0 else math.nan,
            "torch_threads": torch.get_num_threads()}


def compare(dataset, models: dict[str, Path], out_dir, device: str | None = None, folds=None,
            checkpoint: str = "checkpoint_final.pth", n_boot: int = 10_000, seed: int = 0,
            video_plots: bool = False, progress: bool = True) -> dict:
    """Predict, time, evaluate and cost every model on the dataset's imagesTs; write the table."""
    raw_dir = resolve_raw_dataset(dataset)
    device = device or default_device()
    _, cases, ending = subset_cases(raw_dir, "imagesTs")
    n_channels = len(json.loads((raw_dir / "dataset.json").read_text())["channel_names"])
    images = {c: [raw_dir / "imagesTs" / f"{c}_{k:04d}{ending}" for k in range(n_channels)] for c in cases}
    missing = [str(p) for files in images.values() for p in files if not p.is_file()]
    if missing:
        raise EvaluationError("test images missing: " + ", ".join(missing))
    for folder in models.values():  # fail before hours of prediction, not after
        check_model_folder(folder, folds, checkpoint)
    out = Path(out_dir)
    rows = []
    for name, folder in models.items():
        sub = out / folder_names(models)[name]
        predictor = load_predictor(folder, folds, checkpoint, device, tta=False)
        timing = predict_timed(predictor, images, sub / "predictions", ending, progress)
        del predictor
        summary = evaluate(sub / "predictions", raw_dir, sub / "evaluation", "imagesTs", n_boot, seed,
                           video_plots=video_plots, progress=progress)
        trainer, plans, configuration = (folder.name.split("__") + [None, None, None])[:3]
        rows.append({"name": name, "model_folder": str(folder), "trainer": trainer, "plans": plans,
                     "configuration": configuration, **model_cost(folder), "device": device, **timing,
                     "dsc": summary["dsc"], "hd95_px": summary["hd95_px"], "temporal": summary["temporal"],
                     "ef": summary["ef"], "ed_es": summary["ed_es"], "output_dir": str(sub),
                     **{k: summary[k] for k in ("dsc_by_structure", "hd95_mm") if k in summary}})
    result = {"dataset_dir": str(raw_dir), "subset": "imagesTs", "n_cases": len(cases), "device": device,
              "tta": False, "checkpoint": checkpoint, "n_boot": n_boot, "seed": seed, "ci_level": 0.95, "models": rows}
    write_json(out / "comparison.json", jsonable(result))
    write_text(out / "comparison.md", comparison_markdown(result))
    bubble_plot(rows, out / "bubble.png")
    return result


def _dsc_ci(d: dict) -> str:
    lo, hi = d["pooled_dsc_ci95"]
    return f"{_f(100 * d['pooled_dsc'])} ({_f(100 * lo)}–{_f(100 * hi)})"


def _ef_mae(a: dict) -> str:
    """EF MAE with the count of videos whose EF was implausible and left out."""
    return _f(a["mae"]) + (f" ({a['n_unavailable']} n/a)" if a.get("n_unavailable") else "")


def comparison_markdown(result: dict) -> str:
    """The Table-I-like Markdown table with its footnotes."""
    lines = [f"# Comparison on {result['dataset_dir']} ({result['subset']}, {result['n_cases']} videos)", "",
             "| Model | Params (M) | GFLOPs/frame | Frames/s (" + result["device"].upper() + ") | DSC overall (95% CI) "
             "| DSC ED (95% CI) | DSC ES (95% CI) | HF energy >10 Hz (%) | Jitter (%) | EF MAE traced | EF MAE beats "
             "| ED/ES err (frames) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["models"]:
        t, ef, e = r["temporal"], r["ef"], r["ed_es"]
        lines.append(
            f"| {r['name']} | {_f(r['params_m'])} | {_f(r['gflops_per_frame'])} | {_f(r['frames_per_second'], '.1f')} "
            f"| {_dsc_ci(r['dsc']['overall'])} | {_dsc_ci(r['dsc']['ed'])} | {_dsc_ci(r['dsc']['es'])} "
            f"| {_f(100 * t['hf_share']['mean'])} | {_f(100 * t['jitter']['mean'])} "
            f"| {_ef_mae(ef['pred_traced_frames'])} | {_ef_mae(ef['pred_beats'])} "
            f"| {_f(e['ed_abs_frame_error']['mean'], '.1f')} / {_f(e['es_abs_frame_error']['mean'], '.1f')} |")
    lines += ["",
              f"DSC: pooled 2·ΣI/Σ(|A|+|B|) over the traced frames, in percent; 95% percentile-bootstrap intervals over "
              f"videos ({result['n_boot']} resamples, seed {result['seed']}). Frames/s: segmentation end to end "
              f"(preprocessing, network without test-time augmentation, labels back at the input size; file I/O "
              f"excluded) on "
              f"{result['device']}, measured in this run, after one warm-up call. GFLOPs: fvcore (one multiply-add = one flop) "
              f"per frame of one network input patch. HF energy: share of the area curve's spectral energy above 10 Hz; "
              f"jitter: mean |second difference| / mean area (both over every frame, lower = smoother). EF MAE (EF points) vs "
              f"FileList EF: from the masks at the traced ED/ES frames, and averaged over beats detected on the predicted "
              f"area curve; \"k n/a\": k videos whose EF from the masks is implausible (outside 0–90 %, or an ED or "
              f"ES mask under 20 pixels: a mask that lost the LV), not averaged. "
              f"ED/ES err: mean |traced − nearest detected| frame."]
    structures = [r for r in result["models"] if "dsc_by_structure" in r]
    if structures:
        names = list(structures[0]["dsc_by_structure"])
        lines += ["", "## DSC per structure (overall, 95% CI)", "", "| Model | " + " | ".join(names) + " |",
                  "|---|" + "---|" * len(names)]
        lines += [f"| {r['name']} | " + " | ".join(_dsc_ci(r["dsc_by_structure"][n]["overall"]) for n in names) + " |"
                  for r in structures]
    for r in result["models"]:
        if r.get("cost_error"):
            lines.append(f"\nCost of {r['name']} not counted: {r['cost_error']}")
    return "\n".join(lines) + "\n"


def bubble_plot(rows: list[dict], path: Path) -> None:
    """x GFLOPs/frame, y pooled DSC overall (95% CI bars), bubble area proportional to parameters."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for i, r in enumerate(rows):
        x = r["gflops_per_frame"] if math.isfinite(r["gflops_per_frame"]) else 0.0
        d = r["dsc"]["overall"]
        y = 100 * d["pooled_dsc"]
        lo, hi = (100 * v for v in d["pooled_dsc_ci95"])
        size = 60 * (r["params_m"] if math.isfinite(r["params_m"]) else 1.0)
        colour = plt.cm.tab10(i % 10)
        ax.scatter([x], [y], s=size, alpha=0.45, color=colour, edgecolors="k")
        ax.errorbar([x], [y], yerr=[[y - lo], [hi - y]], fmt="none", ecolor=colour, capsize=3)
        label = f"{r['name']}\n{_f(r['params_m'])} M" if math.isfinite(r["params_m"]) else r["name"]
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(8, 6), fontsize=8)
    ax.set_xlabel("GFLOPs per frame (fvcore)")
    ax.set_ylabel("pooled DSC overall (%), 95% CI")
    ax.set_title("Accuracy vs cost (bubble area ~ parameters)", fontsize=10)
    ax.margins(0.25)
    save_figure(fig, path)
