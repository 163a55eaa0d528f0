"""Schedule and optimiser variants as mixins, in nnU-Net's one-concern-per-class style.

nnU-Net records the trainer's ``__init__`` arguments by inspecting its signature, so every mixin
keeps nnU-Net's exact ``__init__`` signature.

Time budgets: ``*_budget`` and ``*_demo`` trainers train for a wall-clock budget in seconds, taken
from the environment variable ``unilvseg_time_budget_s`` (as nnU-Net takes settings such as
``nnUNet_compile``), so that every model, stock ``nnUNetTrainer`` included, can get the same budget::

    unilvseg_time_budget_s=600 nnUNetv2_train 114 2d 0 -tr nnUNetTrainer_budget
"""
from __future__ import annotations

import os
from time import time

import torch
from batchgenerators.utilities.file_and_folder_operations import join
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from unilvseg_nnunet.files import write_json

BUDGET_ENV = "unilvseg_time_budget_s"
RECORD_FILE = "training_record.json"


class _Schedule:
    """Sets (epochs, training iterations, validation iterations) per epoch; None keeps nnU-Net's value;
    ``progress_plot = False`` skips nnU-Net's progress.png."""

    schedule: tuple = (None, None, None)
    progress_plot = True

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        attrs = ("num_epochs", "num_iterations_per_epoch", "num_val_iterations_per_epoch")
        for attr, value in zip(attrs, self.schedule):
            if value is not None:
                setattr(self, attr, value)
        if not self.progress_plot:
            self.logger.plot_progress_png = lambda output_folder: None


def time_budget_s(default: float) -> float:
    """The training budget in seconds: ``$unilvseg_time_budget_s``, else ``default``."""
    value = os.environ.get(BUDGET_ENV, "").strip()
    if not value:
        return default
    try:
        budget = float(value)
    except ValueError:
        raise ValueError(f"{BUDGET_ENV}={value!r}: expected a number of seconds") from None
    if not budget > 0:
        raise ValueError(f"{BUDGET_ENV}={value!r}: the budget must be positive")
    return budget


def frames_in(target, ignore_label: int | None) -> tuple[int, int]:
    """(frames, labeled frames) of a training batch's target (a list under deep supervision: full resolution first).

    A 2D target ``(B, 1, H, W)`` holds B frames, a 3D one ``(B, 1, F, H, W)`` B*F; a frame is labeled
    when one of its voxels is not ``ignore_label``. A floating-point target (the clip itself, in
    self-supervision) has no labels.
    """
    t = target[0] if isinstance(target, (list, tuple)) else target
    frames = (t.transpose(1, 2).flatten(0, 1) if t.ndim == 5 else t).flatten(1)  # (frames, voxels)
    if t.is_floating_point():
        return len(frames), 0
    return len(frames), len(frames) if ignore_label is None else int((frames != ignore_label).any(1).sum())


class TrainingRecord:
    """Counts what training consumed: epochs, iterations, frames and labeled frames of the training batches
    (see :func:`frames_in`) and seconds from the first epoch on; logged, and written to
    ``training_record.json`` beside ``checkpoint_final.pth`` when training ends, for benchmarks to
    report per model. Counts are this process's since it started (one GPU's share under DDP; a
    resumed training counts anew)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.record = {"epochs": 0, "iterations": 0, "frames_seen": 0, "labeled_frames_seen": 0, "training_s": 0.0,
                       "iterations_per_epoch": []}
        self._first_epoch_start = self._train_phase_start = None

    def elapsed_s(self) -> float:
        """Seconds since the first epoch started (0 before)."""
        return 0.0 if self._first_epoch_start is None else time() - self._first_epoch_start

    def on_train_epoch_start(self):
        self._first_epoch_start = self._first_epoch_start or time()
        super().on_train_epoch_start()
        self._train_phase_start = time()

    def train_step(self, batch: dict) -> dict:
        frames, labeled = frames_in(batch["target"], self.label_manager.ignore_label)
        r = self.record
        r.update(iterations=r["iterations"] + 1, frames_seen=r["frames_seen"] + frames,
                 labeled_frames_seen=r["labeled_frames_seen"] + labeled)
        return super().train_step(batch)

    def on_train_epoch_end(self, train_outputs: list[dict]):
        self.record["training_s"] += time() - self._train_phase_start
        self.record["epochs"] += 1
        self.record["iterations_per_epoch"].append(len(train_outputs))
        super().on_train_epoch_end(train_outputs)

    def on_train_end(self):
        self.record["seconds"] = self.elapsed_s()
        super().on_train_end()
        t = self.record
        self.print_to_log_file(f"trained {t['epochs']} epochs, {t['iterations']} iterations of batch size "
                               f"{self.batch_size} in {t['seconds']:.1f} s: {t['frames_seen']} frames seen, "
                               f"{t['labeled_frames_seen']} of them labeled",
                               also_print_to_console=True)
        if self.local_rank == 0:
            write_json(join(self.output_folder, RECORD_FILE),
                       {"trainer": type(self).__name__, "configuration": self.configuration_name, "fold": self.fold,
                        "batch_size": self.batch_size, "patch_size": list(self.configuration_manager.patch_size), **t})


class TimeBudget(TrainingRecord):
    """Train for a wall-clock budget (:func:`time_budget_s`, default ``default_budget_s``) instead of a
    fixed number of iterations.

    The budget is cut into nnU-Net epochs of about ``epoch_s`` seconds (at least ``min_epochs``), so
    nnU-Net's poly learning rate reaches zero when the budget is spent, and validation and
    checkpoints happen as usual. The first epoch runs ``num_iterations_per_epoch`` iterations to
    measure the time of an iteration and of an epoch's remainder (validation, logging,
    checkpoints); every later epoch gets as many iterations as fill its share of the remaining
    budget (at least one, so a budget below the epochs' floor of one iteration and one validation
    each is overrun). The budget counts from the first epoch to the end of the last one; data
    loader start-up before and the final checkpoint and validation after are outside it.
    """

    default_budget_s, epoch_s, min_epochs = 3600.0, 60.0, 3

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.budget_s = self.record["budget_s"] = time_budget_s(self.default_budget_s)
        self.num_epochs = max(self.min_epochs, round(self.budget_s / self.epoch_s))

    def iterations_to_fill_budget(self) -> int:
        """Training iterations for the coming epoch, from what the finished epochs took."""
        elapsed, t = self.elapsed_s(), self.record
        per_iteration = t["training_s"] / max(t["iterations"], 1)
        rest_per_epoch = (elapsed - t["training_s"]) / t["epochs"]
        share = (self.budget_s - elapsed) / max(self.num_epochs - self.current_epoch, 1)
        return max(1, round((share - rest_per_epoch) / per_iteration))

    def on_train_epoch_start(self):
        if self.record["epochs"]:
            self.num_iterations_per_epoch = self.iterations_to_fill_budget()
        super().on_train_epoch_start()
        self.print_to_log_file(f"time budget: {self.num_iterations_per_epoch} training iteration(s) this epoch, "
                               f"{self.elapsed_s():.1f} s of {self.budget_s:g} s spent")


class Budget(TimeBudget, _Schedule):
    """The time budget (default 1 hour) in epochs of about a minute, 2 validation iterations each."""

    schedule = (None, 5, 2)


class Smoke(_Schedule):
    """2 epochs of 2 iterations, 1 validation iteration, no progress plot: proves that training runs, for tests.
    (nnU-Net redraws progress.png after every epoch: on a CPU about 1.5 s, longer than such an epoch.)"""

    schedule = (2, 2, 1)
    progress_plot = False


class Demo(TimeBudget, _Schedule):
    """The CPU demo: the same time budget for every model (default 2 minutes) in epochs of about 20 s,
    1 validation iteration each."""

    default_budget_s, epoch_s = 120.0, 20.0
    schedule = (None, 2, 1)


class FiveEpochs(_Schedule):
    """5 epochs, nnU-Net's iterations per epoch (as nnUNetTrainer_5epochs)."""

    schedule = (5, None, None)


class NoMirroring:
    """No mirroring, neither in augmentation nor at test time (as nnUNetTrainerNoMirroring): 4x cheaper
    validation on CPU."""

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


class nnUNetTrainer_budget(Budget, nnUNetTrainer):
    """Stock nnU-Net for a time budget (see :class:`TimeBudget`)."""


class nnUNetTrainer_smoke(Smoke, nnUNetTrainer):
    """Stock nnU-Net, smoke schedule only (tests)."""


class nnUNetTrainer_demo(Demo, NoMirroring, NoFinalValidation, nnUNetTrainer):
    """Stock nnU-Net with the demo's time budget and, like our demo trainers, no mirroring and no final validation."""
