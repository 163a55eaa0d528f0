#!/usr/bin/env python
"""Conversion speed: our converter against the bare floor of the same work, on the same videos.

Synthesises an EchoNet-format phantom (N videos of about F frames, 112x112 MJPG; cached between
runs), then times, for 1 and 2 processes (each measured ``--repeats`` times, best kept):
  floor - decode each video with cv2 and write the same two arrays (image, label) in the same
          format with SimpleITK, nothing else, in a pool of the same size;
  ours  - convert_echonet() into a fresh nnU-Net raw dataset (CSV parsing, masks, metadata, report,
          atomic writes, dataset.json).
and what the output format costs: compressed .mha and .nii.gz images against uncompressed .mha (2
processes; labels are always compressed).
Prints peak resident memory and, last, the figure: videos/s with 2 processes and the ratio to the floor.

    python bench/bench_conversion.py [--n 100] [--frames 180] [--repeats 2]
"""
from __future__ import annotations

import argparse
import io
import math
import multiprocessing
import os
import resource
import shutil
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unilvseg_nnunet.data.echonet import read_filelist  # noqa: E402


def floor_one(args) -> int:
    """The bare work for one video: cv2 decode, then write the image and a same-sized label array."""
    import cv2
    import numpy as np
    import SimpleITK as sitk

    video, out_dir, ending, compress = args
    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))  # cheaper than stacking frame[..., 0] views
    cap.release()
    image = np.stack(frames)
    stem = Path(video).stem
    sitk.WriteImage(sitk.GetImageFromArray(image), str(Path(out_dir) / f"{stem}_0000{ending}"), useCompression=compress)
    label = np.full_like(image, 2)  # labels are always written compressed, as the converter does
    sitk.WriteImage(sitk.GetImageFromArray(label), str(Path(out_dir) / f"{stem}{ending}"), useCompression=True)
    return len(frames)


def run_floor(videos: list[Path], out: Path, processes: int, ending: str = ".mha", compress: bool = False) -> float:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    jobs = [(v, out, ending, compress) for v in videos]
    t0 = time.perf_counter()
    if processes > 1:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            list(pool.imap_unordered(floor_one, jobs, chunksize=1))
    else:
        list(map(floor_one, jobs))
    return time.perf_counter() - t0


def run_ours(src: Path, raw: Path, processes: int, **kw) -> float:
    from unilvseg_nnunet.data.conversion import convert_echonet

    shutil.rmtree(raw, ignore_errors=True)
    raw.mkdir(parents=True)
    os.environ["nnUNet_raw"] = str(raw)
    t0 = time.perf_counter()
    with redirect_stdout(io.StringIO()):
        convert_echonet(src, 999, "Bench", num_processes=processes, progress=False, **kw)
    return time.perf_counter() - t0


def folder_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def source_videos(work: Path, n: int, frames: int) -> Path:
    """The phantom source folder, synthesised once per (n, frames)."""
    from unilvseg_nnunet.data.phantom import synthesize

    src = work / f"echonet_n{n}_f{frames}"
    if not (src / "FileList.csv").is_file():
        shutil.rmtree(src, ignore_errors=True)
        lo, hi = max(8, frames - 10), max(8, frames + 10)
        t0 = time.perf_counter()
        synthesize(src, n=n, seed=0, frames=(lo, hi))
        print(f"synthesised {n} phantom videos of {lo}-{hi} frames in {time.perf_counter() - t0:.0f} s: {src}", flush=True)
    return src


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100, help="number of videos (default 100)")
    p.add_argument("--frames", type=int, default=180, help="typical frames per video (default 180, +-10)")
    p.add_argument("--repeats", type=int, default=2, help="timings per measurement, the best is kept (default 2)")
    p.add_argument("--work", type=Path, default=Path("/tmp/unilvseg_bench_conversion"), help="scratch folder")
    a = p.parse_args(argv)

    src = source_videos(a.work, a.n, a.frames)
    import nnunetv2.dataset_conversion.generate_dataset_json  # noqa: F401  imported once here, not inside a timing
    import tqdm  # noqa: F401
    videos = sorted((src / "Videos").glob("*.avi"))
    n = len(videos)
    frames_total = sum(r["NumberOfFrames"] for r in read_filelist(src / "FileList.csv"))

    configs = {  # floor and ours of each setting run back to back, rounds interleaved, so noise hits both alike
        "floor  1 proc, .mha": lambda: run_floor(videos, a.work / "floor", 1),
        "ours   1 proc, .mha": lambda: run_ours(src, a.work / "raw", 1),
        "floor  2 proc, .mha": lambda: run_floor(videos, a.work / "floor", 2),
        "ours   2 proc, .mha": lambda: run_ours(src, a.work / "raw", 2),
        "floor  2 proc, .mha compressed": lambda: run_floor(videos, a.work / "floor", 2, ".mha", True),
        "ours   2 proc, .mha compressed": lambda: run_ours(src, a.work / "raw", 2, compress=True),
        "floor  2 proc, .nii.gz": lambda: run_floor(videos, a.work / "floor", 2, ".nii.gz", True),
        "ours   2 proc, .nii.gz": lambda: run_ours(src, a.work / "raw", 2, file_ending=".nii.gz", compress=True),
    }
    wall = {k: math.inf for k in configs}
    cpu = {k: math.inf for k in configs}
    sizes = {}
    for _ in range(a.repeats):
        for k, fn in configs.items():
            t0 = os.times()
            w = fn()
            t1 = os.times()
            wall[k] = min(wall[k], w)
            cpu[k] = min(cpu[k], sum(t1[:4]) - sum(t0[:4]))  # user + system, this process and its workers
            if k.startswith("ours"):
                sizes[k.split(", ", 1)[1]] = folder_mib(a.work / "raw")

    print(f"\n{n} videos of {frames_total / n:.0f} frames on average, 112x112 MJPG; best of {a.repeats}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other work on the machine slows the wall clock)")
    print(f"{'':34s} {'videos/s':>9s} {'frames/s':>9s} {'CPU s/video':>12s}")
    for k in configs:
        print(f"{k:34s} {n / wall[k]:9.1f} {frames_total / wall[k]:9.0f} {cpu[k] / n:12.4f}")
    for fmt, size in sizes.items():
        print(f"dataset size {fmt:16s} {size:8.1f} MiB")
    ratio = {p: wall[f"floor  {p} proc, .mha"] / wall[f"ours   {p} proc, .mha"] for p in (1, 2)}
    ratio_cpu = {p: cpu[f"floor  {p} proc, .mha"] / cpu[f"ours   {p} proc, .mha"] for p in (1, 2)}
    print(f"ratio ours/floor (wall): 1 proc {ratio[1]:.2f}, 2 proc {ratio[2]:.2f}; "
          f"by CPU time: 1 proc {ratio_cpu[1]:.2f}, 2 proc {ratio_cpu[2]:.2f} (goal >= 0.8)")
    for what, d in (("wall time", wall), ("CPU time", cpu)):
        base = d["ours   2 proc, .mha"]
        print(f"output format cost (ours, 2 proc, {what}): compressed .mha images {d['ours   2 proc, .mha compressed'] / base:.2f}x "
              f"plain .mha, .nii.gz {d['ours   2 proc, .nii.gz'] / base:.2f}x")
    self_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: main process {self_mib:.0f} MiB, largest worker {child_mib:.0f} MiB")
    shutil.rmtree(a.work / "raw", ignore_errors=True)
    shutil.rmtree(a.work / "floor", ignore_errors=True)
    print(f"conversion: {n / wall['ours   2 proc, .mha']:.1f} videos/s with 2 processes "
          f"({n / wall['ours   1 proc, .mha']:.1f} with 1), {ratio[2]:.2f} of the floor "
          f"({n / wall['floor  2 proc, .mha']:.1f} videos/s; {ratio_cpu[2]:.2f} by CPU time) [goal >= 15 videos/s and >= 0.8]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
