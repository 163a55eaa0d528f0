"""Instance-norm statistics at inference: whole-window against training-clip statistics, same trained models.

For each whole-video model folder, segments the test split of its raw dataset twice (``unilvseg``'s inference,
which gives ``nnUNetv2_predict``'s masks): with the statistics of the whole window the network is given
(``norm_frames`` 0, how whole-video inference ran before) and with those of the training clip centred on each
frame (the plans' default), scores both with ``unilvseg evaluate`` against the phantom's every-frame truth and
prints the benchmark's figures side by side; ``--windows 8 16 32`` adds runs in windows of that many frames with
whole-window statistics (the experiment that located the cause); ``--time-filter 1 1.5`` adds training-clip
statistics followed by a Gaussian of that many frames along time on the probabilities (``predict-video
--time-filter``), the filter the benchmark applies to stock ``2d``; ``--norm-frames 4 6`` adds statistics over that
many frames centred on each frame (fewer than the training clip's)::

    python bench/bench_clip_norm.py --dataset bench_out/work_a60/nnUNet_raw/Dataset962_AccuracyArtefacts \\
        --models bench_out/work_a60/artefacts/budget600/seed*/results/Dataset962_*/SparseTemporalTrainer_demo__*

Models of ``bench/bench_accuracy.py`` (its work folder keeps them) need no retraining: the two runs differ in
inference only.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_accuracy import COLUMNS, figures, mean_sd_cell  # noqa: E402

SHOWN = [c for c in COLUMNS if c[1] not in ("dsc_clean", "iterations", "labeled_frames_seen")]


def segment_split(model: Path, dataset: Path, out: Path, norm_frames: int | None, window: int | None = None,
                  time_filter: float | None = None) -> Path:
    """Masks of the test split by ``model`` written under ``out``: instance norms over ``norm_frames`` frames
    (None: the plans' value, 0: the whole window), in windows of ``window`` frames (None: the plans' window),
    probabilities filtered along time with a Gaussian of ``time_filter`` frames (None: unfiltered)."""
    from unilvseg_nnunet.data.dataset import subset_cases
    from unilvseg_nnunet.files import read_volume_spacing, write_volume
    from unilvseg_nnunet.inference.clip_norm import use_clip_norm
    from unilvseg_nnunet.inference.predictor import load_predictor, segment
    from unilvseg_nnunet.inference.window import VideoWindowNet

    predictor = load_predictor(model, [0], device="cpu")
    if not isinstance(predictor.network, VideoWindowNet):
        raise SystemExit(f"{model}: not a whole-video model")
    if norm_frames is not None:
        use_clip_norm(predictor.network.net, norm_frames)
    if window is not None:  # the largest overlap plan_windows allows, no margin
        predictor.network = VideoWindowNet(predictor.network.net, window, window // 3, 0)
    _, cases, ending = subset_cases(dataset, "imagesTs")
    for case in cases:
        x, spacing = read_volume_spacing(dataset / "imagesTs" / f"{case}_0000{ending}")
        write_volume(out / f"{case}{ending}", segment(predictor, x, time_filter=time_filter), spacing)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", type=Path, required=True, help="raw dataset folder with the every-frame truth")
    p.add_argument("--models", type=Path, nargs="+", required=True, help="whole-video model folders (fold 0)")
    p.add_argument("--windows", type=int, nargs="*", default=[], help="also windows of these many frames, "
                   "whole-window statistics")
    p.add_argument("--time-filter", type=float, nargs="*", default=[], metavar="SIGMA",
                   help="also training-clip statistics with a Gaussian of SIGMA frames along time")
    p.add_argument("--norm-frames", type=int, nargs="*", default=[], metavar="N",
                   help="also statistics over the N frames centred on each frame")
    p.add_argument("--out", type=Path, default=Path("bench_out/clip_norm"))
    args = p.parse_args(argv)
    variants = [(f"windows of {w} frames, whole-window statistics", 0, w, None) for w in args.windows]
    variants += [("whole-window statistics", 0, None, None), ("training-clip statistics", None, None, None)]
    variants += [(f"statistics over {n} frames", n, None, None) for n in args.norm_frames]
    variants += [(f"training-clip statistics + time filter σ={s:g}", None, None, s) for s in args.time_filter]
    runs = []
    for i, model in enumerate(args.models):
        for label, norm_frames, window, sigma in variants:
            out = args.out / f"model{i}" / "".join(c if c.isascii() and c.isalnum() else "_" for c in label)
            segment_split(model, args.dataset, out / "pred", norm_frames, window, sigma)
            runs.append({"model": label, **score(out / "pred", args.dataset, out / "eval")})
            print(f"{model}: {label}: " + ", ".join(f"{k} {runs[-1][k]:.4f}" for _, k, _, _ in SHOWN), flush=True)
    print_table(runs, [label for label, *_ in variants], len(args.models))
    return 0


def score(pred: Path, dataset: Path, out: Path) -> dict:
    """``unilvseg evaluate`` of the masks in ``pred`` against the dataset's every-frame truth (report in ``out``);
    the benchmark's figures."""
    from unilvseg_nnunet.cli import main as cli

    if cli(["evaluate", "-p", str(pred), "-d", str(dataset), "-o", str(out), "--n-boot", "1000", "--no-video-plots"]):
        raise SystemExit(f"unilvseg evaluate failed on {pred}")
    return figures(json.loads((out / "summary.json").read_text()), {})


def print_table(runs: list[dict], labels: list[str], n_models: int, extra=()) -> None:
    """The Markdown table of ``runs`` (mean ± SD over models per label): ``extra`` columns, then :data:`SHOWN`."""
    columns = [*extra, *SHOWN]
    print(f"\n| Inference ({n_models} models) | " + " | ".join(c[0] for c in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for label in labels:
        print(f"| {label} | " + " | ".join(mean_sd_cell(runs, key, label, fmt, scale) for (_, key, fmt, scale) in columns)
              + " |")


if __name__ == "__main__":
    raise SystemExit(main())
