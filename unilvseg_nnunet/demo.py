"""The demo: the whole pipeline on the built-in phantom, on CPU, in minutes.

phantom videos -> conversion -> nnU-Net planning/preprocessing -> our temporal and super-image
configurations -> short trainings (stock nnU-Net 2d, 3D with and without temporal-masking
pretraining, super image) -> prediction of the test split -> Table-I style comparison and a
Markdown report with pictures. Every nnU-Net step runs the real nnU-Net command, printed first,
so the demo doubles as a walk-through of the commands a user types on EchoNet-Dynamic.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .conversion import convert_echonet

DATASET_ID = 900
DATASET_NAME = f"Dataset{DATASET_ID:03d}_EchoPhantom"
GPU_MEMORY_GB = 0.25


@dataclass(frozen=True)
class Model:
    """One model the demo trains: its label in the report, nnU-Net configuration and trainer."""

    label: str
    configuration: str
    trainer: str
    pretrained_from: str | None = None  # label of the model whose checkpoint_final.pth initialises this one


def demo_models(temporal: str, superimage: str) -> list[Model]:
    return [
        Model("nnU-Net 2d (stock)", "2d", "nnUNetTrainer_demo"),
        Model("SSL pretraining (3D)", temporal, "TemporalMaskingPretrainer_demo"),
        Model("Ours 3D", temporal, "SparseTemporalTrainer_demo"),
        Model("Ours 3D + SSL", temporal, "SparseTemporalTrainer_demo", pretrained_from="SSL pretraining (3D)"),
        Model("Ours SI", superimage, "SuperImageTrainer_demo"),
    ]


class Pipeline:
    """Runs commands with the demo's nnU-Net environment, echoing each and logging its output."""

    def __init__(self, out: Path, device: str):
        self.out, self.device = out, device
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            self.env[var] = str(out / var)
            (out / var).mkdir(exist_ok=True)
        from .trainer_shims import __file__ as shims

        self.env["nnUNet_extTrainer"] = str(Path(shims).parent)
        self.env.setdefault("nnUNet_compile", "f")
        self.env.setdefault("nnUNet_n_proc_DA", "2")
        self.t0 = time.time()
        self.step = 0

    def banner(self, text: str) -> None:
        self.step += 1
        print(f"\n[{self.step}] {text}   (t = {time.time() - self.t0:.0f} s)", flush=True)

    def run(self, args: list[str], log: str, env: dict | None = None) -> None:
        """Run one command; stream a short progress view, keep the full output in logs/LOG."""
        exe = Path(sys.executable).parent / args[0]
        cmd = [str(exe) if exe.exists() else args[0], *args[1:]]
        print("  $ " + " ".join(shlex.quote(a) for a in args), flush=True)
        log_path = self.logs / f"{log}.log"
        with open(log_path, "w") as fh:
            proc = subprocess.Popen(cmd, env=env or self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for line in proc.stdout:
                fh.write(line)
                if _is_progress(line):
                    print("    " + line.rstrip(), flush=True)
            code = proc.wait()
        if code != 0:
            tail = log_path.read_text().splitlines()[-25:]
            raise SystemExit(f"demo step failed (exit {code}): {' '.join(args)}\n" + "\n".join(tail) + f"\nfull log: {log_path}")


def _is_progress(line: str) -> bool:
    keys = ("Epoch ", "train_loss", "val_loss", "Pseudo dice", "Epoch time", "Predicting", "Mean Validation Dice",
            "added configuration", "converted", "videos", "Saved", "Done", "skipped")
    return any(k in line for k in keys)


def run_demo(out: Path, n_videos: int = 30, seed: int = 0, device: str = "cpu") -> Path:
    """Run the whole pipeline into ``out``; returns the path of the Markdown report."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    p = Pipeline(out, device)
    echonet = out / "echonet_phantom"
    raw = out / "nnUNet_raw" / DATASET_NAME

    p.banner(f"phantom EchoNet-Dynamic dataset of {n_videos} videos")
    p.run(["unilvseg", "synth", str(echonet), "--n", str(n_videos), "--seed", str(seed),
           "--min-frames", "60", "--max-frames", "110"], "synth")

    p.banner("videos -> nnU-Net raw dataset")
    print(f"  $ python conversion/echonet_to_nnunet.py {echonet} -d {DATASET_ID} -n EchoPhantom -np 2", flush=True)
    os.environ["nnUNet_raw"] = p.env["nnUNet_raw"]
    convert_echonet(echonet, DATASET_ID, "EchoPhantom", num_processes=2)

    p.banner("stock nnU-Net planning and preprocessing")
    # A 0.25 GB memory target keeps nnU-Net's planned batch sizes small enough for a CPU (on a GPU, plan as usual).
    p.run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "3d_fullres", "-np", "2",
           "-gpu_memory_target", str(GPU_MEMORY_GB), "--verify_dataset_integrity"], "plan_and_preprocess")

    p.banner("our configurations: 3D temporal (2D+t) and super image")
    temporal, superimage = "3d_temporal_f8t1_unet_s", "si_f4t2"
    p.run(["unilvseg", "plan", "-d", str(DATASET_ID), "--frames", "8", "--period", "1", "--arch", "unet_s",
           "--gpu-memory", str(GPU_MEMORY_GB)], "plan_temporal")
    p.run(["unilvseg", "plan", "-d", str(DATASET_ID), "--super-image", "--frames", "4", "--period", "2",
           "--gpu-memory", str(GPU_MEMORY_GB)], "plan_superimage")

    models = demo_models(temporal, superimage)
    folders: dict[str, Path] = {}
    for m in models:
        p.banner(f"train {m.label}: {m.trainer} on {m.configuration}")
        results = out / "results" / _slug(m.label)
        env = dict(p.env, nnUNet_results=str(results))
        args = ["nnUNetv2_train", str(DATASET_ID), m.configuration, "0", "-tr", m.trainer, "-device", device]
        if m.pretrained_from:
            args += ["-pretrained_weights", str(folders[m.pretrained_from] / "fold_0" / "checkpoint_final.pth")]
        p.run(args, f"train_{_slug(m.label)}", env=env)
        folders[m.label] = results / DATASET_NAME / f"{m.trainer}__nnUNetPlans__{m.configuration}"

    p.banner("predict the test split and compare (Table I)")
    compare_dir = out / "compare"
    args = ["unilvseg", "compare", "-d", str(raw), "-o", str(compare_dir), "--device", device]
    for m in models:
        if not m.trainer.startswith("TemporalMasking"):
            args += ["-m", f"{m.label}={folders[m.label]}"]
    p.run(args, "compare")

    report = compare_dir / "comparison.md"
    print(f"\nDone in {time.time() - p.t0:.0f} s. Report: {report}")
    print(report.read_text() if report.is_file() else "")
    return report


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label).strip("_").lower()
