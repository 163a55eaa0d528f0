"""Video networks: the period wrapper runs T interleaved clips and re-interleaves them; planned networks
(U-Net and the paper's U-Net-S) build from a configuration, keep their heads under seg_layers and treat
every frame alike (shift-equivariant along time); the factorised convolution is a 3D convolution."""
import json

import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from torch import nn

from unilvseg_nnunet.planning.temporal import TIME_CONV_OP, video_topology
from unilvseg_nnunet.training.networks import (
    FactorizedConv3d,
    PeriodWrapper,
    build_temporal_network,
    per_frame_output,
    per_frame_stages,
)


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


def _configuration(arch, frames=8, period=1, gpu_memory_gb=8):
    from unilvseg_nnunet.planning.temporal import temporal_configuration

    plans = {"dataset_name": "Dataset999_X", "plans_name": "nnUNetPlans", "configurations": {"3d_fullres": {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": [64, 112, 112], "median_image_size_in_voxels": [80.0, 112.0, 112.0], "spacing": [1.0, 1.0, 1.0],
        "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
        "architecture": {"network_class_name": "x", "arch_kwargs": {}, "_kw_requires_import": []}}}}
    dataset_json = {"channel_names": {"0": "echo"}, "labels": {"background": 0, "LV": 1, "ignore": 2},
                    "numTraining": 500}
    plans["configurations"]["t"] = temporal_configuration(plans, dataset_json, frames=frames, period=period, arch=arch,
                                                           gpu_memory_gb=gpu_memory_gb)
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



@pytest.mark.parametrize("arch", ["unet", "unet_s"])
def test_planned_topology_models_time_everywhere_and_never_strides_it(arch):
    kw = _configuration(arch, frames=32).configuration["architecture"]["arch_kwargs"]
    assert kw["kernel_sizes"] == [[3, 3, 3]] * 5 and kw["strides"] == [[1, 1, 1]] + [[1, 2, 2]] * 4
    assert kw["conv_op"] == TIME_CONV_OP


def _output_reads_next_frame(net: nn.Module) -> bool:
    """Whether blanking frame 5 of a random clip changes the network's output at frame 4."""
    torch.manual_seed(0)
    x = torch.randn(1, 1, 8, 32, 32)
    x2 = x.clone()
    x2[:, :, 5] = 0
    with torch.no_grad():
        return bool((net(x)[:, :, 4] - net(x2)[:, :, 4]).abs().max() > 1e-4)


def test_per_frame_full_resolution_reads_time_only_at_coarser_stages():
    """SparseTemporalTrainer_frameFullRes: no convolution at full resolution mixes frames (stem, first encoder stage,
    last decoder stage), the coarser ones still do, so a frame's output still depends on its neighbours; the plans
    are not modified."""
    from unilvseg_nnunet.training.trainers import SparseTemporalTrainer_frameFullRes

    cm = _configuration("unet_s", frames=8)
    net = SparseTemporalTrainer_frameFullRes.build_network_architecture(None, cm, 1, 2, False).eval()
    assert cm.configuration["architecture"]["arch_kwargs"]["kernel_sizes"][0] == [3, 3, 3]
    assert per_frame_stages(cm, 2).configuration["architecture"]["arch_kwargs"]["kernel_sizes"][:3] == \
        [[1, 3, 3], [1, 3, 3], [3, 3, 3]]
    time_convs = {}  # output channels of each convolution that reads time -> how many
    for m in net.modules():
        if isinstance(m, FactorizedConv3d):
            time_convs.setdefault(m.out_channels, []).append(m.temporal is not None)
    full_res, *coarser = cm.configuration["architecture"]["arch_kwargs"]["features_per_stage"]
    assert not any(time_convs[full_res]) and all(any(time_convs[c]) for c in coarser)
    assert _output_reads_next_frame(net)


def test_per_frame_decoder_output_reads_time_in_the_encoder_only_at_full_resolution():
    """SparseTemporalTrainer_frameFullResDecoder: the last decoder stage's convolutions read one frame each, the
    stem and first encoder stage still read neighbouring frames (so does the output, through them); a network
    without factorised time convolutions is refused."""
    from unilvseg_nnunet.training.trainers import SparseTemporalTrainer_frameFullResDecoder

    cm = _configuration("unet_s", frames=8)
    net = SparseTemporalTrainer_frameFullResDecoder.build_network_architecture(None, cm, 1, 2, False).eval()
    last = [m for m in net.decoder.stages[-1].modules() if isinstance(m, FactorizedConv3d)]
    first = [m for m in net.net.encoder.stages[0].modules() if isinstance(m, FactorizedConv3d)]
    assert last and all(m.temporal is None for m in last)
    assert first and all(m.temporal is not None for m in first) and net.net.encoder.stem is not None
    assert _output_reads_next_frame(net)
    with pytest.raises(ValueError, match="factorised time convolutions"):
        per_frame_output(PlainConvUNet(1, 2, [4, 8], nn.Conv3d, 3, [1, 2], 1, 2, [1], conv_bias=True))


def test_clip_that_does_not_fit_the_memory_target_is_refused():
    with pytest.raises(ValueError, match="a clip of 32 frames does not fit nnU-Net's 0.02 GB memory target"):
        _configuration("unet", frames=32, gpu_memory_gb=0.02)


def test_video_topology_drops_stages_that_pooled_time_only():
    planned = {"n_stages": 4, "features_per_stage": [32, 64, 128, 256],
               "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
               "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 1, 1]], "n_blocks_per_stage": [1, 3, 4, 6],
               "n_conv_per_stage_decoder": [1, 1, 1], "conv_op": "torch.nn.modules.conv.Conv3d"}
    kw = video_topology(planned)
    assert kw == {"n_stages": 3, "features_per_stage": [32, 64, 128], "kernel_sizes": [[3, 3, 3]] * 3,
                  "strides": [[1, 1, 1], [1, 2, 2], [1, 2, 2]], "n_blocks_per_stage": [1, 3, 4],
                  "n_conv_per_stage_decoder": [1, 1], "conv_op": TIME_CONV_OP}
    assert planned["n_stages"] == 4  # the input is not modified


@pytest.mark.parametrize("arch", ["unet", "unet_s"])
def test_planned_network_treats_every_frame_alike(arch):
    """A video repeating every 3 frames gives an output repeating every 3 frames away from the clip ends:
    the network is shift-equivariant along time, odd shifts included (a time stride and its transposed
    convolution would give even and odd frames different weights: a period-2 flicker). The video is long
    (one inference window) because every instance norm's 8-frame statistics carry the ends a little further in."""
    net = build_temporal_network(_configuration(arch, frames=8), 1, 2, deep_supervision=False).eval()
    torch.manual_seed(0)
    x = torch.randn(1, 1, 3, 16, 16).repeat(1, 1, 60, 1, 1)  # 180 frames, period 3
    with torch.no_grad():
        y = net(x)
    interior = y[:, :, 81:96]
    assert (interior - y[:, :, 84:99]).abs().max() < 1e-4 * interior.abs().max()
    assert (interior - y[:, :, 82:97]).abs().max() > 1e-2 * interior.abs().max()  # frames do differ


def test_factorized_convolution_is_an_in_plane_then_temporal_convolution():
    torch.manual_seed(0)
    conv = FactorizedConv3d(2, 4, (3, 3, 3), (1, 2, 2), padding=(1, 1, 1))
    assert isinstance(conv, nn.Conv3d) and conv.temporal.kernel_size == (3, 1)
    full = nn.Conv3d(2, 4, (3, 3, 3), (1, 2, 2), padding=(1, 1, 1))
    with torch.no_grad():  # the equivalent full 3D kernel: temporal weights x in-plane weights, summed over channels
        full.weight.copy_(torch.einsum("omt,mihw->oithw", conv.temporal.weight[..., 0], conv.weight[:, :, 0]))
        full.bias.copy_(conv.temporal.weight[..., 0].sum(2) @ conv.bias)
    x = torch.randn(1, 2, 6, 8, 8)
    # equal away from the clip ends (there the time padding of the in-plane output drops part of its bias)
    assert torch.allclose(conv(x)[:, :, 1:-1], full(x)[:, :, 1:-1], atol=1e-5)
    assert conv(x).shape == full(x).shape == (1, 4, 6, 4, 4)
    plain = FactorizedConv3d(4, 2, 1, 1, 0)
    assert plain.temporal is None and plain.kernel_size == (1, 1, 1)


@pytest.mark.parametrize("native", [True, False])
def test_cpu_inference_runs_in_bfloat16_where_the_cpu_computes_it(monkeypatch, native):
    """Eval passes on a CPU with native bfloat16 run under autocast and return float32 logits close to float32
    inference; without it, with the switch off, and in training, everything stays float32."""
    from unilvseg_nnunet.inference import precision

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    torch.manual_seed(0)
    net = build_temporal_network(_configuration("unet_s", frames=8), 1, 2, deep_supervision=False).eval()
    seen = []
    first_conv = next(m for m in net.modules() if isinstance(m, FactorizedConv3d))
    first_conv.register_forward_hook(lambda m, inp, out: seen.append(out.dtype))
    t = torch.arange(24.0)
    x = (torch.sin(2 * torch.pi * t / 20)[:, None, None] * torch.linspace(-1, 1, 32)[None, :, None]
         + 0.3 * torch.randn(24, 32, 32))[None, None]
    with torch.no_grad():
        monkeypatch.setenv(precision.ENV, "0")
        reference = net(x)
        monkeypatch.setenv(precision.ENV, "1")
        y = net(x)
        trained = net.train()(x[:, :, :8])
    assert y.dtype == reference.dtype == trained.dtype == torch.float32
    if not native:
        assert seen == [torch.float32] * 3 and torch.equal(y, reference)
        return
    assert seen == [torch.float32, torch.bfloat16, torch.float32]
    assert (y - reference).abs().max() < 0.05 * reference.abs().max()
    assert (y.argmax(1) == reference.argmax(1)).float().mean() > 0.98
