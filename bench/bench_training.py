#!/usr/bin/env python
"""Training speed: SparseTemporalTrainer against stock nnUNetTrainer on the same configuration and batch.

Both trainers are built in this process exactly as nnUNetv2_train builds them (class found by name,
nnUNet_extTrainer included; ``(plans, configuration, fold 0, dataset_json, device)``), started
with ``on_train_start()`` (network, optimiser, loss, data loaders) and then run ``train_step()`` on
``next(dataloader_train)`` as ``run_training`` does. Per iteration the time is split into waiting
for the data loader and compute (forward, loss, backward, optimiser step); the loss call alone is
timed too. The trainers take turns in rounds so that load changes on a shared machine hit both.

Same configuration (default ``3d_temporal``: F=32, T=1, nnU-Net's planned U-Net), same patch,
same batch size (the plans', or ``--batch-size`` for both). What differs is only what
SparseTemporalTrainer changes: clip sampler around a labeled frame, video augmentation, sparse
frame-wise loss. The super-image trainer (``si_f16t5``) is timed alone when available (its
stock counterpart would not do the same work: stock nnU-Net would feed all F*T frames).

Data loading runs in the main process by default (``--n-proc-da 0``), so the data time is the
whole cost of loading and augmenting a batch; nnU-Net normally hides it in background workers,
which keep up as long as data time per worker < compute time.

    python bench/bench_training.py [--small] [--iterations 6] [--batch-size B] [--configuration 3d_temporal]
"""
from __future__ import annotations

import os
import sys
import time
from copy import deepcopy
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


class _Timed:
    """Wraps a callable (the trainer's loss) and adds up the seconds spent in it (``sync``: waits for
    queued GPU work before and after, so that the time is the call's own)."""

    def __init__(self, fn, sync=None):
        self.fn, self.sync, self.seconds = fn, sync or (lambda: None), 0.0

    def __call__(self, *args, **kwargs):
        self.sync()
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.sync()
            self.seconds += time.perf_counter() - t0


class Run:
    """One trainer set up for timing: built, on_train_start() done, loss wrapped."""

    def __init__(self, trainer_name: str, plans: dict, configuration: str, dataset_json: dict, batch_size: int | None = None,
                 device: str = "cpu"):
        import torch
        from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

        plans = deepcopy(plans)
        plans["continue_training"] = False  # nnU-Net 2.8.1's get_trainer_from_args sets this key; __init__ pops it
        if batch_size:
            plans["configurations"][configuration]["batch_size"] = batch_size
        cls = recursive_find_trainer_class_by_name(trainer_name)
        self.name, self.configuration = trainer_name, configuration
        self.trainer = cls(plans, configuration, 0, dataset_json, device=torch.device(device))
        self.trainer.on_train_start()
        self.trainer.on_train_epoch_start()
        sync = torch.cuda.synchronize if self.trainer.device.type == "cuda" else None
        self.loss = self.trainer.loss = _Timed(self.trainer.loss, sync)
        self.data_s = self.compute_s = 0.0
        self.iterations = 0

    def step(self, timed: bool = True) -> None:
        t0 = time.perf_counter()
        batch = next(self.trainer.dataloader_train)
        t1 = time.perf_counter()
        self.trainer.train_step(batch)
        t2 = time.perf_counter()
        if timed:
            self.data_s += t1 - t0
            self.compute_s += t2 - t1
            self.iterations += 1
        else:
            self.loss.seconds = 0.0

    def close(self) -> None:
        for loader in (self.trainer.dataloader_train, self.trainer.dataloader_val):
            if hasattr(loader, "_finish"):
                loader._finish()

    def summary(self) -> dict:
        t = self.trainer
        n = max(self.iterations, 1)
        return {"trainer": self.name, "configuration": self.configuration, "batch_size": t.batch_size,
                "patch_size": list(getattr(t, "clip_patch_size", t.configuration_manager.patch_size)),
                "iterations": self.iterations, "its_per_s": self.iterations / (self.data_s + self.compute_s),
                "data_s_per_it": self.data_s / n, "compute_s_per_it": self.compute_s / n, "loss_s_per_it": self.loss.seconds / n,
                "data_fraction": self.data_s / (self.data_s + self.compute_s)}


def time_runs(runs: list[Run], iterations: int, warmup: int, per_round: int) -> None:
    """``warmup`` untimed steps each, then ``iterations`` timed steps each, taking turns ``per_round`` at a time."""
    for r in runs:
        for _ in range(warmup):
            r.step(timed=False)
    done = 0
    while done < iterations:
        k = min(per_round, iterations - done)
        for r in runs:
            for _ in range(k):
                r.step()
        done += k


def fmt(s: dict) -> str:
    return (f"{s['trainer']:<22} {s['configuration']:<24} batch {s['batch_size']} patch {'x'.join(map(str, s['patch_size']))}: "
            f"{s['its_per_s']:.3f} it/s (data {s['data_s_per_it']:.3f} s + compute {s['compute_s_per_it']:.3f} s per it, "
            f"loss {s['loss_s_per_it'] * 1000:.1f} ms; data {100 * s['data_fraction']:.0f}%)")


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--configuration", help="temporal configuration (default 3d_temporal; --small: 3d_temporal_f8t1_unet_s)")
    p.add_argument("--si-configuration", help="super-image configuration (default si_f16t5; --small: si_f4t1); 'none' skips it")
    p.add_argument("--iterations", type=int, help="timed iterations per trainer (default 6; --small: 2)")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations per trainer first (default 1)")
    p.add_argument("--batch-size", type=int, help="batch size for every trainer (default: the plans')")
    p.add_argument("--n-proc-da", type=int, default=0, help="nnU-Net data-augmentation workers (default 0: in the main process)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    args = p.parse_args(argv)
    common.use_env(args.workdir)
    config = args.configuration or ("3d_temporal_f8t1_unet_s" if args.small else "3d_temporal")
    si_config = args.si_configuration or ("si_f4t1" if args.small else "si_f16t5")
    iterations = args.iterations or (2 if args.small else 6)
    common.prepare_dataset(args.workdir, args.small, [config] + ([si_config] if si_config != "none" else []))
    plans, dataset_json = common.load_plans(args.workdir)
    os.environ["nnUNet_n_proc_DA"] = str(args.n_proc_da)  # after planning: nnU-Net's planner needs it >= 1

    import torch

    runs = [Run("nnUNetTrainer", plans, config, dataset_json, args.batch_size, args.device),
            Run("SparseTemporalTrainer", plans, config, dataset_json, args.batch_size, args.device)]
    time_runs(runs, iterations, args.warmup, per_round=max(1, iterations // 3))
    stock, sparse = (r.summary() for r in runs)
    for r in runs:
        r.close()
    si = None
    if si_config != "none":
        try:
            si_run = Run("SuperImageTrainer", plans, si_config, dataset_json, args.batch_size, args.device)
        except Exception as e:  # noqa: BLE001 - reported, the main figure still stands
            print(f"super-image trainer skipped: {type(e).__name__}: {e}")
        else:
            time_runs([si_run], iterations, args.warmup, per_round=iterations)
            si = si_run.summary()
            si_run.close()

    ratio = sparse["its_per_s"] / stock["its_per_s"]
    extra = (sparse["loss_s_per_it"] - stock["loss_s_per_it"]) + (sparse["data_s_per_it"] - stock["data_s_per_it"])
    result = {"device": args.device, "torch_threads": torch.get_num_threads(), "n_proc_da": args.n_proc_da,
              "stock": stock, "sparse": sparse, "superimage": si, "ratio_sparse_over_stock": ratio,
              "overhead_sparse": 1 / ratio - 1,
              "overhead_loss_and_data": extra / (stock["data_s_per_it"] + stock["compute_s_per_it"]),
              "ratio_compute": stock["compute_s_per_it"] / sparse["compute_s_per_it"],
              "ratio_data": stock["data_s_per_it"] / sparse["data_s_per_it"]}
    path = common.write_result("training" + ("_small" if args.small else ""), result, args.out)
    print()
    for s in (stock, sparse, si):
        if s:
            print(fmt(s))
    print(f"results: {path}")
    where = f"CPU, {torch.get_num_threads()} threads" if args.device == "cpu" else torch.cuda.get_device_name(0)
    print(f"TRAINING ({where}, data in {'main process' if not args.n_proc_da else f'{args.n_proc_da} workers'}): "
          f"SparseTemporalTrainer {sparse['its_per_s']:.3f} it/s vs stock nnUNetTrainer {stock['its_per_s']:.3f} it/s "
          f"on {config} "
          f"batch {sparse['batch_size']}: ratio {ratio:.2f} (overhead {100 * result['overhead_sparse']:+.0f}%, "
          f"of which loss + data loading "
          f"{100 * result['overhead_loss_and_data']:+.1f}%; goal < +10%); "
          f"data share {100 * sparse['data_fraction']:.0f}% sparse / {100 * stock['data_fraction']:.0f}% stock")
    return 0


if __name__ == "__main__":
    sys.exit(main())
