"""Super-image configurations for a dataset's nnU-Net plans, planned by nnU-Net's own 2D planner.

The 2D network (nnU-Net's U-Net by default, or an encoder of :mod:`unilvseg_nnunet.training.encoders`)
and the batch size come from nnU-Net's 2D planning on the super-image size (sqrt(F) frames a side).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from unilvseg_nnunet.planning.temporal import INFERENCE_TILE_FRAMES, INFERENCE_WINDOW
from unilvseg_nnunet.training.superimage import NETWORK_CLASS, grid_side

SI_FRAMES, SI_PERIOD = 16, 5  # the paper's best super image: 16 frames (4x4) at period 5


def configuration_name(frames: int, period: int, encoder: str = "unet") -> str:
    """"si_f{F}t{T}", plus "_{encoder}" for an encoder other than nnU-Net's planned U-Net."""
    return f"si_f{frames}t{period}" + ("" if encoder == "unet" else f"_{encoder}")


def inference_window(frames: int, period: int) -> dict:
    """The whole-video inference window of an SI configuration ("unilvseg"["inference"], read by
    :class:`~unilvseg_nnunet.inference.window.VideoWindowNet`): a video is segmented in one pass of every clip
    of F frames at stride T it holds, so each frame is predicted at all F grid positions, about one super image
    per frame, and neighbouring frames alike (see :class:`~unilvseg_nnunet.training.superimage.SuperImageNet`).
    Longer videos go in windows whose ``margin`` drops the (F-1)*T frames at each window edge that fewer clips
    hold, so a frame's output does not depend on where windows fall. No clip statistics: the 2D network's
    instance norms see one super image."""
    margin = (frames - 1) * period
    overlap = 2 * margin + 16  # a 16-frame cross-fade between the margins
    return {"max_frames": max(INFERENCE_WINDOW["max_frames"], 3 * overlap), "overlap": overlap, "margin": margin,
            "norm_frames": 0}


def superimage_configuration(plans: dict, fingerprint: dict | None = None, base: str = "3d_fullres", frames: int = SI_FRAMES,
                             period: int = SI_PERIOD, encoder: str = "unet", encoder_weights: str | None = None,
                             gpu_memory_gb: float | None = None, planner=None) -> tuple[str, dict]:
    """Plan a super-image configuration for ``plans`` (the dict of nnUNetPlans.json); returns (name, config).

    The config ``"inherits_from": base`` (its preprocessed 3D data is reused), has patch
    (:data:`~unilvseg_nnunet.planning.temporal.INFERENCE_TILE_FRAMES`, H, W) with (H, W) the median frame size
    (training clips keep F frames; nnUNetv2_predict hands a whole video to the network in one tile), and a
    ``"unilvseg"`` key read by our trainers, with the :func:`inference_window`. The 2D U-Net topology (or, for another
    encoder, just the batch size) comes from the dataset's own nnU-Net planner (the class recorded
    in the plans, e.g. ExperimentPlanner or a ResEnc planner) planning a 2D configuration of median
    size sqrt(F)*H x sqrt(F)*W. Where the planner's VRAM rule shrinks that 2D patch (frames larger
    than it, such as CAMUS's), the frame patch becomes the 2D patch / sqrt(F) per axis: training
    crops frames to it and prediction slides over whole frames, as nnU-Net does with any patch.
    ``planner``: an already constructed planner (default: the plans' planner class for
    ``plans["dataset_name"]``, which needs nnUNet_raw/nnUNet_preprocessed); ``fingerprint`` replaces
    the planner's dataset fingerprint.
    ``encoder_weights``: optional local ImageNet checkpoint the SI trainer loads into the encoder.
    ``gpu_memory_gb``: the planner's VRAM target (default: the planner's own, 8 GB for nnU-Net's).
    """
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    g = grid_side(frames)
    if period < 1:
        raise ValueError(f"sampling period must be >= 1, got {period}")
    if encoder != "unet":
        from unilvseg_nnunet.training.encoders import ENCODERS

        if encoder not in ENCODERS:
            raise ValueError(f"unknown encoder {encoder!r}; choose 'unet' or one of {sorted(ENCODERS)}")
    if encoder_weights is not None:
        if encoder == "unet":
            raise ValueError("encoder_weights are for the pretrained-style encoders, not nnU-Net's planned U-Net")
        encoder_weights = Path(encoder_weights).resolve()
        if not encoder_weights.is_file():
            raise FileNotFoundError(f"{encoder_weights}: encoder weights file not found")
    manager = PlansManager(plans)
    if base not in plans["configurations"]:
        raise ValueError(f"plans of {plans.get('dataset_name')} have no {base!r} configuration to build on "
                         f"(have {list(plans['configurations'])}); run nnUNetv2_plan_and_preprocess -c {base} first")
    base_cfg = manager.get_configuration(base)
    if len(base_cfg.patch_size) != 3:
        raise ValueError(f"base configuration {base!r} is not 3D (patch {base_cfg.patch_size})")
    h, w = (int(round(v)) for v in base_cfg.median_image_size_in_voxels[1:])  # whole frames, whatever the base patch
    if planner is None:
        planner = manager.experiment_planner_class(plans["dataset_name"], plans_name=plans["plans_name"])
    if fingerprint is not None:
        planner.dataset_fingerprint = fingerprint
    if gpu_memory_gb is not None:
        planner.UNet_vram_target_GB = float(gpu_memory_gb)
    si_size = (g * h, g * w)
    n_voxels = float(np.prod(base_cfg.median_image_size_in_voxels, dtype=np.float64) * planner.dataset_json["numTraining"])
    plan_2d = planner.get_plans_for_configuration(base_cfg.spacing[1:], si_size, f"{plans['plans_name']}_{base}", n_voxels, {})
    patch_2d = [int(v) for v in plan_2d["patch_size"]]
    h, w = (min(size, p // g) for size, p in zip((h, w), patch_2d))  # the frame patch fits the planned 2D patch
    arch_2d = plan_2d["architecture"]
    video = {"frames": frames, "period": period, "encoder": encoder, "frame_norm": True}
    if encoder == "unet":
        arch_kwargs = {**video, "net_class": arch_2d["network_class_name"], **arch_2d["arch_kwargs"]}
        requires_import = list(arch_2d["_kw_requires_import"])
    else:
        arch_kwargs = {**video, "img_size": g * max(h, w)}
        requires_import = []
    config = {
        "inherits_from": base,
        "patch_size": [INFERENCE_TILE_FRAMES, h, w],
        "batch_size": int(plan_2d["batch_size"]),
        "batch_dice": True,  # as nnU-Net's own 2d configuration
        "architecture": {"network_class_name": NETWORK_CLASS, "arch_kwargs": arch_kwargs,
                         "_kw_requires_import": requires_import},
        "unilvseg": {"frames": frames, "period": period, "encoder": encoder, "layout": "superimage",
                     "super_image_size": list(si_size), "planned_2d_patch_size": patch_2d,
                     "gpu_memory_gb": planner.UNet_vram_target_GB, "planner": type(planner).__name__,
                     "encoder_weights": None if encoder_weights is None else str(encoder_weights),
                     "inference": inference_window(frames, period)},
    }
    from nnunetv2.utilities.json_export import recursive_fix_for_json_export

    recursive_fix_for_json_export(config)
    return configuration_name(frames, period, encoder), config
