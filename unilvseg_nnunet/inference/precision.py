"""Mixed-precision inference on CPUs that compute bfloat16 natively.

nnU-Net predicts under float16 autocast on CUDA and in float32 on a CPU. Our video networks
(:class:`~unilvseg_nnunet.inference.window.VideoWindowNet`, the super image's window path) run
their inference passes under bfloat16 autocast on a CPU with native bfloat16 instructions
(AVX-512 BF16 or AMX), where oneDNN's convolutions then run about twice as fast, and return
float32 logits, so nnU-Net's blending, softmax and argmax are unchanged. Where the CPU lacks
them (bfloat16 would be emulated, slower than float32), or with ``unilvseg_cpu_bf16=0`` in the
environment, inference stays in float32. Training is never affected.
"""
from __future__ import annotations

import os
from contextlib import nullcontext

import torch

ENV = "unilvseg_cpu_bf16"


def cpu_bf16() -> bool:
    """True when CPU inference runs under bfloat16 autocast: native support and not switched off by :data:`ENV`."""
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def inference_autocast(device: torch.device):
    """The autocast context for an inference pass on ``device``: bfloat16 on a CPU where :func:`cpu_bf16`,
    else none (on CUDA nnU-Net's own float16 autocast is already in effect around the network)."""
    if device.type == "cpu" and cpu_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return nullcontext()
