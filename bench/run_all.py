#!/usr/bin/env python
"""Run every benchmark in sequence, then rewrite BENCHMARKS.md from their results.

Steps (each its own process, output in bench_out/<step>.log, results in bench_out/<step>.json):
training, inference, cost, memory, conversion (bench_conversion.py, which prints its figures). BENCHMARKS.md gets the
machine, the date, every figure with its ratio and the command that reproduces it; GPU figures
from bench/gpu_check.sh are added when their JSON files are in bench_out/gpu/.

    python bench/run_all.py                       # the real run (about 10 minutes on a free 2-core CPU)
    python bench/run_all.py --small               # tiny sizes; report in bench_out/BENCHMARKS_small.md
    python bench/run_all.py --only training inference --args training "--iterations 8"
    python bench/run_all.py --report-only         # rewrite BENCHMARKS.md from the existing results
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ACCURACY_MARKS = ("<!-- bench_accuracy:start -->", "<!-- bench_accuracy:end -->")
STEPS = ["training", "inference", "cost", "memory", "conversion"]  # most important first
SCRIPTS = {s: f"bench/bench_{s}.py" for s in STEPS}
DEFAULT_ARGS = {  # sizes of the real run (--small: SMALL_ARGS); override with --args STEP "..."
    "conversion": "--n 20 --frames 180 --repeats 1",
    "cost": "", "training": "--iterations 4", "inference": "", "memory": "--iterations 1",
}
SMALL_ARGS = {"conversion": "--n 4 --frames 40 --repeats 1", "cost": "--small", "training": "--small",
              "inference": "--small", "memory": "--small"}


def step_command(step: str, args) -> list[str]:
    extra = dict(args.args or []).get(step, (SMALL_ARGS if args.small else DEFAULT_ARGS)[step])
    cmd = [SCRIPTS[step], *shlex.split(extra)]
    if step == "conversion":
        cmd += ["--work", str(args.workdir / "conversion")]
    else:
        cmd += ["--workdir", str(args.workdir), "--out", str(args.out)]
    return cmd


def run_step(step: str, cmd: list[str], out: Path) -> dict:
    """Run one bench script; its output goes to out/<step>.log; returns rc, seconds and its last line (the figure)."""
    print(f"== {step}: python {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    with open(out / f"{step}.log", "w") as log:
        rc = subprocess.run([sys.executable, str(common.REPO / cmd[0]), *cmd[1:]], cwd=common.REPO, stdout=log,
                            stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - t0
    lines = [line for line in (out / f"{step}.log").read_text(errors="replace").splitlines() if line.strip()]
    figure = lines[-1] if lines else ""
    print(f"   rc {rc}, {seconds:.0f} s: {figure}", flush=True)
    return {"command": "python " + " ".join(cmd), "rc": rc, "seconds": seconds, "figure": figure}


# --- report ---------------------------------------------------------------------------------------

def _load(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _f(v, digits=2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _goal(ok) -> str:
    return "–" if ok is None else ("yes" if ok else "**no**")


def _machine_line(m: dict) -> str:
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"
    return (f"{m.get('cpu')} ({m.get('cores')} cores available), {m.get('memory_gib')} GiB{gpu}; Python {m.get('python')}, "
            f"torch {m.get('torch')} ({m.get('torch_threads')} threads), nnunetv2 {m.get('nnunetv2')}; "
            f"1-minute load average {m.get('load_average_start', 0):.1f} when the step started, {m.get('load_average_end', 0):.1f} "
            f"when it ended; {m.get('date_utc')}")


def _rel(command: str) -> str:
    """A recorded command with this checkout's absolute paths made relative (as run from the repository root)."""
    return command.replace(str(common.REPO) + "/", "")


def conversion_section(log: Path, run: dict | None) -> tuple[list[str], list[str]]:
    """(summary rows, section lines) from bench_conversion.py's printed output."""
    if not log.is_file():
        return [], ["Not run."]
    text = log.read_text(errors="replace")
    start = text.rfind("\n", 0, max(0, text.find(" videos of ")))
    block = text[start + 1:].strip() if " videos of " in text else text[-3000:].strip()
    m = re.search(r"conversion: ([\d.]+) videos/s with 2 processes \(([\d.]+) with 1\), ([\d.]+) of the floor", text)
    rows = []
    if m:
        ours, ours1, ratio = map(float, m.groups())
        rows.append(f"| Conversion, 2 processes | {ours:.1f} videos/s ({ours1:.1f} with 1) | bare floor (decode + write the same arrays) "
                    f"| {ratio:.2f} | ≥ 0.8 | {_goal(ratio >= 0.8)} |")
    cmd = _rel(run["command"]) if run else "python bench/bench_conversion.py"
    return rows, [f"`{cmd}`", "", "```", block, "```"]


def training_rows(t: dict, label: str) -> tuple[list[str], list[str]]:
    s, k = t["sparse"], t["stock"]
    overhead = t["overhead_sparse"]
    t.setdefault("overhead_loss_and_data", ((s["loss_s_per_it"] - k["loss_s_per_it"]) + (s["data_s_per_it"] - k["data_s_per_it"]))
                 / (k["data_s_per_it"] + k["compute_s_per_it"]))
    data_ok = all(x["data_s_per_it"] < x["compute_s_per_it"] for x in (s, k))
    summary = [f"| Training it/s{label}, {s['configuration']} batch {s['batch_size']} | {s['its_per_s']:.3f} it/s | stock nnUNetTrainer "
               f"{k['its_per_s']:.3f} it/s | {t['ratio_sparse_over_stock']:.2f} (overhead {100 * overhead:+.0f}%) | overhead < 10% | "
               f"{_goal(overhead < 0.10)} |",
               f"| Sparse loss + clip sampler cost{label} (extra loss and data time per iteration / stock iteration time) | "
               f"{1000 * (s['loss_s_per_it'] + s['data_s_per_it']):.0f} ms "
               f"| stock {1000 * (k['loss_s_per_it'] + k['data_s_per_it']):.0f} ms "
               f"| {100 * t['overhead_loss_and_data']:+.1f}% | < 10% | {_goal(t['overhead_loss_and_data'] < 0.10)} |",
               f"| Training data share{label} (data / (data + compute)) | {100 * s['data_fraction']:.0f}% "
               f"| stock {100 * k['data_fraction']:.0f}% | – | "
               f"data time < compute time | {_goal(data_ok)} |"]
    table = ["| Trainer | Configuration | Batch | Patch | it/s | data s/it | compute s/it | loss ms/it | data share |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for x in (k, s, t.get("superimage")):
        if x:
            table.append(f"| {x['trainer']} | {x['configuration']} | {x['batch_size']} | {'x'.join(map(str, x['patch_size']))} | "
                         f"{x['its_per_s']:.3f} | {x['data_s_per_it']:.3f} | {x['compute_s_per_it']:.3f} "
                         f"| {1000 * x['loss_s_per_it']:.1f} | "
                         f"{100 * x['data_fraction']:.0f}% |")
    table += ["", f"Ratios sparse/stock: it/s {t['ratio_sparse_over_stock']:.2f}; compute {t['ratio_compute']:.2f}; data loading "
                  f"{t['ratio_data']:.2f} (stock time / sparse time, >1 means ours is faster). "
                  f"{t['sparse']['iterations']} timed iterations "
                  f"each, trainers taking turns; data loading in "
                  + ("the main process, so the data time is the whole cost of loading and augmenting a batch (nnU-Net "
                     "normally hides it in background workers, which keep up while it is below the compute time)."
                     if not t["n_proc_da"] else f"{t['n_proc_da']} background workers (time spent waiting for them).")]
    return summary, table


def inference_rows(r: dict, label: str) -> tuple[list[str], list[str]]:
    """Summary rows (the default 3D model against stock 2d per path and workload) and the table of every run."""
    runs, default = r["runs"], r.get("default_3d")
    ratios = r.get("ratios_to_stock_2d", {})
    path_name = {"predict": "nnUNetv2_predict", "video": "predict-video"}
    table = ["| Path | Workload | Model | frames/s end to end | vs stock 2d | frames/s steady | start-up s | "
             "peak RSS MB | process tree MB |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for m in runs:
        name = f"{m['trainer']} {m['configuration']}"
        if "wall_s" not in m:
            table.append(f"| {path_name[m['path']]} | {m['workload']} | {name} | failed: {m.get('error', '')[:200]} | | | | | |")
            continue
        ratio = ratios.get(m["configuration"], {}).get(m["path"], {}).get(m["workload"], {}).get("end_to_end")
        table.append(f"| {path_name[m['path']]} | {m['workload']} | {name} | {m['fps_end_to_end']:.1f} | "
                     f"{_f(ratio) + 'x' if ratio else '1 (reference)' if m['configuration'] == '2d' else '–'} | "
                     f"{_f(m.get('fps_steady'), 1)} | {_f(m.get('startup_s'), 1)} | {m['max_rss_mb']:.0f} | "
                     f"{m['tree_memory_peak_mb']:.0f} |")
    summary = []
    for conf, by_path in ratios.items():
        for path, by_w in by_path.items():
            for w, v in by_w.items():
                ours = next(m for m in runs if (m["configuration"], m["path"], m["workload"]) == (conf, path, w))
                stock = next(m for m in runs if (m["configuration"], m["path"], m["workload"]) == ("2d", path, w))
                summary.append(f"| Inference frames/s{label}, {path_name[path]}, {w}, {conf} | {ours['fps_end_to_end']:.1f} | "
                               f"stock 2d {stock['fps_end_to_end']:.1f} | {v['end_to_end']:.2f}x | "
                               + (f"≥ 2x | {_goal(v['end_to_end'] >= 2)} |" if conf == default else "– | – |"))
    if not r.get("complete", True):
        table += ["", "**Partial**: the run stopped (time limit) before every run was made."]
    table += ["", f"Best of {r.get('rounds', 1)} round(s); on every workload and path the models take turns. Commands: "
                  f"`nnUNetv2_predict -i IMAGES -o OUT -d 950 -c CONFIG -tr TRAINER -f 0 -device DEVICE --disable_tta "
                  f"-npp {r.get('procs', 1)} -nps {r.get('procs', 1)}` and `unilvseg predict-video AVIS -m MODEL_FOLDER -o OUT "
                  "-f 0 -device DEVICE` (which also writes an overlay video, an area-curve plot and CSV, and the JSON "
                  "read-out per video). End to end = frames / wall time of the command. Steady = the rate from the first "
                  "video finished to the last (runs of several videos). Start-up = wall time − frames / steady rate of the "
                  "same model and path (interpreter, imports, model loading, first-call costs, final writes). Whole-video "
                  "configurations compute every frame about once (one pass up to 256 frames, overlapping windows beyond), "
                  "stock 2d one 112x112 tile per frame, the super image each frame in all F clips that hold it (F grid "
                  "positions) and twice over (nnU-Net's step 0.5 along time). Peak RSS = "
                  "largest process (`ru_maxrss`); process tree = peak sum of proportional set sizes over the command's "
                  "processes (sampled every 0.25 s)."]
    return summary, table


def memory_rows(r: dict) -> tuple[list[str], list[str]]:
    table = ["| What | peak RSS MB (largest process) | process tree MB |", "|---|---:|---:|"]
    for k, c in r.get("conversion", {}).items():
        table.append(f"| conversion, -{k[:2]} {k[2:]} | {c['max_rss_mb']:.0f} | {c['tree_memory_peak_mb']:.0f} |")
    for trainer, t in r.get("training", {}).items():
        if "error" in t:
            table.append(f"| training {trainer} on {t['configuration']} | failed | |")
        else:
            table.append(f"| training {trainer} on {t['configuration']} ({t['iterations']} iterations) | "
                         f"{t['max_rss_mb']:.0f} | {t['tree_memory_peak_mb']:.0f} |")
    summary = []
    if r.get("ratio_training_sparse_over_stock"):
        s, k = r["training"]["SparseTemporalTrainer"], r["training"]["nnUNetTrainer"]
        summary.append(f"| Training peak RSS, {s['configuration']} | {s['max_rss_mb']:.0f} MB | stock {k['max_rss_mb']:.0f} MB | "
                       f"{r['ratio_training_sparse_over_stock']:.2f}x | – | – |")
    pred = r.get("prediction", {}).get("models", [])
    if pred:
        path_name = {"predict": "nnUNetv2_predict", "video": "predict-video"}
        lengths = [x["frames"] for x in pred[0]["runs"]]
        table += ["", "Prediction, one video of each length (peak RSS MB of the largest process; growth per extra frame "
                  "in units of one frame's float32 array, 112x112x4 bytes):", "",
                  "| Path | Model | " + " | ".join(f"{n} frames" for n in lengths) + " | growth / float32 frame |",
                  "|---|---|" + "---:|" * (len(lengths) + 1)]
        for m in pred:
            growth = " / ".join(f"{g:.2f}" for g in m["growth_in_float32_frames"])
            table.append(f"| {path_name[m['path']]} | {m['configuration']} | "
                         + " | ".join(f"{x['max_rss_mb']:.0f}" for x in m["runs"]) + f" | {growth} |")
            worst = max(m["growth_in_float32_frames"])
            summary.append(f"| Prediction memory growth per frame (CPU), {path_name[m['path']]}, {m['configuration']}, "
                           f"{lengths[0]}-{lengths[-1]} frames | {worst:.2f}x a float32 frame | – | – | ≤ 1.5x | "
                           + (_goal(worst <= 1.5) if m["configuration"] != "2d" else "–") + " |")
    return summary, table


def cost_rows(r: dict) -> tuple[list[str], list[str]]:
    from unilvseg_nnunet.evaluation.cost import encoder_table

    table = ["| Configuration | Trainer | Patch | Params (M) | paper | GFLOPs / patch | GFLOPs / frame | paper | 2d / this |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    summary = []
    for c in r["configurations"]:
        p = c.get("paper") or {}
        ratio = r["gflops_ratio_2d_over"].get(c["configuration"])
        table.append(f"| {c['configuration']} | {c['trainer']} | {'x'.join(map(str, c['patch_size']))} | {c['params_m']:.2f} | "
                     f"{_f(p.get('params_m'))} | {c['gflops']:.2f} | {c['gflops_per_frame']:.2f} | {_f(p.get('gflops_per_frame'))} | "
                     f"{_f(ratio) if ratio else '1'} |")
        if ratio and c["configuration"].startswith("3d_temporal"):
            summary.append(f"| GFLOPs per frame, {c['configuration']} | {c['gflops_per_frame']:.2f} | stock 2d "
                           f"{r['configurations'][0]['gflops_per_frame']:.2f} | 2d/this {ratio:.2f} | – | – |")
    for name, err in r.get("errors", {}).items():
        table.append(f"| {name} | failed: {err[:200]} | | | | | | | |")
    table += ["", encoder_table(r["encoders"], 16, 5, 112, 1, 2)]
    return summary, table


def write_report(out: Path, runs: dict, small: bool, path: Path) -> None:
    sfx = "_small" if small else ""
    res = {s: _load(out / f"{s}{sfx}.json") for s in ("training", "inference", "memory", "cost")}
    gpu = {s: _load(out / "gpu" / f"{s}.json") for s in ("training", "inference", "gpu_memory")}
    gpu["memory"] = gpu.pop("gpu_memory")
    machine = common.machine()
    summary, sections = [], []

    conv_rows, conv = conversion_section(out / "conversion.log", runs.get("conversion"))
    summary += conv_rows
    sections += ["## Conversion", "", "Our converter against the bare floor of the same work (decode each video, write the same "
                 "arrays in the same format, nothing else), 1 and 2 processes, and what the output format costs "
                 "(bench/bench_conversion.py):", "", *conv, ""]

    def cmd(step, default):
        return _rel(runs.get(step, {}).get("command") or (res[step] or {}).get("command") or default)

    steps = (("training", "Training (CPU)", lambda r: training_rows(r, " (CPU)"), "", True),
             ("inference", "Inference (CPU)", lambda r: inference_rows(r, " (CPU)"), "", True),
             ("memory", "Memory", memory_rows, " (prediction memory: see Inference above)", False),
             ("cost", "Cost", cost_rows, " (fvcore, one multiply-add = one flop; per frame = one patch / frames in the "
              "patch; phantom plans at 112x112 like EchoNet-Dynamic; paper: Tables I and IV)", False))
    for step, title, fn, note, with_machine in steps:
        sections += [f"## {title}", "", f"`{cmd(step, f'python bench/bench_{step}.py')}`{note}", ""]
        if res[step]:
            s, t = fn(res[step])
            summary += s
            sections += [*([f"Machine: {_machine_line(res[step]['machine'])}.", ""] if with_machine else []), *t, ""]
        else:
            sections += [f"Not run or failed; see bench_out/{step}.log.", ""]

    sections += ["## GPU", ""]
    if gpu["training"] or gpu["inference"]:
        gm = (gpu["training"] or gpu["inference"])["machine"]
        sections += [f"From `bash bench/gpu_check.sh` on {gm.get('gpu')} ({_machine_line(gm)}).", ""]
        if gpu["memory"]:
            sections += [f"Peak GPU memory (nvidia-smi, all processes): training {gpu['memory'].get('training_peak_mib')} MiB, "
                         f"inference {gpu['memory'].get('inference_peak_mib')} MiB.", ""]
        if gpu["training"]:
            s, t = training_rows(gpu["training"], f" ({gm.get('gpu')})")
            summary += s
            sections += ["### Training", "", *t, ""]
        if gpu["inference"]:
            s, t = inference_rows(gpu["inference"], f" ({gm.get('gpu')})")
            summary += s
            sections += ["### Inference", "", *t, ""]
    else:
        sections += ["No GPU figures yet: these numbers come from a CPU-only machine. `bench/gpu_check.sh` measures the "
                     "same table on a GPU: from a fresh checkout it synthesises its own phantom data, needs nothing from "
                     "the network (torch with CUDA on the machine; nnunetv2 and the few packages a bare CUDA image lacks "
                     "as wheels in `bench_out/wheels`, about 55 MB, listed in its header), finishes within 9 minutes and "
                     "measures training it/s (SparseTemporalTrainer vs stock nnUNetTrainer on 3d_temporal_unet_s, "
                     "SuperImageTrainer on si_f16t5, data in 8 workers), the inference table above on CUDA (both paths, "
                     "1/10/100 videos and one 1,000-frame video) and peak GPU memory.", "",
                     "How to run it: from the repository root of the GPU machine, `OUT=/some/folder bash "
                     "bench/gpu_check.sh`; copy the resulting `training.json`, `inference.json` and `gpu_memory.json` "
                     "into `bench_out/gpu/` here and run `python bench/run_all.py --report-only` to add them to this "
                     "file with the card's name.", ""]

    header = ["# Benchmarks", "",
              f"Generated by `python bench/run_all.py{' --small' if small else ''}` on {machine['date_utc']}. Machine: "
              f"{machine.get('cpu')} ({machine.get('cores')} cores available), {machine.get('memory_gib')} GiB, "
              f"{'GPU ' + machine['gpu'] if machine.get('gpu') else 'no GPU'}; Python {machine.get('python')}, "
              f"torch {machine.get('torch')}, "
              f"nnunetv2 {machine.get('nnunetv2')}. Each section gives the date and load average of its own step.", "",
              "Every figure is a ratio against the obvious alternative measured in the same run, because the machine is shared "
              "and noisy. Read the CPU figures with the load average given in each section: on this 2-core machine PyTorch's two "
              "threads slow down many times over as soon as another process competes for the CPU (a 2d U-Net forward pass took "
              "1.7 s with 2 threads against 0.12 s with 1 thread at load average 5), so only figures taken at a low load mean "
              "much, and ratios between models measured in turns mean more than absolute speeds. Data: a synthetic phantom "
              "in EchoNet-Dynamic format (112x112 grey frames), converted and planned with the real commands; models for "
              "the speed figures are trained for two iterations only (speed does not depend on the weights). Reproduce "
              "everything with `python bench/run_all.py`, or one figure with the command given in its section.", "",
              "## Summary", "", "| Figure | Ours | Alternative | Ratio | Goal | Met |", "|---|---|---|---|---|---|", *summary, ""]
    if runs:
        header += ["Steps of this run: " + "; ".join(f"{k} {v['seconds']:.0f} s" + ("" if v["rc"] == 0 else f" (exit {v['rc']})")
                                                     for k, v in runs.items()), ""]
    from unilvseg_nnunet.files import write_text

    old = path.read_text() if path.is_file() else ""
    start, end = old.find(ACCURACY_MARKS[0]), old.find(ACCURACY_MARKS[1])
    if 0 <= start < end:  # bench/bench_accuracy.py writes its own section; keep it
        sections += ["## Accuracy on every frame", "", old[start:end + len(ACCURACY_MARKS[1])], ""]
    write_text(path, "\n".join(header + sections).rstrip() + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="tiny sizes for a check; report in bench_out/BENCHMARKS_small.md")
    p.add_argument("--only", nargs="+", choices=STEPS, help="run only these steps (the report uses the others' latest results)")
    p.add_argument("--args", nargs=2, action="append", metavar=("STEP", "ARGS"),
                   help="arguments for one step's script instead of the defaults")
    p.add_argument("--workdir", type=Path, default=common.OUT / "work", help="cache of phantom data and models (default bench_out/work)")
    p.add_argument("--out", type=Path, default=common.OUT, help="results folder (default bench_out)")
    p.add_argument("--report-only", action="store_true", help="do not run anything: rewrite the report from the existing results")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    record = args.out / f"run_all{'_small' if args.small else ''}.json"
    runs = _load(record) or {}
    if not args.report_only:
        for step in args.only or STEPS:
            runs[step] = run_step(step, step_command(step, args), args.out)
            common_write(record, runs)
    report = args.out / "BENCHMARKS_small.md" if args.small else common.REPO / "BENCHMARKS.md"
    write_report(args.out, runs, args.small, report)
    failed = [k for k, v in runs.items() if v["rc"] != 0 and k in (args.only or STEPS)]
    print(f"report: {report}")
    print("ALL BENCHMARKS: " + ("; ".join(f"{k}: {v['figure']}" for k, v in runs.items()) if runs else "none run")
          + (f" -- FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def common_write(path: Path, obj) -> None:
    from unilvseg_nnunet.files import write_json

    write_json(path, obj)


if __name__ == "__main__":
    sys.exit(main())
