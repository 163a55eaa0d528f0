"""``unilvseg time-filter``: a Gaussian filter along time on an nnUNetv2_predict folder's probabilities
(see unilvseg_nnunet.inference.time_filter)."""
from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("-i", "--input", required=True,
                        help="folder written by nnUNetv2_predict with --save_probabilities (<case>.npz beside each mask)")
    parser.add_argument("-o", "--output", required=True, help="folder for the filtered masks (same names)")
    parser.add_argument("--sigma", type=float, default=1.5,
                        help="standard deviation of the Gaussian in frames (default 1.5; see BENCHMARKS.md)")


def run(args) -> int:
    from unilvseg_nnunet.errors import UnilvsegError
    from unilvseg_nnunet.inference.time_filter import filter_predictions

    if args.sigma < 0:
        raise UnilvsegError(f"--sigma must be >= 0, got {args.sigma}")
    result = filter_predictions(args.input, args.output, args.sigma)
    for case, message in result["failed"].items():
        print(f"skipped {case}: {message}")
    print(f"{len(result['written'])} of {len(result['written']) + len(result['failed'])} cases filtered "
          f"(sigma {args.sigma:g} frames) into {args.output}")
    return 1 if result["failed"] else 0
