"""Video networks built from a plans configuration.

The network class and its arguments come from the configuration, as in nnU-Net
(``get_network_from_plans``). With a sampling period T > 1 the configuration's patch holds
F*T frames for inference; :class:`PeriodWrapper` splits such a window into T interleaved
clips of F frames (each frame sees F frames at stride T, as in training) and re-interleaves the
outputs. Given exactly F frames (training) it runs the inner network once.
"""
from __future__ import annotations

import torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from torch import nn


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


def build_temporal_network(configuration_manager, num_input_channels: int, num_output_channels: int,
                           deep_supervision: bool) -> nn.Module:
    """The configuration's network (nnU-Net's builder), wrapped for its period when T > 1."""
    net = get_network_from_plans(configuration_manager.network_arch_class_name,
                                 configuration_manager.network_arch_init_kwargs,
                                 configuration_manager.network_arch_init_kwargs_req_import,
                                 num_input_channels, num_output_channels,
                                 allow_init=True, deep_supervision=deep_supervision)
    clip = configuration_manager.configuration.get("unilvseg", {})
    period = int(clip.get("period", 1))
    if period == 1 or clip.get("layout") == "superimage":  # SuperImageNet interleaves sub-clips itself
        return net
    return PeriodWrapper(net, int(clip["frames"]), period)

