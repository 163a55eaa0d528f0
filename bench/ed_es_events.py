#!/usr/bin/env python
"""ED/ES detection event by event, from the folders ``unilvseg evaluate`` writes with a dense truth.

For every true event (ED = area maximum, ES = minimum, detected on the truth's own area curve) and every
evaluation folder given: the offset of the nearest event detected on the model's curve, and the prominence of
the model curve's extremum nearest the true event against the prominence the detector requires
(``cardiac.min_prominence``). A missed event shows as a large offset with a prominence below the threshold.

    python bench/ed_es_events.py bench_out/work/artefacts/budget600/seed*/eval/*/eval
"""
from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy import signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from unilvseg_nnunet.evaluation import cardiac  # noqa: E402


def curves(folder: Path) -> dict[str, tuple[float, np.ndarray, np.ndarray]]:
    """{case: (fps, predicted area curve, true area curve)} of one evaluation folder."""
    fps = {r["case"]: float(r["fps"]) for r in csv.DictReader((folder / "per_video.csv").open())}
    areas = defaultdict(lambda: ([], []))
    for r in csv.DictReader((folder / "per_frame_dense.csv").open()):
        areas[r["case"]][0].append(float(r["area_pred"]))
        areas[r["case"]][1].append(float(r["area_truth"]))
    return {c: (fps[c], np.array(p), np.array(t)) for c, (p, t) in areas.items()}


def events(folder: Path) -> list[dict]:
    """One row per true event of every case of ``folder``."""
    rows = []
    for case, (fps, pred, truth) in sorted(curves(folder).items()):
        smoothed = cardiac.smooth_area(pred, fps)
        need = cardiac.min_prominence(smoothed)
        for kind, sign, true_events, found in zip(("ED", "ES"), (1, -1), cardiac.detect_ed_es(truth, fps),
                                                  cardiac.detect_ed_es(pred, fps)):
            peaks, props = signal.find_peaks(sign * smoothed, prominence=0)
            for e in true_events:
                near = int(np.argmin(np.abs(peaks - e))) if len(peaks) else None
                rows.append({"case": case, "kind": kind, "truth": int(e),
                             "offset": int(found[np.argmin(np.abs(found - e))] - e) if len(found) else None,
                             "prominence": None if near is None else float(props["prominences"][near]),
                             "needed": need})
    return rows


def main() -> int:
    folders = [Path(a) for a in sys.argv[1:]]
    if not folders:
        print(__doc__)
        return 2
    print("| evaluation | case | event | true frame | nearest detected (frames) | prominence / needed (px) |")
    print("|---|---|---|---|---|---|")
    for folder in folders:
        for r in events(folder):
            prom = "none" if r["prominence"] is None else f"{r['prominence']:.0f} / {r['needed']:.0f}"
            offset = "none" if r["offset"] is None else f"{r['offset']:+d}"
            print(f"| {folder} | {r['case']} | {r['kind']} | {r['truth']} | {offset} | {prom} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
