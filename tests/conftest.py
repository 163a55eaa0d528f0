"""Shared fixtures: nnU-Net path variables in a temporary folder, one phantom EchoNet-Dynamic
dataset converted and preprocessed once per session, and tiny trained models built with the
real nnU-Net commands on CPU. Fixtures are lazy: a test pays only for what it asks for."""
from __future__ import annotations

import contextlib
import importlib
import io
import multiprocessing
import multiprocessing.forkserver
import os
import sys
from pathlib import Path

import pytest

# nnU-Net reads this when first imported: two export/validation workers, not 8; its predictor also computes with at
# most this many threads
os.environ["nnUNet_def_n_proc"] = "2"

# nnU-Net starts every worker pool (fingerprint, integrity check, preprocessing, validation export, prediction) with
# the "spawn" method: each worker is a new interpreter that imports torch and nnU-Net, 4-5 s of a 2-core machine, for
# milliseconds of work on the test phantom. In this process such pools start from a fork server that has imported
# them once, started now so that it loads while the first tests run; the workers run the same nnU-Net functions on
# the same pickled arguments, with the environment of this moment (nnU-Net passes them every path explicitly).
_WORKER_MODULES = ["nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor",
                   "nnunetv2.experiment_planning.verify_dataset_integrity",
                   "nnunetv2.preprocessing.preprocessors.default_preprocessor",
                   "nnunetv2.inference.export_prediction", "nnunetv2.inference.data_iterators"]
_get_context = multiprocessing.get_context
multiprocessing.get_context = lambda method=None: _get_context("forkserver" if method == "spawn" else method)
multiprocessing.set_forkserver_preload(_WORKER_MODULES)
multiprocessing.forkserver.ensure_running()

from unilvseg_nnunet import demo, workspace  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATASET_ID = 901
DATASET_NAME = f"Dataset{DATASET_ID:03d}_Phantom"


def run_cmd(args: list[str], env: dict | None = None, timeout: int = 900) -> str:
    """Run a workspace command with ``env`` and return its output; fail the test with its output.

    ``unilvseg`` and nnU-Net's commands run their entry point in this process, as their console scripts would
    (``sys.argv`` and the environment set, output captured), without the seconds a new interpreter spends importing
    torch and nnU-Net; nnU-Net reads its path variables when called, so each command sees ``env``. Other commands
    (the conversion scripts) run as their own process, within ``timeout`` seconds."""
    env = env if env is not None else dict(os.environ)
    if args[0] in workspace.ENTRY_POINTS:
        return _run_entry_point_here([str(a) for a in args], env)
    try:
        return workspace.run(args, env, timeout=timeout)
    except workspace.CommandError as e:
        pytest.fail(str(e))


@contextlib.contextmanager
def environment(env: dict):
    """This process with exactly ``env`` as its environment, restored afterwards."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _run_entry_point_here(args: list[str], env: dict) -> str:
    module, func = workspace.ENTRY_POINTS[args[0]].split(":")
    entry = getattr(importlib.import_module(module), func)
    saved_argv, out = sys.argv, io.StringIO()
    sys.argv = args
    try:
        with environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                code = entry()
            except SystemExit as e:  # argparse, or an entry point that exits
                code = e.code
    finally:
        sys.argv = saved_argv
    if code:
        pytest.fail(f"{' '.join(args)} exited with {code}:\n{out.getvalue()[-4000:]}")
    return out.getvalue()


def plan_and_preprocess(env: dict, dataset_id: int, *flags: str) -> None:
    """``nnUNetv2_plan_and_preprocess -d ID -c 3d_fullres -np 1 [flags]`` after nnU-Net's own fingerprint extractor,
    run first with the dataset's intensity statistics drawn from 10^6 foreground voxels instead of 10^8 (seconds
    instead of tens of seconds); the command finds that fingerprint and plans from it. The statistics feed only
    nnU-Net's CT normalisation (the plans copy them, nothing else reads them); the phantom's frames are z-scored per
    image, so every configuration, network and preprocessed array is the same."""
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import DatasetFingerprintExtractor

    with environment(env):
        extractor = DatasetFingerprintExtractor(dataset_id, num_processes=1)
        extractor.num_foreground_voxels_for_intensitystats = 1e6
        extractor.run()
    run_cmd(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", "3d_fullres", "-np", "1", *flags], env=env)


@pytest.fixture(scope="session")
def nnunet_env(tmp_path_factory) -> dict:
    """Environment with nnU-Net's path variables in a temporary folder and our trainer folder."""
    env = workspace.nnunet_env(tmp_path_factory.mktemp("nnunet"), threads=2)
    env["nnUNet_extTrainer"] = str(REPO / "trainers")  # the checkout's folder, as the README tells users
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


PHANTOM_FRAMES = (20, 30)  # frames per video: a whole systole in each, and no longer than that proves anything
PHANTOM_SPLITS = (8, 1, 3)  # TRAIN, VAL (what every training validates on), TEST
PHANTOM_SIZE = 64  # frame side in pixels: nnU-Net plans it like EchoNet's 112 (same stages, 16x pooling), at a third of the cost


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory) -> Path:
    """A small phantom in EchoNet-Dynamic format: 8 TRAIN, 1 VAL, 3 TEST short videos."""
    from unilvseg_nnunet.data.phantom import synthesize

    out = tmp_path_factory.mktemp("echonet_phantom")
    synthesize(out, n=12, seed=0, frames=PHANTOM_FRAMES, splits=PHANTOM_SPLITS, size=PHANTOM_SIZE)
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
    plan_and_preprocess(nnunet_env, DATASET_ID, "--verify_dataset_integrity")
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
