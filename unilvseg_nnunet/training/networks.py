"""Video networks built from a plans configuration.

The network class and its arguments come from the configuration, as in nnU-Net
(``get_network_from_plans``). With a sampling period T > 1 the configuration's patch holds
F*T frames for inference; :class:`PeriodWrapper` splits such a window into T interleaved
clips of F frames (each frame sees F frames at stride T, as in training) and re-interleaves the
outputs. Given exactly F frames (training) it runs the inner network once.

Temporal plans name :class:`FactorizedConv3d` as the ``conv_op`` of nnU-Net's U-Nets (see
:mod:`unilvseg_nnunet.planning.temporal`): every 3D convolution then sees three frames at the
cost of little more than an in-plane one.
"""
from __future__ import annotations

import copy

import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from torch import nn
from torch.nn.modules.utils import _triple


class FactorizedConv3d(nn.Conv3d):
    """A (t, k, k) convolution factorised as a (1, k, k) in-plane one followed by a (t, 1, 1) one along time.

    As the (2+1)D convolutions of R(2+1)D (Tran et al., CVPR 2018) without the nonlinearity in
    between, so it is a drop-in ``conv_op`` for dynamic_network_architectures (a Conv3d subclass,
    built with Conv3d's arguments): C_in*C_out*k*k + C_out*C_out*t multiply-adds per voxel instead
    of C_in*C_out*t*k*k (12 vs 27 per channel pair for 3x3x3). Its own weight and bias are the
    in-plane part; ``temporal`` (no bias) carries the time kernel, stride, padding and dilation,
    and is absent when the time kernel and stride are 1 (heads, 1x1x1 projections). The time part
    runs as a (t, 1) Conv2d on the frames' pixels laid out in one row: the same operation, which
    PyTorch's CPU kernels run 2-4x faster than a (t, 1, 1) Conv3d.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        if isinstance(padding, str):
            raise ValueError("FactorizedConv3d takes explicit padding, not 'same'/'valid'")
        (kt, *k), (st, *s), (pt, *p), (dt, *d) = (_triple(v) for v in (kernel_size, stride, padding, dilation))
        super().__init__(in_channels, out_channels, (1, *k), (1, *s), (0, *p), (1, *d), groups, bias, padding_mode,
                         device, dtype)
        self.temporal = None
        if kt > 1 or st > 1:
            self.temporal = nn.Conv2d(out_channels, out_channels, (kt, 1), (st, 1), (pt, 0), (dt, 1), bias=False,
                                      padding_mode=padding_mode, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if self.temporal is None:
            return x
        y = self.temporal(x.flatten(3))  # (B, C, T', H*W)
        return y.view(*y.shape[:3], *x.shape[3:])


class PeriodWrapper(nn.Module):
    """(B, C, F*T, H, W) -> T sub-clips x[:, :, i::T] -> inner network -> (B, K, F*T, H, W)."""

    def __init__(self, net: nn.Module, frames: int, period: int):
        super().__init__()
        self.net, self.frames, self.period = net, frames, period

    @property
    def decoder(self):
        """The inner decoder, so nnU-Net's ``set_deep_supervision_enabled`` works unchanged."""
        return self.net.decoder

    def forward(self, x: torch.Tensor):
        t = x.shape[2]
        if t == self.frames:
            return self.net(x)
        if t != self.frames * self.period:
            raise ValueError(f"expected {self.frames} or {self.frames * self.period} frames, got {t}")
        b = x.shape[0]
        y = self.net(torch.cat([x[:, :, i::self.period] for i in range(self.period)], 0))
        if isinstance(y, (list, tuple)):
            raise RuntimeError("deep supervision is for training clips of F frames, not F*T windows")
        y = y.reshape(self.period, b, *y.shape[1:])  # (T, B, K, F, H, W)
        return y.permute(1, 2, 3, 0, 4, 5).reshape(b, y.shape[2], t, *y.shape[4:])


def per_frame_stages(configuration_manager, stages: int):
    """A copy of ``configuration_manager`` whose network has time kernel 1 in its first ``stages`` resolution stages
    (stem, encoder and decoder convolutions at those resolutions): each frame's boundary is drawn from its own
    features there, time is read at the coarser stages. The plans it came from are left as they are."""
    from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

    configuration = copy.deepcopy(configuration_manager.configuration)
    kernels = configuration["architecture"]["arch_kwargs"]["kernel_sizes"]
    for stage in range(min(stages, len(kernels))):
        kernels[stage] = [1, *kernels[stage][1:]]
    return ConfigurationManager(configuration)


def per_frame_output(network: nn.Module) -> nn.Module:
    """``network`` with the time part of every convolution in its last decoder stage dropped: the full-resolution
    convolutions that draw the boundary read each frame alone, from the encoder's full-resolution features (the
    skip connection, computed over neighbouring frames) and the coarser stages' upsampled ones. Needs factorised
    time convolutions (:class:`FactorizedConv3d`, the ``conv_op`` temporal plans name)."""
    convs = [m for m in network.decoder.stages[-1].modules() if isinstance(m, nn.Conv3d)]
    if not convs or not all(isinstance(m, FactorizedConv3d) for m in convs):
        raise ValueError(f"a per-frame output needs the factorised time convolutions of temporal plans "
                         f"({FactorizedConv3d.__module__}.FactorizedConv3d), got {sorted({type(m).__name__ for m in convs})}")
    for m in convs:
        m.temporal = None
    return network


def build_temporal_network(configuration_manager, num_input_channels: int, num_output_channels: int,
                           deep_supervision: bool) -> nn.Module:
    """The configuration's network (nnU-Net's builder), wrapped for its period when T > 1; a super-image
    network never has deep supervision (one full-resolution output)."""
    clip = configuration_manager.configuration.get("unilvseg", {})
    net = get_network_from_plans(configuration_manager.network_arch_class_name,
                                 configuration_manager.network_arch_init_kwargs,
                                 configuration_manager.network_arch_init_kwargs_req_import,
                                 num_input_channels, num_output_channels, allow_init=True,
                                 deep_supervision=deep_supervision and clip.get("layout") != "superimage")
    period = int(clip.get("period", 1))
    if period == 1 or clip.get("layout") == "superimage":  # SuperImageNet interleaves sub-clips itself
        from unilvseg_nnunet.inference.window import video_window_net

        return video_window_net(net, clip)  # whole-video inference where the plans give an inference window
    return PeriodWrapper(net, int(clip["frames"]), period)

