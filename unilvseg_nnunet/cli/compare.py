"""``unilvseg compare``: Table-I style comparison of trained models on one test split (see unilvseg_nnunet.evaluation.compare)."""
from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("-d", "--dataset", required=True, help="raw dataset folder, or nnU-Net dataset id/name under $nnUNet_raw")
    parser.add_argument("-m", "--model", dest="models", action="append", required=True, metavar="NAME=MODEL_FOLDER",
                        help="a trained model (nnU-Net trainer output folder) and its name in the table; repeat per model")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (comparison.json, comparison.md, bubble.png, per-model folders)")
    parser.add_argument("-device", "--device", default=None, choices=("cpu", "cuda"),
                        help="device for prediction and timing (default: cuda when PyTorch sees a GPU, else cpu)")
    parser.add_argument("-f", "--folds", nargs="+", default=None, help="fold(s) of every model (default: all with the checkpoint)")
    parser.add_argument("--checkpoint", "-chk", default="checkpoint_final.pth", help="checkpoint file name")
    parser.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples of videos (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--video-plots", action="store_true", help="also draw one area-curve PNG per video and model")


def run(args) -> int:
    from unilvseg_nnunet.evaluation.compare import compare, comparison_markdown, parse_models
    from unilvseg_nnunet.inference.predictor import parse_folds

    result = compare(args.dataset, parse_models(args.models), args.output, device=args.device, folds=parse_folds(args.folds),
                     checkpoint=args.checkpoint, n_boot=args.n_boot, seed=args.seed, video_plots=args.video_plots)
    print(comparison_markdown(result))
    print(f"written to {args.output}/ (comparison.json, comparison.md, bubble.png)")
    return 0
