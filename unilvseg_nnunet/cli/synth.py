"""``unilvseg synth OUT_DIR --n N``: write a phantom dataset (nothing to download): EchoNet-Dynamic format by
default, or a CAMUS-style one in either CAMUS release (``--format camus-nifti|camus-mhd``, ``--n`` patients)."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

FORMATS = ("echonet", "camus-nifti", "camus-mhd")


def add_arguments(parser) -> None:
    from unilvseg_nnunet.data.phantom import ARTEFACT_LEVELS

    parser.add_argument("out_dir", type=Path, help="folder to write (Videos/, FileList.csv, VolumeTracings.csv, "
                                                   "DenseTruth/, CorruptedFrames.csv)")
    parser.add_argument("--format", choices=FORMATS, default="echonet",
                        help="echonet (default): EchoNet-Dynamic layout; camus-nifti / camus-mhd: CAMUS-style half "
                             "sequences (ED to ES) with LV, myocardium and left atrium labels, 160x200 frames of 0.6 mm, "
                             "in CAMUS's NIfTI release (every frame labeled, split files) or its original MetaImage one; "
                             "--n is then the number of patients (two views each) and the frame and artefact options "
                             "do not apply")
    parser.add_argument("--n", type=int, default=20, help="number of videos, or of patients for CAMUS (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same dataset")
    parser.add_argument("--min-frames", type=int, default=28, help="fewest frames per video (default 28)")
    parser.add_argument("--max-frames", type=int, default=200, help="most frames per video (default 200)")
    parser.add_argument("--splits", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                        help="video counts per split, summing to --n (default about 70/15/15 %%)")
    parser.add_argument("--fps", type=float, default=50.0, help="frame rate written to the videos and FileList")
    parser.add_argument("--artefacts", choices=ARTEFACT_LEVELS, default="mild",
                        help="none: clean views; mild (default): static wall dropouts, clutter, a few noisy and "
                             "blank untraced frames; moderate / severe: frame artefacts (near-blank, shadow, noise "
                             "burst, blur, wall dropout) on 1/8 / 1/4 of the frames of every video, traced ones "
                             "included; listed in CorruptedFrames.csv")
    parser.add_argument("--labeled-train", type=int, default=None, metavar="K",
                        help="low-label setting: only the first K TRAIN videos get tracings, the other TRAIN videos "
                             "are listed untraced (convert with --include-unlabeled to keep them for pretraining)")


def run(args) -> int:
    from unilvseg_nnunet.data.echonet import FILELIST, SPLITS, read_filelist
    from unilvseg_nnunet.data.phantom import synthesize

    start = time.perf_counter()
    if args.format != "echonet":
        return run_camus(args, start)
    out = synthesize(args.out_dir, n=args.n, seed=args.seed, frames=(args.min_frames, args.max_frames),
                     splits=args.splits, fps=args.fps, artefacts=args.artefacts, labeled_train=args.labeled_train)
    splits = Counter(r["Split"] for r in read_filelist(out / FILELIST))
    labeled = "" if args.labeled_train is None else f", {args.labeled_train} TRAIN traced"
    print(f"wrote {args.n} phantom videos ({', '.join(f'{splits[k]} {k}' for k in SPLITS)}{labeled}; "
          f"{args.min_frames}-{args.max_frames} frames; artefacts {args.artefacts}) in EchoNet-Dynamic format "
          f"with the true LV of every frame to {out} in {time.perf_counter() - start:.1f} s")
    return 0


ECHONET_ONLY = {"min_frames": 28, "max_frames": 200, "fps": 50.0, "artefacts": "mild", "labeled_train": None}


def run_camus(args, start: float) -> int:
    from unilvseg_nnunet.data.camus_phantom import FOLDERS, synthesize_camus
    from unilvseg_nnunet.errors import UnilvsegError

    fmt = args.format.split("-", 1)[1]
    given = [f"--{k.replace('_', '-')}" for k, default in ECHONET_ONLY.items() if getattr(args, k) != default]
    if given:
        raise UnilvsegError(f"{', '.join(given)}: EchoNet phantom option(s), not used by --format {args.format}")
    if args.splits is not None and fmt == "mhd":
        raise UnilvsegError("--splits: the MetaImage release has no split files (use --format camus-nifti)")
    out = synthesize_camus(args.out_dir, n_patients=args.n, seed=args.seed, fmt=fmt, splits=args.splits)
    print(f"wrote {args.n} CAMUS-style phantom patients (2CH and 4CH half sequences, {fmt} release) to "
          f"{out / FOLDERS[fmt]} in {time.perf_counter() - start:.1f} s; convert with `unilvseg convert camus {out}`")
    return 0
