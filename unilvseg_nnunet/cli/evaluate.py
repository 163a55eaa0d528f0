"""``unilvseg evaluate``: score a prediction folder against a raw dataset (see unilvseg_nnunet.evaluation.scoring)."""
from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("-p", "--predictions", required=True,
                        help="folder of predicted <case>.mha masks (nnUNetv2_predict output)")
    parser.add_argument("-d", "--dataset", required=True,
                        help="raw dataset folder, or nnU-Net dataset id/name under $nnUNet_raw; where it holds a dense "
                             "truth (a converted phantom), every frame is scored as well")
    parser.add_argument("--subset", default="imagesTs", choices=("imagesTs", "imagesTr"),
                        help="which split's labels to score against (default imagesTs)")
    parser.add_argument("-o", "--output", required=True, help="report folder (summary.json, report.md, CSVs, figures)")
    parser.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples of videos (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip (and list) cases with bad input instead of failing")
    parser.add_argument("--no-video-plots", action="store_true", help="do not draw one area-curve PNG per video")


def run(args) -> int:
    from unilvseg_nnunet.errors import UnilvsegError
    from unilvseg_nnunet.evaluation.reports import markdown_report
    from unilvseg_nnunet.evaluation.scoring import evaluate

    if args.n_boot < 1:
        raise UnilvsegError(f"--n-boot must be positive, got {args.n_boot}")
    summary = evaluate(args.predictions, args.dataset, args.output, subset=args.subset, n_boot=args.n_boot,
                       seed=args.seed, skip_bad=args.skip_bad, video_plots=not args.no_video_plots)
    print(markdown_report(summary).split("\n## Temporal")[0])
    print(f"report written to {args.output}/ (summary.json, report.md, per_frame.csv, per_video.csv, *.png)")
    return 0
