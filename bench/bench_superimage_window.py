"""Super-image inference: nnU-Net's sliding window over short tiles against whole-video windows, same models.

For each super-image model folder planned before whole-video windows (a patch of 2*F*T frames, no "inference"
entry), segments the test split of its raw dataset twice with the same weights: as its plans say (nnU-Net's own
sliding window, step 0.5 with Gaussian weights along time: what ``nnUNetv2_predict`` does with those plans), and
whole-video (the network in the :class:`~unilvseg_nnunet.inference.window.VideoWindowNet` that super-image plans
made now build, windows of :func:`~unilvseg_nnunet.planning.superimage.inference_window`). Times each
(segmentation only, after one warm-up call, torch's default threads), scores both with ``unilvseg evaluate``
against the phantom's every-frame truth and prints the figures side by side::

    python bench/bench_superimage_window.py --dataset bench_out/work_a60/nnUNet_raw/Dataset962_AccuracyArtefacts \\
        --models bench_out/work_a60/artefacts/budget600/seed*/results/Dataset962_*/SuperImageTrainer_demo__*
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

VARIANTS = ("tiles of 2*F*T frames (nnU-Net's sliding window)", "whole video")


def whole_video(predictor) -> None:
    """Give ``predictor`` the whole-video network of plans made now, with the weights it loaded."""
    from unilvseg_nnunet.inference.window import VideoWindowNet
    from unilvseg_nnunet.planning.superimage import inference_window

    net = predictor.network
    predictor.network = VideoWindowNet(net, **inference_window(net.frames, net.period))
    predictor.list_of_parameters = [{f"net.{k}": v for k, v in p.items()} for p in predictor.list_of_parameters]


def segment_split(model: Path, dataset: Path, out: Path, whole: bool) -> float:
    """Masks of the test split by ``model`` under ``out``; returns the frames per second of the segmentation."""
    from unilvseg_nnunet.data.dataset import subset_cases
    from unilvseg_nnunet.files import read_volume_spacing, write_volume
    from unilvseg_nnunet.inference.predictor import load_predictor, segment
    from unilvseg_nnunet.training.superimage import SuperImageNet

    predictor = load_predictor(model, [0], device="cpu")
    if not isinstance(predictor.network, SuperImageNet):
        raise SystemExit(f"{model}: not a super-image model planned with tiles (its network: "
                         f"{type(predictor.network).__name__})")
    if whole:
        whole_video(predictor)
    _, cases, ending = subset_cases(dataset, "imagesTs")
    videos = {case: read_volume_spacing(dataset / "imagesTs" / f"{case}_0000{ending}") for case in cases}
    x, spacing = next(iter(videos.values()))
    segment(predictor, x[:16], spacing)  # warm-up
    frames, seconds = 0, 0.0
    for case, (x, spacing) in videos.items():
        t0 = time.perf_counter()
        seg = segment(predictor, x, spacing)
        seconds += time.perf_counter() - t0
        frames += len(x)
        write_volume(out / f"{case}{ending}", seg, spacing)
    return frames / seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", type=Path, required=True, help="raw dataset folder with the every-frame truth")
    p.add_argument("--models", type=Path, nargs="+", required=True, help="super-image model folders (fold 0)")
    p.add_argument("--out", type=Path, default=Path("bench_out/superimage_window"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_accuracy import COLUMNS, figures, mean_sd_cell

    from unilvseg_nnunet.cli import main as cli

    shown = [c for c in COLUMNS if c[1] not in ("dsc_clean", "iterations", "labeled_frames_seen")]
    runs = []
    for i, model in enumerate(args.models):
        for label in VARIANTS:
            out = args.out / f"model{i}" / ("whole" if label == VARIANTS[1] else "tiles")
            fps = segment_split(model, args.dataset, out / "pred", label == VARIANTS[1])
            if cli(["evaluate", "-p", str(out / "pred"), "-d", str(args.dataset), "-o", str(out / "eval"), "--n-boot",
                    "1000", "--no-video-plots"]):
                raise SystemExit(f"unilvseg evaluate failed on {out / 'pred'}")
            runs.append({"model": label, "fps": fps, **figures(json.loads((out / "eval" / "summary.json").read_text()), {})})
            print(f"{model}: {label}: {fps:.2f} frames/s, " + ", ".join(f"{k} {runs[-1][k]:.4f}" for _, k, _, _ in shown),
                  flush=True)
    print(f"\n| Inference ({len(args.models)} models) | frames/s (CPU) | " + " | ".join(c[0] for c in shown) + " |")
    print("|---" * (len(shown) + 2) + "|")
    for label in VARIANTS:
        cells = [mean_sd_cell(runs, "fps", label, ".2f", 1)]
        cells += [mean_sd_cell(runs, key, label, fmt, scale) for (_, key, fmt, scale) in shown]
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
