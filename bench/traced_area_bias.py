"""Area bias of a trained model at the clean traced ED and ES frames, on the videos it trained on and on unseen ones.

Tells a model that flattens the cardiac cycle because it has not learned its own training frames (biased there
too) from one that does not generalise (unbiased on training frames, biased on test frames); the traced labels'
own bias against the phantom's truth is printed beside it::

    python bench/traced_area_bias.py MODEL_FOLDER RAW_DATASET_FOLDER

Frames are segmented one by one as a stack (a frame-wise model, e.g. stock ``2d``); fold 0's split is read from
the model folder's preprocessed dataset (``$nnUNet_preprocessed``).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    from unilvseg_nnunet.data.dataset import dense_truth_path, file_ending, read_case_metadata, subset_cases
    from unilvseg_nnunet.files import read_volume
    from unilvseg_nnunet.inference.predictor import load_predictor, segment

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("dataset", type=Path)
    args = p.parse_args(argv)
    ending = file_ending(args.dataset)
    split = json.loads((Path(os.environ["nnUNet_preprocessed"]) / args.dataset.name / "splits_final.json").read_text())[0]
    groups = {"train": ("Tr", split["train"]), "val": ("Tr", split["val"]),
              "test": ("Ts", subset_cases(args.dataset, "imagesTs")[1])}
    predictor = load_predictor(args.model, [0], device="cpu")
    print("| frames | phase | n | predicted / truth − 1 | label / truth − 1 |\n|---|---|---|---|---|")
    for group, (sub, cases) in groups.items():
        frames, truth, label, phase = [], [], [], []
        for case in cases:
            meta = read_case_metadata(args.dataset, case)
            corrupted = {int(d["frame"]) for d in meta.get("corrupted_frames") or []}
            x = read_volume(args.dataset / f"images{sub}" / f"{case}_0000{ending}")
            t = read_volume(dense_truth_path(args.dataset, case, ending)) == 1
            lab = read_volume(args.dataset / f"labels{sub}" / f"{case}{ending}") == 1
            for f, name in ((meta["ed_frame"], "ED"), (meta["es_frame"], "ES")):
                if f in corrupted:
                    continue
                frames.append(x[f])
                truth.append(t[f].sum())
                label.append(lab[f].sum())
                phase.append(name)
        area = (segment(predictor, np.stack(frames)) == 1).sum((1, 2))
        truth, label, phase = np.array(truth), np.array(label), np.array(phase)
        for name in ("ED", "ES"):
            s = phase == name
            print(f"| {group} | {name} | {s.sum()} | {np.mean(area[s] / truth[s] - 1):+.3f} | "
                  f"{np.mean(label[s] / truth[s] - 1):+.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
