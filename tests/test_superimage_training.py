"""Super image end to end through the real nnU-Net commands on the phantom, on CPU:
`unilvseg plan --super-image` -> temporal-masking pretraining -> sparse fine-tuning with stock
-pretrained_weights -> nnUNetv2_predict over whole videos -> `unilvseg cost -m`."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import CPU_MEMORY_GB, DATASET_ID, nnunet_model_folder, run_cmd

from unilvseg_nnunet.data.dataset import FILE_ENDING
from unilvseg_nnunet.files import read_volume, write_volume

pytestmark = pytest.mark.nnunet
CONFIG = "si_f4t2"  # 4 frames tiled 2x2 (128x128 super images of the 64-pixel test phantom), period 2: cheap on CPU


@pytest.fixture(scope="module")
def si_configuration(preprocessed_dataset, nnunet_env) -> str:
    run_cmd(["unilvseg", "plan", "-d", str(DATASET_ID), "--super-image", "--frames", "4", "--period", "2",
             "--gpu-memory", str(CPU_MEMORY_GB)], env=nnunet_env)
    return CONFIG


def test_plan_adds_super_image_configuration(si_configuration, preprocessed_dataset):
    plans = json.loads((preprocessed_dataset / "nnUNetPlans.json").read_text())
    cfg = plans["configurations"][si_configuration]
    frame = plans["configurations"]["3d_fullres"]["patch_size"][1:]
    assert cfg["inherits_from"] == "3d_fullres" and cfg["patch_size"] == [1024, *frame]  # whole videos
    assert cfg["architecture"]["network_class_name"] == "unilvseg_nnunet.training.superimage.SuperImageNet"
    assert {k: cfg["unilvseg"][k] for k in ("frames", "period", "encoder", "layout")} == \
        {"frames": 4, "period": 2, "encoder": "unet", "layout": "superimage"}
    assert cfg["unilvseg"]["super_image_size"] == [2 * s for s in frame]


def test_pretrain_finetune_and_predict(si_configuration, nnunet_env, raw_dataset, tmp_path, monkeypatch):
    from unilvseg_nnunet.inference import precision
    from unilvseg_nnunet.inference.predictor import load_predictor, segment
    from unilvseg_nnunet.inference.window import VideoWindowNet

    env = {**nnunet_env, precision.ENV: "0"}  # float32 in both paths compared below
    run_cmd(["nnUNetv2_train", str(DATASET_ID), si_configuration, "0", "-tr", "SuperImageMaskingPretrainer_smoke",
             "-device", "cpu"], env=env)
    pretrainer = nnunet_model_folder(env, "SuperImageMaskingPretrainer_smoke", si_configuration)
    pretrained = pretrainer / "fold_0" / "checkpoint_final.pth"
    assert pretrained.is_file()

    out = run_cmd(["nnUNetv2_train", str(DATASET_ID), si_configuration, "0", "-tr", "SuperImageTrainer_smoke",
                   "-device", "cpu", "-pretrained_weights", str(pretrained)], env=env)
    assert "Loading pretrained weights" in out  # stock loader: every key but the heads matched in shape
    model = nnunet_model_folder(env, "SuperImageTrainer_smoke", si_configuration)
    summary = json.loads((model / "fold_0" / "validation" / "summary.json").read_text())
    assert summary["metric_per_case"], "nnU-Net's validation predicted no case"
    assert not (model / "fold_0" / "progress.png").exists()  # the smoke schedule draws no progress plot

    pred, images = tmp_path / "pred", tmp_path / "images"
    video = read_volume(sorted((raw_dataset / "imagesTs").glob(f"*_0000{FILE_ENDING}"))[0])
    write_volume(images / f"whole_0000{FILE_ENDING}", video)
    write_volume(images / f"short_0000{FILE_ENDING}", video[:3])  # fewer frames than one clip
    run_cmd(["nnUNetv2_predict", "-i", str(images), "-o", str(pred), "-d", str(DATASET_ID), "-c", si_configuration,
             "-tr", "SuperImageTrainer_smoke", "-f", "0", "--disable_tta", "-device", "cpu", "-npp", "1", "-nps", "1"],
            env=env)
    images = sorted(images.iterdir())
    for image in images:
        seg = read_volume(pred / image.name.replace(f"_0000{FILE_ENDING}", FILE_ENDING))
        assert seg.shape == read_volume(image).shape  # every frame of the whole video, any length
        assert set(np.unique(seg)) <= {0, 1}
    # predict-video's and compare's path (the video streamed window by window) gives nnUNetv2_predict's masks
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    predictor = load_predictor(model, [0], device="cpu")
    assert isinstance(predictor.network, VideoWindowNet)
    assert (segment(predictor, video) == read_volume(pred / f"whole{FILE_ENDING}")).mean() > 0.999

    cost = run_cmd(["unilvseg", "cost", "-m", str(model)], env=env)
    assert f"| {model.name} | 4x" in cost  # one training clip: one super image per frame of a video


def test_both_trainers_start_from_local_encoder_weights(preprocessed_dataset, nnunet_env, tmp_path, monkeypatch):
    """ImageNet-style weights named in the configuration reach the encoder when pretraining and fine-tuning start
    (grey stem adapted); fine-tuning with stock -pretrained_weights then holds the pretrainer's weights, which
    started from ImageNet. Other configurations are refused."""
    import timm
    import torch
    from nnunetv2.run.load_pretrained_weights import load_pretrained_weights

    from unilvseg_nnunet.planning.superimage import superimage_configuration
    from unilvseg_nnunet.training.encoders import EncoderUNet
    from unilvseg_nnunet.training.trainers import SuperImageMaskingPretrainer, SuperImageTrainer

    def stem(network):  # the encoder's first convolution, inside the whole-video wrapper and the super image
        return next(m for m in network.modules() if isinstance(m, EncoderUNet)).encoder.model.conv1.weight

    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(k, nnunet_env[k])
    rgb = timm.create_model("resnet18", pretrained=False)
    torch.save(rgb.state_dict(), tmp_path / "resnet18.pth")
    imagenet_stem = rgb.conv1.weight.sum(1, keepdim=True)
    plans = json.loads((preprocessed_dataset / "nnUNetPlans.json").read_text())
    dataset_json = json.loads((preprocessed_dataset / "dataset.json").read_text())
    name, cfg = superimage_configuration(plans, None, frames=4, period=2, encoder="resnet18",
                                         encoder_weights=tmp_path / "resnet18.pth")
    plans["configurations"][name] = cfg
    plans["continue_training"] = False  # nnUNetv2_train sets this key (nnU-Net 2.8), the trainer pops it

    pretrainer = SuperImageMaskingPretrainer(dict(plans), name, 0, dataset_json, device=torch.device("cpu"))
    pretrainer.initialize()
    torch.testing.assert_close(stem(pretrainer.network), imagenet_stem)
    pretrainer.save_checkpoint(str(tmp_path / "pretrained.pth"))

    trainer = SuperImageTrainer(dict(plans), name, 0, dataset_json, device=torch.device("cpu"))
    trainer.initialize()
    assert not trainer.enable_deep_supervision
    torch.testing.assert_close(stem(trainer.network), imagenet_stem)
    with torch.no_grad():
        stem(trainer.network).zero_()
    load_pretrained_weights(trainer.network, str(tmp_path / "pretrained.pth"))  # what -pretrained_weights does next
    torch.testing.assert_close(stem(trainer.network), imagenet_stem)
    with pytest.raises(ValueError, match="not a super-image configuration"):
        SuperImageTrainer(dict(plans), "3d_fullres", 0, dataset_json, device=torch.device("cpu"))
