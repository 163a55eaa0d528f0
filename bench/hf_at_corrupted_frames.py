"""How much of a model's area-curve energy above 10 Hz sits at the corrupted frames.

For each folder of predicted masks, the share of the LV-area curve's energy above 10 Hz as ``unilvseg evaluate``
computes it (:func:`unilvseg_nnunet.evaluation.cardiac.high_frequency_share`, mean over the test videos), then the
same with the area at every corrupted frame replaced by linear interpolation between the nearest clean frames,
and the truth's own share::

    python bench/hf_at_corrupted_frames.py RAW_DATASET_FOLDER PREDICTION_FOLDER [PREDICTION_FOLDER ...]

A model whose flicker is mostly its answer to bad frames loses most of its share when they are bridged; one that
flickers on clean frames keeps it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def main(argv=None) -> int:
    from unilvseg_nnunet.data.dataset import dense_truth_path, read_case_metadata
    from unilvseg_nnunet.data.echonet import DEFAULT_FPS
    from unilvseg_nnunet.evaluation.cardiac import area_curve, high_frequency_share
    from unilvseg_nnunet.files import read_volume

    args, cases, ending = common.truth_and_predictions(__doc__, argv)
    metas = {c: read_case_metadata(args.dataset, c) for c in cases}

    def shares(load) -> tuple[float, float]:
        full, bridged = [], []
        for case in cases:
            fps = float(metas[case].get("fps") or DEFAULT_FPS)
            area = area_curve(load(case))
            bad = sorted({int(d["frame"]) for d in metas[case].get("corrupted_frames") or []})
            good = np.setdiff1d(np.arange(len(area)), bad)
            full.append(high_frequency_share(area, fps))
            bridged.append(high_frequency_share(np.interp(np.arange(len(area)), good, area[good]), fps))
        return float(np.mean(full)), float(np.mean(bridged))

    print("| masks | HF >10 Hz (%) | corrupted frames bridged (%) |\n|---|---|---|")
    truth = shares(lambda c: read_volume(dense_truth_path(args.dataset, c, ending)))
    print(f"| truth | {100 * truth[0]:.2f} | {100 * truth[1]:.2f} |")
    for folder in args.predictions:
        full, bridged = shares(lambda c: read_volume(folder / f"{c}{ending}"))
        print(f"| {folder} | {100 * full:.2f} | {100 * bridged:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
