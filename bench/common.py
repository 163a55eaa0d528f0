"""Shared helpers of the benchmark scripts (not a benchmark itself).

- a phantom nnU-Net dataset (synthesised, converted, planned and preprocessed with the real
  commands), cached in a work folder and reused while its parameters do not change;
- the nnU-Net environment for that folder (set it before nnunetv2 is first imported);
- subprocesses timed with their peak resident memory and the moment a marker line appears;
- results written to ``bench_out/<name>.json`` with the machine they came from.

Every bench script runs as ``python bench/<name>.py`` and imports this module from its folder.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from unilvseg_nnunet import workspace  # noqa: E402
from unilvseg_nnunet.workspace import command  # noqa: E402,F401  (used by the bench scripts)

OUT = REPO / "bench_out"
START_LOAD = os.getloadavg()[0]  # load average when the bench script started
DATASET_ID = 950
DATASET_NAME = f"Dataset{DATASET_ID}_Bench"

# phantom sizes: (videos, frames (min, max), splits (TRAIN, VAL, TEST)); training needs few cases
DATASETS = {"small": (5, (36, 48), (3, 1, 1)), "full": (8, (60, 120), (6, 1, 1))}

# configuration name -> arguments of `unilvseg plan -d ID`
PLAN_ARGS = {
    "3d_temporal": [],
    "3d_temporal_unet_s": ["--arch", "unet_s"],
    "3d_temporal_f8t1_unet_s": ["--frames", "8", "--arch", "unet_s"],
    "si_f16t5": ["--super-image", "--frames", "16", "--period", "5"],
    "si_f4t1": ["--super-image", "--frames", "4", "--period", "1"],
}


def parser(doc: str) -> argparse.ArgumentParser:
    """Argument parser with the options every bench script shares."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="tiny sizes: checks the script end to end in minutes")
    p.add_argument("--workdir", type=Path, default=OUT / "work",
                   help="cache of phantom data, nnU-Net folders and models (default bench_out/work)")
    p.add_argument("--out", type=Path, default=OUT, help="folder for the results JSON (default bench_out)")
    return p


def truth_and_predictions(doc: str, argv=None) -> tuple[argparse.Namespace, list[str], str]:
    """Arguments of the scripts that read prediction folders against the phantom's every-frame truth: the raw
    dataset and the folders. Returns (arguments, test cases, file ending)."""
    from unilvseg_nnunet.data.dataset import subset_cases

    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("dataset", type=Path, help="nnU-Net raw dataset folder with every-frame truth (the phantom's)")
    p.add_argument("predictions", type=Path, nargs="+")
    args = p.parse_args(argv)
    _, cases, ending = subset_cases(args.dataset, "imagesTs")
    return args, cases, ending


def nnunet_env(workdir: Path) -> dict:
    """The package's workspace environment on ``workdir`` (works uninstalled too: the checkout is on PYTHONPATH)."""
    env = workspace.nnunet_env(workdir)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


def use_env(workdir: Path) -> dict:
    """Apply :func:`nnunet_env` to this process (before nnunetv2 is imported) and return it."""
    if "nnunetv2.paths" in sys.modules:
        raise RuntimeError("use_env must run before nnunetv2 is imported (nnunetv2.paths reads the variables once)")
    env = nnunet_env(workdir)
    os.environ.update(env)
    return env


def run(cmd: list[str], env: dict, log: Path | None = None) -> None:
    """Run a workspace command; raise with its output tail on failure."""
    workspace.run(cmd, env, log=log)


def plans_path(workdir: Path) -> Path:
    return workdir / "nnUNet_preprocessed" / DATASET_NAME / "nnUNetPlans.json"


def source_hash() -> str:
    """Hash of the code that makes the cached data and models (our package, the conversion script)."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted([*(REPO / "unilvseg_nnunet").rglob("*.py"), REPO / "conversion" / "echonet_to_nnunet.py"]):
        if path.is_file():
            h.update(str(path.relative_to(REPO)).encode() + path.read_bytes())
    return h.hexdigest()[:16]


def prepare_dataset(workdir: Path, small: bool, configurations=()) -> Path:
    """The cached phantom dataset of ``workdir`` with ``configurations`` planned; returns its plans path.

    First call (or after a size or code change: the cache, trained models included, is rebuilt
    whenever our package's sources change): phantom -> conversion/echonet_to_nnunet.py ->
    nnUNetv2_plan_and_preprocess -c 2d 3d_fullres; each missing configuration is then added with
    ``unilvseg plan``. Call :func:`use_env` first.
    """
    n, frames, splits = DATASETS["small" if small else "full"]
    key = {"n": n, "frames": list(frames), "splits": list(splits), "sources": source_hash()}
    marker = workdir / "dataset_params.json"
    env = nnunet_env(workdir)
    if not (marker.is_file() and json.loads(marker.read_text()) == key and plans_path(workdir).is_file()):
        import shutil

        from unilvseg_nnunet.data.phantom import synthesize

        for sub in ("echonet", f"nnUNet_raw/{DATASET_NAME}", f"nnUNet_preprocessed/{DATASET_NAME}", f"nnUNet_results/{DATASET_NAME}"):
            shutil.rmtree(workdir / sub, ignore_errors=True)
        marker.unlink(missing_ok=True)
        print(f"preparing phantom dataset {DATASET_NAME} in {workdir}: {n} videos of {frames[0]}-{frames[1]} frames", flush=True)
        synthesize(workdir / "echonet", n=n, seed=0, frames=frames, splits=splits)
        run([sys.executable, str(REPO / "conversion" / "echonet_to_nnunet.py"), str(workdir / "echonet"), "-d", str(DATASET_ID),
             "-n", "Bench", "-np", "2", "--no-progress"], env)
        run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "2d", "3d_fullres", "-np", "2"], env)
        marker.write_text(json.dumps(key))
    planned = json.loads(plans_path(workdir).read_text())["configurations"]
    for name in configurations:
        if name not in planned and name in PLAN_ARGS:
            run(["unilvseg", "plan", "-d", str(DATASET_ID), *PLAN_ARGS[name]], env)
    return plans_path(workdir)


def load_plans(workdir: Path) -> tuple[dict, dict]:
    """(plans, dataset.json) of the bench dataset."""
    folder = plans_path(workdir).parent
    return json.loads((folder / "nnUNetPlans.json").read_text()), json.loads((folder / "dataset.json").read_text())


# --- measured subprocesses ----------------------------------------------------------------------

def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def _memory_mb(pid: int) -> float:
    """Proportional set size of one process (its own pages plus its share of shared ones), MB."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    try:  # no smaps_rollup: resident set size
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_memory_mb(pid: int) -> float:
    """Memory of ``pid`` and its descendants: the sum of their proportional set sizes (MB), so
    libraries shared between worker processes count once."""
    children, todo, total = _children_map(), [pid], 0.0
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        total += _memory_mb(p)
    return total


# Launches the command from a small process and reports its ru_maxrss: a child forked straight
# from a big bench process would inherit that process's high-water mark (Linux keeps it across exec).
_LAUNCHER = ("import os, subprocess, sys\n"
             "p = subprocess.Popen(sys.argv[2:])\n"
             "_, status, usage = os.wait4(p.pid, 0)\n"
             "p.returncode = os.waitstatus_to_exitcode(status)\n"
             "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
             "sys.exit(p.returncode)\n")


def run_measured(cmd: list[str], env: dict, log: Path, marker: str | None = None, sample_s: float = 0.25) -> dict:
    """Run ``cmd``; return wall time, peak resident memory of its largest process (``ru_maxrss``
    of the process and its waited-for descendants), peak memory of its whole process tree (sum of
    proportional set sizes, sampled every ``sample_s``) and the seconds until the first output line
    containing ``marker`` (None if never) and until each such line (``marker_times``). Output goes to ``log``;
    a non-zero exit raises with its tail."""
    cmd = command(cmd)
    log.parent.mkdir(parents=True, exist_ok=True)
    rss_file = log.with_suffix(".maxrss")
    rss_file.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, str(rss_file), *cmd], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    marks: list[float] = []
    lines: list[str] = []

    def read():
        for line in proc.stdout:
            if marker and marker in line:
                marks.append(time.perf_counter() - t0)
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, tree_memory_mb(proc.pid))
        time.sleep(sample_s)
    wall = time.perf_counter() - t0
    reader.join(10)
    log.write_text("".join(lines))
    if proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{''.join(lines)[-4000:]}")
    return {"wall_s": wall, "max_rss_mb": int(rss_file.read_text()) / 1024,  # Linux: kilobytes
            "tree_memory_peak_mb": peak, "marker_s": marks[0] if marks else None, "marker_times": marks}


# --- machine and results ------------------------------------------------------------------------

def machine() -> dict:
    """CPU model, cores, memory, GPU (if any), library versions, load average and date of this run."""
    info = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "hostname": platform.node(), "python": platform.python_version()}
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
        info["cpu"] = model.group(1).strip() if model else platform.processor()
        mem = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        info["memory_gib"] = round(int(mem.group(1)) / 2**20, 1) if mem else None
    except OSError:
        info["cpu"] = platform.processor()
    info["cores"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info["load_average_start"], info["load_average_end"] = START_LOAD, os.getloadavg()[0]
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    try:
        from importlib.metadata import version

        info["nnunetv2"] = version("nnunetv2")
    except Exception:  # noqa: BLE001 - informative only
        pass
    return info


def write_result(name: str, result: dict, out: Path) -> Path:
    """Write ``out/<name>.json`` with the result, the command line and the machine; return its path."""
    from unilvseg_nnunet.files import write_json

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    write_json(path, {"command": "python " + " ".join([os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]]),
                      "machine": machine(), **result})
    return path
