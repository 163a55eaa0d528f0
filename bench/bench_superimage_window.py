"""Super-image inference: nnU-Net's sliding window over short tiles against whole-video windows, same models.

For each super-image model folder planned before whole-video windows (a patch of 2*F*T frames, no "inference"
entry), segments the test split of its raw dataset twice with the same weights: as its plans say (nnU-Net's own
sliding window, step 0.5 with Gaussian weights along time: what ``nnUNetv2_predict`` does with those plans), and
whole-video (the network in the :class:`~unilvseg_nnunet.inference.window.VideoWindowNet` that super-image plans
made now build, windows of :func:`~unilvseg_nnunet.planning.superimage.inference_window`). Times each
(segmentation only, after one warm-up call, as ``unilvseg compare`` times it), scores both with ``unilvseg evaluate``
against the phantom's every-frame truth and prints the figures side by side::

    python bench/bench_superimage_window.py --dataset bench_out/work_a60/nnUNet_raw/Dataset962_AccuracyArtefacts \\
        --models bench_out/work_a60/artefacts/budget600/seed*/results/Dataset962_*/SuperImageTrainer_demo__*
"""
from __future__ import annotations

import argparse
import sys
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
    """Masks of the test split by ``model`` under ``out`` (``compare``'s timed prediction); returns frames/s."""
    from unilvseg_nnunet.data.dataset import subset_cases
    from unilvseg_nnunet.evaluation.compare import predict_timed
    from unilvseg_nnunet.inference.predictor import load_predictor
    from unilvseg_nnunet.training.superimage import SuperImageNet

    predictor = load_predictor(model, [0], device="cpu")
    if not isinstance(predictor.network, SuperImageNet):
        raise SystemExit(f"{model}: not a super-image model planned with tiles (its network: "
                         f"{type(predictor.network).__name__})")
    if whole:
        whole_video(predictor)
    _, cases, ending = subset_cases(dataset, "imagesTs")
    images = {case: [dataset / "imagesTs" / f"{case}_0000{ending}"] for case in cases}
    return predict_timed(predictor, images, out, ending, progress=False)["frames_per_second"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", type=Path, required=True, help="raw dataset folder with the every-frame truth")
    p.add_argument("--models", type=Path, nargs="+", required=True, help="super-image model folders (fold 0)")
    p.add_argument("--out", type=Path, default=Path("bench_out/superimage_window"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_clip_norm import SHOWN, print_table, score

    runs = []
    for i, model in enumerate(args.models):
        for label in VARIANTS:
            out = args.out / f"model{i}" / ("whole" if label == VARIANTS[1] else "tiles")
            fps = segment_split(model, args.dataset, out / "pred", label == VARIANTS[1])
            runs.append({"model": label, "fps": fps, **score(out / "pred", args.dataset, out / "eval")})
            print(f"{model}: {label}: {fps:.2f} frames/s, " + ", ".join(f"{k} {runs[-1][k]:.4f}" for _, k, _, _ in SHOWN),
                  flush=True)
    print_table(runs, list(VARIANTS), len(args.models), extra=[("frames/s (CPU)", "fps", ".2f", 1)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
