"""``unilvseg predict-video``: segment raw echo videos with a trained model (see unilvseg_nnunet.predict_video)."""
from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("input", help="an EchoNet-style video (.avi) or a folder of videos")
    parser.add_argument("-m", "--model", required=True,
                        help="nnU-Net trainer output folder, e.g. $nnUNet_results/Dataset114_EchoNet/SparseTemporalTrainer__nnUNetPlans__3d_temporal")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument("-f", "--folds", nargs="+", default=None,
                        help="fold(s) to use (ensemble if several); default: every fold with the checkpoint")
    parser.add_argument("--checkpoint", "-chk", default="checkpoint_final.pth", help="checkpoint file name (default checkpoint_final.pth)")
    parser.add_argument("-device", "--device", default="cpu", choices=("cpu", "cuda"), help="cpu (default) or cuda")
    parser.add_argument("--fps", type=float, default=None, help="frame rate to assume (default: the video's own, else 50)")


def run(args) -> int:
    from ..predict_video import PredictionError, parse_folds, predict_videos

    try:
        folds = parse_folds(args.folds)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        summary = predict_videos(args.input, args.model, args.output, folds=folds, checkpoint=args.checkpoint,
                                 device=args.device, fps=args.fps)
    except PredictionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    n_ok, n_bad = len(summary["results"]), len(summary["failed"])
    print(f"{n_ok} video(s) segmented into {args.output}" + (f"; {n_bad} failed (listed above)" if n_bad else ""))
    return 1 if n_bad else 0
