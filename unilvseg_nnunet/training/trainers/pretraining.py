"""TemporalMaskingPretrainer: self-supervised temporal masking (paper §II-A) on all frames of all videos."""
from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from batchgenerators.utilities.file_and_folder_operations import join, maybe_mkdir_p
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from torch import nn

from unilvseg_nnunet.files import atomic_path, write_json
from unilvseg_nnunet.training.masking import CleanTargetTransform, TemporalMaskingTransform
from unilvseg_nnunet.training.trainers.clip_loader import SparseClipDataLoader
from unilvseg_nnunet.training.trainers.schedules import AdamW, Budget, Demo, FiveEpochs, NoFinalValidation, Smoke
from unilvseg_nnunet.training.trainers.sparse_temporal import SparseTemporalTrainer
from unilvseg_nnunet.training.trainers.video_transforms import video_training_transforms, video_validation_transforms


def masking_training_transforms(patch_size, rotation, mirror_axes, ignore_label: int, mask_ratio: float,
                                use_mask_for_norm=None) -> ComposeTransforms:
    """The video augmentation of the sparse trainer with the clean clip kept as the target, then masking
    (see :mod:`unilvseg_nnunet.training.masking`)."""
    video = video_training_transforms(patch_size, rotation, mirror_axes, None, ignore_label, use_mask_for_norm,
                                      tail=[TemporalMaskingTransform(mask_ratio)])
    return ComposeTransforms([CleanTargetTransform(), video])


class TemporalMaskingPretrainer(AdamW, SparseTemporalTrainer):
    """Reconstruct each clean clip from an augmented copy with ``mask_ratio`` of its frames black; MSE over the clip.

    The paper's recipe: AdamW (lr 3e-4, weight decay 1e-5), 60 % of the frames masked, the whole clip
    reconstructed; the target is the clip without intensity augmentation (see
    :mod:`unilvseg_nnunet.training.masking`). Labels play no part (clips are drawn anywhere,
    unlabeled videos included). The network is the segmentation network of the same configuration
    with as many outputs as input channels; its reconstruction head lives under ``seg_layers``, so
    stock ``-pretrained_weights`` hands everything else to the fine-tuning trainer (with the paper's
    recipe: ``SparseTemporalTrainer_AdamW``). Checkpoints hold CPU tensors (that loader has no
    map_location). Validation reports the reconstruction MSE instead of nnU-Net's Dice, and nnU-Net's
    ``checkpoint_best.pth`` is the one with the lowest moving average of the validation MSE.
    """

    mask_ratio = 0.6
    use_labels_for_sampling = False

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False

    @staticmethod
    def build_network_architecture(plans_manager, configuration_manager, num_input_channels, num_output_channels,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        """Same network as SparseTemporalTrainer, head sized to reconstruct the input channels."""
        return SparseTemporalTrainer.build_network_architecture(plans_manager, configuration_manager,
                                                                num_input_channels, num_input_channels,
                                                                enable_deep_supervision)

    def _build_loss(self):
        return nn.MSELoss()

    def training_transforms(self, rotation, mirror_axes):
        return masking_training_transforms(self.clip_patch_size, rotation, mirror_axes, self.label_manager.ignore_label,
                                           self.mask_ratio, self.configuration_manager.use_mask_for_norm)

    def validation_transforms(self, seed: int | None = None):
        """No augmentation, then masking (``seed``: fixed masks)."""
        return video_validation_transforms(None, self.label_manager.ignore_label,
                                           tail=[TemporalMaskingTransform(self.mask_ratio, seed)])

    def validation_step(self, batch: dict) -> dict:
        output = self.network(batch["data"].to(self.device, non_blocking=True))
        return {"loss": self.loss(output, batch["target"].to(self.device, non_blocking=True)).detach().cpu().numpy()}

    def on_validation_epoch_end(self, val_outputs: list[dict]):
        """Log the validation MSE; nnU-Net's pseudo Dice slot gets -MSE, so that nnU-Net's own rule (the
        highest moving average of ``mean_fg_dice`` is saved as ``checkpoint_best.pth``) keeps the
        checkpoint with the lowest moving-average reconstruction error."""
        losses = [float(o["loss"]) for o in val_outputs]
        if self.is_ddp:
            gathered = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, losses)
            losses = [v for part in gathered for v in part]
        mse = float(np.mean(losses))
        self.logger.log("val_losses", mse, self.current_epoch)
        self.logger.log("mean_fg_dice", -mse, self.current_epoch)
        self.logger.log("dice_per_class_or_region", [-mse], self.current_epoch)
        self.print_to_log_file(f"validation reconstruction MSE {mse:.4f} (mask ratio {self.mask_ratio}; "
                               f"the pseudo Dice below is -MSE)")

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint, rewritten with CPU tensors (atomically)."""
        if self.disable_checkpointing or self.local_rank != 0:
            return super().save_checkpoint(filename)
        with atomic_path(filename) as tmp:
            super().save_checkpoint(str(tmp))
            torch.save(torch.load(tmp, map_location="cpu", weights_only=False), tmp)

    def perform_actual_validation(self, save_probabilities: bool = False):
        """Reconstruction MSE of the centre clip of every validation video (fixed masks); validation/summary.json."""
        self.network.eval()
        _, val_keys = self.do_split()
        dataset = self.dataset_class(self.preprocessed_dataset_folder, val_keys)
        loader = SparseClipDataLoader(dataset, 1, self.clip_patch_size, self.clip_patch_size, self.label_manager,
                                      self.period, mode="val", use_labels=False,
                                      transforms=self.validation_transforms(seed=0))
        loader.rng = np.random.default_rng(0)
        per_case = {}
        with torch.no_grad():
            for key in dataset.identifiers:
                key, img, lab = loader.load_clip(key)
                batch = loader.transforms(image=img, segmentation=lab)
                output = self.network(batch["image"][None].to(self.device))
                per_case[key] = float(self.loss(output, batch["segmentation"][None].to(self.device)))
        summary = {"metric": "reconstruction MSE of the centre clip, z-scored intensities",
                   "mask_ratio": self.mask_ratio, "frames": self.frames, "period": self.period,
                   "mean": float(np.mean(list(per_case.values()))) if per_case else None, "per_case": per_case}
        folder = join(self.output_folder, "validation")
        maybe_mkdir_p(folder)
        write_json(join(folder, "summary.json"), summary)
        self.print_to_log_file(f"Validation reconstruction MSE: {summary['mean']}", also_print_to_console=True)


class TemporalMaskingPretrainer_mask40(TemporalMaskingPretrainer):
    mask_ratio = 0.4


class TemporalMaskingPretrainer_mask80(TemporalMaskingPretrainer):
    mask_ratio = 0.8


class TemporalMaskingPretrainer_5epochs(FiveEpochs, TemporalMaskingPretrainer):
    pass


class TemporalMaskingPretrainer_smoke(Smoke, TemporalMaskingPretrainer):
    pass


class TemporalMaskingPretrainer_budget(Budget, TemporalMaskingPretrainer):
    """For a time budget (see schedules.TimeBudget), as nnUNetTrainer_budget."""


class TemporalMaskingPretrainer_demo(Demo, NoFinalValidation, TemporalMaskingPretrainer):
    """The CPU demo's time budget (see schedules.Demo), no final validation."""
