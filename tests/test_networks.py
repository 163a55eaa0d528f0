"""Video networks: the period wrapper runs T interleaved clips and re-interleaves them; planned networks
(U-Net and the paper's U-Net-S) build from a configuration and keep their heads under seg_layers."""
import json

import pytest
import torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from torch import nn

from unilvseg_nnunet.training.networks import PeriodWrapper, build_temporal_network


class _Recorder(nn.Module):
    """Adds 1000 x (frame position within the clip it is given) to its input; records clip lengths."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x):
        self.calls.append(tuple(x.shape))
        return x + 1000 * torch.arange(x.shape[2], dtype=x.dtype)[None, None, :, None, None]


def test_period_wrapper_interleaves_subclips():
    inner = _Recorder()
    net = PeriodWrapper(inner, frames=4, period=3)
    x = torch.arange(12, dtype=torch.float32)[None, None, :, None, None].expand(2, 1, 12, 2, 2).clone()
    y = net(x)
    assert inner.calls == [(6, 1, 4, 2, 2)]  # T=3 sub-clips of F=4 frames, batched
    frame = torch.arange(12)
    # frame t belongs to sub-clip t % 3 at position t // 3, and comes back at its own place
    assert torch.equal(y[0, 0, :, 0, 0], (frame + 1000 * (frame // 3)).float())
    inner.calls.clear()
    assert torch.equal(net(x[:, :, :4]), inner(x[:, :, :4]))  # a training clip of F frames: one pass
    with pytest.raises(ValueError, match="expected 4 or 12 frames"):
        net(x[:, :, :5])


def _configuration(arch, frames=8, period=1):
    from unilvseg_nnunet.planning.temporal import temporal_configuration

    plans = {"dataset_name": "Dataset999_X", "plans_name": "nnUNetPlans", "configurations": {"3d_fullres": {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": [64, 112, 112], "median_image_size_in_voxels": [80.0, 112.0, 112.0], "spacing": [1.0, 1.0, 1.0],
        "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
        "architecture": {"network_class_name": "x", "arch_kwargs": {}, "_kw_requires_import": []}}}}
    dataset_json = {"channel_names": {"0": "echo"}, "labels": {"background": 0, "LV": 1, "ignore": 2}, "numTraining": 500}
    plans["configurations"]["t"] = temporal_configuration(plans, dataset_json, frames=frames, period=period, arch=arch)
    return PlansManager(json.loads(json.dumps(plans))).get_configuration("t")


@pytest.mark.parametrize("arch", ["unet", "unet_s"])
def test_planned_network_builds_and_keeps_heads_under_seg_layers(arch):
    cm = _configuration(arch, frames=8, period=2)
    net = build_temporal_network(cm, 1, 2, deep_supervision=False)
    assert isinstance(net, PeriodWrapper)
    heads = [k for k in net.state_dict() if "seg_layers" in k]
    assert heads and all(".seg_layers." in k for k in heads)
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 16, 32, 32)).shape == (1, 2, 16, 32, 32)
    if arch == "unet_s":
        kinds = {type(m).__name__ for m in net.modules()}
        assert {"BasicBlockD", "PReLU", "InstanceNorm3d"} <= kinds and "LeakyReLU" not in kinds


def test_deep_supervision_switch_reaches_the_inner_decoder():
    net = build_temporal_network(_configuration("unet", 8, 2), 1, 2, deep_supervision=True)
    assert net.decoder.deep_supervision
    net.decoder.deep_supervision = False
    assert not net.net.decoder.deep_supervision

