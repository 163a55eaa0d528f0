"""Temporal-masking pretraining: the target is the clean clip aligned with the augmented input, the paper's
optimiser, and nnU-Net's checkpoint_best.pth follows the validation reconstruction error."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import DATASET_ID, nnunet_model_folder

from unilvseg_nnunet.data.dataset import IGNORE
from unilvseg_nnunet.training.trainers.pretraining import decoder_keys, masking_training_transforms


def _centroid(frame: torch.Tensor) -> torch.Tensor:
    """Centre of the bright square of a frame: pixels above 3/4 of its range after a 3x3 mean (against noise)."""
    smooth = torch.nn.functional.avg_pool2d(frame[None], 3, 1, 1, count_include_pad=False)[0]
    lo, hi = torch.quantile(smooth, torch.tensor([0.05, 0.99]))
    return torch.nonzero(smooth > lo + 0.75 * (hi - lo)).float().mean(0)


def test_target_is_the_clean_clip_aligned_with_the_augmented_input():
    """Over many draws of the real SSL augmentation: the target moves with the input (rotation, scaling,
    mirroring) but carries none of its intensity augmentation (noise, brightness, ...); masked frames are black."""
    torch.manual_seed(0)
    np.random.seed(0)
    frames, black = 8, -1.0
    clip = torch.full((1, frames, 48, 48), black)
    levels = torch.linspace(1.0, 2.0, frames)
    clip[:, :, 10:22, 12:24] = levels[:, None, None]  # off-centre: rotation and scaling move it
    seg = torch.full((1, frames, 48, 48), IGNORE, dtype=torch.int16)
    pipeline = masking_training_transforms((frames, 40, 40), (-np.pi / 12, np.pi / 12), (1, 2), IGNORE, 0.6)
    augmented = 0
    for _ in range(80):
        out = pipeline(image=clip.clone(), segmentation=seg.clone())
        image, target = out["image"][0], out["segmentation"][0]
        assert image.shape == target.shape == (frames, 40, 40)
        masked = (image == black).flatten(1).all(1)
        assert masked.sum() == 5  # set to the clean clip's black, not to 0
        for f in range(frames):  # clean: black, the frame's level, zero padding and their bilinear mixtures only
            assert target[f].min() >= black - 1e-4 and target[f].max() <= levels[f] + 1e-4
            assert (target[f] - levels[f]).abs().lt(1e-4).sum() > 30
        for f in torch.nonzero(~masked).flatten():  # aligned: the bright square is where the target's is
            assert (_centroid(image[f]) - _centroid(target[f])).norm() < 1.5
        augmented += not torch.allclose(image[~masked], target[~masked], atol=1e-3)
    assert augmented > 10  # the input did get intensity augmentation


def test_decoder_keys_are_the_decoder_proper():
    """The decoder's own weights: not the encoder it references, not the heads."""
    from test_superimage import tiny_unet_kwargs

    from unilvseg_nnunet.training.superimage import SuperImageNet

    net = SuperImageNet(1, 1, frames=4, **tiny_unet_kwargs())
    expected = {k for k in net.state_dict() if k.startswith(("net.decoder.stages.", "net.decoder.transpconvs."))}
    assert expected and set(decoder_keys(net)) == expected


@pytest.mark.nnunet
def test_pretrainer_recipe_and_best_checkpoint(temporal_configuration, nnunet_env, monkeypatch):
    """AdamW 3e-4; with nnU-Net's own epoch hooks, checkpoint_best.pth follows the lowest (moving-average)
    validation MSE instead of staying at epoch 0 (a NaN pseudo Dice never compares as better)."""
    from nnunetv2.run.run_training import get_trainer_from_args

    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.setenv(var, nnunet_env[var])
    trainer = get_trainer_from_args(str(DATASET_ID), temporal_configuration, 0, "TemporalMaskingPretrainer",
                                    device=torch.device("cpu"))
    trainer.initialize()
    assert type(trainer.optimizer) is torch.optim.AdamW
    assert trainer.optimizer.param_groups[0]["lr"] == 3e-4 and trainer.optimizer.param_groups[0]["weight_decay"] == 1e-5
    model = nnunet_model_folder(nnunet_env, "TemporalMaskingPretrainer", temporal_configuration)
    best = model / "fold_0" / "checkpoint_best.pth"
    saved_at = []
    for mse in (0.5, 0.3, 0.2, 0.9):  # moving averages of -MSE: -0.5, -0.48, -0.452, -0.497
        trainer.on_epoch_start()
        trainer.on_train_epoch_start()
        trainer.on_train_epoch_end([{"loss": np.array(1.0)}])
        trainer.on_validation_epoch_end([{"loss": np.array(mse)}, {"loss": np.array(mse)}])
        trainer.on_epoch_end()
        saved_at.append(torch.load(best, weights_only=False)["current_epoch"])
    assert saved_at == [1, 2, 3, 3]  # nnU-Net stores the epoch after the one saved
    logged = trainer.logger.get_value("val_losses", None)
    assert logged == [0.5, 0.3, 0.2, 0.9]
    assert json.dumps(trainer.logger.get_value("ema_fg_dice", None))  # finite numbers, no NaN


@pytest.mark.nnunet
def test_checkpoints_hand_the_encoder_to_finetuning_and_resume_the_whole_pretrainer(temporal_configuration, nnunet_env,
                                                                                     monkeypatch, tmp_path):
    """Stock -pretrained_weights gets the trained encoder and the decoder as initialised (the reconstruction
    decoder is no start for segmentation); resuming the pretraining gets the trained decoder back."""
    from nnunetv2.run.load_pretrained_weights import load_pretrained_weights
    from nnunetv2.run.run_training import get_trainer_from_args

    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer"):
        monkeypatch.setenv(var, nnunet_env[var])

    def trainer(name):
        return get_trainer_from_args(str(DATASET_ID), temporal_configuration, 0, name, device=torch.device("cpu"))

    pretrainer = trainer("TemporalMaskingPretrainer")
    pretrainer.initialize()
    initial = {k: v.clone() for k, v in pretrainer.network.state_dict().items()}
    with torch.no_grad():
        for p in pretrainer.network.parameters():
            p.add_(1.0)  # stands in for training
    trained = {k: v.clone() for k, v in pretrainer.network.state_dict().items()}
    pretrainer.save_checkpoint(str(tmp_path / "pretrained.pth"))
    decoder = set(decoder_keys(pretrainer.network))
    assert decoder and not any(".encoder." in k or k.startswith("encoder.") for k in decoder)

    finetuner = trainer("SparseTemporalTrainer_AdamW")
    finetuner.initialize()
    load_pretrained_weights(finetuner.network, str(tmp_path / "pretrained.pth"))  # what -pretrained_weights does
    loaded = finetuner.network.state_dict()
    body = [k for k in loaded if ".seg_layers." not in k]
    assert len(body) > len(decoder)
    for k in body:
        assert torch.equal(loaded[k], initial[k] if k in decoder else trained[k]), k

    resumed = trainer("TemporalMaskingPretrainer")
    resumed.load_checkpoint(str(tmp_path / "pretrained.pth"))
    assert all(torch.equal(v, trained[k]) for k, v in resumed.network.state_dict().items())
