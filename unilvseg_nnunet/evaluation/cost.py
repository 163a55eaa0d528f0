"""Parameters and GFLOPs per frame, counted with fvcore as the paper does (one multiply-add = one flop).

* :func:`network_cost`: any configuration of a dataset's plans or a trained model folder, built
  exactly like nnU-Net's predictor builds it (``trainer.build_network_architecture`` with the
  plans, no deep supervision) and fed one patch ``(1, C, *patch_size)``; per frame = total /
  frames in the patch (1 for 2D configurations). A whole-video configuration is fed one training clip:
  a 3D network costs per frame what it costs on the clip; a super image segments each frame of a video
  in all F clips that hold it, so its per-frame cost is one super image.
* :func:`encoder_costs`: every super-image encoder at F frames of HxW (one super image), next to
  the paper's Table IV (and Table I for UniFormer-S).

Attention implemented with ``scaled_dot_product_attention`` is invisible to fvcore, so timm's
fused attention is switched off before counting (the count then includes the attention matmuls).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

# paper: Table IV (SI at F=16, T=5; 3D U-Net-S at F=32, T=1) and Table I (UniFormer-S SI, nnU-Net 2D)
PAPER = {
    "uniformer_s": {"params_m": 24.83, "gflops_per_frame": 2.17},
    "resnet18": {"params_m": 14.33, "gflops_single_pass": 21.75, "gflops_per_frame": 1.36},
    "mobilenetv3": {"params_m": 6.69, "gflops_single_pass": 12.46, "gflops_per_frame": 0.78},
    "vit_b16": {"params_m": 89.10, "gflops_single_pass": 120.20, "gflops_per_frame": 7.51},
}


def count(network: nn.Module, input_shape) -> dict:
    """Parameters (M) and fvcore GFLOPs of one forward pass of ``network`` on zeros of ``input_shape``."""
    from fvcore.nn import FlopCountAnalysis

    network = network.eval()
    for module in network.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    with torch.no_grad():
        flops = FlopCountAnalysis(network, torch.zeros(*input_shape))
        flops.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        total = flops.total()
    return {"params_m": sum(p.numel() for p in network.parameters()) / 1e6, "gflops": total / 1e9}


def build_network(plans, configuration: str, dataset_json: dict | None = None,
                  trainer: str = "nnUNetTrainer") -> tuple[nn.Module, tuple, int]:
    """(network, input shape (1, C, *patch), frames that input segments: :func:`frames_per_pass`) for
    ``configuration`` of ``plans`` (dict or plans JSON path).

    ``dataset_json`` defaults to the dataset.json beside a plans file. The network comes from
    ``trainer``'s static ``build_network_architecture`` (found like nnUNetv2_train finds it,
    nnUNet_extTrainer included), as nnUNetv2_predict builds it.
    """
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from unilvseg_nnunet.inference.predictor import ensure_ext_trainer_path

    if not isinstance(plans, dict):
        plans_path = Path(plans)
        if not plans_path.is_file():
            raise FileNotFoundError(f"{plans_path}: plans file not found")
        plans = json.loads(plans_path.read_text())
        if dataset_json is None:
            ds_path = plans_path.parent / "dataset.json"
            if not ds_path.is_file():
                raise FileNotFoundError(f"{ds_path}: dataset.json not found beside the plans")
            dataset_json = json.loads(ds_path.read_text())
    if dataset_json is None:
        raise ValueError("dataset_json is needed with a plans dict")
    manager = PlansManager(plans)
    config = manager.get_configuration(configuration)
    channels = determine_num_input_channels(manager, config, dataset_json)
    classes = manager.get_label_manager(dataset_json).num_segmentation_heads
    ensure_ext_trainer_path()  # our trainers are found without the user setting nnUNet_extTrainer, as predict-video finds them
    trainer_class = recursive_find_trainer_class_by_name(trainer)
    network = trainer_class.build_network_architecture(manager, config, channels, classes, enable_deep_supervision=False)
    clip = config.configuration.get("unilvseg") or {}  # a whole-video inference tile is counted as one training clip
    patch = [clip["frames"], *config.patch_size[1:]] if "inference" in clip else config.patch_size
    return network, (1, channels, *patch), frames_per_pass(patch, clip)


def frames_per_pass(patch_size, settings: dict) -> int:
    """Frames one pass on ``patch_size`` segments, net of repeats: the frames of a 3D patch (1 for 2D); 1 for a
    whole-video super image (``settings``: the configuration's "unilvseg" entry), which segments each frame in
    F clips."""
    if settings.get("layout") == "superimage" and "inference" in settings:
        return 1
    return int(patch_size[0]) if len(patch_size) == 3 else 1


def network_cost(source, configuration: str | None = None, dataset_json: dict | None = None,
                 trainer: str = "nnUNetTrainer") -> dict:
    """Cost of a planned configuration: ``source`` is a trained model folder (TRAINER__PLANS__CONFIG,
    holding plans.json and dataset.json) or a plans dict/JSON path with ``configuration``.

    Returns dict(params_m, gflops (one patch), gflops_per_frame, patch_size, frames).
    """
    if isinstance(source, (str, os.PathLike)) and Path(source).is_dir():
        folder = Path(source)
        parts = folder.name.split("__")
        if len(parts) != 3:
            raise ValueError(f"{folder}: not an nnU-Net model folder (expected a name TRAINER__PLANS__CONFIGURATION)")
        trainer, _, configuration = parts
        source = folder / "plans.json"
        dataset_json = json.loads((folder / "dataset.json").read_text())
    if configuration is None:
        raise ValueError("configuration is needed with a plans file or dict")
    network, shape, frames = build_network(source, configuration, dataset_json, trainer)
    result = count(network, shape)
    return {**result, "gflops_per_frame": result["gflops"] / frames, "patch_size": list(shape[2:]), "frames": frames}


def encoder_costs(frames: int = 16, period: int = 5, size: int = 112, in_channels: int = 1, num_classes: int = 2,
                  encoders=None) -> list[dict]:
    """Cost of the SI network with each encoder on one clip of ``frames`` frames of size x size.

    One super image (F frames) is the paper's "single pass"; a patch of F*T frames costs T times
    as much, so the per-frame figure does not depend on the period.
    """
    from unilvseg_nnunet.training.encoders import ENCODERS
    from unilvseg_nnunet.training.superimage import SuperImageNet, grid_side

    side = grid_side(frames) * size
    rows = []
    for name in encoders or ENCODERS:
        net = SuperImageNet(in_channels, num_classes, frames=frames, period=period, encoder=name, img_size=side)
        result = count(net, (1, in_channels, frames, size, size))
        rows.append({"encoder": name, "params_m": result["params_m"], "gflops_single_pass": result["gflops"],
                     "gflops_per_frame": result["gflops"] / frames, "paper": PAPER.get(name, {})})
    return rows


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def encoder_table(rows: list[dict], frames: int, period: int, size: int, in_channels: int, num_classes: int) -> str:
    """Markdown table of :func:`encoder_costs` rows beside the paper's numbers."""
    lines = [f"Super image F={frames}, T={period}, frames {size}x{size}, {in_channels} input channel(s), {num_classes} output(s); "
             "fvcore, one multiply-add = one flop. Paper: Table IV (Table I for UniFormer-S).", "",
             "| Encoder | Params (M) | paper | GFLOPs single pass | paper | GFLOPs / frame | paper |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        p = r["paper"]
        lines.append(f"| {r['encoder']} | {_fmt(r['params_m'])} | {_fmt(p.get('params_m'))} | {_fmt(r['gflops_single_pass'])} | "
                     f"{_fmt(p.get('gflops_single_pass'))} | {_fmt(r['gflops_per_frame'])} | {_fmt(p.get('gflops_per_frame'))} |")
    return "\n".join(lines)


def configuration_table(rows: list[tuple[str, dict]]) -> str:
    """Markdown table of (label, :func:`network_cost` result) pairs."""
    lines = ["| Configuration | Patch | Params (M) | GFLOPs / patch | GFLOPs / frame |", "|---|---|---:|---:|---:|"]
    for label, r in rows:
        lines.append(f"| {label} | {'x'.join(str(v) for v in r['patch_size'])} | {_fmt(r['params_m'])} | {_fmt(r['gflops'])} | "
                     f"{_fmt(r['gflops_per_frame'])} |")
    return "\n".join(lines)
