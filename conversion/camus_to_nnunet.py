#!/usr/bin/env python
"""CAMUS -> nnU-Net v2 raw dataset ($nnUNet_raw/DatasetIDDD_NAME), one case per patient and view.

    python conversion/camus_to_nnunet.py CAMUS_DIR -d 120 [-n CAMUS] [--views 2CH 4CH] [--dense-truth]

CAMUS_DIR holds the NIfTI release (database_nifti/, database_split/) or the MetaImage release (training/).
Each case is a half sequence (ED to ES) with its pixel spacing; ED and ES are labeled (1 LV, 2 myocardium,
3 left atrium), every other frame is nnU-Net's ignore label (4). --dense-truth keeps the NIfTI release's
every-frame labels for evaluation. The official split is used when present, else a seeded patient-level
split (written down in conversion_report.json with every problem found). Re-running resumes.
Same as ``unilvseg convert camus ...``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from unilvseg_nnunet.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["convert", "camus", *sys.argv[1:]]))
