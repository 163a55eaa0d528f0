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
import time
from dataclasses import dataclass
from pathlib import Path

from unilvseg_nnunet import workspace
from unilvseg_nnunet.evaluation.compare import folder_names
from unilvseg_nnunet.training.trainers.schedules import BUDGET_ENV

DATASET_ID = 900
DEFAULT_BUDGET_S = 25.0  # seconds of training per model: five trainings fit the demo in minutes
DATASET_NAME = f"Dataset{DATASET_ID:03d}_EchoPhantom"
GPU_MEMORY_GB = 0.3  # keeps 112x112 clips of 8 frames at batch 2 for the 3D U-Net-S


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
    """Runs the demo's commands in its nnU-Net workspace, echoing each and logging its output."""

    def __init__(self, out: Path, device: str):
        self.out, self.device = out, device
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = workspace.nnunet_env(out)
        self.env["nnUNet_n_proc_DA"] = os.environ.get("nnUNet_n_proc_DA", "2")
        self.t0 = time.time()
        self.step = 0

    def banner(self, text: str) -> None:
        self.step += 1
        print(f"\n[{self.step}] {text}   (t = {time.time() - self.t0:.0f} s)", flush=True)

    def run(self, args: list[str], log: str, env: dict | None = None) -> None:
        """Run one command; stream a short progress view, keep the full output in logs/LOG."""
        print("  $ " + " ".join(shlex.quote(str(a)) for a in args), flush=True)
        try:
            workspace.run(args, env or self.env, log=self.logs / f"{log}.log",
                          echo=lambda line: print("    " + line.rstrip(), flush=True) if _is_progress(line) else None)
        except workspace.CommandError as e:
            raise SystemExit(f"demo step failed: {e}") from None


def _is_progress(line: str) -> bool:
    """Lines of a command's output worth showing while the demo runs (the log keeps all)."""
    keys = ("Epoch ", "Pseudo dice", "time budget", "trained ", "added configuration", "cases (", "videos",
            "predict", "evaluate", "Done", "skipped", "error")
    return any(k in line for k in keys)


def run_demo(out: Path, n_videos: int = 20, seed: int = 0, device: str = "cpu", budget_s: float = DEFAULT_BUDGET_S,
             artefacts: str = "severe") -> Path:
    """Run the whole pipeline into ``out``; returns the path of the Markdown report.

    Every training gets the same wall-clock budget ``budget_s`` (the ``_demo`` trainers read it from
    ``unilvseg_time_budget_s``), so the demo's length depends little on the machine's speed.
    ``artefacts``: the phantom's artefact level (the strongest corrupts about a quarter of the frames)."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    p = Pipeline(out, device)
    p.env[BUDGET_ENV] = f"{budget_s:g}"
    echonet = out / "echonet_phantom"
    raw = out / "nnUNet_raw" / DATASET_NAME

    p.banner(f"phantom EchoNet-Dynamic dataset of {n_videos} videos ({artefacts} artefacts, truth of every frame)")
    p.run(["unilvseg", "synth", str(echonet), "--n", str(n_videos), "--seed", str(seed),
           "--min-frames", "50", "--max-frames", "90", "--artefacts", artefacts], "synth")

    p.banner("videos -> nnU-Net raw dataset")
    p.run(["unilvseg", "convert", "echonet", str(echonet), "-d", str(DATASET_ID), "-n", "EchoPhantom", "-np", "2",
           "--no-progress"], "convert")

    p.banner("stock nnU-Net planning and preprocessing")
    # A 0.3 GB memory target keeps nnU-Net's planned batch sizes small enough for a CPU (on a GPU, plan as usual);
    # two fingerprint workers instead of nnU-Net's 8: each is a new interpreter importing torch (2 cores: 13 s less).
    p.run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "3d_fullres", "-npfp", "2", "-np", "2",
           "-gpu_memory_target", str(GPU_MEMORY_GB), "--verify_dataset_integrity"], "plan_and_preprocess")

    p.banner("our configurations: 3D temporal (2D+t) and super image")
    # the super image of consecutive frames: on the benchmark phantom it reads corrupted frames as well as stock 2d
    # and its area curve is nearly as smooth (11.2 vs 10.5 % above 10 Hz, 3 seeds), where period 2 was rougher (16.8 %)
    temporal, superimage = "3d_temporal_f8t1_unet_s", "si_f4t1"
    p.run(["unilvseg", "plan", "-d", str(DATASET_ID), "--frames", "8", "--period", "1", "--arch", "unet_s",
           "--gpu-memory", str(GPU_MEMORY_GB)], "plan_temporal")
    p.run(["unilvseg", "plan", "-d", str(DATASET_ID), "--super-image", "--frames", "4", "--period", "1",
           "--gpu-memory", str(GPU_MEMORY_GB)], "plan_superimage")

    models = demo_models(temporal, superimage)
    folders: dict[str, Path] = {}
    for m in models:
        p.banner(f"train {m.label}: {m.trainer} on {m.configuration} ({budget_s:g} s budget)")
        results = out / "results" / folder_names([m.label])[m.label]
        env = dict(p.env, nnUNet_results=str(results))
        args = ["nnUNetv2_train", str(DATASET_ID), m.configuration, "0", "-tr", m.trainer, "-device", device]
        if m.pretrained_from:
            args += ["-pretrained_weights", str(folders[m.pretrained_from] / "fold_0" / "checkpoint_final.pth")]
        p.run(args, f"train_{folder_names([m.label])[m.label]}", env=env)
        folders[m.label] = results / DATASET_NAME / f"{m.trainer}__nnUNetPlans__{m.configuration}"

    p.banner("predict the test split and compare (Table I)")
    compare_dir = out / "compare"
    args = ["unilvseg", "compare", "-d", str(raw), "-o", str(compare_dir), "--device", device]
    for m in models:
        if not m.trainer.startswith("TemporalMasking"):
            args += ["-m", f"{m.label}={folders[m.label]}"]
    p.run(args, "compare")

    p.banner("report with predicted contours")
    labels = [m.label for m in models if not m.trainer.startswith("TemporalMasking")]
    report = write_report(out, raw, compare_dir, labels)
    print(f"\nDone in {time.time() - p.t0:.0f} s. Report: {report}\n")
    print((compare_dir / "comparison.md").read_text())
    return report


def contour_montage(raw: Path, compare_dir: Path, labels: list[str], case: str, path: Path) -> Path:
    """One row per model (first row: the reference tracing), columns ED, ES and untraced frames between them."""
    import cv2
    import numpy as np

    from unilvseg_nnunet.data.dataset import file_ending, read_case_metadata
    from unilvseg_nnunet.evaluation.overlay import overlay_frames
    from unilvseg_nnunet.files import atomic_path, read_volume

    meta = read_case_metadata(raw, case)
    ending = file_ending(raw)
    ed, es = meta["ed_frame"], meta["es_frame"]
    frames = read_volume(raw / "imagesTs" / f"{case}_0000{ending}")
    columns = sorted({ed, es, *np.linspace(min(ed, es), max(ed, es), 5).round().astype(int)})[:6]
    reference = (read_volume(raw / "labelsTs" / f"{case}{ending}") == 1).astype(np.uint8)
    names = folder_names(labels)
    rows = [("reference (traced frames only)", reference)]
    rows += [(label, read_volume(compare_dir / names[label] / "predictions" / f"{case}{ending}")) for label in labels]
    tiles = []
    for title, mask in rows:
        row = overlay_frames(frames[columns], mask[columns], scale=2, ed=[columns.index(ed)], es=[columns.index(es)])
        strip = np.concatenate(list(row), axis=1)
        band = np.zeros((18, strip.shape[1], 3), np.uint8)
        cv2.putText(band, f"{title}: frames {', '.join(map(str, columns))}", (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
        tiles += [band, strip]
    with atomic_path(path) as tmp:
        cv2.imwrite(str(tmp), np.concatenate(tiles, axis=0))
    return path


def write_report(out: Path, raw: Path, compare_dir: Path, labels: list[str]) -> Path:
    """demo_out/report.md: the comparison table, the bubble plot and predicted contours on one test video."""
    from unilvseg_nnunet.data.dataset import iter_case_metadata
    from unilvseg_nnunet.files import write_text

    case = next(m["case"] for m in iter_case_metadata(raw) if m["subset"] == "imagesTs")
    montage = contour_montage(raw, compare_dir, labels, case, out / "contours.png")
    text = (f"# unilvseg demo\n\nPhantom dataset, short CPU training, test split.\n\n"
            f"{(compare_dir / 'comparison.md').read_text()}\n\n![accuracy vs cost]({(compare_dir / 'bubble.png').relative_to(out)})\n\n"
            f"## Predicted contours on test video {case}\n\nColumns: frames from ED to ES (only ED and ES are traced).\n\n"
            f"![contours]({montage.relative_to(out)})\n\nPer-model evaluations (area curves, EF, temporal consistency): "
            f"`{compare_dir.relative_to(out)}/<model>/evaluation/report.md`.\n")
    write_text(out / "report.md", text)
    return out / "report.md"
