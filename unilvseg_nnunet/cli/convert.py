"""``unilvseg convert DATASET_KIND ...``: a dataset folder into an nnU-Net raw dataset.

The scripts in the checkout's ``conversion/`` folder run the same code (``python
conversion/echonet_to_nnunet.py ...`` = ``unilvseg convert echonet ...``; likewise
``camus_to_nnunet.py`` and ``echonet_pediatric_to_nnunet.py``).
"""
from __future__ import annotations


def add_output_arguments(p, name: str) -> None:
    """The arguments every kind shares: dataset id and name, worker processes, image format, progress bar."""
    p.add_argument("-d", "--dataset-id", type=int, required=True, help="nnU-Net dataset id (1-999)")
    p.add_argument("-n", "--name", default=name, help=f"dataset name (default: {name})")
    p.add_argument("-np", "--num-processes", type=int, default=2, help="worker processes (default: 2)")
    p.add_argument("--file-ending", choices=(".mha", ".nii.gz"), default=".mha", help="image format (default: .mha, fastest)")
    p.add_argument("--compress", action="store_true",
                   help="compress the images too (about 40%% smaller, 2-3x slower to write; labels are always compressed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_echonet_arguments(p) -> None:
    p.add_argument("echonet_dir", metavar="ECHONET_DIR", help="folder with FileList.csv, VolumeTracings.csv and Videos/")
    add_output_arguments(p, "EchoNetDynamic")
    p.add_argument("--keep-color", action="store_true", help="keep three colour channels (R, G, B) instead of one grey channel")
    p.add_argument("--include-unlabeled", action="store_true",
                   help="keep TRAIN/VAL videos without any tracing as fully-ignore cases (split UNLABELED, fold 1 of "
                        "splits_final.json) for self-supervised pretraining")
    p.add_argument("--max-cases", type=int, default=None, metavar="K", help="convert only the first K videos of FileList.csv")


def run_echonet(a) -> int:
    from unilvseg_nnunet.data.conversion import convert_echonet, summary_line

    out = convert_echonet(a.echonet_dir, a.dataset_id, a.name, num_processes=a.num_processes, keep_color=a.keep_color,
                          include_unlabeled=a.include_unlabeled, max_cases=a.max_cases, file_ending=a.file_ending,
                          compress=a.compress, progress=not a.no_progress)
    print(summary_line(out), flush=True)
    return 0


def add_camus_arguments(p) -> None:
    from unilvseg_nnunet.data.camus import VIEWS

    p.add_argument("camus_dir", metavar="CAMUS_DIR",
                   help="CAMUS folder: the NIfTI release (database_nifti/, database_split/), the MetaImage release "
                        "(training/), or any folder up to two levels above the patientXXXX/ folders")
    add_output_arguments(p, "CAMUS")
    p.add_argument("--views", nargs="+", choices=VIEWS, default=list(VIEWS), help="views to convert (default: both)")
    p.add_argument("--dense-truth", action="store_true",
                   help="also keep the every-frame labels (NIfTI release) as dense truth for evaluation; training "
                        "still sees ED and ES only")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the patient-level 80/10/10 split used when there are no official split files")
    p.add_argument("--max-patients", type=int, default=None, metavar="K", help="convert only the first K patients")


def run_camus(a) -> int:
    from unilvseg_nnunet.data.camus import convert_camus
    from unilvseg_nnunet.data.conversion import summary_line

    out = convert_camus(a.camus_dir, a.dataset_id, a.name, views=a.views, dense_truth=a.dense_truth, seed=a.seed,
                        max_patients=a.max_patients, num_processes=a.num_processes, file_ending=a.file_ending,
                        compress=a.compress, progress=not a.no_progress)
    print(summary_line(out), flush=True)
    return 0


def add_pediatric_arguments(p) -> None:
    from unilvseg_nnunet.data.pediatric import NUM_FOLDS, VIEWS

    p.add_argument("pediatric_dir", metavar="PEDIATRIC_DIR", help="EchoNet-Pediatric folder with A4C/ and PSAX/")
    add_output_arguments(p, "EchoNetPediatric")
    p.add_argument("--views", nargs="+", choices=VIEWS, default=list(VIEWS), help="views to convert (default: both)")
    p.add_argument("--test-fold", type=int, choices=range(NUM_FOLDS), metavar="K",
                   help="put the videos of Split K into imagesTs (splits_final.json then holds the other nine folds)")
    p.add_argument("--keep-color", action="store_true", help="keep three colour channels (R, G, B)")
    p.add_argument("--max-cases", type=int, default=None, metavar="K",
                   help="convert only the first K videos of each view's FileList.csv")


def run_pediatric(a) -> int:
    from unilvseg_nnunet.data.conversion import summary_line
    from unilvseg_nnunet.data.pediatric import convert_pediatric

    out = convert_pediatric(a.pediatric_dir, a.dataset_id, a.name, views=a.views, test_fold=a.test_fold,
                            num_processes=a.num_processes, keep_color=a.keep_color, max_cases=a.max_cases,
                            file_ending=a.file_ending, compress=a.compress, progress=not a.no_progress)
    print(summary_line(out), flush=True)
    return 0


# dataset kind -> (help, add_arguments, run)
KINDS = {
    "echonet": ("EchoNet-Dynamic (FileList.csv, VolumeTracings.csv, Videos/): one case per whole video, "
                "traced frames labeled, ignore elsewhere", add_echonet_arguments, run_echonet),
    "camus": ("CAMUS (NIfTI or MetaImage release): one case per patient and view, ED/ES labeled with LV, myocardium "
              "and left atrium, ignore elsewhere; real pixel spacing", add_camus_arguments, run_camus),
    "pediatric": ("EchoNet-Pediatric (A4C/, PSAX/ in EchoNet's layout, outline tracings, folds 0-9): one case per "
                  "video, traced frames labeled, ignore elsewhere", add_pediatric_arguments, run_pediatric),
}


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, (help_text, add, run_kind) in KINDS.items():
        p = sub.add_parser(kind, help=help_text, description=help_text)
        add(p)
        p.set_defaults(run_kind=run_kind)


def run(args) -> int:
    return args.run_kind(args)
