"""Shared fixtures: nnU-Net path variables in a temporary folder, one phantom EchoNet-Dynamic
dataset converted and preprocessed once per session, and tiny trained models built with the
real nnU-Net commands on CPU. Fixtures are lazy: a test pays only for what it asks for."""
from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path

import pytest

from unilvseg_nnunet import demo, workspace

REPO = Path(__file__).resolve().parents[1]
DATASET_ID = 901
DATASET_NAME = f"Dataset{DATASET_ID:03d}_Phantom"


def run_cmd(args: list[str], env: dict | None = None, timeout: int = 900) -> str:
    """Run a workspace command with ``env`` and return its output; fail the test with its output. nnU-Net's commands
    run as their own process (this interpreter); ``unilvseg`` runs its subcommand in this process, as its console
    script would, without the seconds a new interpreter spends importing torch."""
    env = env if env is not None else dict(os.environ)
    if args[0] == "unilvseg":
        return _run_unilvseg_here([str(a) for a in args[1:]], env)
    try:
        return workspace.run(args, env, timeout=timeout)
    except workspace.CommandError as e:
        pytest.fail(str(e))


def _run_unilvseg_here(argv: list[str], env: dict) -> str:
    from unilvseg_nnunet.cli import main

    saved, out = dict(os.environ), io.StringIO()
    os.environ.clear()
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                code = main(argv)
            except SystemExit as e:  # argparse
                code = e.code
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if code:
        pytest.fail(f"unilvseg {' '.join(argv)} exited with {code}:\n{out.getvalue()[-4000:]}")
    return out.getvalue()


@pytest.fixture(scope="session")
def nnunet_env(tmp_path_factory) -> dict:
    """Environment with nnU-Net's path variables in a temporary folder and our trainer folder."""
    env = workspace.nnunet_env(tmp_path_factory.mktemp("nnunet"), threads=2)
    env["nnUNet_extTrainer"] = str(REPO / "trainers")  # the checkout's folder, as the README tells users
    env["nnUNet_def_n_proc"] = "1"  # one export/validation worker: each spawned worker first imports torch (seconds)
    return env


def nnunet_accepts(raw_dir: Path) -> None:
    """nnU-Net's own integrity check of a raw dataset (what --verify_dataset_integrity runs), in this process."""
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(raw_dir), num_processes=1)


def references_as_predictions(raw_dir: Path, out: Path) -> Path:
    """The test split's label volumes written as a model would predict them (untraced frames background, the
    references' spacing): a prediction every metric scores as perfect on the traced frames."""
    from unilvseg_nnunet.data.dataset import structure_labels, subset_cases
    from unilvseg_nnunet.files import read_volume_spacing, write_volume

    _, ignore = structure_labels(raw_dir)
    labels, cases, ending = subset_cases(raw_dir, "imagesTs")
    for case in cases:
        volume, spacing = read_volume_spacing(labels / f"{case}{ending}")
        volume[volume == ignore] = 0
        write_volume(out / f"{case}{ending}", volume, spacing)
    return out


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory) -> Path:
    """A small phantom in EchoNet-Dynamic format: 7 TRAIN, 2 VAL, 3 TEST short videos."""
    from unilvseg_nnunet.data.phantom import synthesize

    out = tmp_path_factory.mktemp("echonet_phantom")
    synthesize(out, n=12, seed=0, frames=(30, 48), splits=(7, 2, 3))
    return out


@pytest.fixture(scope="session")
def raw_dataset(phantom_dir, nnunet_env) -> Path:
    """The phantom converted with the real conversion script into $nnUNet_raw/Dataset901_Phantom."""
    run_cmd([sys.executable, str(REPO / "conversion" / "echonet_to_nnunet.py"), str(phantom_dir),
             "-d", str(DATASET_ID), "-n", "Phantom", "-np", "2"], env=nnunet_env)
    return Path(nnunet_env["nnUNet_raw"]) / DATASET_NAME


@pytest.fixture(scope="session")
def preprocessed_dataset(raw_dataset, nnunet_env) -> Path:
    """Stock nnU-Net planning (every configuration) and preprocessing (3d_fullres, which our video
    configurations use) of the converted phantom."""
    run_cmd(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", "3d_fullres",
             "-np", "2", "--verify_dataset_integrity"], env=nnunet_env)
    return Path(nnunet_env["nnUNet_preprocessed"]) / DATASET_NAME


# --- tiny temporal models, trained once per session -------------------------------------------------
TEMPORAL_CONFIGURATION = "3d_temporal_f8t1_unet_s"  # 8-frame clips, paper's 3D U-Net-S: cheap on CPU
CPU_MEMORY_GB = demo.GPU_MEMORY_GB  # memory target of our test plans: nnU-Net's smallest batch (2), as the demo's


def nnunet_model_folder(env: dict, trainer: str, configuration: str) -> Path:
    return Path(env["nnUNet_results"]) / DATASET_NAME / f"{trainer}__nnUNetPlans__{configuration}"


@pytest.fixture(scope="session")
def temporal_configuration(preprocessed_dataset, nnunet_env) -> str:
    """`unilvseg plan -d 901 --frames 8 --arch unet_s` on the stock plans; returns the configuration name."""
    run_cmd(["unilvseg", "plan", "-d", str(DATASET_ID), "--frames", "8", "--arch", "unet_s", "--gpu-memory", str(CPU_MEMORY_GB)],
            env=nnunet_env)
    return TEMPORAL_CONFIGURATION


@pytest.fixture(scope="session")
def tiny_pretrained_checkpoint(temporal_configuration, nnunet_env) -> Path:
    """checkpoint_final.pth of TemporalMaskingPretrainer_smoke (self-supervised, fold 0), real nnUNetv2_train on CPU."""
    run_cmd(["nnUNetv2_train", str(DATASET_ID), temporal_configuration, "0", "-tr", "TemporalMaskingPretrainer_smoke",
             "-device", "cpu"], env=nnunet_env)
    return nnunet_model_folder(nnunet_env, "TemporalMaskingPretrainer_smoke", temporal_configuration) / "fold_0" / "checkpoint_final.pth"


@pytest.fixture(scope="session")
def tiny_3d_model(tiny_pretrained_checkpoint, temporal_configuration, nnunet_env) -> Path:
    """nnU-Net model folder of SparseTemporalTrainer_smoke (fold 0) fine-tuned from the pretrained
    checkpoint with stock -pretrained_weights; predict with -c 3d_temporal_f8t1_unet_s -tr SparseTemporalTrainer_smoke."""
    run_cmd(["nnUNetv2_train", str(DATASET_ID), temporal_configuration, "0", "-tr", "SparseTemporalTrainer_smoke",
             "-device", "cpu", "-pretrained_weights", str(tiny_pretrained_checkpoint)], env=nnunet_env)
    return nnunet_model_folder(nnunet_env, "SparseTemporalTrainer_smoke", temporal_configuration)
