"""The project's habits and packaging: the linter passes, and a non-editable install finds our trainers."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_passes_on_the_tree():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(REPO)], capture_output=True, text=True,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_wheel_install_finds_the_trainers(tmp_path):
    """Build a wheel from the sources, install it (not editable) into a fresh folder, and let nnU-Net's own
    trainer finder look for our trainers in the folder `unilvseg env` prints."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "unilvseg_nnunet", src / "unilvseg_nnunet", ignore=shutil.ignore_patterns("__pycache__"))
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)],
                   check=True, capture_output=True, text=True)
    wheel = next(wheels.glob("unilvseg_nnunet-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    code = """
import os
import unilvseg_nnunet
from unilvseg_nnunet.training import TRAINER_FOLDER
os.environ["nnUNet_extTrainer"] = str(TRAINER_FOLDER)
from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
import unilvseg_nnunet.training.trainers as ours
found = recursive_find_trainer_class_by_name("SparseTemporalTrainer")
print(unilvseg_nnunet.__file__, TRAINER_FOLDER, found is ours.SparseTemporalTrainer)
"""
    env = dict(os.environ, PYTHONPATH=str(target))
    env.pop("nnUNet_extTrainer", None)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    module_file, folder, same_class = proc.stdout.split()[-3:]
    assert Path(module_file).is_relative_to(target), f"imported {module_file}, not the installed wheel"
    assert Path(folder).is_relative_to(target) and (Path(folder) / "unilvseg_trainers.py").is_file()
    assert same_class == "True"
