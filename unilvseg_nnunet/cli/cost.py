"""``unilvseg cost``: parameters and GFLOPs per frame (fvcore) of planned configurations or SI encoders.

  unilvseg cost --encoders [--frames 16 --period 5 --size 112]   # the paper's Table IV encoders
  unilvseg cost -d 114 -c 2d 3d_fullres si_f16t5                  # configurations of a dataset's plans
  unilvseg cost -m $nnUNet_results/Dataset114_X/SuperImageTrainer__nnUNetPlans__si_f16t5
"""
from __future__ import annotations

from pathlib import Path

from unilvseg_nnunet.errors import UnilvsegError


def add_arguments(parser) -> None:
    parser.add_argument("--encoders", action="store_true", help="cost of the SI network with every encoder (Table IV)")
    parser.add_argument("--frames", type=int, default=16, help="SI frames F for --encoders (default 16)")
    parser.add_argument("--period", type=int, default=5, help="SI sampling period T for --encoders (default 5)")
    parser.add_argument("--size", type=int, default=112, help="frame side in pixels for --encoders (default 112)")
    parser.add_argument("--in-channels", type=int, default=1, help="input channels for --encoders (default 1, grey echo)")
    parser.add_argument("--classes", type=int, default=2, help="output channels for --encoders (default 2: background, LV)")
    parser.add_argument("-d", "--dataset", help="dataset name or id whose plans to read ($nnUNet_preprocessed)")
    parser.add_argument("-c", "--configurations", nargs="+", help="configurations of the plans (with -d)")
    parser.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("-tr", "--trainer", default="nnUNetTrainer", help="trainer whose build_network_architecture builds the network")
    parser.add_argument("-m", "--model-folders", nargs="+", default=[], help="trained model folders TRAINER__PLANS__CONFIG")


def run(args) -> int:
    from unilvseg_nnunet.evaluation.cost import configuration_table, encoder_costs, encoder_table, network_cost

    if not (args.encoders or args.dataset or args.model_folders):
        raise UnilvsegError("give --encoders, -d DATASET -c CONFIG..., or -m MODEL_FOLDER...")
    if args.encoders:
        rows = encoder_costs(args.frames, args.period, args.size, args.in_channels, args.classes)
        print(encoder_table(rows, args.frames, args.period, args.size, args.in_channels, args.classes))
        print()
    rows = []
    if args.dataset:
        from unilvseg_nnunet.planning.temporal import load_dataset_plans

        if not args.configurations:
            raise UnilvsegError("-d needs -c CONFIGURATION ...")
        plans = load_dataset_plans(args.dataset, args.plans)[0]
        rows += [(c, network_cost(plans, c, trainer=args.trainer)) for c in args.configurations]
    rows += [(Path(m).name, network_cost(m)) for m in args.model_folders]
    if rows:
        print(configuration_table(rows))
    return 0
