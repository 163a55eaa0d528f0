"""Whether a model's LV-area curve is the truth's blurred along time, and by how much.

For each folder of predicted masks, on the clean frames of every test video: the Gaussian width σ (frames) whose
blur of the true area curve best explains the predicted one (least squares with a gain and an offset per video;
σ = 0 is the truth as it is), the gain at σ = 0 (the "area swing" of ``unilvseg evaluate``), and a decomposition of
the area error into a size term and a blur term::

    error = a * (true area - its mean) + b * (true area blurred by 2 frames - true area) + offset per video

A model that under-segments large ventricles and over-segments small ones has a < 0; one whose frame t reads its
neighbours has b > 0 (b = 1: its error is the 2-frame blur itself), one that sharpens the cycle b < 0::

    python bench/area_blur.py RAW_DATASET_FOLDER PREDICTION_FOLDER [PREDICTION_FOLDER ...]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SIGMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
BLUR_SIGMA = 2.0


def blurred(area: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter1d(area.astype(float), sigma, mode="nearest") if sigma else area.astype(float)


def blur_fit(videos: list[tuple[np.ndarray, np.ndarray, np.ndarray]], sigmas=SIGMAS) -> dict:
    """``videos``: (predicted area, true area, clean-frame mask) per video. Returns the relative RMS residual (% of
    the video's mean true area) and mean gain of the per-video fit of the prediction on the blurred truth for each
    σ, the best σ, and the size and blur coefficients ``a`` and ``b`` (see the module's docstring)."""
    residual, gain = {}, {}
    for s in sigmas:
        sq, n, gains = 0.0, 0, []
        for pred, truth, clean in videos:
            x = np.c_[blurred(truth, s)[clean], np.ones(clean.sum())]
            coef, *_ = np.linalg.lstsq(x, pred[clean], rcond=None)
            sq += float((((x @ coef - pred[clean]) / truth.mean()) ** 2).sum())
            n += int(clean.sum())
            gains.append(coef[0])
        residual[s], gain[s] = 100 * np.sqrt(sq / n), float(np.mean(gains))
    y, size, blur = [], [], []
    for pred, truth, clean in videos:
        parts = [(pred - truth)[clean], (truth - truth.mean())[clean], (blurred(truth, BLUR_SIGMA) - truth)[clean]]
        for out, v in zip((y, size, blur), parts):
            out.append(v - v.mean())  # the offset per video
    y, x = np.concatenate(y), np.c_[np.concatenate(size), np.concatenate(blur)]
    (a, b), *_ = np.linalg.lstsq(x, y, rcond=None)
    return {"residual": residual, "gain": gain, "best_sigma": min(residual, key=residual.get), "a": float(a), "b": float(b)}


def main(argv=None) -> int:
    from unilvseg_nnunet.data.dataset import dense_truth_path, read_case_metadata
    from unilvseg_nnunet.evaluation.cardiac import area_curve
    from unilvseg_nnunet.files import read_volume

    args, cases, ending = common.truth_and_predictions(__doc__, argv)
    truth, clean = {}, {}
    for case in cases:
        truth[case] = area_curve(read_volume(dense_truth_path(args.dataset, case, ending))).astype(float)
        clean[case] = np.ones(len(truth[case]), bool)
        clean[case][[int(d["frame"]) for d in read_case_metadata(args.dataset, case).get("corrupted_frames") or []]] = False

    head = " | ".join(f"σ={s:g}" for s in SIGMAS)
    print(f"| masks | best σ | gain at σ=0 | size a | blur b | residual (% of mean area): {head} |")
    print("|---|---|---|---|---|" + "---|" * len(SIGMAS))
    for folder in args.predictions:
        videos = [(area_curve(read_volume(folder / f"{c}{ending}")).astype(float), truth[c], clean[c]) for c in cases]
        fit = blur_fit(videos)
        cells = " | ".join(f"{fit['residual'][s]:.2f}" for s in SIGMAS)
        print(f"| {folder} | {fit['best_sigma']:g} | {fit['gain'][0.0]:.2f} | {fit['a']:+.3f} | {fit['b']:+.3f} | {cells} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
