#!/usr/bin/env python
"""Peak memory of conversion and training (prediction: bench_inference.py, which predicts whole videos).

Each measured command runs in its own process, started from a small launcher so that its peak
resident memory (``ru_maxrss`` of its largest process) is its own; the whole process tree's peak
(sum of proportional set sizes, sampled) is reported too.

- conversion: ``conversion/echonet_to_nnunet.py`` on the bench phantom with 1 and 2 processes;
- training: stock nnUNetTrainer, SparseTemporalTrainer (same configuration and batch) and
  SuperImageTrainer, each built as nnUNetv2_train builds it and run for a few ``train_step``\\ s
  with data loading in the same process (``--iterations``).

    python bench/bench_memory.py [--small] [--iterations 2]
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


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--iterations", type=int, help="training steps per trainer (default 3; --small: 1)")
    p.add_argument("--train-one", nargs=2, metavar=("TRAINER", "CONFIGURATION"), help=argparse.SUPPRESS)  # child mode
    args = p.parse_args(argv)
    env = common.use_env(args.workdir)
    if args.train_one:
        train_one(args.workdir, *args.train_one, args.iterations or 1)
        return 0
    config = "3d_temporal_f8t1_unet_s" if args.small else "3d_temporal"
    si_config = "si_f4t1" if args.small else "si_f16t5"
    iterations = args.iterations or (1 if args.small else 3)
    common.prepare_dataset(args.workdir, args.small, [config, si_config])
    logs = args.workdir / "logs"

    conversion = {}
    for np_ in (1, 2):
        raw = args.workdir / "memory_raw"
        shutil.rmtree(raw, ignore_errors=True)
        raw.mkdir(parents=True)
        r = common.run_measured([sys.executable, str(common.REPO / "conversion" / "echonet_to_nnunet.py"), str(args.workdir / "echonet"),
                                 "-d", "951", "-n", "Memory", "-np", str(np_), "--no-progress"], {**env, "nnUNet_raw": str(raw)},
                                logs / f"memory_conversion_np{np_}.log")
        conversion[f"np{np_}"] = r
        print(f"conversion -np {np_}: peak RSS {r['max_rss_mb']:.0f} MB, process tree {r['tree_memory_peak_mb']:.0f} MB", flush=True)
    shutil.rmtree(args.workdir / "memory_raw", ignore_errors=True)

    training = {}
    child_env = {**env, "nnUNet_n_proc_DA": "0"}
    for trainer, configuration in (("nnUNetTrainer", config), ("SparseTemporalTrainer", config), ("SuperImageTrainer", si_config)):
        try:
            r = common.run_measured([sys.executable, __file__, "--workdir", str(args.workdir), "--iterations", str(iterations),
                                     "--train-one", trainer, configuration], child_env, logs / f"memory_train_{trainer}.log")
        except RuntimeError as e:
            print(f"{trainer} on {configuration}: failed: {str(e)[-600:]}")
            training[trainer] = {"configuration": configuration, "error": str(e)[-2000:]}
            continue
        training[trainer] = {"configuration": configuration, "iterations": iterations, **r}
        print(f"training {trainer} on {configuration}: peak RSS {r['max_rss_mb']:.0f} MB, process tree "
              f"{r['tree_memory_peak_mb']:.0f} MB", flush=True)

    stock, sparse = training.get("nnUNetTrainer", {}), training.get("SparseTemporalTrainer", {})
    ratio = sparse["max_rss_mb"] / stock["max_rss_mb"] if "max_rss_mb" in stock and "max_rss_mb" in sparse else None
    path = common.write_result("memory" + ("_small" if args.small else ""),
                               {"conversion": conversion, "training": training, "ratio_training_sparse_over_stock": ratio}, args.out)
    print(f"\nresults: {path}")
    print(f"MEMORY (peak RSS): conversion {conversion['np1']['max_rss_mb']:.0f} MB (-np 1), {conversion['np2']['max_rss_mb']:.0f} MB "
          f"largest process (-np 2); training on {config}: SparseTemporalTrainer "
          + (f"{sparse['max_rss_mb']:.0f} MB vs stock {stock['max_rss_mb']:.0f} MB = {ratio:.2f}x" if ratio else "failed"))
    return 0 if all("error" not in t for t in training.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
