#!/usr/bin/env python
"""Peak memory of conversion, training and prediction against video length.

Each measured command runs in its own process, started from a small launcher so that its peak
resident memory (``ru_maxrss`` of its largest process) is its own; the whole process tree's peak
(sum of proportional set sizes, sampled) is reported too.

- conversion: ``conversion/echonet_to_nnunet.py`` on the bench phantom with 1 and 2 processes;
- training: stock nnUNetTrainer, SparseTemporalTrainer (same configuration and batch) and
  SuperImageTrainer, each built as nnUNetv2_train builds it and run for a few ``train_step``\\ s
  with data loading in the same process (``--iterations``);
- prediction: one video of each of ``--lengths`` frames through ``nnUNetv2_predict --disable_tta`` and
  ``unilvseg predict-video`` (the commands of bench_inference.py), stock ``2d`` and the README's first 3D
  configuration: the growth of peak memory per extra frame, in units of one frame's float32 array
  (112x112x4 bytes, what a video at least costs once preprocessed). Default lengths: L, 2L - O and
  4L - 3O for the 3D model's inference window of L frames overlapping by O (256, 480, 928), the lengths
  at which every window is L frames long, so that the windows' own memory is the same cap each time
  and the growth is what a longer video itself costs (--small: L and 2L - O).

    python bench/bench_memory.py [--small] [--iterations 2] [--lengths 256,480,928] [--parts prediction]
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def train_one(workdir: Path, trainer: str, configuration: str, iterations: int) -> None:
    """Child mode: build ``trainer`` on ``configuration`` and run ``iterations`` training steps."""
    from bench_training import Run

    plans, dataset_json = common.load_plans(workdir)
    run = Run(trainer, plans, configuration, dataset_json)
    for _ in range(iterations):
        run.step()
    run.close()


FRAME_BYTES = 112 * 112 * 4  # one float32 frame of one channel


def prediction_memory(workdir: Path, env: dict, small: bool, lengths: list[int], device: str) -> dict:
    """Peak memory of both prediction paths on one video of each length, stock 2d and the default 3D model."""
    import os

    import bench_inference as bi

    models = [("nnUNetTrainer", "2d"), ("SparseTemporalTrainer", bi.DEFAULT_3D[small])]
    plans, dataset_json = common.load_plans(workdir)
    os.environ["nnUNet_n_proc_DA"] = "0"
    for trainer, configuration in models:
        bi.make_model(trainer, configuration, plans, dataset_json, device)
    rows = []
    for path in ("predict", "video"):
        for trainer, configuration in models:
            runs = []
            for n in lengths:
                videos = bi.write_videos(workdir / "videos" / f"1x{n}", 1, n, seed=200)
                r = bi.measure(workdir, env, path, trainer, configuration, videos, 1, n, device, 1, f"memory_{n}")
                runs.append({"frames": n, "max_rss_mb": r["max_rss_mb"], "tree_memory_peak_mb": r["tree_memory_peak_mb"]})
                print(f"prediction memory, {path} {configuration}, {n} frames: peak RSS {r['max_rss_mb']:.0f} MB",
                      flush=True)
            growth = [(b["max_rss_mb"] - a["max_rss_mb"]) * 2**20 / ((b["frames"] - a["frames"]) * FRAME_BYTES)
                      for a, b in zip(runs, runs[1:])]
            rows.append({"path": path, "trainer": trainer, "configuration": configuration, "runs": runs,
                         "growth_in_float32_frames": growth})
    return {"frame_float32_bytes": FRAME_BYTES, "models": rows}


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--iterations", type=int, help="training steps per trainer (default 3; --small: 1)")
    p.add_argument("--lengths", help="video lengths for prediction memory (default: see above)")
    p.add_argument("--device", default="cpu", help="device for prediction (default cpu)")
    p.add_argument("--parts", default="conversion,training,prediction",
                   help="comma-separated parts to measure (default all)")
    p.add_argument("--train-one", nargs=2, metavar=("TRAINER", "CONFIGURATION"), help=argparse.SUPPRESS)  # child mode
    args = p.parse_args(argv)
    env = common.use_env(args.workdir)
    if args.train_one:
        train_one(args.workdir, *args.train_one, args.iterations or 1)
        return 0
    config = "3d_temporal_f8t1_unet_s" if args.small else "3d_temporal"
    si_config = "si_f4t1" if args.small else "si_f16t5"
    iterations = args.iterations or (1 if args.small else 3)
    parts = args.parts.split(",")
    common.prepare_dataset(args.workdir, args.small, [config, si_config, "3d_temporal_f8t1_unet_s" if args.small
                                                      else "3d_temporal_unet_s"])
    logs = args.workdir / "logs"
    result = {}
    if "conversion" in parts:
        result["conversion"] = conversion = {}
        for np_ in (1, 2):
            raw = args.workdir / "memory_raw"
            shutil.rmtree(raw, ignore_errors=True)
            raw.mkdir(parents=True)
            r = common.run_measured([sys.executable, str(common.REPO / "conversion" / "echonet_to_nnunet.py"),
                                     str(args.workdir / "echonet"), "-d", "951", "-n", "Memory", "-np", str(np_),
                                     "--no-progress"], {**env, "nnUNet_raw": str(raw)},
                                    logs / f"memory_conversion_np{np_}.log")
            conversion[f"np{np_}"] = r
            print(f"conversion -np {np_}: peak RSS {r['max_rss_mb']:.0f} MB, "
                  f"process tree {r['tree_memory_peak_mb']:.0f} MB", flush=True)
        shutil.rmtree(args.workdir / "memory_raw", ignore_errors=True)

    if "training" in parts:
        result["training"] = training = {}
        child_env = {**env, "nnUNet_n_proc_DA": "0"}
        for trainer, configuration in (("nnUNetTrainer", config), ("SparseTemporalTrainer", config),
                                       ("SuperImageTrainer", si_config)):
            try:
                r = common.run_measured([sys.executable, __file__, "--workdir", str(args.workdir), "--iterations",
                                         str(iterations), "--train-one", trainer, configuration], child_env,
                                        logs / f"memory_train_{trainer}.log")
            except RuntimeError as e:
                print(f"{trainer} on {configuration}: failed: {str(e)[-600:]}")
                training[trainer] = {"configuration": configuration, "error": str(e)[-2000:]}
                continue
            training[trainer] = {"configuration": configuration, "iterations": iterations, **r}
            print(f"training {trainer} on {configuration}: peak RSS {r['max_rss_mb']:.0f} MB, process tree "
                  f"{r['tree_memory_peak_mb']:.0f} MB", flush=True)
        stock, sparse = training.get("nnUNetTrainer", {}), training.get("SparseTemporalTrainer", {})
        result["ratio_training_sparse_over_stock"] = (sparse["max_rss_mb"] / stock["max_rss_mb"]
                                                      if "max_rss_mb" in stock and "max_rss_mb" in sparse else None)

    if "prediction" in parts:
        if args.lengths:
            lengths = [int(n) for n in args.lengths.split(",")]
        else:
            import bench_inference as bi

            plans, _ = common.load_plans(args.workdir)
            window = plans["configurations"][bi.DEFAULT_3D[args.small]]["unilvseg"]["inference"]
            full, overlap = window["max_frames"], window["overlap"]
            lengths = [full, 2 * full - overlap] + ([] if args.small else [4 * full - 3 * overlap])
        result["prediction"] = prediction_memory(args.workdir, env, args.small, lengths, args.device)

    path = common.write_result("memory" + ("_small" if args.small else ""), result, args.out)
    print(f"\nresults: {path}")
    lines = []
    for m in result.get("prediction", {}).get("models", []):
        lines.append(f"{m['path']} {m['configuration']} " + "/".join(f"{g:.2f}" for g in m["growth_in_float32_frames"]))
    print("MEMORY (peak RSS growth per extra frame, in float32 frames; goal <= 1.5): " + "; ".join(lines))
    return 0 if all("error" not in t for t in result.get("training", {}).values()) else 1


if __name__ == "__main__":
    sys.exit(main())
