#!/usr/bin/env python
"""Inference speed: stock nnU-Net 2d against our 3D configurations and the super image, through both paths.

Models, each trained for two iterations in this process (speed does not depend on the weights) and saved as
``fold_0/checkpoint_final.pth``: stock ``nnUNetTrainer`` on ``2d``; ``SparseTemporalTrainer`` on
``3d_temporal_unet_s`` (the paper's 3D U-Net-S, the 3D configuration the README recommends first) and on
``3d_temporal`` (nnU-Net's planned U-Net); ``SuperImageTrainer`` on ``si_f16t5``.

Workloads: 1, 10 and 100 phantom videos of ``--frames`` frames (EchoNet-Dynamic: ~180 frames of 112x112),
and one video of ``--long-frames`` frames. Paths, the same videos as nnU-Net images and as AVI files:

    predict:  nnUNetv2_predict -i IMAGES -o OUT -d 950 -c CONFIG -tr TRAINER -f 0 -device D --disable_tta -npp P -nps P
    video:    unilvseg predict-video AVIS -m MODEL_FOLDER -o OUT -f 0 -device D

On every workload and path the models take turns (``--rounds`` rounds, the best counts), so that load changes
on a shared machine hit all of them. Figures per run: frames/s end to end (frames / wall time of the command,
interpreter start and model loading included); steady frames/s (from the first video finished to the last:
the rate an archive is segmented at); start-up = wall time - frames / steady rate (interpreter, imports,
model loading, first-call costs and the final writes; steady rate from the same model and path on its
largest workload of several videos); peak memory of the largest process and of the process tree.

    python bench/bench_inference.py [--small] [--counts 1,10,100] [--frames 180] [--long-frames 1000]
                                    [--paths predict,video] [--models 2d,...] [--rounds 1] [--device cpu] [--procs 1]
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

MODELS = [("nnUNetTrainer", "2d"), ("SparseTemporalTrainer", "3d_temporal_unet_s"),
          ("SparseTemporalTrainer", "3d_temporal"), ("SuperImageTrainer", "si_f16t5")]
SMALL_MODELS = [("nnUNetTrainer", "2d"), ("SparseTemporalTrainer", "3d_temporal_f8t1_unet_s"),
                ("SuperImageTrainer", "si_f4t1")]
DEFAULT_3D = {False: "3d_temporal_unet_s", True: "3d_temporal_f8t1_unet_s"}  # the README's first 3D configuration
MARKERS = {"predict": "done with ", "video": " frames @ "}  # one line per finished video


def model_folder(trainer: str, configuration: str) -> Path:
    return Path(os.environ["nnUNet_results"]) / common.DATASET_NAME / f"{trainer}__nnUNetPlans__{configuration}"


def make_model(trainer: str, configuration: str, plans: dict, dataset_json: dict, device: str,
               iterations: int = 2) -> Path:
    """Model folder of ``trainer`` on ``configuration`` after ``iterations`` training steps (cached)."""
    from bench_training import Run

    folder = model_folder(trainer, configuration)
    checkpoint = folder / "fold_0" / "checkpoint_final.pth"
    if not checkpoint.is_file():
        run = Run(trainer, plans, configuration, dataset_json, device=device)
        for _ in range(iterations):
            run.step()
        run.trainer.save_checkpoint(str(checkpoint))
        run.close()
    return folder


def write_videos(folder: Path, count: int, frames: int, seed: int) -> Path:
    """``count`` phantom videos of ``frames`` frames, as nnU-Net images (``folder/images``) and as MJPG AVIs
    (``folder/avi``), cached; returns ``folder``."""
    from unilvseg_nnunet.data.phantom import synthesize_video
    from unilvseg_nnunet.files import write_video, write_volume

    images, avis = folder / "images", folder / "avi"
    if len(list(images.glob("*_0000.mha"))) != count or len(list(avis.glob("*.avi"))) != count:
        shutil.rmtree(folder, ignore_errors=True)
        for i in range(count):
            video = synthesize_video(seed + i, n_frames=frames).frames
            write_volume(images / f"video{i:03d}_0000.mha", video)
            write_video(avis / f"video{i:03d}.avi", video, 50.0)
    return folder


def command(path: str, trainer: str, configuration: str, videos: Path, out: Path, device: str, procs: int) -> list[str]:
    if path == "predict":
        return ["nnUNetv2_predict", "-i", str(videos / "images"), "-o", str(out), "-d", str(common.DATASET_ID),
                "-c", configuration, "-tr", trainer, "-f", "0", "-device", device, "--disable_tta",
                "-npp", str(procs), "-nps", str(procs)]
    return ["unilvseg", "predict-video", str(videos / "avi"), "-m", str(model_folder(trainer, configuration)),
            "-o", str(out), "-f", "0", "-device", device]


def measure(workdir: Path, env: dict, path: str, trainer: str, configuration: str, videos: Path, n_videos: int,
            frames: int, device: str, procs: int, tag: str) -> dict:
    """One timed run of a path on a workload; the prediction folder is removed first (nothing is resumed)."""
    out = workdir / "predictions" / f"{path}_{configuration}_{tag}"
    shutil.rmtree(out, ignore_errors=True)
    r = common.run_measured(command(path, trainer, configuration, videos, out, device, procs), env,
                            workdir / "logs" / f"{path}_{configuration}_{tag}.log", marker=MARKERS[path])
    if len(list(out.glob("*.mha"))) != n_videos:
        raise RuntimeError(f"{out}: {len(list(out.glob('*.mha')))} of {n_videos} videos predicted")
    marks = r["marker_times"]
    steady = (frames * (len(marks) - 1) / (marks[-1] - marks[0]) if len(marks) >= 2 and marks[-1] > marks[0] else None)
    return {"wall_s": r["wall_s"], "fps_end_to_end": frames * n_videos / r["wall_s"], "fps_steady": steady,
            "max_rss_mb": r["max_rss_mb"], "tree_memory_peak_mb": r["tree_memory_peak_mb"]}


def summarise(rows: list[dict], default_3d: str) -> dict:
    """Start-up per run, ratios to stock 2d per path and workload, and the goal check for the default 3D model."""
    steady = {}
    for r in rows:  # the steady rate of the largest workload of several videos, per model and path
        key = (r["configuration"], r["path"])
        if r.get("fps_steady") and r["videos"] >= steady.get(key, (0, None))[0]:
            steady[key] = (r["videos"], r["fps_steady"])
    for r in rows:
        rate = steady.get((r["configuration"], r["path"]), (0, None))[1]
        if "wall_s" in r and rate:
            r["startup_s"] = r["wall_s"] - r["videos"] * r["frames_per_video"] / rate
    ratios = {}
    for r in rows:
        stock = next((s for s in rows if s["configuration"] == "2d" and s["path"] == r["path"]
                      and s["workload"] == r["workload"] and "wall_s" in s), None)
        if stock and "wall_s" in r and r["configuration"] != "2d":
            entry = {"end_to_end": r["fps_end_to_end"] / stock["fps_end_to_end"]}
            if r.get("fps_steady") and stock.get("fps_steady"):
                entry["steady"] = r["fps_steady"] / stock["fps_steady"]
            ratios.setdefault(r["configuration"], {}).setdefault(r["path"], {})[r["workload"]] = entry
    goal = {p: {w: v["end_to_end"] >= 2 for w, v in by_w.items()} for p, by_w in ratios.get(default_3d, {}).items()}
    return {"default_3d": default_3d, "ratios_to_stock_2d": ratios, "goal_3d_2x_end_to_end": goal,
            "steady_fps": {f"{c} {p}": v for (c, p), (_, v) in steady.items()}}


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--counts", help="comma-separated numbers of videos (default 1,10,100; --small: 1,3)")
    p.add_argument("--frames", type=int, help="frames per video (default 180; --small: 40)")
    p.add_argument("--long-frames", type=int,
                   help="frames of the single long video (default 1000; --small: 120); 0 skips it")
    p.add_argument("--paths", default="predict,video",
                   help="comma-separated: predict (nnUNetv2_predict), video (predict-video)")
    p.add_argument("--rounds", type=int, default=1,
                   help="runs per model on each workload, models taking turns; the best counts")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--procs", type=int, default=1, help="nnUNetv2_predict -npp/-nps (default 1 on this 2-core machine)")
    p.add_argument("--models", help="comma-separated configurations to measure (default: all of the size's models)")
    args = p.parse_args(argv)
    env = common.use_env(args.workdir)
    small = args.small
    models = [(t, c) for t, c in (SMALL_MODELS if small else MODELS) if not args.models or c in args.models.split(",")]
    common.prepare_dataset(args.workdir, small, [c for _, c in models])
    plans, dataset_json = common.load_plans(args.workdir)
    os.environ["nnUNet_n_proc_DA"] = "0"  # the two training steps per model: no augmentation workers
    counts = [int(c) for c in (args.counts or ("1,3" if small else "1,10,100")).split(",")]
    frames = args.frames or (40 if small else 180)
    long_frames = (120 if small else 1000) if args.long_frames is None else args.long_frames
    workloads = [(f"{n}x{frames}", n, frames) for n in counts]
    workloads += [(f"1x{long_frames}", 1, long_frames)] if long_frames else []
    folders = {name: write_videos(args.workdir / "videos" / name, n, f, seed=100 if f == frames else 200)
               for name, n, f in workloads}
    paths = args.paths.split(",")
    rows, broken = [], {}
    for trainer, configuration in models:
        try:
            make_model(trainer, configuration, plans, dataset_json, args.device)
        except Exception as e:  # noqa: BLE001 - one broken model must not hide the others
            broken[configuration] = f"could not build a model: {type(e).__name__}: {e}"[:2000]
            print(f"{trainer} on {configuration}: {broken[configuration]}", flush=True)

    def save(complete: bool) -> Path:
        """Write the results so far (a run cut short by a time limit keeps what it measured)."""
        return common.write_result("inference" + ("_small" if small else ""),
                                   {"device": args.device, "complete": complete, "rounds": args.rounds,
                                    "procs": args.procs, "runs": rows, **summarise(rows, DEFAULT_3D[small]),
                                    "models": [{"trainer": t, "configuration": c, "error": broken.get(c)}
                                               for t, c in models]}, args.out)

    for name, n, f in workloads:
        for path in paths:
            for rnd in range(args.rounds):
                for trainer, configuration in models:
                    if configuration in broken:
                        continue
                    key = (configuration, path, name)
                    row = next((r for r in rows if (r["configuration"], r["path"], r["workload"]) == key), None)
                    if row is None:
                        row = {"trainer": trainer, "configuration": configuration, "path": path, "workload": name,
                               "videos": n, "frames_per_video": f}
                        rows.append(row)
                    try:
                        m = measure(args.workdir, env, path, trainer, configuration, folders[name], n, f, args.device,
                                    args.procs, f"{name}_{rnd}")
                    except Exception as e:  # noqa: BLE001
                        row["error"] = f"{type(e).__name__}: {e}"[:2000]
                        print(f"{path} {configuration} {name}: failed: {row['error'][:400]}", flush=True)
                        continue
                    if "wall_s" not in row or m["wall_s"] < row["wall_s"]:
                        row.update(m)
                    print(f"{path:7s} {name:>8s} round {rnd + 1}: {configuration:24s} "
                          f"{m['fps_end_to_end']:7.1f} frames/s end to end"
                          + (f", {m['fps_steady']:.1f} steady" if m["fps_steady"] else "")
                          + f", wall {m['wall_s']:.1f} s, peak RSS {m['max_rss_mb']:.0f} MB", flush=True)
                    save(False)
    path_out = save(True)
    summary = summarise(rows, DEFAULT_3D[small])
    print(f"\nresults: {path_out}")
    ours = summary["ratios_to_stock_2d"].get(DEFAULT_3D[small], {})
    parts = [f"{p} {w} {v['end_to_end']:.2f}x" for p, by_w in ours.items() for w, v in by_w.items()]
    print(f"INFERENCE ({args.device}, end to end, {DEFAULT_3D[small]} vs stock 2d): " + "; ".join(parts)
          + " (goal >= 2x)")
    return 0 if not broken and all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
