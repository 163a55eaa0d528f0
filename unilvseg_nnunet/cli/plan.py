"""``unilvseg plan``: add a temporal (2D+t) or super-image configuration to a dataset's nnU-Net plans."""
from __future__ import annotations

from pathlib import Path

from unilvseg_nnunet.planning.superimage import SI_FRAMES, SI_PERIOD
from unilvseg_nnunet.planning.temporal import (
    ARCHS,
    DEFAULT_FRAMES,
    DEFAULT_PERIOD,
    add_configuration,
    configuration_name,
    load_dataset_plans,
    temporal_configuration,
)
from unilvseg_nnunet.training.encoders import ENCODERS


def add_arguments(parser) -> None:
    parser.add_argument("-d", "--dataset", required=True, help="dataset id or name (after nnUNetv2_plan_and_preprocess -c 3d_fullres)")
    parser.add_argument("--frames", type=int, help=f"clip length F (default {DEFAULT_FRAMES}; {SI_FRAMES} with --super-image)")
    parser.add_argument("--period", type=int, help=f"sampling period T (default {DEFAULT_PERIOD}; {SI_PERIOD} with --super-image)")
    parser.add_argument("--arch", choices=ARCHS, default="unet",
                        help="temporal network: nnU-Net's planned U-Net or the paper's 3D U-Net-S (residual units, PReLU)")
    parser.add_argument("--super-image", action="store_true",
                        help="plan a super-image configuration instead (frames tiled into one 2D image)")
    parser.add_argument("--encoder", default="unet", choices=("unet", *ENCODERS),
                        help="super-image encoder (default: nnU-Net's planned 2D U-Net)")
    parser.add_argument("--encoder-weights", type=Path, help="local weights file for the super-image encoder (never downloaded)")
    parser.add_argument("--gpu-memory", type=float, default=8, help="GPU memory target in GB for nnU-Net's batch-size estimate")
    parser.add_argument("--base", default="3d_fullres", help="configuration to inherit preprocessed data from")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier")


def run(args) -> int:
    plans_path, plans, dataset_json, fingerprint = load_dataset_plans(args.dataset, args.plans, args.base)
    if args.super_image:
        from unilvseg_nnunet.planning.superimage import superimage_configuration  # imported only here: the super-image code is optional

        name, cfg = superimage_configuration(plans, fingerprint, base=args.base, frames=args.frames or SI_FRAMES,
                                             period=args.period or SI_PERIOD, encoder=args.encoder,
                                             encoder_weights=args.encoder_weights, gpu_memory_gb=args.gpu_memory)
    else:
        frames, period = args.frames or DEFAULT_FRAMES, args.period or DEFAULT_PERIOD
        name = configuration_name(frames, period, args.arch)
        cfg = temporal_configuration(plans, dataset_json, base=args.base, frames=frames, period=period, arch=args.arch,
                                     gpu_memory_gb=args.gpu_memory)
    add_configuration(plans_path, name, cfg)
    arch = cfg["architecture"]["arch_kwargs"]
    print(f"added configuration {name!r} to {plans_path}: patch {cfg['patch_size']}, batch size {cfg['batch_size']}, "
          f"{cfg['architecture']['network_class_name'].rsplit('.', 1)[-1]}, strides {arch.get('strides')}")
    print(f"train: nnUNetv2_train {args.dataset} {name} 0 -tr "
          f"{'SparseTemporalTrainer' if not args.super_image else 'SuperImageTrainer'} -device cpu|cuda")
    return 0
