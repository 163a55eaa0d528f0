"""Temporal planning: nnU-Net's own planner on a patch fixed to F frames, time never pooled and 3-wide
everywhere, inheriting 3d_fullres; stock plans adapted in memory; `unilvseg plan` writes the configuration."""
import json

import numpy as np
import pytest
from conftest import DATASET_ID, PHANTOM_SIZE, run_cmd
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import (
    ResEncUNetPlanner,
)

from unilvseg_nnunet.planning.temporal import (
    TIME_CONV_OP,
    TemporalUNetPlanner,
    TemporalUNetSPlanner,
    _FromMemory,
    add_configuration,
    configuration_name,
    resolved_configuration,
    temporal_configuration,
    video_topology,
    with_temporal_configuration,
)

pytestmark = pytest.mark.nnunet

CONSTANTS = ["anisotropy_threshold", "UNet_base_num_features", "UNet_class", "UNet_reference_val_3d",
             "UNet_reference_val_2d",
             "UNet_reference_com_nfeatures", "UNet_reference_val_corresp_GB", "UNet_reference_val_corresp_bs_2d",
             "UNet_reference_val_corresp_bs_3d", "UNet_featuremap_min_edge_length", "UNet_blocks_per_stage_encoder",
             "UNet_blocks_per_stage_decoder", "UNet_min_batch_size", "UNet_max_features_2d", "UNet_max_features_3d",
             "max_dataset_covered", "UNet_vram_target_GB"]


def test_configuration_names():
    assert configuration_name() == "3d_temporal"
    assert configuration_name(16, 2) == "3d_temporal_f16t2"
    assert configuration_name(32, 1, "unet_s") == "3d_temporal_unet_s"


@pytest.fixture(scope="module")
def stock(preprocessed_dataset):
    return tuple(json.loads((preprocessed_dataset / f).read_text()) for f in ("nnUNetPlans.json", "dataset.json"))


def test_in_memory_planner_is_nnunets_planner(stock, nnunet_env, monkeypatch):
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(var, nnunet_env[var])
    plans, dataset_json = stock
    base = resolved_configuration(plans, "3d_fullres")
    real = ExperimentPlanner(DATASET_ID)
    ours = TemporalUNetPlanner(dataset_json, base, 8)
    assert {c: getattr(ours, c) for c in CONSTANTS} == {c: getattr(real, c) for c in CONSTANTS}
    args = ([1.0, 1.0, 1.0], [16, 112, 112], base["data_identifier"], 1e10)  # batch size not capped by the data
    stock = real.get_plans_for_configuration(*args, {})
    in_memory = type("InMemory", (_FromMemory, ExperimentPlanner), {})(dataset_json, base, 8)
    assert in_memory.get_plans_for_configuration(*args, {}) == stock
    video = ours.get_plans_for_configuration(*args, {})  # nnU-Net's plan with time never strided ...
    assert video["architecture"]["arch_kwargs"] == video_topology(stock["architecture"]["arch_kwargs"])
    assert video["patch_size"] == stock["patch_size"]
    assert 2 <= video["batch_size"] < stock["batch_size"]  # ... and a batch size estimated on that larger network
    res = ResEncUNetPlanner(DATASET_ID)
    assert TemporalUNetSPlanner(dataset_json, base, 8).UNet_reference_val_3d == res.UNet_reference_val_3d


@pytest.mark.parametrize("frames,period,arch", [(32, 1, "unet"), (16, 5, "unet"), (32, 1, "unet_s")])
def test_temporal_configuration_on_stock_plans(stock, frames, period, arch):
    plans, dataset_json = stock
    cfg = temporal_configuration(plans, dataset_json, frames=frames, period=period, arch=arch)
    assert cfg["inherits_from"] == "3d_fullres" and "spacing" not in cfg and "data_identifier" not in cfg
    assert cfg["patch_size"][0] >= frames * period and cfg["patch_size"][1:] == [PHANTOM_SIZE] * 2  # F*T frames or more
    assert cfg["unilvseg"]["frames"] == frames and cfg["unilvseg"]["period"] == period
    if period == 1:  # whole-video inference, instance norms with the statistics of one training clip
        assert cfg["unilvseg"]["inference"]["norm_frames"] == frames
    assert cfg["batch_size"] >= 2
    kw = cfg["architecture"]["arch_kwargs"]
    strides = np.array(kw["strides"])
    assert (strides[:, 0] == 1).all() and np.prod(strides[:, 1]) == 16  # time never pooled, space as nnU-Net
    assert all(k == [3, 3, 3] for k in kw["kernel_sizes"])  # time modelled in every stage, full resolution included
    assert kw["conv_op"] == TIME_CONV_OP
    if arch == "unet_s":
        assert cfg["architecture"]["network_class_name"].endswith("ResidualEncoderUNet")
        assert kw["nonlin"] == "torch.nn.PReLU"
        assert kw["n_blocks_per_stage"][0] == 2
    merged = dict(plans, configurations={**plans["configurations"], "t": cfg})
    assert resolved_configuration(merged, "t")["spacing"] == plans["configurations"]["3d_fullres"]["spacing"]


def test_any_clip_length_is_kept_and_bad_bases_are_refused(stock):
    nine = temporal_configuration(*stock, frames=9, period=2)  # nnU-Net alone would pad the clip to 10 frames
    assert nine["patch_size"] == [18, PHANTOM_SIZE, PHANTOM_SIZE] and nine["unilvseg"]["frames"] == 9
    with pytest.raises(ValueError, match="not 3D"):
        temporal_configuration(*stock, base="2d")
    with pytest.raises(KeyError, match="no configuration '3d_lowres'"):
        temporal_configuration(*stock, base="3d_lowres")


def test_stock_configuration_is_adapted_in_memory(stock):
    plans, dataset_json = stock
    adapted = with_temporal_configuration(plans, "3d_fullres", dataset_json)
    cfg = adapted["configurations"]["3d_fullres"]
    assert cfg["patch_size"][1:] == [PHANTOM_SIZE] * 2 and cfg["unilvseg"]["frames"] == 32 and "inherits_from" not in cfg
    assert cfg["data_identifier"] == plans["configurations"]["3d_fullres"]["data_identifier"]
    assert "unilvseg" not in plans["configurations"]["3d_fullres"]  # the input is not modified
    assert with_temporal_configuration(adapted, "3d_fullres", dataset_json) is adapted


def test_plan_command_adds_the_configuration(temporal_configuration, preprocessed_dataset, nnunet_env, tmp_path):
    plans = json.loads((preprocessed_dataset / "nnUNetPlans.json").read_text())
    cfg = plans["configurations"][temporal_configuration]
    assert cfg["unilvseg"] == {**cfg["unilvseg"], "frames": 8, "period": 1, "arch": "unet_s"}
    assert {"2d", "3d_fullres"} <= set(plans["configurations"])  # stock configurations kept
    out = run_cmd(["unilvseg", "plan", "-d", str(DATASET_ID), "--frames", "16", "--period", "2"], env=nnunet_env)
    assert "3d_temporal_f16t2" in out
    assert "3d_temporal_f16t2" in json.loads((preprocessed_dataset / "nnUNetPlans.json").read_text())["configurations"]


def test_add_configuration_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nnUNetv2_plan_and_preprocess"):
        add_configuration(tmp_path / "nnUNetPlans.json", "x", {})
    (tmp_path / "nnUNetPlans.json").write_text(json.dumps({"configurations": {"2d": {}}}))
    with pytest.raises(KeyError, match="inherits from '3d_fullres'"):
        add_configuration(tmp_path / "nnUNetPlans.json", "x", {"inherits_from": "3d_fullres"})
