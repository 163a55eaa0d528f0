"""An nnU-Net workspace for the demo, the benchmarks and the tests: the three data folders in one
place, our trainers visible, and commands run with that environment.

Commands are run as this interpreter on their entry point (``python -c``), so they work whether or
not the console scripts are on PATH and always use the same installation as the caller.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from unilvseg_nnunet.errors import UnilvsegError
from unilvseg_nnunet.training import TRAINER_FOLDER

NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
ENTRY_POINTS = {
    "unilvseg": "unilvseg_nnunet.cli:main",
    "nnUNetv2_plan_and_preprocess": "nnunetv2.experiment_planning.plan_and_preprocess_entrypoints:plan_and_preprocess_entry",
    "nnUNetv2_train": "nnunetv2.run.run_training:run_training_entry",
    "nnUNetv2_predict": "nnunetv2.inference.predict_from_raw_data:predict_entry_point",
    "nnUNetv2_predict_from_modelfolder": "nnunetv2.inference.predict_from_raw_data:predict_entry_point_modelfolder",
}


class CommandError(UnilvsegError):
    """A command of the workspace failed; the message holds the command and the end of its output."""


def nnunet_env(root: str | os.PathLike, base: dict | None = None, threads: int | None = None) -> dict:
    """Environment for nnU-Net commands on ``root``: its own raw/preprocessed/results folders (created),
    our trainer folder, no torch.compile (CPU), few worker processes, unbuffered output."""
    root = Path(root)
    env = dict(os.environ if base is None else base)
    for var in NNUNET_FOLDERS:
        (root / var).mkdir(parents=True, exist_ok=True)
        env[var] = str(root / var)
    env["nnUNet_extTrainer"] = str(TRAINER_FOLDER)
    env.setdefault("nnUNet_compile", "f")
    env.setdefault("nnUNet_n_proc_DA", "1")
    env.setdefault("nnUNet_def_n_proc", "2")  # nnU-Net otherwise starts 8 export workers per prediction
    env["PYTHONUNBUFFERED"] = "1"
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def command(args: list[str]) -> list[str]:
    """``args`` with a known command name replaced by this interpreter running its entry point."""
    if args[0] in ENTRY_POINTS:
        module, func = ENTRY_POINTS[args[0]].split(":")
        code = f"import sys; from {module} import {func}; sys.argv[0] = {args[0]!r}; sys.exit({func}())"
        return [sys.executable, "-c", code, *map(str, args[1:])]
    return [str(a) for a in args]


def run(args: list[str], env: dict, log: str | os.PathLike | None = None, echo=None, timeout: float | None = None) -> str:
    """Run a command of the workspace and return its output (stdout and stderr interleaved).

    ``log``: file that receives the whole output as it arrives; ``echo``: called with each output
    line (progress display); a failure raises :class:`CommandError` with the output's tail.
    """
    lines: list[str] = []
    if log is not None:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
    fh = open(log, "w") if log is not None else None
    try:
        proc = subprocess.Popen(command(args), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            for line in proc.stdout:
                lines.append(line)
                if fh:
                    fh.write(line)
                    fh.flush()
                if echo:
                    echo(line)
            code = proc.wait(timeout=timeout)
        except BaseException:
            proc.kill()
            raise
    finally:
        if fh:
            fh.close()
    output = "".join(lines)
    if code != 0:
        where = f"\nfull log: {log}" if log is not None else ""
        raise CommandError(f"command failed (exit {code}): {' '.join(map(str, args))}\n{output[-5000:]}{where}")
    return output
