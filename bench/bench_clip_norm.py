"""Instance-norm statistics at inference: whole-window against training-clip statistics, same trained models.

For each whole-video model folder, segments the test split of its raw dataset twice (``unilvseg``'s inference,
which gives ``nnUNetv2_predict``'s masks): with the statistics of the whole window the network is given
(``norm_frames`` 0, how whole-video inference ran before) and with those of the training clip centred on each
frame (the plans' default), scores both with ``unilvseg evaluate`` against the phantom's every-frame truth and
prints the benchmark's figures side by side::

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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_accuracy import figures  # noqa: E402

COLUMNS = ("dense_dsc", "dsc_corrupted", "worst_frame_dsc", "hf_share", "hf_ratio", "ed_es_error", "ef_beats_mae",
           "area_swing")


def segment_split(model: Path, dataset: Path, out: Path, norm_frames: int | None) -> Path:
    """Masks of the test split by ``model`` with ``norm_frames`` (None: the plans' value) written under ``out``."""
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
    _, cases, ending = subset_cases(dataset, "imagesTs")
    for case in cases:
        x, spacing = read_volume_spacing(dataset / "imagesTs" / f"{case}_0000{ending}")
        write_volume(out / f"{case}{ending}", segment(predictor, x), spacing)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", type=Path, required=True, help="raw dataset folder with the every-frame truth")
    p.add_argument("--models", type=Path, nargs="+", required=True, help="whole-video model folders (fold 0)")
    p.add_argument("--out", type=Path, default=Path("bench_out/clip_norm"))
    args = p.parse_args(argv)
    from unilvseg_nnunet.cli import main as cli

    dataset_id = args.dataset.name[len("Dataset"):len("Dataset") + 3]
    rows = {}
    for i, model in enumerate(args.models):
        for label, norm_frames in (("whole-window statistics", 0), ("training-clip statistics", None)):
            out = args.out / f"model{i}" / ("whole" if norm_frames == 0 else "clip")
            segment_split(model, args.dataset, out / "pred", norm_frames)
            if cli(["evaluate", "-p", str(out / "pred"), "-d", dataset_id, "-o", str(out / "eval"), "--n-boot", "1000",
                    "--no-video-plots"]):
                raise SystemExit(f"unilvseg evaluate failed on {out / 'pred'}")
            f = figures(json.loads((out / "eval" / "summary.json").read_text()), {})
            rows.setdefault(label, []).append(f)
            print(f"{model.parent.parent.parent.name} {label}: " +
                  ", ".join(f"{k} {f[k]:.4f}" for k in COLUMNS), flush=True)
    print(f"\n| Inference ({len(args.models)} models) | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for label, fs in rows.items():
        cells = []
        for k in COLUMNS:
            v = np.array([f[k] for f in fs]) * (100 if k in ("dense_dsc", "dsc_corrupted", "worst_frame_dsc",
                                                             "hf_share") else 1)
            cells.append(f"{v.mean():.2f} ± {v.std(ddof=1) if len(v) > 1 else 0:.2f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
