#!/usr/bin/env python
"""Cost: parameters and GFLOPs per frame (fvcore, one multiply-add = one flop) of every configuration.

Configurations of the phantom dataset's plans (112x112 frames, like EchoNet-Dynamic), each network
built by the trainer that trains it, exactly as nnUNetv2_predict builds it (unilvseg_nnunet.evaluation.cost):
stock ``2d`` and ``3d_fullres`` (nnUNetTrainer), ``3d_temporal`` and ``3d_temporal_unet_s`` (F=32,
T=1; SparseTemporalTrainer), ``si_f16t5`` (SuperImageTrainer, nnU-Net's planned 2D U-Net); then the
super-image network with every encoder at F=16, T=5 (unilvseg_nnunet.evaluation.cost.encoder_costs). Per frame
= one patch's flops / frames in the patch. The paper's Tables I and IV beside them.

    python bench/bench_cost.py [--small]
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

# configuration -> (trainer that builds it, paper (params M, GFLOPs/frame) or None)
CONFIGURATIONS = {
    "2d": ("nnUNetTrainer", (7.37, 2.30)),
    "3d_fullres": ("nnUNetTrainer", None),
    "3d_temporal": ("SparseTemporalTrainer", (18.83, 1.13)),
    "3d_temporal_unet_s": ("SparseTemporalTrainer", (11.26, 0.85)),
    "si_f16t5": ("SuperImageTrainer", None),
}
SMALL = ["2d", "3d_temporal_unet_s"]


def main(argv=None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--encoders", nargs="*", help="super-image encoders to count (default all; --small: mobilenetv3)")
    args = p.parse_args(argv)
    common.use_env(args.workdir)
    names = SMALL if args.small else list(CONFIGURATIONS)
    plans = common.prepare_dataset(args.workdir, args.small, names)

    from unilvseg_nnunet.evaluation.cost import configuration_table, encoder_costs, encoder_table, network_cost

    rows, errors = [], {}
    for name in names:
        trainer, paper = CONFIGURATIONS[name]
        try:
            r = network_cost(plans, name, trainer=trainer)
        except Exception as e:  # noqa: BLE001 - report and go on with the others
            errors[name] = f"{type(e).__name__}: {e}"
            print(f"{name}: {errors[name]}")
            continue
        rows.append({"configuration": name, "trainer": trainer, **r,
                     "paper": {"params_m": paper[0], "gflops_per_frame": paper[1]} if paper else None})
    encoders = encoder_costs(16, 5, 112, 1, 2, encoders=args.encoders or (["mobilenetv3"] if args.small else None))

    by = {r["configuration"]: r for r in rows}
    ratios = {n: by["2d"]["gflops_per_frame"] / r["gflops_per_frame"] for n, r in by.items() if n != "2d" and "2d" in by}
    path = common.write_result("cost" + ("_small" if args.small else ""),
                               {"configurations": rows, "encoders": encoders, "gflops_ratio_2d_over": ratios, "errors": errors}, args.out)
    print(configuration_table([(f"{r['configuration']} ({r['trainer']})", r) for r in rows]))
    print()
    print(encoder_table(encoders, 16, 5, 112, 1, 2))
    print(f"\nresults: {path}")
    if "2d" in by and ratios:
        print("COST (fvcore GFLOPs per frame): stock 2d " + f"{by['2d']['gflops_per_frame']:.2f} ({by['2d']['params_m']:.2f} M params); "
              + "; ".join(f"{n} {by[n]['gflops_per_frame']:.2f} ({by[n]['params_m']:.2f} M) = 2d/{ratios[n]:.2f}" for n in ratios))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
