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
from conftest import DATASET_ID, PHANTOM_SIZE, REPO, nnunet_model_folder, run_cmd

import unilvseg_nnunet.training.trainers as trainers
from unilvseg_nnunet.data.dataset import IGNORE
from unilvseg_nnunet.files import read_volume
from unilvseg_nnunet.training import TRAINER_FOLDER
from unilvseg_nnunet.training.trainers.schedules import BUDGET_ENV, RECORD_FILE
from unilvseg_nnunet.training.trainers.video_transforms import (
    BORDER,
    InPlaneTranslationTransform,
    video_training_transforms,
)


@pytest.mark.parametrize("folder", [REPO / "trainers", TRAINER_FOLDER])
def test_nnunet_finds_our_trainers_with_class_identity(folder, monkeypatch):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    monkeypatch.setenv("nnUNet_extTrainer", str(folder))
    for name in trainers.__all__:
        assert recursive_find_trainer_class_by_name(name) is getattr(trainers, name)
    assert not any(m.startswith("unilvseg_trainers") for m in sys.modules)  # nnU-Net dropped the shim module


def test_env_prints_the_trainer_folder():
    out = subprocess.run([str(Path(sys.executable).parent / "unilvseg"), "env"], capture_output=True, text=True,
                         check=True).stdout
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
        # frame order kept (the same monotone intensity change on every frame)
        assert torch.all(centre[1:] > centre[:-1]), centre
        labeled = (lab != IGNORE).flatten(1).any(1)
        assert torch.nonzero(labeled).flatten().tolist() == [2, 5]  # labeled frames stay, unlabeled stay fully ignore
        assert (lab[5] == 0).all() and (lab[~labeled] == IGNORE).all()
    with pytest.raises(ValueError, match="reverse"):
        video_training_transforms((frames, 32, 32), 0.1, (0, 1, 2), None, IGNORE)



def test_translation_moves_every_frame_and_its_labels_alike():
    np.random.seed(0)
    image = torch.rand(2, 5, 12, 12)
    seg = (image[:1] > 0.5).to(torch.int16)
    t = InPlaneTranslationTransform([3, 2])
    shifts = set()
    for _ in range(40):
        out = t(image=image.clone(), segmentation=seg.clone())
        img, lab = out["image"], out["segmentation"]
        dy, dx = next((a, b) for a in range(-3, 4) for b in range(-2, 3)
                      if torch.equal(img[..., max(a, 0):12 + min(a, 0), max(b, 0):12 + min(b, 0)],
                                     image[..., max(-a, 0):12 - max(a, 0), max(-b, 0):12 - max(b, 0)]))
        shifts.add((dy, dx))  # one offset for both channels and all 5 frames, found above
        assert torch.equal(lab[..., max(dy, 0):12 + min(dy, 0), max(dx, 0):12 + min(dx, 0)],
                           seg[..., max(-dy, 0):12 - max(dy, 0), max(-dx, 0):12 - max(dx, 0)])
        assert (lab == BORDER).sum() == 5 * (144 - (12 - abs(dy)) * (12 - abs(dx)))  # uncovered pixels: border label
        assert (img == 0).sum() >= 10 * (144 - (12 - abs(dy)) * (12 - abs(dx)))
    assert len({d[0] for d in shifts}) > 3 and len({d[1] for d in shifts}) > 2


def test_video_augmentation_translates_clips_in_plane():
    np.random.seed(0)
    torch.manual_seed(0)
    frames = 4
    image = torch.zeros(1, frames, 48, 48)
    image[:, :, 19:29, 19:29] = 1
    seg = torch.full((1, frames, 48, 48), IGNORE, dtype=torch.int16)
    # a centred square: rotation, scaling and mirroring keep its centre
    seg[0, [0, 3]] = (image[0, [0, 3]] > 0).to(torch.int16)
    t = video_training_transforms((frames, 32, 32), (-np.pi / 12, np.pi / 12), (1, 2), None, IGNORE)
    centres = set()
    for _ in range(40):
        lab = t(image=image.clone(), segmentation=seg.clone())["segmentation"][0]
        yx = [torch.nonzero(lab[f] == 1).float().mean(0) - 15.5 for f in (0, 3)]
        assert torch.allclose(yx[0], yx[1])  # the same offset on both labeled frames
        assert yx[0].abs().max() <= 2.5
        centres.add(tuple(yx[0].round().int().tolist()))
    assert len(centres) > 4  # the clip moves in-plane (at most round(6 / 112 * 32) = 2 pixels per axis)


def _env_in_process(monkeypatch, env):
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer", "nnUNet_compile",
                "nnUNet_n_proc_DA"):
        monkeypatch.setenv(var, env[var])


@pytest.mark.nnunet
def test_pretraining_is_self_supervised_and_saves_cpu_tensors(tiny_pretrained_checkpoint):
    ckpt = torch.load(tiny_pretrained_checkpoint, weights_only=False)  # as -pretrained_weights: no map_location
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
    trainer = get_trainer_from_args(str(DATASET_ID), temporal_configuration, 0, "SparseTemporalTrainer",
                                    device=torch.device("cpu"))
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
def test_stock_3d_fullres_is_adapted_and_predicts_with_the_same_network(preprocessed_dataset, raw_dataset, nnunet_env,
                                                                        monkeypatch, tmp_path):
    from nnunetv2.run.run_training import get_trainer_from_args

    _env_in_process(monkeypatch, nnunet_env)
    trainer = get_trainer_from_args(str(DATASET_ID), "3d_fullres", 0, "SparseTemporalTrainer",
                                    device=torch.device("cpu"))
    assert trainer.clip_patch_size == [32, PHANTOM_SIZE, PHANTOM_SIZE] and trainer.frames == 32
    trainer.on_train_start()  # what nnUNetv2_train does first: data loaders, plans.json into the model folder
    try:
        batch = next(trainer.dataloader_train)
        assert batch["data"].shape[2:] == (32, PHANTOM_SIZE, PHANTOM_SIZE) and isinstance(batch["target"], list)
        assert all((t != IGNORE).flatten(2).any(2).any() for t in batch["target"])  # every DS scale keeps labels
    finally:
        trainer.on_train_end()  # saves checkpoint_final.pth (untrained weights) and stops the workers
    folder = nnunet_model_folder(nnunet_env, "SparseTemporalTrainer", "3d_fullres")
    saved = json.loads((folder / "plans.json").read_text())["configurations"]["3d_fullres"]
    assert saved["unilvseg"]["frames"] == 32 and saved["patch_size"][1:] == [PHANTOM_SIZE] * 2
    inputs = tmp_path / "in"
    inputs.mkdir()
    case = sorted((raw_dataset / "imagesTs").glob("*_0000.mha"))[0]
    (inputs / case.name).symlink_to(case)
    run_cmd(["nnUNetv2_predict", "-i", str(inputs), "-o", str(tmp_path / "out"), "-d", str(DATASET_ID),
             "-c", "3d_fullres", "-tr", "SparseTemporalTrainer", "-f", "0", "-device", "cpu", "--disable_tta",
             "-npp", "1", "-nps", "1"], env=nnunet_env)
    assert read_volume(tmp_path / "out" / case.name.replace("_0000", "")).shape == read_volume(case).shape


@pytest.mark.nnunet
def test_demo_trainer_fills_its_time_budget_and_records_what_it_saw(temporal_configuration, nnunet_env):
    # a budget shorter than the schedule's floor (an iteration and a validation per epoch): the fewest iterations;
    # that the epochs fill a larger budget is tested on nnU-Net's loop with a simulated clock (test_schedules.py)
    run_cmd(["nnUNetv2_train", str(DATASET_ID), temporal_configuration, "0", "-tr", "SparseTemporalTrainer_demo",
             "-device", "cpu"], env={**nnunet_env, BUDGET_ENV: "1"})
    fold = nnunet_model_folder(nnunet_env, "SparseTemporalTrainer_demo", temporal_configuration) / "fold_0"
    assert (fold / "checkpoint_final.pth").is_file()
    record = json.loads((fold / RECORD_FILE).read_text())
    assert record["trainer"] == "SparseTemporalTrainer_demo" and record["budget_s"] == 1
    assert record["iterations_per_epoch"] == [2, 1, 1] and record["iterations"] == 4 and record["epochs"] == 3
    assert record["frames_seen"] == record["iterations"] * record["batch_size"] * 8
    assert record["labeled_frames_seen"] >= record["iterations"] * record["batch_size"]  # a labeled frame per clip
    log = "".join(p.read_text() for p in fold.glob("training_log_*.txt"))
    assert "time budget: 2 training iteration(s) this epoch" in log and "time budget: 1 training iteration(s)" in log
    assert f"{record['frames_seen']} frames seen, {record['labeled_frames_seen']} of them labeled" in log
