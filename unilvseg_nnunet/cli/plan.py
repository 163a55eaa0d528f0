"""``unilvseg plan``: add a temporal (2D+t) or super-image configuration to a dataset's nnU-Net plans."""
from __future__ import annotations

import json
from pathlib import Path

from ..encoders import ENCODERS
from ..planning import ARCHS, DEFAULT_TIME_SPACING, add_configuration, configuration_name, temporal_configuration


def add_arguments(parser) -> None:
    parser.add_argument("-d", "--dataset", required=True, help="dataset id or name (after nnUNetv2_plan_and_preprocess -c 3d_fullres)")
    parser.add_argument("--frames", type=int, help="clip length F (default 32; 16 with --super-image)")
    parser.add_argument("--period", type=int, help="sampling period T (default 1; 5 with --super-image)")
    parser.add_argument("--arch", choices=ARCHS, default="unet",
                        help="temporal network: nnU-Net's planned U-Net or the paper's 3D U-Net-S (residual units, PReLU)")
    parser.add_argument("--super-image", action="store_true", help="plan a super-image configuration instead (frames tiled into one 2D image)")
    parser.add_argument("--encoder", default="unet", choices=("unet", *ENCODERS),
                        help="super-image encoder (default: nnU-Net's planned 2D U-Net)")
    parser.add_argument("--encoder-weights", type=Path, help="local weights file for the super-image encoder (never downloaded)")
    parser.add_argument("--time-spacing", type=float, default=DEFAULT_TIME_SPACING,
                        help="pixels per frame nnU-Net assumes when choosing where to pool time (topology only; no resampling)")
    parser.add_argument("--gpu-memory", type=float, default=8, help="GPU memory target in GB for nnU-Net's batch-size estimate")
    parser.add_argument("--base", default="3d_fullres", help="configuration to inherit preprocessed data from")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier")


def run(args) -> int:
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    folder = Path(nnUNet_preprocessed.require()) / maybe_convert_to_dataset_name(args.dataset)
    plans_path = folder / f"{args.plans}.json"
    if not plans_path.is_file():
        raise SystemExit(f"{plans_path}: no plans; run nnUNetv2_plan_and_preprocess -d {args.dataset} -c {args.base} first")
    plans = json.loads(plans_path.read_text())
    if args.super_image:
        from ..superimage import superimage_configuration  # imported only here: the super-image code is optional

        fingerprint = json.loads((folder / "dataset_fingerprint.json").read_text())
        name, cfg = superimage_configuration(plans, fingerprint, base=args.base, frames=args.frames or 16,
                                             period=args.period or 5, encoder=args.encoder,
                                             encoder_weights=args.encoder_weights, gpu_memory_gb=args.gpu_memory)
    else:
        frames, period = args.frames or 32, args.period or 1
        dataset_json = json.loads((folder / "dataset.json").read_text())
        name = configuration_name(frames, period, args.arch)
        cfg = temporal_configuration(plans, dataset_json, base=args.base, frames=frames, period=period, arch=args.arch,
                                     time_spacing=args.time_spacing, gpu_memory_gb=args.gpu_memory)
    add_configuration(plans_path, name, cfg)
    arch = cfg["architecture"]["arch_kwargs"]
    print(f"added configuration {name!r} to {plans_path}: patch {cfg['patch_size']}, batch size {cfg['batch_size']}, "
          f"{cfg['architecture']['network_class_name'].rsplit('.', 1)[-1]}, strides {arch.get('strides')}")
    print(f"train: nnUNetv2_train {args.dataset} {name} 0 -tr "
          f"{'SparseTemporalTrainer' if not args.super_image else 'SuperImageTrainer'} -device cpu|cuda")
    return 0
