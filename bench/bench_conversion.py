#!/usr/bin/env python
"""Conversion speed: our converter against the bare floor of the same work, on the same videos.

Synthesises an EchoNet-format phantom (N videos of about F frames, 112x112 MJPG; cached between
runs) and gives it EchoNet-Dynamic's real conditions: no dense truth, and CSVs of the full dataset
(``--listed`` rows in FileList.csv, 10,030 by default, and 42 VolumeTracings.csv rows for each,
~420k), of which the N videos on disk are the first N FileList rows, converted with ``--max-cases N``
(names without ``.avi`` in FileList.csv, with it in VolumeTracings.csv, as in the real files). Then it
times, for 1 and 2 processes (each measured ``--repeats`` times, best kept):
  floor - decode each video with cv2 and write the same two arrays (image, label) in the same
          format with SimpleITK, nothing else, in a pool of the same size;
  ours  - convert_echonet(..., max_cases=N) into a fresh nnU-Net raw dataset (reading the CSVs, masks,
          metadata, report, atomic writes, dataset.json);
and what the output format costs: compressed .mha and .nii.gz images against uncompressed .mha (2
processes; labels are always compressed).
Prints peak resident memory and, last, the figure: videos/s with 2 processes and the ratio to the floor.

    python bench/bench_conversion.py [--n 200] [--frames 175] [--listed 10030] [--repeats 2]
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


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


def run_ours(src: Path, raw: Path, processes: int, n: int, **kw) -> float:
    from unilvseg_nnunet.data.conversion import convert_echonet

    shutil.rmtree(raw, ignore_errors=True)
    raw.mkdir(parents=True)
    os.environ["nnUNet_raw"] = str(raw)
    t0 = time.perf_counter()
    with redirect_stdout(io.StringIO()):
        convert_echonet(src, 999, "Bench", num_processes=processes, progress=False, max_cases=n, **kw)
    return time.perf_counter() - t0


def planning_time(src: Path, raw: Path, n: int) -> float:
    """Seconds our converter spends before its first video: reading the CSVs and planning the cases."""
    from unilvseg_nnunet.data.conversion import plan_cases

    t0 = time.perf_counter()
    plan_cases(src, raw / "Dataset999_Bench", {"keep_color": False, "file_ending": ".mha", "compress": False},
               False, n)
    return time.perf_counter() - t0


def folder_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


# EchoNet-Dynamic's split sizes, for the rows of videos that are listed but not on disk
REAL_SPLITS = {"TRAIN": 7460, "VAL": 1288, "TEST": 1276}


def real_conditions(src: Path, listed: int, seed: int = 0) -> None:
    """Make a phantom folder look like EchoNet-Dynamic to the converter: no dense truth, and CSVs listing
    ``listed`` videos, the phantom's first (names without ``.avi`` in FileList.csv, with it in
    VolumeTracings.csv); every other listed video gets a FileList row and two traced frames (42 rows),
    copied from a phantom video with jitter, and the tracing blocks of all videos are shuffled."""
    import numpy as np

    from unilvseg_nnunet.data import echonet

    rng = np.random.default_rng(seed)
    shutil.rmtree(src / echonet.DENSE_TRUTH_DIR, ignore_errors=True)
    (src / echonet.CORRUPTED_FRAMES).unlink(missing_ok=True)
    filelist = (src / echonet.FILELIST).read_text().splitlines()
    header, *lines = (src / echonet.TRACINGS).read_text().splitlines()
    blocks = {}
    for line in lines:
        blocks.setdefault(line.split(",", 1)[0], []).append(line)
    templates = [np.array([[float(v) for v in line.split(",")[1:5]] for line in b]) for b in blocks.values()]
    blocks = list(blocks.values())
    n_extra = max(0, listed - (len(filelist) - 1))
    splits = rng.choice(list(REAL_SPLITS), n_extra, p=np.array(list(REAL_SPLITS.values())) / sum(REAL_SPLITS.values()))
    for i in range(n_extra):
        name = "0X" + "".join(f"{d:X}" for d in rng.integers(0, 16, 16))
        frames = int(rng.integers(28, 400))
        edv, esv = rng.uniform(40, 200), rng.uniform(15, 100)
        filelist.append(f"{name},{100 * (edv - esv) / edv:.8g},{esv:.8g},{edv:.8g},112,112,50,{frames},{splits[i]}")
        rows = templates[rng.integers(len(templates))] + rng.normal(0, 0.5, (42, 4))
        ed, es = sorted(rng.choice(frames, 2, replace=False))
        blocks.append([f"{name}.avi,{r[0]:.8g},{r[1]:.8g},{r[2]:.8g},{r[3]:.8g},{ed if k < 21 else es}"
                       for k, r in enumerate(rows)])
    order = rng.permutation(len(blocks))
    (src / echonet.TRACINGS).write_text("\n".join([header, *(line for i in order for line in blocks[i])]) + "\n")
    (src / echonet.FILELIST).write_text("\n".join(filelist) + "\n")


def source_videos(work: Path, n: int, frames: int, listed: int) -> Path:
    """The source folder, synthesised once per (n, frames, listed): a phantom in real conditions."""
    from unilvseg_nnunet.data.phantom import synthesize

    src = work / f"echonet_n{n}_f{frames}_listed{listed}"
    ready = src / "bench_ready"  # written last: a killed preparation is redone
    if not ready.is_file():
        shutil.rmtree(src, ignore_errors=True)
        lo, hi = max(8, frames - 25), max(8, frames + 25)
        t0 = time.perf_counter()
        synthesize(src, n=n, seed=0, frames=(lo, hi))
        real_conditions(src, listed)
        ready.write_text("")
        print(f"synthesised {n} phantom videos of {lo}-{hi} frames, listed among {max(n, listed)} videos, in "
              f"{time.perf_counter() - t0:.0f} s: {src}", flush=True)
    return src


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200, help="number of videos converted (default 200)")
    p.add_argument("--frames", type=int, default=175, help="typical frames per video (default 175, +-25)")
    p.add_argument("--listed", type=int, default=10_030,
                   help="videos listed in the CSVs, as in EchoNet-Dynamic (default 10030; at least --n)")
    p.add_argument("--repeats", type=int, default=2, help="timings per measurement, the best is kept (default 2)")
    p.add_argument("--work", type=Path, default=Path("/tmp/unilvseg_bench_conversion"), help="scratch folder")
    a = p.parse_args(argv)
    from unilvseg_nnunet.data.echonet import FILELIST, TRACINGS, read_filelist

    src = source_videos(a.work, a.n, a.frames, a.listed)
    import nnunetv2.dataset_conversion.generate_dataset_json  # noqa: F401  imported once here, not inside a timing
    import tqdm  # noqa: F401
    listed = read_filelist(src / FILELIST)
    rows = listed[: a.n]
    videos = [src / "Videos" / f"{r['FileName']}.avi" for r in rows]
    n = len(videos)
    frames_total = sum(r["NumberOfFrames"] for r in rows)
    tracing_rows = sum(1 for _ in open(src / TRACINGS)) - 1

    configs = {  # floor and ours of each setting run back to back, rounds interleaved, so noise hits both alike
        "floor  1 proc, .mha": lambda: run_floor(videos, a.work / "floor", 1),
        "ours   1 proc, .mha": lambda: run_ours(src, a.work / "raw", 1, n),
        "floor  2 proc, .mha": lambda: run_floor(videos, a.work / "floor", 2),
        "ours   2 proc, .mha": lambda: run_ours(src, a.work / "raw", 2, n),
        "floor  2 proc, .mha compressed": lambda: run_floor(videos, a.work / "floor", 2, ".mha", True),
        "ours   2 proc, .mha compressed": lambda: run_ours(src, a.work / "raw", 2, n, compress=True),
        "floor  2 proc, .nii.gz": lambda: run_floor(videos, a.work / "floor", 2, ".nii.gz", True),
        "ours   2 proc, .nii.gz": lambda: run_ours(src, a.work / "raw", 2, n, file_ending=".nii.gz", compress=True),
    }
    wall = {k: math.inf for k in configs}
    cpu = {k: math.inf for k in configs}
    sizes = {}
    plan = math.inf
    for _ in range(a.repeats):
        plan = min(plan, planning_time(src, a.work / "raw", n))
        for k, fn in configs.items():
            t0 = os.times()
            w = fn()
            t1 = os.times()
            wall[k] = min(wall[k], w)
            cpu[k] = min(cpu[k], sum(t1[:4]) - sum(t0[:4]))  # user + system, this process and its workers
            if k.startswith("ours"):
                sizes[k.split(", ", 1)[1]] = folder_mib(a.work / "raw")

    print(f"\n{n} videos of {frames_total / n:.0f} frames on average, 112x112 MJPG, converted out of "
          f"{len(listed)} listed ({tracing_rows} VolumeTracings.csv rows); "
          f"best of {a.repeats}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other work on the machine slows the wall clock)")
    print(f"{'':34s} {'videos/s':>9s} {'frames/s':>9s} {'CPU s/video':>12s}")
    for k in configs:
        print(f"{k:34s} {n / wall[k]:9.1f} {frames_total / wall[k]:9.0f} {cpu[k] / n:12.4f}")
    for fmt, size in sizes.items():
        print(f"dataset size {fmt:16s} {size:8.1f} MiB")
    print(f"ours before the first video (reading the CSVs, planning the cases): {plan:.2f} s")
    ratio = {p: wall[f"floor  {p} proc, .mha"] / wall[f"ours   {p} proc, .mha"] for p in (1, 2)}
    ratio_cpu = {p: cpu[f"floor  {p} proc, .mha"] / cpu[f"ours   {p} proc, .mha"] for p in (1, 2)}
    print(f"ratio ours/floor (wall): 1 proc {ratio[1]:.2f}, 2 proc {ratio[2]:.2f}; "
          f"by CPU time: 1 proc {ratio_cpu[1]:.2f}, 2 proc {ratio_cpu[2]:.2f} (goal >= 0.8)")
    for what, d in (("wall time", wall), ("CPU time", cpu)):
        base = d["ours   2 proc, .mha"]
        print(f"output format cost (ours, 2 proc, {what}): compressed .mha images "
              f"{d['ours   2 proc, .mha compressed'] / base:.2f}x plain .mha, .nii.gz {d['ours   2 proc, .nii.gz'] / base:.2f}x")
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
