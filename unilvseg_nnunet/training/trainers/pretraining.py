"""TemporalMaskingPretrainer: self-supervised temporal masking (paper §II-A) on all frames of all videos."""
from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from batchgenerators.utilities.file_and_folder_operations import join, maybe_mkdir_p
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from torch import nn
from torch._dynamo import OptimizedModule

from unilvseg_nnunet.files import atomic_path, write_json
from unilvseg_nnunet.training.masking import CleanTargetTransform, TemporalMaskingTransform
from unilvseg_nnunet.training.trainers.clip_loader import SparseClipDataLoader
from unilvseg_nnunet.training.trainers.schedules import AdamW, Budget, Demo, FiveEpochs, NoFinalValidation, Smoke
from unilvseg_nnunet.training.trainers.sparse_temporal import SparseTemporalTrainer
from unilvseg_nnunet.training.trainers.video_transforms import video_training_transforms, video_validation_transforms

RECONSTRUCTION_DECODER = "reconstruction_decoder"  # checkpoint key of the trained decoder


def decoder_keys(network: nn.Module) -> list[str]:
    """State-dict keys of ``network.decoder`` proper: without the encoder that dynamic_network_architectures'
    decoders reference, and without the heads (``seg_layers``, which ``-pretrained_weights`` skips anyway)."""
    decoder = network.decoder
    prefix = next(name for name, module in network.named_modules() if module is decoder) + "."
    return [k for k in network.state_dict()
            if k.startswith(prefix) and not k.startswith(prefix + "encoder.") and ".seg_layers." not in k]


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
    with as many outputs as input channels (the reconstruction head lives under ``seg_layers``).

    Checkpoints hand the encoder to fine-tuning: their ``network_weights`` hold the trained encoder
    and the decoder as initialised (the trained decoder is kept under :data:`RECONSTRUCTION_DECODER`
    and restored when pretraining resumes), so stock ``-pretrained_weights`` starts the segmentation
    decoder afresh, as MAE-style pretraining does: on the phantom, a decoder trained to reconstruct
    intensities fine-tuned to a worse segmentation than a fresh one, and so did fine-tuning with
    nnU-Net's SGD at lr 1e-2 (fine-tune with the paper's ``SparseTemporalTrainer_AdamW``).
    Checkpoints hold CPU tensors (that loader has no map_location). Validation reports the
    reconstruction MSE instead of nnU-Net's Dice, and nnU-Net's ``checkpoint_best.pth`` is the one
    with the lowest moving average of the validation MSE.
    """

    mask_ratio = 0.6
    use_labels_for_sampling = False

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False
        self._initial_decoder: dict | None = None  # the decoder's weights before training (see save_checkpoint)

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

    def _module(self) -> nn.Module:
        """The network without DDP and torch.compile wrappers (as nnU-Net saves it)."""
        mod = self.network.module if self.is_ddp else self.network
        return mod._orig_mod if isinstance(mod, OptimizedModule) else mod

    def initialize(self):
        super().initialize()
        if self._initial_decoder is None:
            state = self._module().state_dict()
            self._initial_decoder = {k: state[k].detach().cpu().clone() for k in decoder_keys(self._module())}

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint with CPU tensors (atomically), the decoder as initialised in ``network_weights``
        and the trained one under :data:`RECONSTRUCTION_DECODER`."""
        if self.disable_checkpointing or self.local_rank != 0:
            return super().save_checkpoint(filename)
        with atomic_path(filename) as tmp:
            super().save_checkpoint(str(tmp))
            checkpoint = torch.load(tmp, map_location="cpu", weights_only=False)
            weights = checkpoint["network_weights"]
            checkpoint[RECONSTRUCTION_DECODER] = {k: weights[k] for k in self._initial_decoder}
            weights.update(self._initial_decoder)
            torch.save(checkpoint, tmp)

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        """nnU-Net's loading, then the trained decoder back in place (resuming, validation only)."""
        super().load_checkpoint(filename_or_checkpoint)
        checkpoint = filename_or_checkpoint if isinstance(filename_or_checkpoint, dict) else \
            torch.load(filename_or_checkpoint, map_location="cpu", weights_only=False)
        trained = checkpoint.get(RECONSTRUCTION_DECODER)
        if trained:
            self._initial_decoder = {k: checkpoint["network_weights"][k] for k in trained}
            self._module().load_state_dict(trained, strict=False)

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
