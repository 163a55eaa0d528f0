"""``unilvseg synth OUT_DIR --n N``: write an EchoNet-Dynamic-format phantom dataset (nothing to download)."""
from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("out_dir", type=Path, help="folder to write (Videos/, FileList.csv, VolumeTracings.csv)")
    parser.add_argument("--n", type=int, default=20, help="number of videos (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same dataset")
    parser.add_argument("--min-frames", type=int, default=28, help="fewest frames per video (default 28)")
    parser.add_argument("--max-frames", type=int, default=200, help="most frames per video (default 200)")
    parser.add_argument("--splits", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                        help="video counts per split, summing to --n (default about 70/15/15 %%)")
    parser.add_argument("--fps", type=float, default=50.0, help="frame rate written to the videos and FileList")


def run(args) -> int:
    from unilvseg_nnunet.data.phantom import synthesize

    start = time.perf_counter()
    try:
        out = synthesize(args.out_dir, n=args.n, seed=args.seed, frames=(args.min_frames, args.max_frames),
                         splits=args.splits, fps=args.fps)
    except ValueError as err:
        print(f"unilvseg synth: error: {err}", file=sys.stderr)
        return 2
    splits = Counter(line.rsplit(",", 1)[-1] for line in (out / "FileList.csv").read_text().split()[1:])
    print(f"wrote {args.n} phantom videos ({', '.join(f'{splits[k]} {k}' for k in ('TRAIN', 'VAL', 'TEST'))}; "
          f"{args.min_frames}-{args.max_frames} frames) in EchoNet-Dynamic format to {out} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0
