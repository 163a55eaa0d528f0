"""Video training through nnU-Net's own commands on the phantom (CPU): trainers are found with class
identity kept, augmentation keeps time in order, self-supervised pretraining hands its weights to the
sparse trainer through stock -pretrained_weights, prediction gives a mask for every frame, and
`nnUNetv2_train ID 3d_fullres 0 -tr SparseTemporalTrainer` adapts the stock plan."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import unilvseg_nnunet.training.trainers as trainers
from conftest import DATASET_ID, REPO, nnunet_model_folder, run_cmd
from unilvseg_nnunet.training import TRAINER_FOLDER
from unilvseg_nnunet.data.dataset import IGNORE
from unilvseg_nnunet.files import read_volume, write_volume
from unilvseg_nnunet.training.trainers.video_transforms import video_training_transforms


@pytest.mark.parametrize("folder", [REPO / "trainers", TRAINER_FOLDER])
def test_nnunet_finds_our_trainers_with_class_identity(folder, monkeypatch):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    monkeypatch.setenv("nnUNet_extTrainer", str(folder))
    for name in trainers.__all__:
        assert recursive_find_trainer_class_by_name(name) is getattr(trainers, name)
    assert not any(m.startswith("unilvseg_trainers") for m in sys.modules)  # nnU-Net dropped the shim module


def test_env_prints_the_trainer_folder():
    out = subprocess.run([str(Path(sys.executable).parent / "unilvseg"), "env"], capture_output=True, text=True, check=True).stdout
    assert f"export nnUNet_extTrainer={TRAINER_FOLDER}" in out
    assert (TRAINER_FOLDER / "unilvseg_trainers.py").is_file()


def test_video_augmentation_never_reorders_time():
    torch.manual_seed(0)
    frames = 8
    image = torch.arange(frames, dtype=torch.float32)[None, :, None, None].expand(1, frames, 48, 48).contiguous()
    seg = torch.full((1, frames, 48, 48), IGNORE, dtype=torch.int16)
    seg[0, 2] = 0
    seg[0, 2, 10:30, 10:30] = 1
    seg[0, 5] = 0
    t = video_training_transforms((frames, 32, 32), (-np.pi / 12, np.pi / 12), (1, 2), None, IGNORE)
    for _ in range(60):
        out = t(image=image.clone(), segmentation=seg.clone())
        img, lab = out["image"][0], out["segmentation"][0]
        centre = img[:, 12:20, 12:20].flatten(1).median(1).values
        assert torch.all(centre[1:] > centre[:-1]), centre  # frame order kept (same monotone intensity change on every frame)
        labeled = (lab != IGNORE).flatten(1).any(1)
        assert torch.nonzero(labeled).flatten().tolist() == [2, 5]  # labeled frames stay, unlabeled stay fully ignore
        assert (lab[5] == 0).all() and (lab[~labeled] == IGNORE).all()
    with pytest.raises(ValueError, match="reverse"):
        video_training_transforms((frames, 32, 32), 0.1, (0, 1, 2), None, IGNORE)



def _env_in_process(monkeypatch, env):
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer", "nnUNet_compile", "nnUNet_n_proc_DA"):
        monkeypatch.setenv(var, env[var])


@pytest.mark.nnunet
def test_pretraining_is_self_supervised_and_saves_cpu_tensors(tiny_pretrained_checkpoint):
    ckpt = torch.load(tiny_pretrained_checkpoint, weights_only=False)  # as -pretrained_weights loads it: no map_location
    assert ckpt["trainer_name"] == "TemporalMaskingPretrainer_smoke"
    assert all(v.device.type == "cpu" for v in ckpt["network_weights"].values())
    heads = {k: v.shape for k, v in ckpt["network_weights"].items() if ".seg_layers." in k}
    assert heads and all(s[0] == 1 for s in heads.values())  # reconstruction head: one output per input channel
    summary = json.loads((tiny_pretrained_checkpoint.parent / "validation" / "summary.json").read_text())
    assert np.isfinite(summary["mean"]) and summary["mask_ratio"] == 0.6 and summary["per_case"]


@pytest.mark.nnunet
def test_finetuning_loads_the_pretrained_weights_except_the_head(tiny_pretrained_checkpoint, temporal_configuration,
                                                                 tiny_3d_model, nnunet_env, monkeypatch):
    from nnunetv2.run.run_training import get_trainer_from_args, maybe_load_checkpoint

    _env_in_process(monkeypatch, nnunet_env)
    # what nnUNetv2_train -pretrained_weights does, stopped before training so the weights can be compared
    trainer = get_trainer_from_args(str(DATASET_ID), temporal_configuration, 0, "SparseTemporalTrainer", device=torch.device("cpu"))
    maybe_load_checkpoint(trainer, False, False, str(tiny_pretrained_checkpoint))
    pretrained = torch.load(tiny_pretrained_checkpoint, weights_only=False)["network_weights"]
    loaded = trainer.network.state_dict()
    body = [k for k in loaded if ".seg_layers." not in k]
    assert body and all(torch.equal(loaded[k], pretrained[k]) for k in body)
    assert all(loaded[k].shape[0] == 2 for k in loaded if ".seg_layers." in k and k.endswith("weight"))
    assert (tiny_3d_model / "fold_0" / "checkpoint_final.pth").is_file()
    log = "".join(p.read_text() for p in (tiny_3d_model / "fold_0").glob("training_log_*.txt"))
    assert "video clips: 8 frames at period 1" in log


@pytest.mark.nnunet
def test_prediction_gives_a_mask_for_every_frame(tiny_3d_model, temporal_configuration, raw_dataset, nnunet_env, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    cases = sorted((raw_dataset / "imagesTs").glob("*_0000.mha"))[:1]
    for c in cases:
        (inputs / c.name).symlink_to(c)
    short = read_volume(cases[0])[:5]  # shorter than a clip: padded by nnU-Net's sliding window
    write_volume(inputs / "short_0000.mha", short)
    out = tmp_path / "out"
    run_cmd(["nnUNetv2_predict", "-i", str(inputs), "-o", str(out), "-d", str(DATASET_ID), "-c", temporal_configuration,
             "-tr", "SparseTemporalTrainer_smoke", "-f", "0", "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1"], env=nnunet_env)
    for c in [*cases, inputs / "short_0000.mha"]:
        image = read_volume(c)
        pred = read_volume(out / c.name.replace("_0000.mha", ".mha"))
        assert pred.shape == image.shape and set(np.unique(pred)) <= {0, 1}


@pytest.mark.nnunet
def test_stock_3d_fullres_is_adapted_and_predicts_with_the_same_network(preprocessed_dataset, raw_dataset, nnunet_env,
                                                                        monkeypatch, tmp_path):
    from nnunetv2.run.run_training import get_trainer_from_args

    _env_in_process(monkeypatch, nnunet_env)
    trainer = get_trainer_from_args(str(DATASET_ID), "3d_fullres", 0, "SparseTemporalTrainer", device=torch.device("cpu"))
    assert trainer.configuration_manager.patch_size == [32, 112, 112] and trainer.frames == 32
    trainer.on_train_start()  # what nnUNetv2_train does first: data loaders, plans.json into the model folder
    try:
        batch = next(trainer.dataloader_train)
        assert batch["data"].shape[2:] == (32, 112, 112) and isinstance(batch["target"], list)
        assert all((t != IGNORE).flatten(2).any(2).any() for t in batch["target"])  # every DS scale keeps labels
    finally:
        trainer.on_train_end()  # saves checkpoint_final.pth (untrained weights) and stops the workers
    folder = nnunet_model_folder(nnunet_env, "SparseTemporalTrainer", "3d_fullres")
    saved = json.loads((folder / "plans.json").read_text())["configurations"]["3d_fullres"]
    assert saved["unilvseg"]["frames"] == 32 and saved["patch_size"] == [32, 112, 112]
    inputs = tmp_path / "in"
    inputs.mkdir()
    case = sorted((raw_dataset / "imagesTs").glob("*_0000.mha"))[0]
    (inputs / case.name).symlink_to(case)
    run_cmd(["nnUNetv2_predict", "-i", str(inputs), "-o", str(tmp_path / "out"), "-d", str(DATASET_ID), "-c", "3d_fullres",
             "-tr", "SparseTemporalTrainer", "-f", "0", "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1"], env=nnunet_env)
    assert read_volume(tmp_path / "out" / case.name.replace("_0000", "")).shape == read_volume(case).shape
