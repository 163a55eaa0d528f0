#!/usr/bin/env python
"""Inference speed and memory: nnUNetv2_predict on whole videos, 3D temporal vs super image vs stock 2d.

Models: stock ``nnUNetTrainer`` on ``2d``, ``SparseTemporalTrainer`` on ``3d_temporal`` and
``3d_temporal_unet_s`` (F=32, T=1; nnU-Net's planned U-Net and the paper's 3D U-Net-S) and
``SuperImageTrainer`` on ``si_f16t5``, each trained for two iterations in this process (speed
does not depend on the weights) and saved as ``fold_0/checkpoint_final.pth``. The same phantom
videos of realistic length (EchoNet-Dynamic: ~180 frames of 112x112) are then predicted by the
real command, the models taking turns for ``--rounds`` rounds (the best round of each counts):

    nnUNetv2_predict -i VIDEOS -o OUT -d 950 -c CONFIG -tr TRAINER -f 0 -device cpu --disable_tta -npp 1 -nps 1

Figures per model: frames/s end to end (wall time of the command, start-up included) and steady
(from the first "Predicting" line to the end, i.e. without interpreter start and model loading);
peak resident memory of the largest process (ru_maxrss) and of the whole process tree (sum of PSS,
sampled). Then one video of 1,000 frames: memory growth against the ~180-frame run, in units of
the extra frames' float32 array (what nnU-Net must at least hold: the preprocessed video).

    python bench/bench_inference.py [--small] [--videos 1] [--frames 180] [--rounds 2] [--long-frames 1000] [--device cpu]
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

FRAME_BYTES = 112 * 112 * 4  # one float32 frame of one channel


def make_model(trainer: str, configuration: str, plans: dict, dataset_json: dict, device: str, iterations: int = 2) -> Path:
    """Model folder of ``trainer`` on ``configuration`` after ``iterations`` training steps (cached)."""
    from bench_training import Run

    folder = Path(os.environ["nnUNet_results"]) / common.DATASET_NAME / f"{trainer}__nnUNetPlans__{configuration}"
    checkpoint = folder / "fold_0" / "checkpoint_final.pth"
    if not checkpoint.is_file():
        run = Run(trainer, plans, configuration, dataset_json, device=device)
        for _ in range(iterations):
            run.step()
        run.trainer.save_checkpoint(str(checkpoint))
        run.close()
    return folder


def write_videos(folder: Path, count: int, frames: int, seed: int) -> int:
    """``count`` phantom videos of ``frames`` frames as nnU-Net input images (cached); returns total frames."""
    from unilvseg_nnunet.files import write_volume
    from unilvseg_nnunet.data.phantom import synthesize_video

    names = [folder / f"video{i:03d}_0000.mha" for i in range(count)]
    if not all(n.is_file() for n in names):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for i, name in enumerate(names):
            write_volume(name, synthesize_video(seed + i, n_frames=frames).frames)
    return count * frames


def predict(workdir: Path, env: dict, trainer: str, configuration: str, videos: Path, tag: str, device: str) -> dict:
    out = workdir / "predictions" / f"{configuration}_{tag}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = ["nnUNetv2_predict", "-i", str(videos), "-o", str(out), "-d", str(common.DATASET_ID), "-c", configuration,
           "-tr", trainer, "-f", "0", "-device", device, "--disable_tta", "-npp", "1", "-nps", "1"]
    result = common.run_measured(cmd, env, workdir / "logs" / f"predict_{configuration}_{tag}.log", marker="Predicting")
    if len(list(out.glob("*.mha"))) != len(list(videos.glob("*_0000.mha"))):
        raise RuntimeError(f"{out}: not every video was predicted")
    return result


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--videos", type=int, help="videos of --frames frames for the speed figure (default 1)")
    p.add_argument("--rounds", type=int, default=2, help="speed runs per model, models taking turns; the best counts (default 2)")
    p.add_argument("--frames", type=int, help="frames per video (default 180; --small: 40)")
    p.add_argument("--long-frames", type=int, help="frames of the memory-growth video (default 1000; --small: 120); 0 skips it")
    p.add_argument("--long-models", default="all", help="comma-separated configurations for the long video (default all)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    args = p.parse_args(argv)
    env = common.use_env(args.workdir)
    small = args.small
    models = ([("nnUNetTrainer", "2d"), ("SparseTemporalTrainer", "3d_temporal_f8t1_unet_s"), ("SuperImageTrainer", "si_f4t1")] if small
              else [("nnUNetTrainer", "2d"), ("SparseTemporalTrainer", "3d_temporal"), ("SparseTemporalTrainer", "3d_temporal_unet_s"),
                    ("SuperImageTrainer", "si_f16t5")])
    common.prepare_dataset(args.workdir, small, [c for _, c in models])
    plans, dataset_json = common.load_plans(args.workdir)
    os.environ["nnUNet_n_proc_DA"] = "0"  # the two training steps per model: no augmentation workers
    n_videos = args.videos or 1
    frames = args.frames or (40 if small else 180)
    long_frames = (120 if small else 1000) if args.long_frames is None else args.long_frames
    total = write_videos(args.workdir / "videos" / f"{n_videos}x{frames}", n_videos, frames, seed=100)
    long_dir = args.workdir / "videos" / f"1x{long_frames}"
    if long_frames:
        write_videos(long_dir, 1, long_frames, seed=200)

    speed_dir = args.workdir / "videos" / f"{n_videos}x{frames}"
    rows = {c: {"trainer": t, "configuration": c} for t, c in models}

    def fail(row: dict, what: str, e: Exception) -> None:
        print(f"{row['trainer']} on {row['configuration']}: {what}: {type(e).__name__}: {e}", flush=True)
        row["error"] = f"{what}: {type(e).__name__}: {e}"[:2000]

    def save(complete: bool) -> tuple[Path, dict]:
        """Write the results so far (a run cut short by a time limit keeps what it measured)."""
        stock = rows["2d"]
        ratios = {c: {"steady": r["fps_steady"] / stock["fps_steady"], "end_to_end": r["fps_end_to_end"] / stock["fps_end_to_end"]}
                  for c, r in rows.items() if c != "2d" and "fps_steady" in r and "fps_steady" in stock}
        path = common.write_result("inference" + ("_small" if small else ""),
                                   {"device": args.device, "complete": complete, "rounds": args.rounds, "models": list(rows.values()),
                                    "ratios_to_stock_2d": ratios}, args.out)
        return path, ratios

    for trainer, configuration in models:
        try:
            make_model(trainer, configuration, plans, dataset_json, args.device)
        except Exception as e:  # noqa: BLE001 - one broken model must not hide the others
            fail(rows[configuration], "could not build a model", e)
    for rnd in range(args.rounds):  # models take turns, so that load changes on a shared machine hit all of them
        for trainer, configuration in models:
            row = rows[configuration]
            if "error" in row:
                continue
            try:
                r = predict(args.workdir, env, trainer, configuration, speed_dir, f"speed{rnd}", args.device)
            except Exception as e:  # noqa: BLE001
                fail(row, "prediction failed", e)
                continue
            runs = row.setdefault("runs", [])
            runs.append({k: r[k] for k in ("wall_s", "marker_s", "max_rss_mb", "tree_memory_peak_mb")})
            row.update(videos=n_videos, frames_per_video=frames,
                       fps_steady=max(total / (x["wall_s"] - x["marker_s"]) for x in runs),
                       fps_end_to_end=max(total / x["wall_s"] for x in runs),
                       max_rss_mb=max(x["max_rss_mb"] for x in runs), tree_memory_peak_mb=max(x["tree_memory_peak_mb"] for x in runs))
            print(f"round {rnd + 1}: {trainer} {configuration}: {total / r['wall_s']:.1f} frames/s end to end, "
                  f"{total / (r['wall_s'] - r['marker_s']):.1f} steady, peak RSS {r['max_rss_mb']:.0f} MB "
                  f"(process tree {r['tree_memory_peak_mb']:.0f} MB PSS)", flush=True)
            save(False)
    for trainer, configuration in models:
        row = rows[configuration]
        if not long_frames or "error" in row or not (args.long_models == "all" or configuration in args.long_models.split(",")):
            continue
        try:
            lr = predict(args.workdir, env, trainer, configuration, long_dir, "long", args.device)
        except Exception as e:  # noqa: BLE001
            fail(row, f"prediction of the {long_frames}-frame video failed", e)
            continue
        extra_video_mb = (long_frames - frames) * FRAME_BYTES / 2**20
        growth = lr["max_rss_mb"] - row["max_rss_mb"]
        row["long"] = {"frames": long_frames, "wall_s": lr["wall_s"], "fps_end_to_end": long_frames / lr["wall_s"],
                       "max_rss_mb": lr["max_rss_mb"], "tree_memory_peak_mb": lr["tree_memory_peak_mb"],
                       "extra_frames_float32_mb": extra_video_mb, "growth_mb": growth, "growth_in_video_arrays": growth / extra_video_mb,
                       "tree_growth_mb": lr["tree_memory_peak_mb"] - row["tree_memory_peak_mb"]}
        print(f"{configuration}, {long_frames}-frame video: peak RSS {lr['max_rss_mb']:.0f} MB, {growth:+.0f} MB over {frames} frames "
              f"= {growth / extra_video_mb:.1f}x the extra frames' float32 array ({extra_video_mb:.0f} MB)", flush=True)
        save(False)

    path, ratios = save(True)
    stock = rows["2d"]
    print(f"\nresults: {path}")
    parts = [f"{c} {ratios[c]['steady']:.2f}x ({rows[c]['fps_steady']:.1f} frames/s)" for c in ratios]
    if "fps_steady" in stock:
        print(f"INFERENCE ({args.device}, nnUNetv2_predict --disable_tta, {n_videos} x {frames} frames, best of {args.rounds}): stock 2d "
              f"{stock['fps_steady']:.1f} frames/s steady; vs stock 2d: " + "; ".join(parts) + " (goal 3D >= 2x)")
    else:
        print(f"INFERENCE ({args.device}): stock 2d failed: {stock.get('error')}")
    return 0 if all("error" not in r for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
