"""Schedule and optimiser variants as mixins, in nnU-Net's one-concern-per-class style.

nnU-Net records the trainer's ``__init__`` arguments by inspecting its signature, so every mixin
keeps nnU-Net's exact ``__init__`` signature.
"""
from __future__ import annotations

import torch
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class _Schedule:
    """Sets (epochs, training iterations, validation iterations) per epoch; None keeps nnU-Net's value."""

    schedule: tuple = (None, None, None)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        for attr, value in zip(("num_epochs", "num_iterations_per_epoch", "num_val_iterations_per_epoch"), self.schedule):
            if value is not None:
                setattr(self, attr, value)


class Smoke(_Schedule):
    """2 epochs of 4 iterations, 2 validation iterations: tests and CPU demos."""

    schedule = (2, 4, 2)


class Demo(_Schedule):
    """The CPU demo: 12 epochs of 15 iterations, 1 validation iteration (the same budget for every model)."""

    schedule = (12, 15, 1)


class FiveEpochs(_Schedule):
    """5 epochs, nnU-Net's iterations per epoch (as nnUNetTrainer_5epochs)."""

    schedule = (5, None, None)


class NoMirroring:
    """No mirroring, neither in augmentation nor at test time (as nnUNetTrainerNoMirroring): 4x cheaper validation on CPU."""

    def configure_rotation_dummyDA_mirroring_and_inital_patch_size(self):
        rotation, dummy_2d, initial_patch_size, _ = super().configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        self.inference_allowed_mirroring_axes = None
        return rotation, dummy_2d, initial_patch_size, None


class NoFinalValidation:
    """Skip nnU-Net's sliding-window validation after training: the demo scores the test split with
    ``unilvseg compare`` instead, and on a CPU the validation would cost as much as the training."""

    def perform_actual_validation(self, save_probabilities: bool = False):
        self.print_to_log_file("final validation skipped (NoFinalValidation)", also_print_to_console=True)


class AdamW:
    """The paper's optimiser: AdamW, lr 3e-4, weight decay 1e-5 (nnU-Net's poly learning-rate decay kept)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr, self.weight_decay = 3e-4, 1e-5

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.initial_lr, weight_decay=self.weight_decay)
        return optimizer, PolyLRScheduler(optimizer, self.initial_lr, self.num_epochs)


class nnUNetTrainer_smoke(Smoke, nnUNetTrainer):
    """Stock nnU-Net, smoke schedule only (the demo's baseline on CPU)."""


class nnUNetTrainer_demo(Demo, NoMirroring, NoFinalValidation, nnUNetTrainer):
    """Stock nnU-Net with the demo's schedule and, like our demo trainers, no mirroring and no final validation."""
