"""``unilvseg convert DATASET_KIND ...``: a dataset folder into an nnU-Net raw dataset.

The scripts in the checkout's ``conversion/`` folder run the same code (``python
conversion/echonet_to_nnunet.py ...`` = ``unilvseg convert echonet ...``).
"""
from __future__ import annotations


def add_echonet_arguments(p) -> None:
    p.add_argument("echonet_dir", metavar="ECHONET_DIR", help="folder with FileList.csv, VolumeTracings.csv and Videos/")
    p.add_argument("-d", "--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999)")
    p.add_argument("-n", "--name", default="EchoNetDynamic", help="dataset name (default: EchoNetDynamic)")
    p.add_argument("-np", "--num-processes", type=int, default=2, help="worker processes (default: 2)")
    p.add_argument("--keep-color", action="store_true", help="keep three colour channels (R, G, B) instead of one grey channel")
    p.add_argument("--include-unlabeled", action="store_true",
                   help="keep TRAIN/VAL videos without any tracing as fully-ignore cases (split UNLABELED, fold 1 of "
                        "splits_final.json) for self-supervised pretraining")
    p.add_argument("--max-cases", type=int, default=None, metavar="K", help="convert only the first K videos of FileList.csv")
    p.add_argument("--file-ending", choices=(".mha", ".nii.gz"), default=".mha", help="image format (default: .mha, fastest)")
    p.add_argument("--compress", action="store_true",
                   help="compress the images too (about 40%% smaller, 2-3x slower to write; labels are always compressed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_echonet(a) -> int:
    from unilvseg_nnunet.data.conversion import convert_echonet, summary_line

    out = convert_echonet(a.echonet_dir, a.dataset_id, a.name, num_processes=a.num_processes, keep_color=a.keep_color,
                          include_unlabeled=a.include_unlabeled, max_cases=a.max_cases, file_ending=a.file_ending,
                          compress=a.compress, progress=not a.no_progress)
    print(summary_line(out), flush=True)
    return 0


# dataset kind -> (help, add_arguments, run)
KINDS = {
    "echonet": ("EchoNet-Dynamic (FileList.csv, VolumeTracings.csv, Videos/): one case per whole video, "
                "traced frames labeled, ignore elsewhere", add_echonet_arguments, run_echonet),
}


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, (help_text, add, run_kind) in KINDS.items():
        p = sub.add_parser(kind, help=help_text, description=help_text)
        add(p)
        p.set_defaults(run_kind=run_kind)


def run(args) -> int:
    return args.run_kind(args)
