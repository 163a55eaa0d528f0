"""Temporal (2D+t) configurations for a dataset's nnU-Net plans, planned by nnU-Net's own planner.

A temporal configuration "inherits_from" the stock ``3d_fullres`` (same preprocessed data, spacing,
normalisation) and overrides what video needs:

- patch: F frames (clip length) x the in-plane median size; with a sampling period T the stored
  patch holds F*T frames (an inference window that the network splits into T clips of F frames);
- topology and batch size: nnU-Net's ``ExperimentPlanner.get_plans_for_configuration`` run on a
  clip of F frames x the in-plane median size, time spaced like the image plane (so every stage
  gets 3-wide kernels along time, the full-resolution stages included, where the boundary is
  drawn). nnU-Net's stages, in-plane kernels and strides and features are kept; time is then never
  strided (:func:`video_topology`): a stride-2 pooling along time and its transposed convolution
  would treat even and odd frames differently (a period-2 flicker of the predicted area), while
  with unit time strides the network is shift-equivariant along time. Convolutions are
  :class:`~unilvseg_nnunet.training.networks.FactorizedConv3d` (in-plane then along time), which
  keeps the cost per frame of full-time-resolution stages near that of an in-plane network. nnU-Net's
  VRAM estimate, and so its batch size, is computed on this video network;
- ``"unilvseg": {"frames", "period", "arch", ...}``, which our trainers read.

Architectures: ``unet`` = nnU-Net's PlainConvUNet as planned; ``unet_s`` = the paper's 3D U-Net-S
(residual units of two convolutions with instance norm and PReLU, two units per encoder stage),
dynamic_network_architectures' ResidualEncoderUNet with BasicBlockD blocks.
"""
from __future__ import annotations

import json
import os
from copy import deepcopy
from pathlib import Path

import numpy as np
from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet
from nnunetv2.configuration import ANISO_THRESHOLD
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners import (
    ResEncUNetPlanner,
)
from nnunetv2.utilities.json_export import recursive_fix_for_json_export
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from unilvseg_nnunet.errors import UnilvsegError
from unilvseg_nnunet.files import write_json

DEFAULT_FRAMES, DEFAULT_PERIOD, DEFAULT_ARCH = 32, 1, "unet"
TIME_CONV_OP = "unilvseg_nnunet.training.networks.FactorizedConv3d"
ARCHS = ("unet", "unet_s")
KEY = "unilvseg"
MIN_INPLANE_PATCH = 16  # the smallest in-plane patch planning falls back to before refusing a clip length


def configuration_name(frames: int = DEFAULT_FRAMES, period: int = DEFAULT_PERIOD, arch: str = DEFAULT_ARCH) -> str:
    """'3d_temporal' for the paper's F=32, T=1 U-Net; else e.g. '3d_temporal_f16t2', '3d_temporal_unet_s'."""
    name = "3d_temporal" if (frames, period) == (DEFAULT_FRAMES, DEFAULT_PERIOD) else f"3d_temporal_f{frames}t{period}"
    return name if arch == DEFAULT_ARCH else f"{name}_{arch}"


class _FromMemory:
    """Mixin: an nnU-Net planner that runs ``get_plans_for_configuration`` from dicts in memory.

    ``ExperimentPlanner.__init__`` reads the raw dataset and fingerprint from disk (not available
    to a trainer on a training machine), so it is not called; the attributes that
    ``get_plans_for_configuration`` reads are set to nnU-Net 2.8.1's defaults (a test compares
    them with a real planner).
    """

    def __init__(self, dataset_json: dict, base: dict, gpu_memory_gb: float):
        self.dataset_json, self.base = dataset_json, base
        self.anisotropy_threshold = ANISO_THRESHOLD
        self.UNet_base_num_features = 32
        self.UNet_class = PlainConvUNet
        self.UNet_reference_val_3d = 560000000
        self.UNet_reference_val_2d = 85000000
        self.UNet_reference_com_nfeatures = 32
        self.UNet_reference_val_corresp_GB = 8
        self.UNet_reference_val_corresp_bs_2d = 12
        self.UNet_reference_val_corresp_bs_3d = 2
        self.UNet_featuremap_min_edge_length = 4
        self.UNet_blocks_per_stage_encoder = (2,) * 14
        self.UNet_blocks_per_stage_decoder = (2,) * 13
        self.UNet_min_batch_size = 2
        self.UNet_max_features_2d = 512
        self.UNet_max_features_3d = 320
        self.max_dataset_covered = 0.05
        self.UNet_vram_target_GB = gpu_memory_gb
        self.preprocessor_name = base["preprocessor_name"]

    def determine_normalization_scheme_and_whether_mask_is_used_for_norm(self):
        return self.base["normalization_schemes"], self.base["use_mask_for_norm"]


def video_topology(arch_kwargs: dict) -> dict:
    """nnU-Net's planned 3D topology (time first) made video-safe; a new dict.

    Every time stride becomes 1 and every time kernel 3, with :data:`TIME_CONV_OP` as convolution;
    trailing stages that pooled time only (planned for clips longer than the frames are wide) are
    dropped, since they would no longer pool anything.
    """
    kw = deepcopy(arch_kwargs)
    strides = [[1, *(int(i) for i in s[1:])] for s in kw["strides"]]
    n = 1 + max([i for i, s in enumerate(strides) if max(s) > 1], default=0)
    for key in ("features_per_stage", "kernel_sizes", "n_conv_per_stage", "n_blocks_per_stage"):
        if key in kw:
            kw[key] = list(kw[key])[:n]
    if "n_conv_per_stage_decoder" in kw:
        kw["n_conv_per_stage_decoder"] = list(kw["n_conv_per_stage_decoder"])[:n - 1]
    kw.update(n_stages=n, strides=strides[:n], kernel_sizes=[[3, *(int(i) for i in k[1:])] for k in kw["kernel_sizes"]],
              conv_op=TIME_CONV_OP)
    return kw


class _VideoTopology:
    """Mixin for an nnU-Net planner: plans, VRAM estimate included, use :func:`video_topology`."""

    def static_estimate_VRAM_usage(self, patch_size, input_channels, output_channels, arch_class_name, arch_kwargs,
                                   arch_kwargs_req_import):
        return super().static_estimate_VRAM_usage(patch_size, input_channels, output_channels, arch_class_name,
                                                  video_topology(arch_kwargs), arch_kwargs_req_import)

    def get_plans_for_configuration(self, *args, **kwargs) -> dict:
        plan = super().get_plans_for_configuration(*args, **kwargs)
        plan["architecture"]["arch_kwargs"] = video_topology(plan["architecture"]["arch_kwargs"])
        return plan


class TemporalUNetPlanner(_VideoTopology, _FromMemory, ExperimentPlanner):
    """nnU-Net's default planner (PlainConvUNet), video topology."""


class TemporalUNetSPlanner(_VideoTopology, _FromMemory, ResEncUNetPlanner):
    """nnU-Net's residual-encoder planner set up as the paper's 3D U-Net-S (two residual units per stage), video
    topology."""

    def __init__(self, dataset_json: dict, base: dict, gpu_memory_gb: float):
        super().__init__(dataset_json, base, gpu_memory_gb)
        self.UNet_class = ResidualEncoderUNet
        self.UNet_reference_val_3d = 680000000  # ResEncUNetPlanner's reference
        self.UNet_base_num_features = 16
        self.UNet_max_features_3d = 256
        self.UNet_blocks_per_stage_encoder = (2,) * 14
        self.UNet_blocks_per_stage_decoder = (1,) * 13

    def get_plans_for_configuration(self, *args, **kwargs) -> dict:
        plan = super().get_plans_for_configuration(*args, **kwargs)
        plan["architecture"]["arch_kwargs"].update(nonlin="torch.nn.PReLU", nonlin_kwargs={})
        return plan


PLANNERS = {"unet": TemporalUNetPlanner, "unet_s": TemporalUNetSPlanner}


def resolved_configuration(plans: dict, name: str) -> dict:
    """Configuration ``name`` with its "inherits_from" chain resolved (nnU-Net's own resolution)."""
    if name not in plans.get("configurations", {}):
        raise KeyError(f"plans {plans.get('plans_name', '')!r} have no configuration {name!r} "
                       f"(have: {sorted(plans.get('configurations', {}))}); run nnUNetv2_plan_and_preprocess first")
    return deepcopy(PlansManager(plans).get_configuration(name).configuration)


def temporal_configuration(plans: dict, dataset_json: dict, base: str = "3d_fullres", frames: int = DEFAULT_FRAMES,
                           period: int = DEFAULT_PERIOD, arch: str = DEFAULT_ARCH, gpu_memory_gb: float = 8) -> dict:
    """The temporal configuration dict (to store under :func:`configuration_name`) planned on ``base``.

    nnU-Net may pad the clip it plans to a multiple of the time pooling it would have chosen; as
    time is never pooled, the stored patch keeps exactly ``frames`` frames (the VRAM estimate
    behind the batch size saw the padded clip, a slight overestimate). A clip that nnU-Net would
    shorten to fit ``gpu_memory_gb`` is refused.
    """
    if arch not in PLANNERS:
        raise ValueError(f"unknown architecture {arch!r}; choose from {ARCHS}")
    if frames < 2 or period < 1:
        raise ValueError(f"need frames >= 2 and period >= 1, got frames={frames}, period={period}")
    cfg = resolved_configuration(plans, base)
    if len(cfg["patch_size"]) != 3:
        raise ValueError(f"configuration {base!r} is not 3D (patch {cfg['patch_size']}); temporal planning needs a "
                         "3D base such as 3d_fullres")
    inplane_spacing = [float(s) for s in cfg["spacing"][1:]]
    spacing = [min(inplane_spacing), *inplane_spacing]
    median = [float(s) for s in cfg["median_image_size_in_voxels"]]
    planner = PLANNERS[arch](dataset_json, cfg, gpu_memory_gb)
    inplane = median[1:]
    while True:  # frames larger than what fits: plan on a smaller in-plane extent until the whole clip fits
        plan = planner.get_plans_for_configuration(
            spacing, [frames, *inplane], cfg["data_identifier"],
            float(np.prod(median, dtype=np.float64) * dataset_json["numTraining"]), {})
        if plan["patch_size"][0] >= frames or max(plan["patch_size"][1:]) <= MIN_INPLANE_PATCH:
            break
        inplane = [max(MIN_INPLANE_PATCH, 0.85 * v) for v in plan["patch_size"][1:]]
    recursive_fix_for_json_export(plan)
    if plan["patch_size"][0] < frames:
        raise ValueError(f"a clip of {frames} frames does not fit nnU-Net's {gpu_memory_gb} GB memory target (it "
                         f"would keep {plan['patch_size'][0]} frames of {plan['patch_size'][1:]} pixels); plan fewer "
                         "frames or more memory")
    return with_inference_window(json.loads(json.dumps({  # as stored in plans.json (lists, not tuples), in memory too
        "inherits_from": base,
        "patch_size": [frames * period, *(int(i) for i in plan["patch_size"][1:])],
        "batch_size": int(plan["batch_size"]),
        "architecture": plan["architecture"],
        KEY: {"frames": frames, "period": period, "arch": arch, "gpu_memory_gb": gpu_memory_gb,
              "planner": type(planner).__name__},
    })))


def clip_settings(configuration: dict) -> dict | None:
    """The "unilvseg" entry of a resolved configuration, or None for a stock one."""
    return configuration.get(KEY)


# Whole-video inference (unilvseg_nnunet.inference.window): nnUNetv2_predict tiles time with the patch's first
# length, so a patch of INFERENCE_TILE_FRAMES frames hands every video of up to that length (every EchoNet-Dynamic
# video: at most 1,002 frames) to the network in one tile; the network runs windows of at most "max_frames" frames.
INFERENCE_TILE_FRAMES = 1024
INFERENCE_WINDOW = {"max_frames": 256, "overlap": 32, "margin": 8}


def with_inference_window(cfg: dict) -> dict:
    """A period-1 temporal configuration with the whole-video inference window: patch of
    :data:`INFERENCE_TILE_FRAMES` frames (training clips keep "unilvseg"["frames"]) and
    "unilvseg"["inference"] = :data:`INFERENCE_WINDOW` with instance-norm statistics over the training clip's
    frames ("norm_frames", see :mod:`unilvseg_nnunet.inference.clip_norm`); any other configuration as it is."""
    clip = cfg.get(KEY) or {}
    if clip.get("period") != 1 or clip.get("layout") == "superimage":
        return cfg
    frames = int(clip["frames"])
    window = {**INFERENCE_WINDOW, "max_frames": max(INFERENCE_WINDOW["max_frames"], frames), "norm_frames": frames}
    return {**cfg, "patch_size": [max(INFERENCE_TILE_FRAMES, frames), *cfg["patch_size"][1:]],
            KEY: {**clip, "inference": window}}


def with_temporal_configuration(plans: dict, name: str, dataset_json: dict, **kwargs) -> dict:
    """``plans`` unchanged if configuration ``name`` is already temporal; else a copy in which ``name``
    is replaced by the temporal configuration planned on it (paper defaults unless ``kwargs``).

    This is how the trainers run on a stock plan (``nnUNetv2_train ID 3d_fullres 0 -tr ...``): the
    adapted plans are what nnU-Net saves as plans.json beside the model, so prediction rebuilds
    the same network.
    """
    cfg = resolved_configuration(plans, name)
    if clip_settings(cfg) is not None:
        return plans
    temporal = temporal_configuration(plans, dataset_json, base=name, **kwargs)
    del temporal["inherits_from"]
    plans = deepcopy(plans)
    plans["configurations"][name] = {**cfg, **temporal}
    return plans


def add_configuration(plans_path: str | os.PathLike, name: str, cfg: dict) -> None:
    """Store ``cfg`` as configuration ``name`` in the plans file (atomic rewrite, other entries kept)."""
    path = Path(plans_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no nnU-Net plans; run nnUNetv2_plan_and_preprocess -d ID -c 3d_fullres first")
    plans = json.loads(path.read_text())
    base = cfg.get("inherits_from")
    if base is not None and base not in plans.get("configurations", {}):
        raise KeyError(f"{path}: configuration {name!r} inherits from {base!r}, which these plans lack")
    plans["configurations"][name] = cfg
    write_json(path, plans)


def load_dataset_plans(dataset: str, plans_name: str = "nnUNetPlans",
                       base: str = "3d_fullres") -> tuple[Path, dict, dict, dict]:
    """(plans path, plans, dataset.json, fingerprint) of a preprocessed dataset (id or name under
    $nnUNet_preprocessed)."""
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    root = os.environ.get("nnUNet_preprocessed")
    if not root:
        raise UnilvsegError("nnUNet_preprocessed is not set (export it, as for nnUNetv2_plan_and_preprocess)")
    try:
        folder = Path(root) / maybe_convert_to_dataset_name(str(dataset))
    except (RuntimeError, ValueError) as e:
        raise UnilvsegError(f"-d {dataset}: no such dataset ({str(e).splitlines()[0]})") from None
    plans_path = folder / f"{plans_name}.json"
    if not plans_path.is_file():
        raise UnilvsegError(f"{plans_path}: no plans; run nnUNetv2_plan_and_preprocess -d {dataset} -c {base} first")
    read = [json.loads(p.read_text()) if p.is_file() else {}
            for p in (plans_path, folder / "dataset.json", folder / "dataset_fingerprint.json")]
    return plans_path, *read
