"""EchoNet-Pediatric -> nnU-Net raw dataset: both view folders, outline tracings turned into masks by its
authors' rule (checked against a literal transcription and an independent rasteriser), ED/ES by area, the
frame rate from the video, the ten folds of splits_final.json and a held-out test fold; one crafted bad input
per quirk (reported for that video, the others intact); dataset-level errors; and the conversion script."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_echonet import assert_mask_matches_tracing, lv_tracing, make_video, write_avi

from unilvseg_nnunet.data import dataset as ds
from unilvseg_nnunet.data import echonet
from unilvseg_nnunet.data.pediatric import convert_pediatric
from unilvseg_nnunet.files import read_volume

REPO = Path(__file__).resolve().parents[1]
FRAMES, FPS = 30, 30.0


def outline(chords: np.ndarray) -> np.ndarray:
    """EchoNet-Pediatric's layout of a tracing: the outline points (n, 2) X, Y of an EchoNet chord tracing."""
    return np.stack(echonet.tracing_polygon(*chords.T), 1)


def make_pediatric(root: Path, views: dict, seed: int = 0) -> Path:
    """Write an EchoNet-Pediatric folder: per view a list of video dicts with name, fold (the Split value),
    frames, and optionally traced {frame: chords (21, 4) or outline (n, 2) or "No Systolic"} (default: ED at 3,
    ES at 15, as outlines), write (False: no AVI) or content (raw bytes instead of a video)."""
    rng = np.random.default_rng(seed)
    for view, videos in views.items():
        folder = root / view
        (folder / "Videos").mkdir(parents=True, exist_ok=True)
        with open(folder / "FileList.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["FileName", "EF", "Sex", "Age", "Weight", "Height", "Split"])
            for v in videos:
                w.writerow([v["name"], 55.5, "F", 7, 25, 120, v["fold"]])
        with open(folder / "VolumeTracings.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["FileName", "X", "Y", "Frame"])
            for v in videos:
                if "traced" not in v:
                    v["traced"] = {3: lv_tracing(rng, 1.0), 15: lv_tracing(rng, 0.7)}
                for frame, rows in v["traced"].items():
                    if isinstance(rows, str):
                        w.writerow([f"{v['name']}.avi", "", "", rows])
                        continue
                    for x, y in (outline(rows) if rows.shape[1] == 4 else rows):
                        w.writerow([f"{v['name']}.avi", f"{x:.4f}", f"{y:.4f}", frame])
        for v in videos:
            path = folder / "Videos" / f"{v['name']}.avi"
            if "content" in v:
                path.write_bytes(v["content"])
            elif v.get("write", True):
                write_avi(path, make_video(rng, v.get("frames", FRAMES)), FPS)
    return root


def good(view: str, n: int, first_fold: int = 0) -> list[dict]:
    return [dict(name=f"{view}{i}", fold=(first_fold + i) % 10, frames=FRAMES) for i in range(n)]


@pytest.fixture
def raw(tmp_path, monkeypatch) -> Path:
    out = tmp_path / "nnUNet_raw"
    out.mkdir()
    monkeypatch.setenv("nnUNet_raw", str(out))
    return out


def convert(root: Path, **kw) -> Path:
    kw.setdefault("num_processes", 1)
    return convert_pediatric(root, 970, "Pediatric", progress=False, **kw)


def report_of(out: Path) -> dict:
    return json.loads((out / ds.CONVERSION_REPORT).read_text())


def authors_mask(points: np.ndarray, shape) -> np.ndarray:
    """EchoNet's echo.py for two-column traces, transcribed literally: x, y = t[:, 0], t[:, 1]; polygon."""
    import skimage.draw

    r, c = skimage.draw.polygon(np.rint(points[:, 1]).astype(np.int64), np.rint(points[:, 0]).astype(np.int64), shape)
    mask = np.zeros(shape, np.uint8)
    mask[r, c] = 1
    return mask


def assert_case_correct(out: Path, view: str, v: dict) -> dict:
    case = f"{view}_{v['name']}"
    meta = ds.read_case_metadata(out, case)
    lab = read_volume(out / meta["subset"].replace("images", "labels") / f"{case}.mha")
    assert lab.shape == (FRAMES, 112, 112)
    usable = {f: r for f, r in v["traced"].items() if not isinstance(r, str) and f < FRAMES}
    assert meta["traced_frames"] == sorted(usable) == list(ds.labeled_frames(lab))
    for f, rows in usable.items():
        points = outline(rows) if rows.shape[1] == 4 else rows
        np.testing.assert_array_equal(lab[f], authors_mask(np.round(points, 4), lab.shape[1:]))
        if rows.shape[1] == 4:  # the same polygon as an EchoNet-Dynamic tracing: the same mask
            assert_mask_matches_tracing(lab[f], rows)
    assert (lab[[f for f in range(FRAMES) if f not in usable]] == ds.IGNORE).all()
    assert meta["fps"] == FPS and meta["ef"] == 55.5 and meta["filelist_num_frames"] is None
    assert meta["edv"] is None and meta["ef_tracings"] is None
    return meta


def test_both_views_ten_folds_masks_and_metadata(tmp_path, raw):
    views = {"A4C": good("A", 10), "PSAX": good("P", 4, first_fold=6)}
    views["A4C"][1]["traced"] = {20: lv_tracing(np.random.default_rng(1), 0.7), 5: lv_tracing(np.random.default_rng(2))}
    out = convert(make_pediatric(tmp_path / "ped", views))
    for view, videos in views.items():
        for v in videos:
            meta = assert_case_correct(out, view, v)
            assert meta["split"] == f"FOLD{v['fold']}" and meta["subset"] == "imagesTr" and meta["issues"] == []
    meta = ds.read_case_metadata(out, "A4C_A1")
    assert (meta["ed_frame"], meta["es_frame"]) == (5, 20)  # by area, not by row order
    splits = json.loads((out / "splits_final.json").read_text())
    assert len(splits) == 10
    cases = {f"{view}_{v['name']}": v["fold"] for view, vs in views.items() for v in vs}
    for k, fold in enumerate(splits):
        assert fold["val"] == sorted(c for c, f in cases.items() if f == k)
        assert fold["train"] == sorted(c for c, f in cases.items() if f != k)
    rep = report_of(out)
    assert rep["cases"] == {} and rep["summary"]["cases"] == 14 and rep["summary"]["splits"]["FOLD6"] == 2
    dj = json.loads((out / "dataset.json").read_text())
    assert dj["labels"] == ds.LABELS and dj["numTraining"] == 14


def test_test_fold_and_one_view(tmp_path, raw):
    views = {"A4C": good("A", 10), "PSAX": good("P", 3)}
    out = convert(make_pediatric(tmp_path / "ped", views), views=["A4C"], test_fold=9)
    assert [p.name for p in (out / "imagesTs").iterdir()] == ["A4C_A9_0000.mha"]
    assert ds.read_case_metadata(out, "A4C_A9")["split"] == "TEST"
    splits = json.loads((out / "splits_final.json").read_text())
    assert len(splits) == 9 and all("A4C_A9" not in f["train"] for f in splits)
    assert report_of(out)["folds"]["fold 8"] == "Split 8" and not list(out.glob("*/PSAX_*"))


QUIRKS = {
    # name: (how to break the BAD video, expected problem, expected action, expected case outcome)
    "missing_video": (dict(write=False), "missing_video", "skipped video", "skipped"),
    "undecodable_video": (dict(content=b"\x00garbage" * 80), "undecodable_video", "skipped video", "skipped"),
    "no_systolic_trace": ("no_systolic", "invalid_frame_index", "dropped frame", "converted"),
    "too_few_points": ("two_points", "too_few_points", "dropped frame", "converted"),
    "frame_beyond_length": ("beyond", "frame_beyond_length", "dropped frame", "converted"),
    "more_than_two_traced_frames": ("three", "more_than_two_traced_frames", "kept", "converted"),
    "no_tracings": (dict(traced={}), "no_tracings", "skipped video", "skipped"),
    "unknown_split": (dict(fold="A"), "unknown_split", "skipped video", "skipped"),
    "fold_out_of_range": (dict(fold=12), "unknown_split", "skipped video", "skipped"),
}


@pytest.mark.parametrize("quirk", sorted(QUIRKS))
def test_quirk_reported_and_others_intact(tmp_path, raw, quirk):
    change, problem, action, outcome = QUIRKS[quirk]
    rng = np.random.default_rng(5)
    ed, es = lv_tracing(rng, 1.0), lv_tracing(rng, 0.7)
    traced = {"no_systolic": {3: ed, -1: "No Systolic"}, "two_points": {3: ed, 15: outline(es)[:2]},
              "beyond": {3: ed, 15: es, FRAMES + 4: lv_tracing(rng, 0.8)},
              "three": {3: ed, 15: es, 22: lv_tracing(rng, 0.85)}}
    bad = dict(name="BAD", fold=2, frames=FRAMES)
    bad.update(change if isinstance(change, dict) else {"traced": traced[change]})
    views = {"A4C": good("A", 3), "PSAX": [*good("P", 2), bad]}
    out = convert(make_pediatric(tmp_path / "ped", views), num_processes=2)
    rep = report_of(out)
    assert set(rep["cases"]) == {"PSAX_BAD"}, rep["cases"]
    entry = rep["cases"]["PSAX_BAD"]
    assert entry["outcome"] == outcome
    assert any(i["problem"] == problem and i["action"] == action for i in entry["issues"]), entry
    for view, videos in views.items():
        for v in videos:
            if v is not bad:
                assert assert_case_correct(out, view, v)["issues"] == []
    if outcome == "converted":
        meta = assert_case_correct(out, "PSAX", {**bad, "traced": {f: r for f, r in bad["traced"].items() if f >= 0}}
                                   if quirk != "too_few_points" else {**bad, "traced": {3: ed}})
        assert meta["issues"] == entry["issues"]
    else:
        assert not ds.metadata_path(out, "PSAX_BAD").exists()


def _run_script(args, env_raw: Path):
    env = dict(os.environ, nnUNet_raw=str(env_raw))
    return subprocess.run([sys.executable, str(REPO / "conversion" / "echonet_pediatric_to_nnunet.py"), *args],
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("damage,needle", [
    ("no_view_folder", "PSAX: folder not found"),
    ("no_tracings_csv", "VolumeTracings.csv: not found"),
    ("tracings_column", "VolumeTracings.csv: missing column(s) X"),
])
def test_dataset_level_errors_exit_nonzero_and_write_nothing(tmp_path, raw, damage, needle):
    root = make_pediatric(tmp_path / "ped", {"A4C": good("A", 2), "PSAX": good("P", 2)})
    if damage == "no_view_folder":
        os.rename(root / "PSAX", root / "psax_old")
    elif damage == "no_tracings_csv":
        (root / "PSAX" / "VolumeTracings.csv").unlink()
    else:
        path = root / "PSAX" / "VolumeTracings.csv"
        path.write_text(path.read_text().replace("FileName,X,Y,Frame", "FileName,XX,Y,Frame", 1))
    proc = _run_script([str(root), "-d", "970", "-n", "Pediatric"], raw)
    assert proc.returncode == 2 and needle in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert list(raw.iterdir()) == []


def test_script_converts_and_resumes(tmp_path, raw):
    views = {"A4C": good("A", 3), "PSAX": good("P", 3)}
    root = make_pediatric(tmp_path / "ped", views)
    for converted_now in (6, 0):
        proc = _run_script([str(root), "-d", "970", "-n", "Pediatric", "-np", "2"], raw)
        assert proc.returncode == 0, proc.stderr
        assert f"Dataset970_Pediatric: 6 cases (6 imagesTr, 0 imagesTs; {converted_now} converted now" in proc.stdout
    for view, videos in views.items():
        for v in videos:
            assert_case_correct(raw / "Dataset970_Pediatric", view, v)


@pytest.mark.nnunet
def test_dataset_with_a_test_fold_for_nnunet_and_evaluate(nnunet_env, tmp_path):
    """Convert both views with Split 9 held out (validation on Split 0): nnU-Net's own integrity check accepts
    the dataset, and `unilvseg evaluate` finds it by its ID and scores the held-out fold as EchoNet datasets are
    scored. (Training and prediction do not depend on the dataset: tested on the EchoNet and CAMUS phantoms.)"""
    from conftest import nnunet_accepts, references_as_predictions, run_cmd

    views = {"A4C": [dict(name=f"A{i}", fold=f, frames=FRAMES) for i, f in enumerate((0, 1, 2, 9))],
             "PSAX": [dict(name=f"P{i}", fold=f, frames=FRAMES) for i, f in enumerate((0, 3, 9))]}
    root = make_pediatric(tmp_path / "ped", views)
    run_cmd([sys.executable, str(REPO / "conversion" / "echonet_pediatric_to_nnunet.py"), str(root), "-d", "971",
             "-n", "PediatricE2E", "--test-fold", "9"], env=nnunet_env)
    raw_dir = Path(nnunet_env["nnUNet_raw"]) / "Dataset971_PediatricE2E"
    assert json.loads((raw_dir / "splits_final.json").read_text())[0]["val"] == ["A4C_A0", "PSAX_P0"]
    nnunet_accepts(raw_dir)
    pred = references_as_predictions(raw_dir, tmp_path / "pred")
    assert sorted(p.name for p in pred.glob("*.mha")) == ["A4C_A3.mha", "PSAX_P2.mha"]
    run_cmd(["unilvseg", "evaluate", "-p", str(pred), "-d", "971", "-o", str(tmp_path / "eval"), "--n-boot", "50"],
            env=nnunet_env)
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["n_cases"] == 2 and summary["dsc"]["overall"]["n_frames"] == 4 and summary["fps_assumed"] == []
    assert summary["dsc"]["overall"]["pooled_dsc"] == 1.0
    assert "dsc_by_structure" not in summary  # one structure: the report EchoNet datasets have always had
