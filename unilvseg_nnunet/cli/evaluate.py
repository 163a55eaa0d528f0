"""``unilvseg evaluate``: score a prediction folder against a raw dataset (see unilvseg_nnunet.evaluation)."""
from __future__ import annotations

import sys


def add_arguments(parser) -> None:
    parser.add_argument("-p", "--predictions", required=True, help="folder of predicted <case>.mha masks (nnUNetv2_predict output)")
    parser.add_argument("-d", "--dataset", required=True, help="raw dataset folder, or nnU-Net dataset id/name under $nnUNet_raw")
    parser.add_argument("--subset", default="imagesTs", choices=("imagesTs", "imagesTr"), help="which split's labels to score against (default imagesTs)")
    parser.add_argument("-o", "--output", required=True, help="report folder (summary.json, report.md, CSVs, figures)")
    parser.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples of videos (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--skip-bad", action="store_true", help="skip (and list) cases with bad input instead of failing")
    parser.add_argument("--no-video-plots", action="store_true", help="do not draw one area-curve PNG per video")


def run(args) -> int:
    from ..evaluation import EvaluationError, evaluate, markdown_report

    if args.n_boot < 1:
        print("error: --n-boot must be positive", file=sys.stderr)
        return 2
    try:
        summary = evaluate(args.predictions, args.dataset, args.output, subset=args.subset, n_boot=args.n_boot,
                           seed=args.seed, skip_bad=args.skip_bad, video_plots=not args.no_video_plots)
    except EvaluationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(markdown_report(summary).split("\n## Temporal")[0])
    print(f"report written to {args.output}/ (summary.json, report.md, per_frame.csv, per_video.csv, *.png)")
    return 0
