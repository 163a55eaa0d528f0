"""The ``unilvseg`` command: everything of ours that has no nnU-Net command.

Each subcommand lives in its own module of this package exposing ``add_arguments(parser)`` and
``run(args) -> int``; its one-line help is in :data:`HELPS`. Modules are imported only when their
subcommand runs, so ``unilvseg --help`` stays fast. Errors have one style for every subcommand:
bad input raises :class:`~unilvseg_nnunet.errors.UnilvsegError` (or a bad argument value is
reported by argparse), printed as ``unilvseg COMMAND: error: MESSAGE`` with exit status 2 and no
traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand name -> module in this package
COMMANDS = {
    "synth": "synth",
    "convert": "convert",
    "demo": "demo",
    "env": "env",
    "plan": "plan",
    "evaluate": "evaluate",
    "compare": "compare",
    "predict-video": "predict_video",
    "time-filter": "time_filter",
    "cost": "cost",
}

HELPS = {
    "synth": "write an EchoNet-Dynamic-format phantom dataset (beating LV videos with tracings)",
    "convert": "convert a dataset folder (EchoNet-Dynamic) into an nnU-Net raw dataset (as conversion/*.py)",
    "demo": "run the whole pipeline on the built-in phantom on CPU (minutes)",
    "env": "print the nnU-Net environment exports that make our trainers visible",
    "plan": "add the temporal (2D+t) or super-image configurations to a dataset's nnU-Net plans",
    "evaluate": "score a prediction folder: DSC with bootstrap CI, HD95, temporal consistency, EF, ED/ES",
    "compare": "Table-I style comparison of several trained models on one test split",
    "predict-video": "segment raw echo videos with a trained model: masks, overlay, area curve, ED/ES, EF",
    "time-filter": "filter an nnUNetv2_predict folder's probabilities along time (any model, e.g. stock 2d)",
    "cost": "parameters and GFLOPs per frame (fvcore) of planned configurations or encoders",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unilvseg",
        description="UniLVSeg for nnU-Net v2: our commands beside nnU-Net's own "
                    "(nnUNetv2_plan_and_preprocess, nnUNetv2_train, nnUNetv2_predict).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        sub.add_parser(name, help=HELPS[name], add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        parser = build_parser()
        if argv and not argv[0].startswith("-"):
            parser.error(f"unknown command {argv[0]!r}")
        parser.print_help()
        return 0 if argv and argv[0] in ("-h", "--help") else (0 if not argv else 2)
    name = argv[0]
    module = importlib.import_module(f"{__name__}.{COMMANDS[name]}")
    sub = argparse.ArgumentParser(prog=f"unilvseg {name}", description=HELPS[name])
    module.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    from unilvseg_nnunet.errors import UnilvsegError

    try:
        return int(module.run(args) or 0)
    except UnilvsegError as e:
        print(f"unilvseg {name}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
