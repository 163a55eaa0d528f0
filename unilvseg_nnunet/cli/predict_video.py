"""``unilvseg predict-video``: segment raw echo videos with a trained model (see unilvseg_nnunet.inference.video)."""
from __future__ import annotations


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
    from unilvseg_nnunet.inference.predictor import parse_folds
    from unilvseg_nnunet.inference.video import predict_videos

    summary = predict_videos(args.input, args.model, args.output, folds=parse_folds(args.folds), checkpoint=args.checkpoint,
                             device=args.device, fps=args.fps)
    n_ok, n_bad = len(summary["results"]), len(summary["failed"])
    print(f"{n_ok} video(s) segmented into {args.output}" + (f"; {n_bad} failed (listed above)" if n_bad else ""))
    return 1 if n_bad else 0
