"""SparseTemporalTrainer: a video network trained from the few traced frames of each video (paper §II-B)."""
from __future__ import annotations

import numpy as np
import torch
from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
from nnunetv2.training.data_augmentation.compute_initial_patch_size import get_patch_size
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA
from torch import nn

from unilvseg_nnunet.planning.temporal import clip_settings, with_temporal_configuration
from unilvseg_nnunet.training.losses import SparseFrameLoss, deep_supervision_weights
from unilvseg_nnunet.training.networks import build_temporal_network, per_frame_output, per_frame_stages
from unilvseg_nnunet.training.trainers.clip_loader import SparseClipDataLoader
from unilvseg_nnunet.training.trainers.schedules import (
    AdamW,
    Budget,
    Demo,
    FiveEpochs,
    NoFinalValidation,
    NoMirroring,
    Smoke,
)
from unilvseg_nnunet.training.trainers.video_transforms import video_training_transforms, video_validation_transforms

ROTATION_DEGREES = 15  # about the viewing axis only; echo views have a canonical orientation
MIRROR_AXES = (1, 2)  # in-plane (H, W); never time


class SparseTemporalTrainer(nnUNetTrainer):
    """nnU-Net trainer for video: clips of F frames at stride T, sparse frame-wise loss.

    Runs on a temporal configuration from ``unilvseg plan`` or on a stock 3D one such as
    ``3d_fullres``, which it first replans in memory as the paper's default (F=32, T=1, nnU-Net
    U-Net; see :func:`unilvseg_nnunet.planning.temporal.with_temporal_configuration`) and saves so into the
    model folder's plans.json. Loss: :class:`~unilvseg_nnunet.training.losses.SparseFrameLoss`
    (frame-wise Dice + CE on labeled voxels; ``weight_ce = 0`` is the paper's Dice-only loss);
    deep-supervision targets keep every labeled frame; augmentation never mixes time with space.
    """

    weight_ce = 1.0
    use_labels_for_sampling = True
    stretch = 1  # training clips may step by up to this many times the period to hold ED and ES (see sampling)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        plans = self.plans_for_video(plans, configuration, dataset_json)
        super().__init__(plans, configuration, fold, dataset_json, device)
        clip = clip_settings(self.configuration_manager.configuration)
        self.frames, self.period = int(clip["frames"]), int(clip["period"])
        self.clip_patch_size = [self.frames, *self.configuration_manager.patch_size[1:]]
        self.print_to_log_file(f"video clips: {self.frames} frames at period {self.period}, "
                               f"patch {self.clip_patch_size}, stretch {self.stretch}, "
                               f"configuration {configuration!r} settings {clip}", also_print_to_console=True)

    @classmethod
    def plans_for_video(cls, plans: dict, configuration: str, dataset_json: dict) -> dict:
        """Hook: ``plans`` in which ``configuration`` carries a "unilvseg" video entry; a stock
        configuration is replanned as the paper's default temporal one (subclasses may plan otherwise)."""
        return with_temporal_configuration(plans, configuration, dataset_json)

    @staticmethod
    def build_network_architecture(plans_manager, configuration_manager, num_input_channels, num_output_channels,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        return build_temporal_network(configuration_manager, num_input_channels, num_output_channels,
                                      enable_deep_supervision)

    def _build_loss(self):
        loss = SparseFrameLoss(self.label_manager.ignore_label, weight_ce=self.weight_ce)
        if self.enable_deep_supervision:
            loss = DeepSupervisionWrapper(loss, deep_supervision_weights(len(self._get_deep_supervision_scales())))
        return loss

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        """In-plane rotation only, in-plane mirroring only; the loader's window grows in-plane only."""
        rotation = (-ROTATION_DEGREES / 180 * np.pi, ROTATION_DEGREES / 180 * np.pi)
        inplane = get_patch_size(self.clip_patch_size[1:], rotation, rotation, rotation, (0.85, 1.25))
        self.inference_allowed_mirroring_axes = MIRROR_AXES
        return rotation, True, [self.frames, *[int(i) for i in inplane]], MIRROR_AXES

    def training_transforms(self, rotation, mirror_axes):
        return video_training_transforms(self.clip_patch_size, rotation, mirror_axes,
                                         self._get_deep_supervision_scales(),
                                         self.label_manager.ignore_label, self.configuration_manager.use_mask_for_norm)

    def validation_transforms(self):
        return video_validation_transforms(self._get_deep_supervision_scales(), self.label_manager.ignore_label)

    def get_dataloaders(self):
        if self.label_manager.has_regions or self.is_cascaded:
            raise NotImplementedError("video trainers support plain label maps, neither regions nor cascades")
        if self.dataset_class is None:
            self.dataset_class = infer_dataset_class(self.preprocessed_dataset_folder)
        rotation, _, initial_patch_size, mirror_axes = self.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        dataset_tr, dataset_val = self.get_tr_and_val_datasets()
        common = dict(label_manager=self.label_manager, period=self.period, use_labels=self.use_labels_for_sampling)
        dl_tr = SparseClipDataLoader(dataset_tr, self.batch_size, initial_patch_size, self.clip_patch_size,
                                     mode="train", stretch=self.stretch,
                                     transforms=self.training_transforms(rotation, mirror_axes), **common)
        dl_val = SparseClipDataLoader(dataset_val, self.batch_size, self.clip_patch_size, self.clip_patch_size,
                                      mode="val",
                                      transforms=self.validation_transforms(), **common)
        n_proc = get_allowed_n_proc_DA()
        if n_proc == 0:
            mt_train, mt_val = SingleThreadedAugmenter(dl_tr, None), SingleThreadedAugmenter(dl_val, None)
        else:
            pin = self.device.type == "cuda"
            mt_train = NonDetMultiThreadedAugmenter(dl_tr, None, n_proc, max(6, n_proc // 2), None, pin, 0.002)
            mt_val = NonDetMultiThreadedAugmenter(dl_val, None, max(1, n_proc // 2), max(3, n_proc // 4), None, pin,
                                                  0.002)
        next(mt_train), next(mt_val)
        return mt_train, mt_val


class SparseTemporalTrainer_DiceOnly(SparseTemporalTrainer):
    """The paper's loss: frame-wise Dice on labeled frames only, no cross-entropy."""

    weight_ce = 0.0


class SparseTemporalTrainer_stretch3(SparseTemporalTrainer):
    """Training clips step by up to 3 periods where that makes them hold both ED and ES: more traced frames per
    iteration for clips shorter than the ED-ES gap (``bench/traced_frame_gaps.py`` counts the videos; measured on the
    phantom with 8-frame clips: 36 % more traced frames, lower DSC, see BENCHMARKS.md)."""

    stretch = 3


class SparseTemporalTrainer_frameFullRes(SparseTemporalTrainer):
    """Time kernel 1 at full resolution (stem, first encoder stage, last decoder stage; see
    :func:`~unilvseg_nnunet.training.networks.per_frame_stages`): the boundary is drawn from each frame's own
    features, time is read at the coarser stages. Against the temporal blur of the default's area curves
    (``bench/area_blur.py``); measured on the phantom (BENCHMARKS.md): EF over beats ahead of stock ``2d`` in every
    seed, corrupted frames read no better than ``2d`` reads them."""

    @staticmethod
    def build_network_architecture(plans_manager, configuration_manager, num_input_channels, num_output_channels,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        return build_temporal_network(per_frame_stages(configuration_manager, 1), num_input_channels,
                                      num_output_channels, enable_deep_supervision)


class SparseTemporalTrainer_frameFullResDecoder(SparseTemporalTrainer):
    """Time kernel 1 in the last decoder stage only (:func:`~unilvseg_nnunet.training.networks.per_frame_output`):
    the boundary is drawn per frame, from features the stem and first encoder stage still compute over neighbouring
    frames. Between the default and ``SparseTemporalTrainer_frameFullRes``, which reads time at full resolution
    nowhere: an attempt to keep the default's reading of corrupted frames with the variant's EF (BENCHMARKS.md)."""

    @staticmethod
    def build_network_architecture(plans_manager, configuration_manager, num_input_channels, num_output_channels,
                                   enable_deep_supervision: bool = True) -> nn.Module:
        return per_frame_output(build_temporal_network(configuration_manager, num_input_channels, num_output_channels,
                                                       enable_deep_supervision))


class SparseTemporalTrainer_AdamW(AdamW, SparseTemporalTrainer):
    """The paper's optimiser (AdamW, lr 3e-4, weight decay 1e-5)."""


class SparseTemporalTrainer_5epochs(FiveEpochs, SparseTemporalTrainer):
    pass


class SparseTemporalTrainer_budget(Budget, SparseTemporalTrainer):
    """For a time budget (see schedules.TimeBudget), as nnUNetTrainer_budget."""


class SparseTemporalTrainer_smoke(Smoke, NoMirroring, SparseTemporalTrainer):
    """Tests and CPU demos: 2 epochs of 4 iterations, no mirroring (so validation and prediction skip test-time
    mirroring)."""


class SparseTemporalTrainer_demo(Demo, NoMirroring, NoFinalValidation, SparseTemporalTrainer):
    """The CPU demo's time budget (see schedules.Demo), no mirroring, no final validation."""


class SparseTemporalTrainer_stretch3_demo(Demo, NoMirroring, NoFinalValidation, SparseTemporalTrainer_stretch3):
    """The CPU demo's time budget with stretched clips."""


class SparseTemporalTrainer_frameFullRes_demo(Demo, NoMirroring, NoFinalValidation, SparseTemporalTrainer_frameFullRes):
    """The CPU demo's time budget with per-frame full-resolution stages."""


class SparseTemporalTrainer_frameFullResDecoder_demo(Demo, NoMirroring, NoFinalValidation,
                                                     SparseTemporalTrainer_frameFullResDecoder):
    """The CPU demo's time budget with a per-frame last decoder stage."""


class SparseTemporalTrainer_AdamW_budget(Budget, AdamW, SparseTemporalTrainer):
    """The paper's optimiser for a time budget: fine-tuning from TemporalMaskingPretrainer's weights."""


class SparseTemporalTrainer_AdamW_demo(Demo, NoMirroring, NoFinalValidation, AdamW, SparseTemporalTrainer):
    """The CPU demo's time budget with the paper's optimiser: fine-tuning from TemporalMaskingPretrainer's weights."""
