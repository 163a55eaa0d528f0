"""``unilvseg demo``: the whole pipeline on the built-in phantom, on CPU."""
from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="working folder (default ./demo_out)")
    parser.add_argument("--n", type=int, default=20, help="number of phantom videos (default 20)")
    parser.add_argument("--budget", type=float, default=None, help="seconds of training per model (default 25)")
    parser.add_argument("--artefacts", default="severe",
                        help="phantom artefact level (default severe: about a quarter of the frames corrupted)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps"))


def run(args) -> int:
    from unilvseg_nnunet.demo import DEFAULT_BUDGET_S, run_demo

    run_demo(args.out, n_videos=args.n, seed=args.seed, device=args.device, budget_s=args.budget or DEFAULT_BUDGET_S,
             artefacts=args.artefacts)
    return 0
