"""CAMUS -> nnU-Net raw dataset on the CAMUS-style phantom in both distributions (NIfTI and MetaImage):
layout, pixel spacing, ED/ES labels of three structures against the source files, dense truth, Info values,
official and seeded splits; one crafted bad input per problem (reported for that patient and view, the
others intact); dataset-level errors; resumability; and the conversion script."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from unilvseg_nnunet.data import camus
from unilvseg_nnunet.data import dataset as ds
from unilvseg_nnunet.data.camus import convert_camus
from unilvseg_nnunet.data.camus_phantom import FOLDERS, FORMATS, synthesize_camus

REPO = Path(__file__).resolve().parents[1]
SIZE, WIDTH, SPACING = 64, 80, 0.5  # small frames keep the conversion tests fast; the e2e test uses larger ones


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory) -> dict:
    """The CAMUS-style phantom in each distribution (NIfTI: 5 patients with split files; MetaImage: 4)."""
    root = tmp_path_factory.mktemp("camus")
    kw = dict(size=SIZE, width=WIDTH, spacing=SPACING, frames=(20, 30))
    return {"nifti": synthesize_camus(root / "nifti", n_patients=5, fmt="nifti", splits=(3, 1, 1), **kw),
            "mhd": synthesize_camus(root / "mhd", n_patients=4, fmt="mhd", **kw)}


@pytest.fixture
def raw(tmp_path, monkeypatch) -> Path:
    out = tmp_path / "nnUNet_raw"
    out.mkdir()
    monkeypatch.setenv("nnUNet_raw", str(out))
    return out


def copy(phantom: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(phantom, tmp_path / "source"))


def convert(root: Path, **kw) -> Path:
    kw.setdefault("num_processes", 1)
    return convert_camus(root, 960, "Camus", progress=False, **kw)


def report_of(out: Path) -> dict:
    return json.loads((out / ds.CONVERSION_REPORT).read_text())


def source(root: Path, case: str, suffix: str) -> np.ndarray:
    patient = case.split("_")[0]
    path = camus.find_image(next(root.glob(f"*/{patient}")), f"{case}{suffix}")
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def assert_case_correct(out: Path, root: Path, case: str, dense: bool) -> dict:
    """Image = the source sequence with its pixel spacing; label = _ED_gt/_ES_gt on ED/ES, ignore elsewhere."""
    meta = ds.read_case_metadata(out, case)
    sub = meta["subset"]
    image = sitk.ReadImage(str(out / sub / f"{case}_0000.mha"))
    label = sitk.ReadImage(str(out / sub.replace("images", "labels") / f"{case}.mha"))
    seq = source(root, case, "_half_sequence" if meta["source_format"] == "nifti" else "_sequence")
    img, lab = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(label)
    np.testing.assert_array_equal(img, seq)
    assert lab.shape == seq.shape == (meta["num_frames"], SIZE, WIDTH)
    for s in (image.GetSpacing(), label.GetSpacing()):
        np.testing.assert_allclose(s, (SPACING, SPACING, 1.0), rtol=1e-6)
    np.testing.assert_allclose(meta["spacing"], (1.0, SPACING, SPACING), rtol=1e-6)
    n = meta["num_frames"]
    assert (meta["ed_frame"], meta["es_frame"], meta["traced_frames"]) == (0, n - 1, [0, n - 1])
    np.testing.assert_array_equal(lab[0], source(root, case, "_ED_gt"))
    np.testing.assert_array_equal(lab[-1], source(root, case, "_ES_gt"))
    assert set(np.unique(lab[0])) == {0, 1, 2, 3} and (lab[1:-1] == camus.IGNORE).all()
    truth = ds.dense_truth_path(out, case, ".mha")
    assert meta["dense_truth"] is dense and truth.is_file() is dense
    if dense:
        np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(truth))),
                                      source(root, case, "_half_sequence_gt"))
    return meta


@pytest.mark.parametrize("fmt", ["nifti", "mhd"])
def test_convert_each_distribution(phantoms, raw, fmt):
    root = phantoms[fmt]
    out = convert(root, dense_truth=True)
    rep = report_of(out)
    metas = {m["case"]: m for m in ds.iter_case_metadata(out)}
    n_patients = 5 if fmt == "nifti" else 4
    assert sorted(metas) == [f"patient{i:04d}_{v}" for i in range(1, n_patients + 1) for v in camus.VIEWS]
    for case in metas:
        meta = assert_case_correct(out, root, case, dense=fmt == "nifti")
        info = camus.read_info(root / FOLDERS[fmt] / meta["patient"] / f"Info_{meta['view']}.cfg")
        assert meta["info"] == info and meta["image_quality"] == info["ImageQuality"]
        assert meta["filelist_num_frames"] == meta["num_frames"] and meta["issues"] == []
        if fmt == "nifti":
            assert (meta["ef"], meta["edv"], meta["esv"], meta["fps"]) == (float(info["EF"]), None, None, 40.0)
        else:
            assert (meta["ef"], meta["edv"], meta["esv"]) == tuple(float(info[k]) for k in ("LVef", "LVedv", "LVesv"))
            assert 0 < meta["ef"] < 100 and meta["esv"] < meta["edv"] and meta["fps"] is None
    # both views of a patient share its split; TEST patients go to imagesTs
    split_of = {m["patient"]: m["split"] for m in metas.values()}
    assert all(m["split"] == split_of[m["patient"]] for m in metas.values())
    assert all((m["subset"] == "imagesTs") == (m["split"] == "TEST") for m in metas.values())
    splits = json.loads((out / "splits_final.json").read_text())
    assert splits == [{"train": sorted(c for c, m in metas.items() if m["split"] == "TRAIN"),
                       "val": sorted(c for c, m in metas.items() if m["split"] == "VAL")}]
    if fmt == "nifti":  # the official split files are used
        listed = {s: (root / camus.SPLIT_DIR / f).read_text().split() for s, f in camus.SPLIT_FILES.items()}
        assert {p: s for s, ps in listed.items() for p in ps} == split_of
        assert rep["split"]["source"] == "official"
        assert [i["problem"] for i in rep["dataset_issues"]] == ["info_without_volumes"]
    else:  # a seeded patient-level split, written down in the report
        assert rep["split"]["source"] == "seeded" and rep["split"]["seed"] == 0
        assert {p: s for s, ps in rep["split"]["patients"].items() for p in ps} == split_of
        assert sorted(split_of.values()) == ["TEST", "TRAIN", "TRAIN", "VAL"]
        assert [i["problem"] for i in rep["dataset_issues"]] == ["no_dense_labels"]
    dj = json.loads((out / "dataset.json").read_text())
    assert dj["labels"] == {"background": 0, "LV": 1, "myocardium": 2, "left_atrium": 3, "ignore": 4}
    assert dj["channel_names"] == {"0": "echo"}
    assert dj["numTraining"] == sum(m["subset"] == "imagesTr" for m in metas.values())
    assert rep["cases"] == {} and rep["summary"]["cases"] == len(metas)
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
    verify_dataset_integrity(str(out), num_processes=1)  # stock nnU-Net accepts it (spacing, labels, ignore)


def test_seeded_split_is_stable_and_patient_level():
    patients = [f"patient{i:04d}" for i in range(1, 21)]
    split = camus.seeded_split(patients, 3)
    assert split == camus.seeded_split(patients[::-1], 3)  # the order patients are found in plays no part
    assert sorted(split.values()).count("TRAIN") == 16 and list(split.values()).count("VAL") == 2
    assert camus.seeded_split(patients, 4) != split


def _write(path: Path, array: np.ndarray) -> None:
    img = sitk.GetImageFromArray(array)
    img.SetSpacing((SPACING,) * array.ndim)
    sitk.WriteImage(img, str(path))


def _edit_info(folder: Path, view: str, **changes) -> None:
    path = folder / f"Info_{view}.cfg"
    info = camus.read_info(path)
    info.update({k: v for k, v in changes.items() if v is not None})
    for k in [k for k, v in changes.items() if v is None]:
        del info[k]
    path.write_text("".join(f"{k}: {v}\n" for k, v in info.items()))


def _break(root: Path, quirk: str) -> None:
    """Damage view 4CH of patient0002 (or the split files) of a NIfTI phantom copy."""
    folder = root / "database_nifti" / "patient0002"
    stem = folder / "patient0002_4CH"
    seq = source(root, "patient0002_4CH", "_half_sequence")
    if quirk == "missing_sequence":
        Path(f"{stem}_half_sequence.nii.gz").unlink()
    elif quirk == "unreadable_sequence":
        Path(f"{stem}_half_sequence.nii.gz").write_bytes(b"not an image" * 20)
    elif quirk == "missing_info":
        (folder / "Info_4CH.cfg").unlink()
    elif quirk == "invalid_info":
        _edit_info(folder, "4CH", ED="first")
    elif quirk == "frame_beyond_length":
        _edit_info(folder, "4CH", ES=str(len(seq) + 5))
    elif quirk == "frame_count_mismatch":
        _edit_info(folder, "4CH", NbFrame=str(len(seq) + 2))
    elif quirk == "info_missing_value":
        _edit_info(folder, "4CH", EF=None)
    elif quirk == "es_before_ed":
        _edit_info(folder, "4CH", ED=str(len(seq)), ES="1")
    elif quirk == "unusable_label":
        gt = source(root, "patient0002_4CH", "_ED_gt")
        _write(Path(f"{stem}_ED_gt.nii.gz"), gt[:, :-3])  # wrong shape
    elif quirk == "label_values":
        gt = source(root, "patient0002_4CH", "_ES_gt")
        gt[0, 0] = 7
        _write(Path(f"{stem}_ES_gt.nii.gz"), gt)
    elif quirk == "labels_disagree":
        gt = source(root, "patient0002_4CH", "_ED_gt")
        gt[gt == 3] = 0
        _write(Path(f"{stem}_ED_gt.nii.gz"), gt)
    elif quirk == "missing_label":
        for p in ("ED_gt", "ES_gt", "half_sequence_gt"):
            Path(f"{stem}_{p}.nii.gz").unlink()
    elif quirk == "unusable_dense_labels":
        _write(Path(f"{stem}_half_sequence_gt.nii.gz"), source(root, "patient0002_4CH", "_half_sequence_gt")[:-1])
    elif quirk == "missing_patient":
        for f in (root / camus.SPLIT_DIR).glob("subgroup_training.txt"):
            f.write_text(f.read_text() + "patient0099\n")
    elif quirk == "not_in_split":
        for f in (root / camus.SPLIT_DIR).iterdir():
            f.write_text(f.read_text().replace("patient0002\n", ""))


QUIRKS = {  # quirk: (cases named in the report, problem, action, case outcome)
    "missing_sequence": (["patient0002_4CH"], "missing_sequence", "skipped video", "skipped"),
    "unreadable_sequence": (["patient0002_4CH"], "unreadable_sequence", "skipped video", "skipped"),
    "missing_info": (["patient0002_4CH"], "missing_info", "skipped video", "skipped"),
    "invalid_info": (["patient0002_4CH"], "invalid_info", "skipped video", "skipped"),
    "frame_beyond_length": (["patient0002_4CH"], "frame_beyond_length", "dropped frame", "converted"),
    "frame_count_mismatch": (["patient0002_4CH"], "frame_count_mismatch", "kept", "converted"),
    "info_missing_value": (["patient0002_4CH"], "info_missing_value", "kept", "converted"),
    "es_before_ed": (["patient0002_4CH"], "es_before_ed", "kept", "converted"),
    "unusable_label": (["patient0002_4CH"], "unusable_label", "dropped frame", "converted"),
    "label_values": (["patient0002_4CH"], "unusable_label", "dropped frame", "converted"),
    "labels_disagree": (["patient0002_4CH"], "labels_disagree", "kept", "converted"),
    "missing_label": (["patient0002_4CH"], "no_valid_label", "skipped video", "skipped"),
    "unusable_dense_labels": (["patient0002_4CH"], "unusable_dense_labels", "ignored", "converted"),
    "missing_patient": (["patient0099_2CH", "patient0099_4CH"], "missing_patient", "skipped video", "skipped"),
    "not_in_split": (["patient0002_2CH", "patient0002_4CH"], "not_in_split", "skipped video", "skipped"),
}


@pytest.mark.parametrize("quirk", sorted(QUIRKS))
def test_quirk_reported_and_others_intact(phantoms, raw, tmp_path, quirk):
    cases, problem, action, outcome = QUIRKS[quirk]
    root = copy(phantoms["nifti"], tmp_path)
    _break(root, quirk)
    out = convert(root, dense_truth=True)
    rep = report_of(out)
    assert sorted(rep["cases"]) == cases, rep["cases"]
    for case in cases:
        entry = rep["cases"][case]
        assert entry["outcome"] == outcome
        assert any(i["problem"] == problem and i["action"] == action for i in entry["issues"]), entry
    for meta in ds.iter_case_metadata(out):
        if meta["case"] not in cases:
            assert_case_correct(out, root, meta["case"], dense=True)
    if outcome == "skipped":
        assert not any(ds.metadata_path(out, c).exists() for c in cases)
        assert not any(c in f for fold in json.loads((out / "splits_final.json").read_text()) for f in fold.values()
                       for c in cases)
        return
    meta = ds.read_case_metadata(out, cases[0])
    labels_dir = out / meta["subset"].replace("images", "labels")
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(labels_dir / f"{cases[0]}.mha")))
    n = meta["num_frames"]
    assert meta["issues"] == rep["cases"][cases[0]]["issues"]
    if quirk == "frame_beyond_length":
        assert meta["traced_frames"] == [0] and meta["es_frame"] is None and (lab[1:] == camus.IGNORE).all()
    if quirk in ("unusable_label", "label_values"):
        assert meta["traced_frames"] == ([n - 1] if quirk == "unusable_label" else [0])
    if quirk == "es_before_ed":
        assert (meta["ed_frame"], meta["es_frame"], meta["traced_frames"]) == (n - 1, 0, [0, n - 1])
    if quirk == "labels_disagree":  # the ED/ES annotation file wins over the sequence labels
        np.testing.assert_array_equal(lab[0], source(root, cases[0], "_ED_gt"))
    if quirk == "unusable_dense_labels":
        assert meta["dense_truth"] is False and meta["traced_frames"] == [0, n - 1]
    if quirk == "info_missing_value":
        assert meta["ef"] is None


@pytest.mark.parametrize("damage,needle", [
    ("no_patients", "no patientXXXX folder"),
    ("split_file_missing", "subgroup_testing.txt: split file missing"),
    ("split_twice", "patient0001 is also listed for TRAIN"),
])
def test_dataset_level_errors_exit_nonzero_and_write_nothing(phantoms, raw, tmp_path, damage, needle):
    root = copy(phantoms["nifti"], tmp_path)
    if damage == "no_patients":
        shutil.rmtree(root / "database_nifti")
    elif damage == "split_file_missing":
        (root / camus.SPLIT_DIR / "subgroup_testing.txt").unlink()
    else:
        f = root / camus.SPLIT_DIR / "subgroup_validation.txt"
        f.write_text(f.read_text() + "patient0001\n")
        (root / camus.SPLIT_DIR / "subgroup_training.txt").write_text("patient0001\n")
    proc = _run_script([str(root), "-d", "960", "-n", "Camus"], raw)
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert list(raw.iterdir()) == []


def test_resumable_and_options_replace_earlier_files(phantoms, raw, tmp_path):
    root = copy(phantoms["nifti"], tmp_path)
    out = convert(root, dense_truth=True)
    files = sorted(out.rglob("*.mha"))
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    out = convert(root, dense_truth=True)
    assert report_of(out)["summary"]["converted_now"] == 0
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes
    (out / "labelsTr" / "patient0001_2CH.mha").unlink()  # a missing file means: redo the case
    _edit_info(root / "database_nifti" / "patient0003", "2CH", ImageQuality="Poor")  # so does a changed Info file
    out = convert(root, dense_truth=True)
    assert report_of(out)["summary"]["converted_now"] == 2
    assert ds.read_case_metadata(out, "patient0003_2CH")["image_quality"] == "Poor"
    out = convert(root, views=["4CH"], max_patients=3)  # fewer views and patients, no dense truth
    assert sorted(p.name for p in (out / ds.METADATA_DIR).iterdir()) == [f"patient000{i}_4CH.json" for i in (1, 2, 3)]
    assert not list((out / ds.DENSE_TRUTH_DIR).iterdir())
    assert report_of(out)["summary"]["patients_selected"] == 3


def _run_script(args, env_raw: Path):
    env = dict(os.environ, nnUNet_raw=str(env_raw))
    return subprocess.run([sys.executable, str(REPO / "conversion" / "camus_to_nnunet.py"), *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_script_converts_one_view_of_the_metaimage_release(phantoms, raw):
    proc = _run_script([str(phantoms["mhd"]), "-d", "961", "-n", "CamusMhd", "--views", "2CH", "-np", "2"], raw)
    assert proc.returncode == 0, proc.stderr
    assert "Dataset961_CamusMhd: 4 cases" in proc.stdout
    out = raw / "Dataset961_CamusMhd"
    for meta in ds.iter_case_metadata(out):
        assert meta["view"] == "2CH"
        assert_case_correct(out, phantoms["mhd"], meta["case"], dense=False)
    proc = _run_script([str(phantoms["mhd"]), "-d", "961", "-n", "CamusMhd", "--views", "3CH"], raw)
    assert proc.returncode == 2 and "invalid choice: '3CH'" in proc.stderr


# ------------------------------------------------------------------------------------------------
# Several structures and large frames through the chain (the pieces; the end-to-end run is below)
# ------------------------------------------------------------------------------------------------

def test_sparse_loss_trains_every_structure_on_labeled_frames_only():
    import torch

    from unilvseg_nnunet.training.losses import SparseFrameLoss

    torch.manual_seed(0)
    target = torch.full((1, 1, 3, 16, 16), camus.IGNORE)
    target[0, 0, 1] = torch.randint(0, 4, (16, 16))  # one labeled frame holding all four classes
    logits = torch.randn(1, 4, 3, 16, 16, requires_grad=True)
    SparseFrameLoss(camus.IGNORE)(logits, target).backward()
    grad = logits.grad[0].abs().flatten(2).sum(2)  # (classes, frames)
    assert (grad[:, [0, 2]] == 0).all() and (grad[:, 1] > 0).all()
    perfect = torch.nn.functional.one_hot(target[0, 0].clamp(max=3), 4).permute(3, 0, 1, 2)[None].float() * 20
    assert SparseFrameLoss(camus.IGNORE)(perfect, target) < 0.01


def test_windows_of_large_frames_centre_on_a_structure():
    from unilvseg_nnunet.training.sampling import foreground_pixel, window_start

    rng = np.random.default_rng(0)
    seg = np.zeros((2, 300, 400), np.int16)
    seg[:, 250:260, 20:30] = 3  # a small structure in a corner of large frames
    seg[:, 100:110, 300:320] = 1
    hits = set()
    for _ in range(50):
        r, c = foreground_pixel(seg, camus.IGNORE, rng)
        assert seg[0, r, c] in (1, 3)
        hits.add(int(seg[0, r, c]))
        start_r, start_c = window_start(300, 96, 0, "train", rng, r), window_start(400, 96, 0, "train", rng, c)
        assert 0 <= start_r <= 300 - 96 and 0 <= start_c <= 400 - 96
        assert start_r <= r < start_r + 96 and start_c <= c < start_c + 96  # the window holds the pixel
    assert hits == {1, 3}  # every present structure is drawn
    assert foreground_pixel(np.full((1, 8, 8), camus.IGNORE), camus.IGNORE, rng) is None


def test_evaluation_scores_each_structure_with_hd95_in_mm(phantoms, raw, tmp_path):
    from unilvseg_nnunet.evaluation.scoring import EvaluationError, evaluate
    from unilvseg_nnunet.files import read_volume_spacing, write_volume

    out = convert(phantoms["nifti"], dense_truth=True)
    pred_dir = tmp_path / "pred"
    cases = [m["case"] for m in ds.iter_case_metadata(out) if m["subset"] == "imagesTs"]
    for case in cases:  # the true labels of every frame, left atrium missed, shifted 2 pixels to the right
        truth, spacing = read_volume_spacing(ds.dense_truth_path(out, case, ".mha"))
        pred = np.roll(np.where(truth == 3, 0, truth), 2, axis=2).astype(np.uint8)
        write_volume(pred_dir / f"{case}.mha", pred, spacing)
    summary = evaluate(pred_dir, out, tmp_path / "eval", n_boot=50, video_plots=False, progress=False)
    by = summary["dsc_by_structure"]
    assert list(by) == ["LV", "myocardium", "left_atrium"]
    assert 0.7 < by["LV"]["overall"]["pooled_dsc"] < 1 and 0.3 < by["myocardium"]["overall"]["pooled_dsc"] < 1
    assert by["left_atrium"]["overall"]["pooled_dsc"] == 0.0
    assert by["LV"] == summary["dsc"]  # the LV block is the one the single-structure report has always had
    for name in ("LV", "myocardium"):
        px, mm = summary["hd95_px_by_structure"][name]["overall"], summary["hd95_mm_by_structure"][name]["overall"]
        assert 1.5 <= px["mean"] <= 2.5 and mm["mean"] == pytest.approx(SPACING * px["mean"])
    assert summary["hd95_mm"]["overall"]["mean"] == pytest.approx(SPACING * summary["hd95_px"]["overall"]["mean"])
    dense = summary["dense"]["dsc_by_structure"]
    assert dense["left_atrium"]["pooled_dsc"] == 0.0 and 0.7 < dense["LV"]["pooled_dsc"] < 1
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "## Structures (traced frames)" in report and "| myocardium |" in report and "HD95 mm" in report
    # a value that is no structure of the dataset is bad input, named with its file
    bad = read_volume_spacing(pred_dir / f"{cases[0]}.mha")[0]
    bad[0, 0, 0] = camus.IGNORE
    write_volume(pred_dir / f"{cases[0]}.mha", bad)
    with pytest.raises(EvaluationError, match=rf"{cases[0]}\.mha: unexpected label values \[4\]"):
        evaluate(pred_dir, out, tmp_path / "eval2", n_boot=50, video_plots=False, progress=False)


# ------------------------------------------------------------------------------------------------
# End to end with the real nnU-Net commands on CPU: convert, plan (frames larger than the patch),
# train a few iterations, predict, evaluate per structure
# ------------------------------------------------------------------------------------------------

E2E = dict(size=96, width=128, frames=(20, 30))  # frames larger than the patch planned for a 0.1 GB target


def plan_video_configurations(env: dict, dataset_id: int, super_image: bool = False) -> dict:
    """Stock planning and preprocessing, then our temporal (and super-image) configurations for a 0.1 GB memory
    target, so that the in-plane patch is smaller than the frames; returns the plans."""
    from conftest import plan_and_preprocess, run_cmd

    plan_and_preprocess(env, dataset_id)  # nnU-Net's integrity check of both releases: test_convert_each_distribution
    run_cmd(["unilvseg", "plan", "-d", str(dataset_id), "--frames", "8", "--arch", "unet_s", "--gpu-memory", "0.1"],
            env=env)
    if super_image:
        run_cmd(["unilvseg", "plan", "-d", str(dataset_id), "--super-image", "--frames", "4", "--period", "1",
                 "--gpu-memory", "0.1"], env=env)
    name = next(Path(env["nnUNet_preprocessed"]).glob(f"Dataset{dataset_id}_*")).name
    plans = json.loads((Path(env["nnUNet_preprocessed"]) / name / "nnUNetPlans.json").read_text())
    frame = plans["configurations"]["3d_fullres"]["median_image_size_in_voxels"][1:]
    for cfg in ("3d_temporal_f8t1_unet_s", *(["si_f4t1"] if super_image else [])):
        patch = plans["configurations"][cfg]["patch_size"][1:]
        assert all(p < f for p, f in zip(patch, frame)), (cfg, patch, frame)  # any frame size: the patch is smaller
    return plans


def assert_predictions(pred_dir: Path, raw_dir: Path, values) -> None:
    """A label map of every frame of every test video, with the image's shape and spacing."""
    from unilvseg_nnunet.data.dataset import file_ending
    from unilvseg_nnunet.files import read_volume_spacing

    images = sorted((raw_dir / "imagesTs").glob(f"*_0000{file_ending(raw_dir)}"))
    assert images
    for image in images:
        img, spacing = read_volume_spacing(image)
        seg, seg_spacing = read_volume_spacing(pred_dir / image.name.replace("_0000", ""))
        assert seg.shape == img.shape and np.allclose(seg_spacing, spacing)
        assert set(np.unique(seg)) <= set(values)


def assert_structures_scored(summary: dict, names, dense: bool) -> None:
    assert list(summary["dsc_by_structure"]) == list(names)
    for name in names:
        assert 0 <= summary["dsc_by_structure"][name]["overall"]["pooled_dsc"] <= 1
        assert summary["dsc_by_structure"][name]["overall"]["n_frames"] == 2 * summary["n_cases"]
    assert "hd95_mm_by_structure" in summary and "hd95_mm" in summary
    assert (summary["dense"] is not None) is dense
    if dense:
        assert list(summary["dense"]["dsc_by_structure"]) == list(names)


@pytest.mark.nnunet
def test_nifti_release_end_to_end(nnunet_env, tmp_path):
    """Convert with dense truth into .nii.gz; plan the 3D and the super-image configuration for frames larger than
    their patch; train the 3D one on crops of the frames; `unilvseg compare` predicts (with the pixel spacing) and
    evaluates per structure. (Pretraining, fine-tuning and super-image training do not depend on the dataset:
    tested on the EchoNet phantom.)"""
    from conftest import run_cmd

    root = synthesize_camus(tmp_path / "camus", n_patients=5, fmt="nifti", splits=(3, 1, 1), **E2E)
    run_cmd([sys.executable, str(REPO / "conversion" / "camus_to_nnunet.py"), str(root), "-d", "962", "-n",
             "CamusNifti", "--dense-truth", "--file-ending", ".nii.gz"], env=nnunet_env)  # a .nii.gz dataset end to end
    raw_dir = Path(nnunet_env["nnUNet_raw"]) / "Dataset962_CamusNifti"
    plan_video_configurations(nnunet_env, 962, super_image=True)
    cfg = "3d_temporal_f8t1_unet_s"
    run_cmd(["nnUNetv2_train", "962", cfg, "0", "-tr", "SparseTemporalTrainer_smoke", "-device", "cpu"], env=nnunet_env)
    model = Path(nnunet_env["nnUNet_results"]) / "Dataset962_CamusNifti" / f"SparseTemporalTrainer_smoke__nnUNetPlans__{cfg}"
    out = tmp_path / "compare"
    run_cmd(["unilvseg", "compare", "-d", "962", "-m", f"3D={model}", "-o", str(out), "--n-boot", "50"], env=nnunet_env)
    table = (out / "comparison.md").read_text()
    assert "## DSC per structure" in table and "| LV | myocardium | left_atrium |" in table
    assert_predictions(out / "3D" / "predictions", raw_dir, (0, 1, 2, 3))
    summary = json.loads((out / "3D" / "evaluation" / "summary.json").read_text())
    assert_structures_scored(summary, ("LV", "myocardium", "left_atrium"), dense=True)


@pytest.mark.nnunet
def test_metaimage_release_is_a_dataset_nnunet_accepts(nnunet_env, tmp_path):
    """The original release (no split files, no every-frame labels): `unilvseg convert camus` writes a seeded split
    and a dataset that nnU-Net's own integrity check accepts; `unilvseg evaluate` finds it by its ID and scores
    each structure with HD95 in mm. (Training and prediction do not depend on the release: tested above.)"""
    from conftest import nnunet_accepts, references_as_predictions, run_cmd

    root = synthesize_camus(tmp_path / "camus", n_patients=4, fmt="mhd", **E2E)
    run_cmd(["unilvseg", "convert", "camus", str(root), "-d", "963", "-n", "CamusMhd"], env=nnunet_env)
    raw_dir = Path(nnunet_env["nnUNet_raw"]) / "Dataset963_CamusMhd"
    nnunet_accepts(raw_dir)
    pred = references_as_predictions(raw_dir, tmp_path / "pred")
    run_cmd(["unilvseg", "evaluate", "-p", str(pred), "-d", "963", "-o", str(tmp_path / "eval"), "--n-boot", "50"],
            env=nnunet_env)
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert_structures_scored(summary, ("LV", "myocardium", "left_atrium"), dense=False)
    for name in ("LV", "myocardium", "left_atrium"):
        assert summary["dsc_by_structure"][name]["overall"]["pooled_dsc"] == 1.0


@pytest.mark.parametrize("fmt", FORMATS)
def test_synth_command_writes_a_release_the_converter_reads(tmp_path, raw, fmt):
    """`unilvseg synth --format camus-*` writes the CAMUS-style phantom that `unilvseg convert camus` converts."""
    env = dict(os.environ, nnUNet_raw=str(raw))
    unilvseg = str(Path(sys.executable).parent / "unilvseg")
    proc = subprocess.run([unilvseg, "synth", str(tmp_path / "camus"), "--format", f"camus-{fmt}", "--n", "2",
                           "--seed", "3"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote 2 CAMUS-style phantom patients (2CH and 4CH half sequences, {fmt} release)" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "camus" / FOLDERS[fmt]).iterdir()) == ["patient0001", "patient0002"]
    proc = subprocess.run([unilvseg, "convert", "camus", str(tmp_path / "camus"), "-d", "964", "-n", "CamusCli"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    meta = list(ds.iter_case_metadata(raw / "Dataset964_CamusCli"))
    assert len(meta) == 4 and {m["view"] for m in meta} == {"2CH", "4CH"}
    bad = subprocess.run([unilvseg, "synth", str(tmp_path / "x"), "--format", "camus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice: 'camus'" in bad.stderr
    bad = subprocess.run([unilvseg, "synth", str(tmp_path / "x"), "--format", f"camus-{fmt}", "--artefacts", "severe"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--artefacts: EchoNet phantom option(s)" in bad.stderr and not (tmp_path / "x").exists()
