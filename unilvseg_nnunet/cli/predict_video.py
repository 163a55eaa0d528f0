"""``unilvseg predict-video``: segment raw echo videos with a trained model (see unilvseg_nnunet.inference.video)."""
from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("input", help="an EchoNet-style video (.avi) or a folder of videos")
    parser.add_argument("-m", "--model", required=True,
                        help="nnU-Net trainer output folder, e.g. "
                             "$nnUNet_results/Dataset114_EchoNet/SparseTemporalTrainer__nnUNetPlans__3d_temporal")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument("-f", "--folds", nargs="+", default=None,
                        help="fold(s) to use (ensemble if several); default: every fold with the checkpoint")
    parser.add_argument("--checkpoint", "-chk", default="checkpoint_final.pth",
                        help="checkpoint file name (default checkpoint_final.pth)")
    parser.add_argument("-device", "--device", default=None, choices=("cpu", "cuda"),
                        help="cpu or cuda (default: cuda when PyTorch sees a GPU, else cpu)")
    parser.add_argument("--fps", type=float, default=None,
                        help="frame rate to assume (default: the video's own, else 50)")
    parser.add_argument("-num_parts", "--num-parts", type=int, default=1,
                        help="split a folder into this many parts, as nnUNetv2_predict does (default 1)")
    parser.add_argument("-part_id", "--part-id", type=int, default=0,
                        help="which part this run segments, 0 .. num_parts - 1 (default 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="segment every video again (default: keep videos finished before with the same model)")
    parser.add_argument("--time-filter", type=float, default=0.0, metavar="SIGMA",
                        help="filter the probabilities along time with a Gaussian of SIGMA frames before the argmax "
                             "(as `unilvseg time-filter`; default 0: none; BENCHMARKS.md measures 1.5)")
    parser.add_argument("--no-resize", action="store_true",
                        help="refuse videos whose frame size differs from the model's instead of resampling them")


def run(args) -> int:
    from unilvseg_nnunet.errors import UnilvsegError
    from unilvseg_nnunet.inference.predictor import parse_folds
    from unilvseg_nnunet.inference.video import predict_videos

    if args.time_filter < 0:
        raise UnilvsegError(f"--time-filter must be >= 0, got {args.time_filter}")
    done = predict_videos(args.input, args.model, args.output, folds=parse_folds(args.folds),
                          checkpoint=args.checkpoint, device=args.device, fps=args.fps, num_parts=args.num_parts,
                          part_id=args.part_id, overwrite=args.overwrite, resize=not args.no_resize,
                          time_filter=args.time_filter)
    n_ok, n_bad, n_kept = len(done["results"]), len(done["failed"]), len(done["kept"])
    print(f"{n_ok} video(s) segmented into {args.output}" + (f", {n_kept} kept from before" if n_kept else "")
          + (f"; {n_bad} failed (listed above)" if n_bad else ""))
    summary = done["summary"]
    if summary is not None:
        flags = summary["flags"]
        for flag, what in (("truncated", "decoded fewer frames than their header announces"),
                           ("black_frames", "hold all-black frames, with no image to segment (frames in their JSON)"),
                           ("ef_unavailable", "have no EF (reason in their JSON)"),
                           ("resized", "were resampled to the model's frame size")):
            if flags[flag]:
                print(f"{len(flags[flag])} video(s) {what}: {', '.join(flags[flag])}")
        if summary["pending"]:
            print(f"{len(summary['pending'])} video(s) of the folder belong to other parts not finished yet")
    return 1 if n_bad else 0
