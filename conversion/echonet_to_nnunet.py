#!/usr/bin/env python
"""EchoNet-Dynamic -> nnU-Net v2 raw dataset ($nnUNet_raw/DatasetIDDD_NAME), one case per whole video.

    python conversion/echonet_to_nnunet.py ECHONET_DIR -d 114 [-n EchoNetDynamic] [-np 2]

ECHONET_DIR holds FileList.csv, VolumeTracings.csv and Videos/*.avi. Only traced frames are labeled
(0 background, 1 LV, EchoNet-Dynamic's own mask rule); every other frame is nnU-Net's ignore label (2).
Per-video problems are listed in conversion_report.json in the dataset folder; dataset-level problems
(missing CSV or column) exit with status 1 before anything is written. Re-running resumes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from unilvseg_nnunet.conversion import ConversionError, convert_echonet  # noqa: E402
from unilvseg_nnunet.echonet import EchoNetFormatError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("echonet_dir", metavar="ECHONET_DIR", help="folder with FileList.csv, VolumeTracings.csv and Videos/")
    p.add_argument("-d", "--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999)")
    p.add_argument("-n", "--name", default="EchoNetDynamic", help="dataset name (default: EchoNetDynamic)")
    p.add_argument("-np", "--num-processes", type=int, default=2, help="worker processes (default: 2)")
    p.add_argument("--keep-color", action="store_true", help="keep three colour channels (R, G, B) instead of one grey channel")
    p.add_argument("--include-unlabeled", action="store_true",
                   help="keep TRAIN/VAL videos without any tracing as fully-ignore cases (split UNLABELED, fold 1 of splits_final.json) for self-supervised pretraining")
    p.add_argument("--max-cases", type=int, default=None, metavar="K", help="convert only the first K videos of FileList.csv")
    p.add_argument("--file-ending", choices=(".mha", ".nii.gz"), default=".mha", help="image format (default: .mha, fastest)")
    p.add_argument("--compress", action="store_true", help="compress the images too (about 40%% smaller, 2-3x slower to write; labels are always compressed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    try:
        convert_echonet(a.echonet_dir, a.dataset_id, a.name, num_processes=a.num_processes, keep_color=a.keep_color,
                        include_unlabeled=a.include_unlabeled, max_cases=a.max_cases, file_ending=a.file_ending,
                        compress=a.compress, progress=not a.no_progress)
    except (EchoNetFormatError, ConversionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
