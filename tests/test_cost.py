"""fvcore cost figures: the counting convention, planned nnU-Net configurations, and the paper's Table IV."""
from __future__ import annotations

import pytest
from conftest import DATASET_ID, PHANTOM_SIZE, run_cmd
from torch import nn

from unilvseg_nnunet.evaluation.cost import PAPER, count, encoder_costs, encoder_table, network_cost


def test_one_multiply_add_is_one_flop():
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=False)
    result = count(conv, (1, 2, 8, 8))
    assert result["gflops"] * 1e9 == 2 * 3 * 9 * 64
    assert result["params_m"] * 1e6 == 2 * 3 * 9


def test_paper_flops_are_those_of_128_pixel_frames():
    """Counted like the authors (RGB in, one output), the paper's SI FLOPs are reproduced with 128x128 frames
    (512x512 super images), not EchoNet's 112x112: the paper's Table IV/I figures are ~(128/112)^2 = 1.31x ours."""
    rows = {r["encoder"]: r for r in encoder_costs(16, 5, 128, 3, 1, encoders=["resnet18", "mobilenetv3", "uniformer_s"])}
    for name in rows:
        assert rows[name]["gflops_per_frame"] == pytest.approx(PAPER[name]["gflops_per_frame"], rel=0.02)
    assert rows["resnet18"]["gflops_single_pass"] == pytest.approx(PAPER["resnet18"]["gflops_single_pass"], rel=0.01)
    table = encoder_table(list(rows.values()), 16, 5, 128, 3, 1)
    assert "| resnet18 | 14.33 | 14.33 |" in table


@pytest.mark.nnunet
def test_planned_configurations_cost(preprocessed_dataset, nnunet_env):
    """Stock nnU-Net 2d on 112x112 frames is the DESIGN cross-check (7.77 M, 2.32 GFLOPs/frame); nnU-Net plans the
    test phantom's smaller frames with the same stages (16x pooling), so the parameters are the same and the GFLOPs
    scale with the pixels. 3D per frame = patch / frames."""
    plans = preprocessed_dataset / "nnUNetPlans.json"
    two_d = network_cost(plans, "2d")
    assert two_d["frames"] == 1 and two_d["patch_size"] == [PHANTOM_SIZE, PHANTOM_SIZE]
    assert two_d["params_m"] == pytest.approx(7.77, abs=0.01)
    assert two_d["gflops_per_frame"] == pytest.approx(2.32 * (PHANTOM_SIZE / 112) ** 2, rel=0.01)
    three_d = network_cost(plans, "3d_fullres")
    assert three_d["gflops_per_frame"] == pytest.approx(three_d["gflops"] / three_d["patch_size"][0])
    out = run_cmd(["unilvseg", "cost", "-d", str(DATASET_ID), "-c", "2d"], env=nnunet_env)
    assert f"| 2d | {PHANTOM_SIZE}x{PHANTOM_SIZE} | 7.77 |" in out


@pytest.mark.nnunet
def test_cost_of_a_model_folder_needs_no_trainer_variable(tiny_3d_model, nnunet_env):
    """`unilvseg cost -m` rebuilds a model of our trainers with nnUNet_extTrainer unset, as predict-video does."""
    env = {k: v for k, v in nnunet_env.items() if k != "nnUNet_extTrainer"}
    out = run_cmd(["unilvseg", "cost", "-m", str(tiny_3d_model)], env=env)
    assert f"| {tiny_3d_model.name} | 8x" in out


def test_cost_command_errors_name_what_is_missing(tmp_path, monkeypatch, capsys):
    """Bad arguments: one message in the subcommands' style, exit status 2, no traceback."""
    from unilvseg_nnunet.cli import main

    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path))
    for argv, message in ((["cost"], "give --encoders, -d DATASET"), (["cost", "-d", "901"], "-d needs -c"),
                          (["cost", "-d", "555", "-c", "2d"], "-d 555: no such dataset")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"unilvseg cost: error: {message}") and "Traceback" not in err
