#!/usr/bin/env python
"""Accuracy on every frame: stock nnU-Net ``2d`` against our 3D, 3D + temporal-masking pretraining and the super image.

Each setting is one phantom dataset (the phantom knows the true LV mask of every frame and which frames it
corrupted), converted, planned and preprocessed with the real commands:

- ``clean``: no artefacts;
- ``artefacts``: the strongest artefact level (about a quarter of the frames of every video corrupted, traced
  frames included);
- ``lowlabel``: a handful of traced TRAIN videos plus many untraced ones (kept for self-supervision).

Every model trains with the same wall-clock budget (``unilvseg_time_budget_s``), the models of one seed taking
turns, so load changes hit all of them; the pretraining of "3D + SSL" gets its own budget of the same size before
fine-tuning (equal fine-tuning budget). Iterations and labeled frames seen are read from each model's training
record. Every model then predicts the test split with ``nnUNetv2_predict`` and the README's flags, and
``unilvseg evaluate`` scores every frame against the truth. The obvious alternative to a video network is scored
beside it: stock ``2d`` (and our 3D) with a Gaussian along time on its saved probabilities (``nnUNetv2_predict
--save_probabilities``, then ``unilvseg time-filter --sigma S``; ``--time-filter`` sets S, default 1.5 frames).
A seed is one repetition of the trainings (nnU-Net's training is not seeded); the table gives mean ± standard deviation over seeds.

    python bench/bench_accuracy.py                     # 3 seeds, 3 settings, 150 s per training (about 2.5 h on 2 cores)
    python bench/bench_accuracy.py --settings artefacts --seeds 2 --videos 18 --frames 50 90   # quick: 35 min
    python bench/bench_accuracy.py --seeds 5 --budget 300 --videos 60
    python bench/bench_accuracy.py --settings clean --models 2d 3d --seeds 1 --budget 600 --videos 18 --frames 50 90 \
        --out bench_out/budget600 --no-docs            # two models at a longer budget; BENCHMARKS.md untouched
    python bench/bench_accuracy.py --settings lowlabel --models 3d_adamw 3d_ssl_adamw --seeds 1 --budget 600 \
        --videos 18 --frames 50 90 --out bench_out/budget600_lowlabel_adamw --no-docs   # fine-tuning with AdamW 3e-4
    python bench/bench_accuracy.py --small             # checks the script end to end in minutes
    python bench/bench_accuracy.py --report-only       # rewrite BENCHMARKS.md and the figure from results

Writes bench_out/accuracy.json, the table between the accuracy markers of BENCHMARKS.md, and
docs/accuracy_curves.png (area curves of every model over one corrupted test video against the truth, and their
spectra, like the paper's Fig. 6).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from unilvseg_nnunet.demo import GPU_MEMORY_GB  # noqa: E402  (nnU-Net's batch-size estimate sized for a CPU)
from unilvseg_nnunet.workspace import CommandError  # noqa: E402

BUDGET_ENV = "unilvseg_time_budget_s"
TEMPORAL, SUPERIMAGE = "3d_temporal_f8t1_unet_s", "si_f4t2"
SUPERIMAGE_T1 = "si_f4t1"
PLAN = {TEMPORAL: ["--frames", "8", "--period", "1", "--arch", "unet_s"],
        SUPERIMAGE: ["--super-image", "--frames", "4", "--period", "2"],
        SUPERIMAGE_T1: ["--super-image", "--frames", "4", "--period", "1"]}
PREDICT_FLAGS = ["--disable_tta", "-device", "cpu"]  # the README's flags for nnUNetv2_predict on CPU
FIGURE = common.REPO / "docs" / "accuracy_curves.png"
MARK = ("<!-- bench_accuracy:start -->", "<!-- bench_accuracy:end -->")


@dataclass(frozen=True)
class Model:
    name: str
    key: str  # what --models takes
    configuration: str
    trainer: str
    pretrainer: str | None = None


# The `_demo` variants: the time budget, no mirroring, no final validation (the test split is scored instead)
MODELS = [
    Model("nnU-Net 2d (stock)", "2d", "2d", "nnUNetTrainer_demo"),
    Model("Ours 3D", "3d", TEMPORAL, "SparseTemporalTrainer_demo"),
    Model("Ours 3D + SSL", "3d_ssl", TEMPORAL, "SparseTemporalTrainer_demo", pretrainer="TemporalMaskingPretrainer_demo"),
    Model("Ours SI", "si", SUPERIMAGE, "SuperImageTrainer_demo"),
    # the paper's fine-tuning optimiser (AdamW, lr 3e-4, as the pretraining) instead of nnU-Net's SGD (lr 1e-2):
    # in no setting by default; --models names them in any setting
    Model("Ours 3D (AdamW)", "3d_adamw", TEMPORAL, "SparseTemporalTrainer_AdamW_demo"),
    Model("Ours 3D + SSL (AdamW)", "3d_ssl_adamw", TEMPORAL, "SparseTemporalTrainer_AdamW_demo",
          pretrainer="TemporalMaskingPretrainer_demo"),
    # training clips stretched (stride up to 3 frames) to hold both traced frames: in no setting by default
    Model("Ours 3D, stretched clips", "3d_stretch3", TEMPORAL, "SparseTemporalTrainer_stretch3_demo"),
    # time kernel 1 at full resolution (against the temporal blur bench/area_blur.py measures): in no setting by default
    Model("Ours 3D, per-frame full resolution", "3d_framefullres", TEMPORAL, "SparseTemporalTrainer_frameFullRes_demo"),
    # time kernel 1 in the last decoder stage only (the encoder still reads neighbouring frames at full resolution)
    Model("Ours 3D, per-frame decoder output", "3d_framedecoder", TEMPORAL, "SparseTemporalTrainer_frameFullResDecoder_demo"),
    # the super image's 2x2 tiles from consecutive frames (period 1): a frame's nearest neighbours beside it
    Model("Ours SI, period 1", "si_t1", SUPERIMAGE_T1, "SuperImageTrainer_demo"),
]
DEFAULT_MODELS = ("nnU-Net 2d (stock)", "Ours 3D", "Ours 3D + SSL", "Ours SI")
ADAMW_MODELS = ("Ours 3D (AdamW)", "Ours 3D + SSL (AdamW)")
TIME_FILTERED = ("2d", "3d", "3d_framefullres")  # models also scored with the time filter (--time-filter)


def filtered_name(model: Model, sigma: float) -> str:
    return f"{model.name} + time filter σ={sigma:g}"


@dataclass(frozen=True)
class Setting:
    name: str
    dataset_id: int
    artefacts: str
    labeled: int | None = None  # traced TRAIN videos (None: all)
    models: tuple = DEFAULT_MODELS  # names of the models trained in this setting unless --models names others


SETTINGS = [Setting("clean", 961, "none", models=("nnU-Net 2d (stock)", "Ours 3D", "Ours SI")),
            Setting("artefacts", 962, "severe"),
            Setting("lowlabel", 963, "moderate", labeled=4, models=("Ours 3D", "Ours 3D + SSL"))]

# figure columns: (label, key in a model's result, format, scale)
COLUMNS = [
    ("dense DSC", "dense_dsc", ".2f", 100), ("DSC corrupted", "dsc_corrupted", ".2f", 100),
    ("DSC clean", "dsc_clean", ".2f", 100), ("worst-frame DSC", "worst_frame_dsc", ".2f", 100),
    ("HF >10 Hz (%)", "hf_share", ".1f", 100), ("HF / truth", "hf_ratio", ".2f", 1),
    ("ED/ES err (frames)", "ed_es_error", ".1f", 1), ("EF err beats", "ef_beats_mae", ".1f", 1),
    ("area swing", "area_swing", ".2f", 1), ("iterations", "iterations", ".0f", 1),
    ("labeled frames seen", "labeled_frames_seen", ".0f", 1),
]


KIND_PREFIX = "dsc_kind_"  # figures() keys of the pooled DSC on the frames corrupted by each artefact kind


def dataset_name(setting: Setting) -> str:
    return f"Dataset{setting.dataset_id}_Accuracy{setting.name.capitalize()}"


def prepare(setting: Setting, args, env: dict) -> Path:
    """Phantom -> raw dataset -> nnU-Net plans and preprocessing -> our configurations; cached per parameters."""
    work = args.workdir / setting.name
    key = json.loads(json.dumps({"setting": setting.__dict__, "videos": args.videos, "sources": common.source_hash()}))
    marker = work / "prepared.json"
    raw = Path(env["nnUNet_raw"]) / dataset_name(setting)
    if marker.is_file() and json.loads(marker.read_text()) == key:
        return raw
    for sub in ("echonet", f"nnUNet_raw/{dataset_name(setting)}", f"nnUNet_preprocessed/{dataset_name(setting)}"):
        shutil.rmtree(args.workdir / sub if sub.startswith("nnUNet") else work / sub, ignore_errors=True)
    n = args.videos
    test, val = max(2, n // 6), max(2, n // 6)
    synth = ["unilvseg", "synth", str(work / "echonet"), "--n", str(n), "--seed", "0", "--min-frames", str(args.frames[0]),
             "--max-frames", str(args.frames[1]), "--splits", str(n - val - test), str(val), str(test),
             "--artefacts", setting.artefacts]
    if setting.labeled is not None:
        synth += ["--labeled-train", str(setting.labeled)]
    log = work / "logs"
    log.mkdir(parents=True, exist_ok=True)
    print(f"[{setting.name}] phantom, conversion, planning", flush=True)
    common.run(synth, env, log / "synth.log")
    common.run(["unilvseg", "convert", "echonet", str(work / "echonet"), "-d", str(setting.dataset_id), "-n",
                dataset_name(setting).split("_", 1)[1], "-np", "2", "--no-progress",
                *(["--include-unlabeled"] if setting.labeled is not None else [])], env, log / "convert.log")
    common.run(["nnUNetv2_plan_and_preprocess", "-d", str(setting.dataset_id), "-c", "2d", "3d_fullres", "-np", "2",
                "-gpu_memory_target", str(GPU_MEMORY_GB)], env, log / "plan.log")
    for cfg, plan_args in PLAN.items():
        common.run(["unilvseg", "plan", "-d", str(setting.dataset_id), *plan_args, "--gpu-memory", str(GPU_MEMORY_GB)],
                   env, log / f"plan_{cfg}.log")
    marker.write_text(json.dumps(key))
    return raw


def run_dir(args, setting: Setting, seed: int) -> Path:
    """Cache folder of one seed's models and predictions: a model trained with another budget is never reused."""
    return args.workdir / setting.name / f"budget{args.budget:g}" / f"seed{seed}"


def train(model: Model, setting: Setting, seed: int, args, env: dict) -> tuple[Path, dict]:
    """Train one model (its pretraining first, if any) with the budget; return its folder and training record."""
    results = run_dir(args, setting, seed) / "results"
    env = dict(env, nnUNet_results=str(results), **{BUDGET_ENV: str(args.budget)})
    log = run_dir(args, setting, seed) / "logs"
    log.mkdir(parents=True, exist_ok=True)
    cmd = ["nnUNetv2_train", str(setting.dataset_id), model.configuration, "0", "-tr", model.trainer, "-device", "cpu"]
    folder = results / dataset_name(setting) / f"{model.trainer}__nnUNetPlans__{model.configuration}"
    if model.pretrainer:
        # fold 1 holds the untraced videos in the low-label setting (conversion's --include-unlabeled)
        fold = "1" if setting.labeled is not None else "0"
        pre = results / dataset_name(setting) / f"{model.pretrainer}__nnUNetPlans__{model.configuration}" / f"fold_{fold}"
        if not (pre / "checkpoint_final.pth").is_file():
            common.run(["nnUNetv2_train", str(setting.dataset_id), model.configuration, fold, "-tr", model.pretrainer,
                        "-device", "cpu"], env, log / f"pretrain_{model.pretrainer}.log")
        env = dict(env, nnUNet_results=str(results / "ssl"))
        folder = results / "ssl" / dataset_name(setting) / f"{model.trainer}__nnUNetPlans__{model.configuration}"
        cmd += ["-pretrained_weights", str(pre / "checkpoint_final.pth")]
    if not (folder / "fold_0" / "checkpoint_final.pth").is_file():
        print(f"[{setting.name} seed {seed}] train {model.name} ({args.budget:g} s)", flush=True)
        common.run(cmd, env, log / f"train_{model.trainer}_{model.pretrainer or 'scratch'}.log")
    record = folder / "fold_0" / "training_record.json"
    return folder, json.loads(record.read_text()) if record.is_file() else {}


def predict_and_score(model: Model, folder: Path, setting: Setting, seed: int, args, env: dict) -> dict:
    """nnUNetv2_predict of the test split with the README's flags, then ``unilvseg evaluate``; returns its summary."""
    sub = run_dir(args, setting, seed) / "eval" / common_slug(model.name)
    pred, out = sub / "pred", sub / "eval"
    if not (out / "summary.json").is_file():
        env = dict(env, nnUNet_results=str(folder.parents[1]))
        common.run(["nnUNetv2_predict", "-i", str(Path(env["nnUNet_raw"]) / dataset_name(setting) / "imagesTs"),
                    "-o", str(pred), "-d", str(setting.dataset_id), "-c", model.configuration, "-tr", model.trainer,
                    "-f", "0", *PREDICT_FLAGS], env, sub / "predict.log")
        common.run(["unilvseg", "evaluate", "-p", str(pred), "-d", str(setting.dataset_id), "-o", str(out),
                    "--n-boot", "1000", "--no-video-plots"], env, sub / "evaluate.log")
    return json.loads((out / "summary.json").read_text()) | {"prediction_dir": str(pred)}


def time_filter_and_score(model: Model, folder: Path, setting: Setting, seed: int, sigma: float, args,
                          env: dict) -> dict:
    """nnUNetv2_predict with --save_probabilities (once per model), ``unilvseg time-filter --sigma``, then
    ``unilvseg evaluate``; returns its summary."""
    base = run_dir(args, setting, seed) / "eval" / common_slug(model.name)
    prob, sub = base / "probabilities", base.with_name(common_slug(filtered_name(model, sigma)))
    pred, out = sub / "pred", sub / "eval"
    if not (out / "summary.json").is_file():
        if not (prob / "done").is_file():
            run_env = dict(env, nnUNet_results=str(folder.parents[1]))
            common.run(["nnUNetv2_predict", "-i", str(Path(env["nnUNet_raw"]) / dataset_name(setting) / "imagesTs"),
                        "-o", str(prob), "-d", str(setting.dataset_id), "-c", model.configuration, "-tr", model.trainer,
                        "-f", "0", *PREDICT_FLAGS, "--save_probabilities"], run_env, base / "predict_probabilities.log")
            (prob / "done").write_text("")
        common.run(["unilvseg", "time-filter", "-i", str(prob), "-o", str(pred), "--sigma", f"{sigma:g}"], env,
                   sub / "time_filter.log")
        common.run(["unilvseg", "evaluate", "-p", str(pred), "-d", str(setting.dataset_id), "-o", str(out),
                    "--n-boot", "1000", "--no-video-plots"], env, sub / "evaluate.log")
    return json.loads((out / "summary.json").read_text()) | {"prediction_dir": str(pred)}


def common_slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


def figures(summary: dict, record: dict) -> dict:
    """The figures of one trained model from its evaluation summary and training record."""
    d = summary.get("dense") or {}

    def get(*keys):
        v = d
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        return float(v) if isinstance(v, (int, float)) else float("nan")

    return {
        "dense_dsc": get("dsc", "all", "pooled_dsc"), "dsc_corrupted": get("dsc", "corrupted", "pooled_dsc"),
        "dsc_clean": get("dsc", "clean", "pooled_dsc"), "worst_frame_dsc": get("worst_frame_dsc", "mean"),
        "hf_share": get("temporal", "hf_share_pred"), "hf_share_truth": get("temporal", "hf_share_truth"),
        "hf_ratio": get("temporal", "hf_ratio"), "jitter_ratio": get("temporal", "jitter_ratio"),
        "ed_es_error": float(np.nanmean([get("ed_es", "ed_abs_frame_error", "mean"), get("ed_es", "es_abs_frame_error", "mean")])),
        "ef_beats_mae": get("ef_beats", "mae"), "area_swing": get("area_swing", "mean"),
        "iterations": float(record.get("iterations", "nan")),
        "labeled_frames_seen": float(record.get("labeled_frames_seen", "nan")),
        **{f"{KIND_PREFIX}{kind}": float(v["pooled_dsc"]) for kind, v in (d.get("dsc_by_kind") or {}).items()},
    }


def run(args, path: Path) -> dict:
    """Train, predict and score every setting of ``args``; the results file is rewritten after every model
    (settings run earlier with the same budget are kept), so a stopped run keeps what it measured."""
    env = common.nnunet_env(args.workdir)
    filtered = [{**m.__dict__, "name": filtered_name(m, s), "time_filter_sigma": s}
                for m in MODELS if m.key in TIME_FILTERED for s in args.time_filter]
    result = {"budget_s": args.budget, "videos": args.videos, "frames": list(args.frames),
              "models": [m.__dict__ for m in MODELS] + filtered, "settings": {}, "nnUNet_raw": env["nnUNet_raw"]}
    if path.is_file():
        old = json.loads(path.read_text())
        if (old.get("budget_s"), old.get("videos")) == (args.budget, args.videos):
            result["settings"] = {k: v for k, v in old["settings"].items() if k not in args.settings}
    for setting in [s for s in SETTINGS if s.name in args.settings]:
        prepare(setting, args, env)
        runs = []
        result["settings"][setting.name] = {"setting": setting.__dict__, "seeds": args.seeds, "runs": runs}
        for seed in range(args.seeds):
            for model in [m for m in MODELS if (m.key in args.models if args.models else m.name in setting.models)]:
                t0 = time.perf_counter()
                sigmas = args.time_filter if model.key in TIME_FILTERED else []
                try:
                    folder, record = train(model, setting, seed, args, env)
                    scored = [(model.name, predict_and_score(model, folder, setting, seed, args, env))]
                    scored += [(filtered_name(model, s), time_filter_and_score(model, folder, setting, seed, s, args, env))
                               for s in sigmas]
                except CommandError as e:  # one failed model is reported, the others go on
                    print(f"[{setting.name} seed {seed}] {model.name} FAILED: {str(e)[-2000:]}", flush=True)
                    runs.append({"model": model.name, "seed": seed, "error": str(e)[-2000:]})
                    continue
                for name, summary in scored:
                    runs.append({"model": name, "seed": seed, "seconds": time.perf_counter() - t0,
                                 "load": os.getloadavg()[0], "prediction_dir": summary["prediction_dir"],
                                 **figures(summary, record)})
                    print(f"[{setting.name} seed {seed}] {name}: dense DSC {100 * runs[-1]['dense_dsc']:.2f}, "
                          f"HF {100 * runs[-1]['hf_share']:.1f} %, load {runs[-1]['load']:.1f}", flush=True)
                common.write_result(path.stem, result, path.parent)
    return result


def aggregate(runs: list[dict], key: str, model: str) -> tuple[float, float, int]:
    v = np.array([r[key] for r in runs if r["model"] == model and key in r], float)
    v = v[np.isfinite(v)]
    return (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)) if len(v) else (float("nan"), 0.0, 0)


def mean_sd_cell(runs: list[dict], key: str, model: str, fmt: str, scale: float) -> str:
    """"mean ± SD" of ``key`` over the seeds of ``model``, as a table cell."""
    from unilvseg_nnunet.evaluation.reports import fmt_num

    mean, sd, _ = aggregate(runs, key, model)
    return f"{fmt_num(mean, fmt, scale)} ± {fmt_num(sd, fmt, scale)}"


def table(result: dict) -> str:
    """Markdown: one table per setting (mean ± sd over seeds), then the goals and where each stands."""
    from unilvseg_nnunet.evaluation.reports import fmt_num

    lines = []
    for name, s in result["settings"].items():
        lines += [f"**{name}** ({s['setting']['artefacts']} artefacts"
                  + (f", {s['setting']['labeled']} traced TRAIN videos" if s["setting"]["labeled"] is not None else "")
                  + f"; {s['seeds']} seeds)", "",
                  "| Model | " + " | ".join(c[0] for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
        for m in result["models"]:
            if not any(r["model"] == m["name"] for r in s["runs"]):
                continue
            cells = [mean_sd_cell(s["runs"], key, m["name"], fmt, scale) for _, key, fmt, scale in COLUMNS]
            lines.append(f"| {m['name']} | " + " | ".join(cells) + " |")
        lines += kind_table(result, s)
        failed = [f"{r['model']} (seed {r['seed']})" for r in s["runs"] if "error" in r]
        if failed:
            lines += ["", "Failed runs (see accuracy.json): " + ", ".join(failed)]
        truth_hf = np.nanmean([r.get("hf_share_truth", np.nan) for r in s["runs"]])
        lines += ["", f"Truth's own area curves: {fmt_num(truth_hf, '.1f', 100)} % of energy above 10 Hz.", ""]
    lines += goals(result)
    return "\n".join(lines) + "\n"


def kind_table(result: dict, s: dict) -> list[str]:
    """Markdown lines: pooled DSC (mean ± SD over seeds) on the frames each artefact kind corrupted; none without
    corrupted frames. A frame hit by two kinds counts under both."""
    kinds = sorted({k[len(KIND_PREFIX):] for r in s["runs"] for k in r if k.startswith(KIND_PREFIX)})
    if not kinds:
        return []
    lines = ["", "DSC on the frames corrupted by each artefact kind:", "",
             "| Model | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for m in result["models"]:
        if any(r["model"] == m["name"] for r in s["runs"]):
            cells = [mean_sd_cell(s["runs"], KIND_PREFIX + k, m["name"], ".2f", 100) for k in kinds]
            lines.append(f"| {m['name']} | " + " | ".join(cells) + " |")
    return lines


def goals(result: dict) -> list[str]:
    """Each goal of the method with the measured figures and whether it is met."""
    from unilvseg_nnunet.evaluation.reports import fmt_num

    def m(setting, key, model):
        return aggregate(result["settings"][setting]["runs"], key, model) if setting in result["settings"] else (float("nan"), 0, 0)

    two_d, ours, ssl, si = DEFAULT_MODELS
    rows = []

    def goal(text, value_text, ok):
        rows.append(f"| {text} | {value_text} | {'met' if ok else 'NOT met'} |")

    if "artefacts" in result["settings"]:
        a, b = m("artefacts", "dense_dsc", ours)[0], m("artefacts", "dense_dsc", two_d)[0]
        goal("artefacts: 3D dense DSC ≥ 2d", f"{fmt_num(a, '.2f', 100)} vs {fmt_num(b, '.2f', 100)}", a >= b)
        for key, label in (("dsc_corrupted", "DSC on corrupted frames"), ("worst_frame_dsc", "mean worst-frame DSC")):
            a, b = m("artefacts", key, ours)[0], m("artefacts", key, two_d)[0]
            goal(f"artefacts: 3D {label} ≥ 2d + 5 points", f"{fmt_num(a, '.2f', 100)} vs {fmt_num(b, '.2f', 100)}",
                 a >= b + 0.05)
    for setting in ("clean", "artefacts"):
        if setting not in result["settings"]:
            continue
        hf3, hf2, hfsi = (m(setting, "hf_share", x)[0] for x in (ours, two_d, si))
        ratio = m(setting, "hf_ratio", ours)[0]
        goal(f"{setting}: 3D HF energy ≤ 2d's", f"{fmt_num(hf3, '.1f', 100)} % vs {fmt_num(hf2, '.1f', 100)} %", hf3 <= hf2)
        goal(f"{setting}: 3D HF energy ≤ 1.5x truth's", f"{fmt_num(ratio, '.2f')}x", ratio <= 1.5)
        e3, e2 = m(setting, "ed_es_error", ours)[0], m(setting, "ed_es_error", two_d)[0]
        goal(f"{setting}: 3D ED/ES error ≤ 2d's", f"{fmt_num(e3, '.1f')} vs {fmt_num(e2, '.1f')} frames", e3 <= e2)
        goal(f"{setting}: SI HF energy ≤ 2d's", f"{fmt_num(hfsi, '.1f', 100)} % vs {fmt_num(hf2, '.1f', 100)} %", hfsi <= hf2)
    for setting in ("clean", "artefacts"):
        if setting in result["settings"]:
            (a, sa, _), (b, sb, _) = m(setting, "dense_dsc", ssl), m(setting, "dense_dsc", ours)
            if not np.isfinite(a):
                continue
            goal(f"{setting}: 3D + SSL ≥ 3D within the seed spread", f"{fmt_num(a, '.2f', 100)} ± {fmt_num(sa, '.2f', 100)} vs "
                 f"{fmt_num(b, '.2f', 100)} ± {fmt_num(sb, '.2f', 100)}", a >= b - max(sa, sb))
    if "lowlabel" in result["settings"]:
        ours_adamw, ssl_adamw = ADAMW_MODELS
        for pretrained, scratch, recipe in ((ssl, ours, ""), (ssl_adamw, ours_adamw, ", AdamW fine-tuning")):
            (a, _, _), (b, _, _) = m("lowlabel", "dense_dsc", pretrained), m("lowlabel", "dense_dsc", scratch)
            if np.isfinite(a) or np.isfinite(b):
                goal(f"lowlabel: 3D + SSL > 3D{recipe}", f"{fmt_num(a, '.2f', 100)} vs {fmt_num(b, '.2f', 100)}", a > b)
    return ["| Goal | Measured | Status |", "|---|---|---|", *rows]


def figure(result: dict, path: Path) -> None:
    """Area curves of every model over one corrupted test video of the artefact setting (seed 0) against the
    truth, and their amplitude spectra."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from unilvseg_nnunet.data.dataset import dense_truth_path, read_case_metadata, subset_cases
    from unilvseg_nnunet.data.echonet import DEFAULT_FPS
    from unilvseg_nnunet.evaluation.reports import save_figure
    from unilvseg_nnunet.files import read_volume

    name = "artefacts" if "artefacts" in result["settings"] else next(iter(result["settings"]))
    s = result["settings"][name]
    raw = Path(result["nnUNet_raw"]) / dataset_name(Setting(**{**s["setting"], "models": tuple(s["setting"]["models"])}))
    _, cases, ending = subset_cases(raw, "imagesTs")
    metas = {c: read_case_metadata(raw, c) for c in cases}
    case = max(cases, key=lambda c: len(metas[c].get("corrupted_frames") or []))
    truth = read_volume(dense_truth_path(raw, case, ending)) == 1
    fps = float(metas[case].get("fps") or DEFAULT_FPS)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    t = np.arange(len(truth)) / fps
    curves = {"truth": truth.reshape(len(truth), -1).sum(1).astype(float)}
    for r in s["runs"]:
        if r["seed"] == 0 and "prediction_dir" in r:
            pred = read_volume(Path(r["prediction_dir"]) / f"{case}{ending}") == 1
            curves[r["model"]] = pred.reshape(len(pred), -1).sum(1).astype(float)
    for label, area in curves.items():
        style = {"color": "k", "lw": 2.2} if label == "truth" else {"lw": 1.1}
        ax.plot(t, area, label=label, **style)
        spec = np.abs(np.fft.rfft((area - area.mean()) * np.hanning(len(area))))
        bx.semilogy(np.fft.rfftfreq(len(area), 1 / fps), spec + 1e-3, label=label, **style)
    for f in sorted(c["frame"] for c in metas[case].get("corrupted_frames") or []):
        ax.axvspan(f / fps, (f + 1) / fps, color="tab:red", alpha=0.12, lw=0)
    ax.set(xlabel="time (s)", ylabel="LV area (pixels)", title=f"{case}: corrupted frames shaded")
    bx.axvline(10, color="grey", ls=":")
    bx.set(xlabel="frequency (Hz)", ylabel="|FFT| of the area curve", title="spectra (10 Hz marked)")
    ax.legend(fontsize=7, ncol=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)


def replace_block(path: Path, text: str) -> None:
    from unilvseg_nnunet.files import write_text

    doc = path.read_text()
    start, end = doc.index(MARK[0]) + len(MARK[0]), doc.index(MARK[1])
    write_text(path, doc[:start] + "\n" + text + doc[end:])


def report(result: dict, out: Path, docs: bool = True) -> None:
    """Print the table; write the figure and the table into BENCHMARKS.md (``docs``), else the figure
    into ``out``."""
    mach = result["machine"]
    header = (f"`{result['command']}` on {mach['cpu']} ({mach['cores']} cores), {mach['date_utc']}; load average "
              f"{mach['load_average_start']:.2f} at the start, {mach['load_average_end']:.2f} at the end. Budget: "
              f"{result['budget_s']:g} s of wall-clock training per model and seed (the pretraining of 3D + SSL "
              f"another {result['budget_s']:g} s), models taking turns; {result['videos']} phantom videos of "
              f"{result['frames'][0]}-{result['frames'][1]} frames per setting. Mean ± SD over the seeds. "
              f"DSC in percent on every frame of the test videos against the phantom's truth.\n\n")
    fig = FIGURE if docs else out / FIGURE.name
    text = header + table(result) + f"\n![area curves and spectra]({fig.relative_to(common.REPO) if docs else fig})\n"
    figure(result, fig)
    if docs:
        replace_block(common.REPO / "BENCHMARKS.md", text)
    print(text)


def main() -> int:
    p = common.parser(__doc__)
    p.add_argument("--seeds", type=int, default=3, help="repetitions of every training (default 3)")
    p.add_argument("--budget", type=float, default=150,
                   help="wall-clock seconds of training per model (default 150; at 30 s models reached 13-19 %% dense DSC on 2 cores)")
    p.add_argument("--videos", type=int, default=24, help="phantom videos per setting (default 24)")
    p.add_argument("--frames", type=int, nargs=2, default=(60, 110), help="frames per video, min max (default 60 110)")
    p.add_argument("--settings", nargs="+", default=[s.name for s in SETTINGS], choices=[s.name for s in SETTINGS])
    p.add_argument("--models", nargs="+", choices=[m.key for m in MODELS],
                   help="train and score these models in every setting run (default: each setting's own list)")
    p.add_argument("--time-filter", type=float, nargs="*", default=[1.5], metavar="SIGMA",
                   help="also score stock 2d and our 3D with a Gaussian of SIGMA frames along time on their "
                        "probabilities (default 1.5; none with no value)")
    p.add_argument("--no-docs", action="store_true",
                   help="print the table and write the figure under --out; leave BENCHMARKS.md as it is")
    p.add_argument("--report-only", action="store_true", help="rewrite the report from bench_out/accuracy.json")
    args = p.parse_args()
    if args.small:
        args.seeds, args.budget, args.videos, args.frames = 2, 8, 12, (40, 60)
        args.workdir = args.workdir.with_name(args.workdir.name + "_small")
    path = args.out / ("accuracy_small.json" if args.small else "accuracy.json")
    if not args.report_only:
        run(args, path)
    result = json.loads(path.read_text())
    if not args.small:
        report(result, args.out, docs=not args.no_docs)
    else:
        print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
