"""Trainers for super-image configurations (``unilvseg plan --super-image``): SuperImageTrainer
(sparse labels) and SuperImageMaskingPretrainer (temporal masking), with schedule variants.

Everything that matters is shared with the 3D approach: clips of F frames at stride T drawn
around a labeled frame, the sparse frame-wise loss, video-safe augmentation, in-plane test-time
mirroring. What differs: the network (:class:`~unilvseg_nnunet.training.superimage.SuperImageNet`, from
the plans) has one full-resolution output, so deep supervision is off; and an encoder's ImageNet
weights can come from a local file named in the configuration (``"unilvseg": {"encoder_weights"}``),
loaded when either trainer starts training (never at prediction, where the checkpoint holds all weights).
The network is built by the 3D trainers' builder (:func:`~unilvseg_nnunet.training.networks.build_temporal_network`:
nnU-Net's from the plans, no deep supervision and no period wrapper for a super image, since SuperImageNet
segments every clip at stride T of an inference window itself), for SuperImageMaskingPretrainer (head sized to
the input channels) and SuperImageTrainer alike, so ``-pretrained_weights`` hands every weight but the head
from one to the other.
"""
from __future__ import annotations

import torch

from unilvseg_nnunet.planning.temporal import clip_settings, resolved_configuration
from unilvseg_nnunet.training.encoders import EncoderUNet, load_encoder_weights
from unilvseg_nnunet.training.trainers import schedules
from unilvseg_nnunet.training.trainers.pretraining import TemporalMaskingPretrainer
from unilvseg_nnunet.training.trainers.sparse_temporal import SparseTemporalTrainer


def _require_superimage(plans: dict, configuration: str) -> None:
    settings = clip_settings(resolved_configuration(plans, configuration)) or {}
    if settings.get("layout") != "superimage":
        raise ValueError(f"configuration {configuration!r} is not a super-image configuration; add one with "
                         f"`unilvseg plan -d ID --super-image` and train e.g. si_f16t5")


class _EncoderWeights:
    """Loads the configuration's local encoder weights (``"unilvseg": {"encoder_weights"}``) when training starts.

    Both super-image trainers do, so that pretraining starts from ImageNet as fine-tuning does: stock
    ``-pretrained_weights`` (applied after ``initialize``) then replaces them by the pretrained ones.
    """

    def initialize(self):
        super().initialize()
        path = clip_settings(self.configuration_manager.configuration).get("encoder_weights")
        if path:
            net = next((m for m in self.network.modules() if isinstance(m, EncoderUNet)), None)
            if net is None:
                raise ValueError(f"encoder_weights {path!r} given, but the configuration's network has no "
                                 f"pretrained-style encoder")
            n = load_encoder_weights(net.encoder, path)
            self.print_to_log_file(f"loaded {n} encoder tensors ({net.encoder_name}) from {path}",
                                   also_print_to_console=True)


class SuperImageTrainer(_EncoderWeights, SparseTemporalTrainer):
    """Sparse-label training of a super-image configuration (paper §II-C-2)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        _require_superimage(plans, configuration)
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False


class SuperImageMaskingPretrainer(_EncoderWeights, TemporalMaskingPretrainer):
    """Temporal-masking self-supervision (paper §II-A) for a super-image configuration."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        _require_superimage(plans, configuration)
        super().__init__(plans, configuration, fold, dataset_json, device)


class SuperImageMaskingPretrainer_5epochs(schedules.FiveEpochs, SuperImageMaskingPretrainer):
    pass


class SuperImageMaskingPretrainer_smoke(schedules.Smoke, SuperImageMaskingPretrainer):
    pass


class SuperImageMaskingPretrainer_budget(schedules.Budget, SuperImageMaskingPretrainer):
    """For a time budget (see schedules.TimeBudget)."""


class SuperImageTrainer_DiceOnly(SuperImageTrainer):
    """The paper's loss: frame-wise Dice on labeled frames only."""

    weight_ce = 0.0


class SuperImageTrainer_AdamW(schedules.AdamW, SuperImageTrainer):
    """The paper's optimiser (AdamW, lr 3e-4, weight decay 1e-5)."""


class SuperImageTrainer_5epochs(schedules.FiveEpochs, SuperImageTrainer):
    pass


class SuperImageTrainer_smoke(schedules.Smoke, schedules.NoMirroring, SuperImageTrainer):
    """Smoke schedule without mirroring: tests."""


class SuperImageTrainer_budget(schedules.Budget, SuperImageTrainer):
    """For a time budget (see schedules.TimeBudget), as nnUNetTrainer_budget."""


class SuperImageTrainer_demo(schedules.Demo, schedules.NoMirroring, schedules.NoFinalValidation, SuperImageTrainer):
    """The CPU demo's time budget (see schedules.Demo), no mirroring, no final validation."""
