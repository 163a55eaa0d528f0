"""``unilvseg synth OUT_DIR --n N``: write an EchoNet-Dynamic-format phantom dataset (nothing to download)."""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path


def add_arguments(parser) -> None:
    from unilvseg_nnunet.data.phantom import ARTEFACT_LEVELS

    parser.add_argument("out_dir", type=Path, help="folder to write (Videos/, FileList.csv, VolumeTracings.csv, "
                                                   "DenseTruth/, CorruptedFrames.csv)")
    parser.add_argument("--n", type=int, default=20, help="number of videos (default 20)")
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
    out = synthesize(args.out_dir, n=args.n, seed=args.seed, frames=(args.min_frames, args.max_frames),
                     splits=args.splits, fps=args.fps, artefacts=args.artefacts, labeled_train=args.labeled_train)
    splits = Counter(r["Split"] for r in read_filelist(out / FILELIST))
    labeled = "" if args.labeled_train is None else f", {args.labeled_train} TRAIN traced"
    print(f"wrote {args.n} phantom videos ({', '.join(f'{splits[k]} {k}' for k in SPLITS)}{labeled}; "
          f"{args.min_frames}-{args.max_frames} frames; artefacts {args.artefacts}) in EchoNet-Dynamic format "
          f"with the true LV of every frame to {out} in {time.perf_counter() - start:.1f} s")
    return 0
