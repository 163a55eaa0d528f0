#!/usr/bin/env python
"""EchoNet-Pediatric -> nnU-Net v2 raw dataset ($nnUNet_raw/DatasetIDDD_NAME), one case per whole video.

    python conversion/echonet_pediatric_to_nnunet.py PEDIATRIC_DIR -d 130 [--views A4C PSAX] [--test-fold K]

PEDIATRIC_DIR holds A4C/ and PSAX/, each with FileList.csv (Split = fold 0-9), VolumeTracings.csv (outline
points X, Y per traced frame) and Videos/*.avi. Traced frames are labeled (0 background, 1 LV, the authors'
mask rule); every other frame is nnU-Net's ignore label (2). splits_final.json holds the ten folds (fold k
validates on Split k). Per-video problems are listed in conversion_report.json; re-running resumes.
Same as ``unilvseg convert pediatric ...``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from unilvseg_nnunet.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["convert", "pediatric", *sys.argv[1:]]))
