"""Time-budget schedules: nnU-Net's own training loop, driven by a simulated clock, ends when the budget is
spent with nnU-Net's epochs as equal slices; the budget comes from the environment; what training
consumed (iterations, frames, labeled frames) is counted, logged and written beside the checkpoint."""
import json
from types import SimpleNamespace

import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from unilvseg_nnunet.data.dataset import IGNORE
from unilvseg_nnunet.training.trainers import schedules
from unilvseg_nnunet.training.trainers.schedules import BUDGET_ENV, RECORD_FILE, Budget, Demo, frames_in, time_budget_s


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _batch():
    """2 clips of 4 frames, 3 of the 8 frames labeled; deep-supervision list as nnU-Net's loader gives it."""
    target = torch.full((2, 1, 4, 8, 8), IGNORE, dtype=torch.int16)
    target[0, 0, 1] = 0
    target[0, 0, 3, :2] = 1
    target[1, 0, 2, 0, 0] = 1
    return {"data": torch.zeros(2, 1, 4, 8, 8), "target": [target, target[:, :, :, ::2, ::2]]}


class _FakeTrainer:
    """Just enough of nnUNetTrainer for its own ``run_training`` loop; every step advances the clock."""

    run_training = nnUNetTrainer.run_training
    iteration_s, validation_s, epoch_end_s = 0.5, 0.2, 0.3

    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        self.num_epochs, self.num_iterations_per_epoch, self.num_val_iterations_per_epoch = 1000, 250, 50
        self.current_epoch, self.fold, self.local_rank, self.batch_size = 0, fold, 0, 2
        self.configuration_name, self.output_folder = configuration, plans["output_folder"]
        self.label_manager = SimpleNamespace(ignore_label=IGNORE)
        self.configuration_manager = SimpleNamespace(patch_size=[4, 8, 8])
        self.dataloader_train = self.dataloader_val = iter(_batch, None)
        self.clock, self.log, self.epoch_iterations, self.ended_at = plans["clock"], [], [], None

    def print_to_log_file(self, *args, **kwargs):
        self.log.append(" ".join(str(a) for a in args))

    def on_train_start(self):
        pass

    def on_epoch_start(self):
        pass

    def on_train_epoch_start(self):
        self.epoch_iterations.append(self.num_iterations_per_epoch)

    def train_step(self, batch):
        self.clock.now += self.iteration_s
        return {"loss": 0.0}

    def on_train_epoch_end(self, outputs):
        pass

    def on_validation_epoch_start(self):
        pass

    def validation_step(self, batch):
        self.clock.now += self.validation_s
        return {}

    def on_validation_epoch_end(self, outputs):
        pass

    def on_epoch_end(self):
        self.clock.now += self.epoch_end_s
        self.current_epoch += 1

    def on_train_end(self):
        self.ended_at = self.clock.now


@pytest.fixture
def clock(monkeypatch):
    c = _Clock()
    monkeypatch.setattr(schedules, "time", c)
    return c


@pytest.mark.parametrize("mixin,budget,epochs", [(Demo, 60.0, 3), (Demo, 200.0, 10), (Budget, 600.0, 10)])
def test_training_ends_when_the_budget_is_spent(mixin, budget, epochs, clock, tmp_path, monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, str(budget))
    trainer = type("T", (mixin, _FakeTrainer), {})({"output_folder": str(tmp_path), "clock": clock}, "3d_x", 0, {})
    start = clock.now
    trainer.run_training()
    _, probe, _ = mixin.schedule
    assert len(trainer.epoch_iterations) == epochs and trainer.epoch_iterations[0] == probe  # epochs of ~epoch_s
    assert abs(trainer.ended_at - start - budget) <= trainer.iteration_s  # within one iteration
    later = trainer.epoch_iterations[1:]
    assert max(later) - min(later) <= 1  # equal slices
    record = json.loads((tmp_path / RECORD_FILE).read_text())
    assert record["epochs"] == epochs and record["iterations_per_epoch"] == trainer.epoch_iterations
    assert record["iterations"] == sum(trainer.epoch_iterations) and record["budget_s"] == budget
    assert record["frames_seen"] == 8 * record["iterations"]
    assert record["labeled_frames_seen"] == 3 * record["iterations"]
    assert record["training_s"] == pytest.approx(trainer.iteration_s * record["iterations"])
    assert record["seconds"] == pytest.approx(trainer.ended_at - start)
    summary = f"{record['iterations']} iterations of batch size 2"
    assert any(summary in line and f"{record['labeled_frames_seen']} of them labeled" in line for line in trainer.log)


def test_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    assert time_budget_s(120.0) == 120.0
    monkeypatch.setenv(BUDGET_ENV, "45.5")
    assert time_budget_s(120.0) == 45.5
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv(BUDGET_ENV, bad)
        with pytest.raises(ValueError, match=BUDGET_ENV):
            time_budget_s(120.0)


def test_frames_and_labeled_frames_of_a_batch():
    assert frames_in(_batch()["target"], IGNORE) == (8, 3)
    two_d = torch.full((5, 1, 8, 8), IGNORE, dtype=torch.int16)
    two_d[[0, 3], 0, 0, 0] = 0
    assert frames_in(two_d, IGNORE) == (5, 2)  # nnU-Net 2d: one frame per sample
    assert frames_in(two_d, None) == (5, 5)
    assert frames_in(torch.zeros(2, 1, 4, 8, 8), IGNORE) == (8, 0)  # self-supervision: the clip is the target
