"""How far apart the traced frames of each video are, and how many videos a training clip can hold both of::

    python bench/traced_frame_gaps.py ECHONET_DIR [--frames 8] [--period 1] [--stretch 1 3]

ECHONET_DIR holds FileList.csv and VolumeTracings.csv (EchoNet-Dynamic or the phantom). For each ``--stretch`` S, counts
the videos whose training clips, drawn by :func:`~unilvseg_nnunet.training.sampling.clip_frames` as the training
loader draws them, hold both traced frames (S=1: the trainers' default; S=3: ``SparseTemporalTrainer_stretch3``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    from unilvseg_nnunet.data.echonet import FILELIST, TRACINGS, read_filelist, read_tracings
    from unilvseg_nnunet.training.sampling import clip_frames

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("echonet", type=Path, help="folder with FileList.csv and VolumeTracings.csv")
    p.add_argument("--frames", type=int, default=8, help="clip length F (default 8)")
    p.add_argument("--period", type=int, default=1, help="clip period T (default 1)")
    p.add_argument("--stretch", type=int, nargs="+", default=[1, 3])
    args = p.parse_args(argv)

    lengths = {r["FileName"]: r["NumberOfFrames"] for r in read_filelist(args.echonet / FILELIST)}
    pairs = {name: sorted(f for f in frames if f >= 0) for name, frames in read_tracings(args.echonet / TRACINGS).items()}
    pairs = {name: f for name, f in pairs.items() if len(f) == 2 and lengths.get(name)}
    gaps = np.array([f[1] - f[0] for f in pairs.values()])
    print(f"{len(pairs)} videos with two traced frames; gap {gaps.min()}-{gaps.max()} frames, median {np.median(gaps):g}")
    rng = np.random.default_rng(0)
    for stretch in args.stretch:
        both = sum(set(f) <= set(clip_frames(lengths[name], f, args.frames, args.period, "train", rng, stretch).tolist())
                   for name, f in pairs.items())  # the loader prefers a clip holding both whenever one exists
        print(f"F={args.frames} T={args.period} stretch {stretch}: {both} of {len(pairs)} videos give clips holding both")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
