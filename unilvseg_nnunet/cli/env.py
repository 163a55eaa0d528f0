"""``unilvseg env``: the environment nnU-Net needs to find our trainers (for training and prediction)."""
from __future__ import annotations

import os
import shlex


def add_arguments(parser) -> None:
    parser.add_argument("--shell", choices=("sh", "fish"), default="sh", help="syntax of the printed lines")


def run(args) -> int:
    from unilvseg_nnunet.training import TRAINER_FOLDER

    export = (lambda k, v: f"set -gx {k} {shlex.quote(v)}") if args.shell == "fish" else (lambda k, v: f"export {k}={shlex.quote(v)}")
    print("# eval \"$(unilvseg env)\" makes nnUNetv2_train / nnUNetv2_predict find the unilvseg trainers")
    print(export("nnUNet_extTrainer", str(TRAINER_FOLDER)))
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        value = os.environ.get(var)
        print(export(var, value) if value else f"# {var} is not set: export {var}=/path/to/{var} (nnU-Net's data folders)")
    print("# on a machine without GPU add: -device cpu to nnUNetv2_train/nnUNetv2_predict; export nnUNet_compile=f")
    return 0
