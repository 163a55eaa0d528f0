"""What standardising each tile costs a super image's inference pass: the same trained network on the same window,
``frame_norm`` switched on and off, rounds in turns::

    python bench/superimage_frame_norm_cost.py MODEL_FOLDER [--window 16] [--rounds 4]

MODEL_FOLDER is a trained super-image model (``<Trainer>__nnUNetPlans__si_f*t*``); prints frames/s per round.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path, help="nnU-Net model folder of a super-image configuration (fold 0)")
    p.add_argument("--window", type=int, default=16, help="frames per forward pass (default 16)")
    p.add_argument("--rounds", type=int, default=4)
    args = p.parse_args(argv)

    import torch

    from unilvseg_nnunet.inference.predictor import load_predictor, model_frame_size
    from unilvseg_nnunet.training.superimage import SuperImageNet

    predictor = load_predictor(args.model, ["0"], device="cpu")
    net = predictor.network
    net.load_state_dict(predictor.list_of_parameters[0])
    net.eval()
    si = next(m for m in net.modules() if isinstance(m, SuperImageNet))
    x = torch.randn(1, 1, args.window, *model_frame_size(predictor))
    rates: dict[bool, list[float]] = {True: [], False: []}
    with torch.no_grad():
        net(x)  # warm-up
        for _ in range(args.rounds):
            for on in rates:
                si.frame_norm = on
                t0 = time.perf_counter()
                net(x)
                rates[on].append(args.window / (time.perf_counter() - t0))
    for on, r in rates.items():
        print(f"frame_norm={on}: " + " ".join(f"{v:.2f}" for v in r) + " frames/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
