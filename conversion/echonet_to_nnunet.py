#!/usr/bin/env python
"""EchoNet-Dynamic -> nnU-Net v2 raw dataset ($nnUNet_raw/DatasetIDDD_NAME), one case per whole video.

    python conversion/echonet_to_nnunet.py ECHONET_DIR -d 114 [-n EchoNetDynamic] [-np 2]

ECHONET_DIR holds FileList.csv, VolumeTracings.csv and Videos/*.avi. Only traced frames are labeled
(0 background, 1 LV, EchoNet-Dynamic's own mask rule); every other frame is nnU-Net's ignore label (2).
Per-video problems are listed in conversion_report.json in the dataset folder; dataset-level problems
(missing CSV or column) exit with status 2 before anything is written. Re-running resumes.
Same as ``unilvseg convert echonet ...``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from unilvseg_nnunet.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["convert", "echonet", *sys.argv[1:]]))
