"""EchoNet-Dynamic -> nnU-Net raw dataset: layout, masks against an independent rendering, one crafted
bad input per quirk (reported outcome + the other videos intact), dataset-level errors (non-zero exit,
message naming file/column, nothing written), resumability, and stock nnU-Net accepting the result."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_echonet import assert_mask_matches_tracing, lv_tracing, make_echonet

from unilvseg_nnunet.data import dataset as ds
from unilvseg_nnunet.data.conversion import convert_echonet
from unilvseg_nnunet.data.echonet import read_filelist
from unilvseg_nnunet.files import read_volume

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "conversion" / "echonet_to_nnunet.py"
FRAMES = 30


@pytest.fixture
def raw(tmp_path, monkeypatch) -> Path:
    out = tmp_path / "nnUNet_raw"
    out.mkdir()
    monkeypatch.setenv("nnUNet_raw", str(out))
    return out


def good_videos(n: int = 5) -> list[dict]:
    splits = ["TRAIN", "TRAIN", "VAL", "TEST", "TRAIN", "VAL", "TEST"]
    return [dict(name=f"GOOD{i}", split=splits[i % len(splits)], frames=FRAMES) for i in range(n)]


def convert(root: Path, **kw) -> Path:
    kw.setdefault("num_processes", 1)
    return convert_echonet(root, 950, "Test", progress=False, **kw)


def report_of(out: Path) -> dict:
    return json.loads((out / ds.CONVERSION_REPORT).read_text())


def assert_case_correct(out: Path, v: dict, frames: int = FRAMES) -> dict:
    """Files, label volume (EchoNet masks on traced frames, IGNORE elsewhere) and metadata of one video."""
    meta = ds.read_case_metadata(out, v["name"])
    sub = "imagesTs" if v["split"].upper() == "TEST" else "imagesTr"
    lab_sub = {"imagesTr": "labelsTr", "imagesTs": "labelsTs"}[sub]
    img = read_volume(out / sub / f"{v['name']}_0000.mha")
    lab = read_volume(out / lab_sub / f"{v['name']}.mha")
    assert img.shape == lab.shape == (frames, 112, 112) and img.dtype == np.uint8 and lab.dtype == np.uint8
    usable = {f: r for f, r in v["traced"].items() if f < frames and len(r) == 21 and np.isfinite(r).all()}
    assert meta["traced_frames"] == sorted(usable) == list(ds.labeled_frames(lab))
    for f in range(frames):
        if f in usable:
            assert_mask_matches_tracing(lab[f], usable[f])
        else:
            assert (lab[f] == ds.IGNORE).all()
    return meta


def test_convert_layout_masks_metadata(tmp_path, raw):
    rng = np.random.default_rng(7)
    videos = good_videos(4)
    # ES rows written before ED rows: ED/ES must come from the area, not the order
    videos[0]["traced"] = {20: lv_tracing(rng, 0.7), 5: lv_tracing(rng, 1.1)}
    videos[1].update(filelist_name="GOOD1.avi", avi=False, split="train")  # .avi swapped between CSVs, lower-case split
    root = make_echonet(tmp_path / "echo", videos)
    out = convert(root)
    assert out == raw / "Dataset950_Test"

    for v in videos:
        meta = assert_case_correct(out, v)
        assert set(ds.METADATA_FIELDS) <= set(meta) and meta["issues"] == []
        assert meta["num_frames"] == meta["filelist_num_frames"] == FRAMES and meta["fps"] == 50.0
        assert (meta["ef"], meta["edv"], meta["esv"]) == (60.0, 75.0, 30.0)
        assert 0 < meta["ef_tracings"] < 100
    meta0 = ds.read_case_metadata(out, "GOOD0")
    assert (meta0["ed_frame"], meta0["es_frame"]) == (5, 20)
    assert ds.read_case_metadata(out, "GOOD1")["split"] == "TRAIN"
    # the image is the decoded video (grey)
    from unilvseg_nnunet.data.echonet import decode_video
    np.testing.assert_array_equal(read_volume(out / "imagesTr" / "GOOD0_0000.mha"), decode_video(root / "Videos" / "GOOD0.avi"))

    dj = json.loads((out / "dataset.json").read_text())
    assert dj["channel_names"] == {"0": "echo"} and dj["labels"] == ds.LABELS
    assert dj["numTraining"] == 3 and dj["file_ending"] == ".mha"
    assert json.loads((out / "splits_final.json").read_text()) == [{"train": ["GOOD0", "GOOD1"], "val": ["GOOD2"]}]
    assert sorted(p.name for p in (out / "imagesTs").iterdir()) == ["GOOD3_0000.mha"]
    assert sorted(p.name for p in (out / "labelsTs").iterdir()) == ["GOOD3.mha"]
    rep = report_of(out)
    assert rep["cases"] == {} and rep["summary"]["cases"] == 4 and rep["summary"]["skipped_videos"] == 0
    # real data knows no dense truth
    assert meta0["dense_truth"] is False and meta0["corrupted_frames"] == [] and not (out / ds.DENSE_TRUTH_DIR).exists()


QUIRKS = {
    # name: (how to break the BAD video, expected problem, expected action, expected case outcome)
    "missing_video": (dict(write=False), "missing_video", "skipped video", "skipped"),
    "undecodable_video": (dict(content=b"\x00garbage, not an AVI" * 50), "undecodable_video", "skipped video", "skipped"),
    "frame_beyond_length": (dict(traced="beyond"), "frame_beyond_length", "dropped frame", "converted"),
    "frame_count_mismatch": (dict(listed_frames=FRAMES + 7), "frame_count_mismatch", "kept", "converted"),
    "fewer_rows": (dict(traced="fewer"), "wrong_row_count", "dropped frame", "converted"),
    "frame_traced_twice": (dict(traced="twice"), "wrong_row_count", "dropped frame", "converted"),
    "more_than_two_traced_frames": (dict(traced="three"), "more_than_two_traced_frames", "kept", "converted"),
    "no_tracings": (dict(traced={}), "no_tracings", "skipped video", "skipped"),
    "unknown_split": (dict(split="EXTERNAL"), "unknown_split", "skipped video", "skipped"),
    "invalid_coordinates": (dict(traced="nan"), "invalid_coordinates", "dropped frame", "converted"),
    "single_traced_frame": (dict(traced="single"), "single_traced_frame", "kept", "converted"),
    "all_frames_dropped": (dict(traced="all_beyond"), "no_valid_tracing", "skipped video", "skipped"),
}


def _traced(kind: str, rng) -> dict:
    ed, es = lv_tracing(rng, 1.0), lv_tracing(rng, 0.7)
    return {
        "beyond": {3: ed, 12: es, FRAMES + 5: lv_tracing(rng, 0.9)},
        "fewer": {3: ed, 12: es[:15]},
        "twice": {3: ed, 12: np.concatenate([es, lv_tracing(rng, 0.8)])},
        "three": {3: ed, 12: es, 20: lv_tracing(rng, 0.85)},
        "all_beyond": {FRAMES: ed, FRAMES + 9: es},
        "nan": {3: ed, 12: np.where(np.arange(21)[:, None] == 5, np.nan, es), 20: lv_tracing(rng, 0.8)},
        "single": {12: es},
    }[kind]


@pytest.mark.parametrize("quirk", sorted(QUIRKS))
def test_quirk_reported_and_others_intact(tmp_path, raw, quirk):
    change, problem, action, outcome = QUIRKS[quirk]
    rng = np.random.default_rng(3)
    bad = dict(dict(name="BAD", split="TRAIN", frames=FRAMES), **{k: v for k, v in change.items() if k != "traced"})
    if "traced" in change:
        bad["traced"] = change["traced"] if isinstance(change["traced"], dict) else _traced(change["traced"], rng)
    videos = good_videos(4)
    videos.insert(2, bad)
    root = make_echonet(tmp_path / "echo", videos)
    out = convert(root, num_processes=2)

    rep = report_of(out)
    assert set(rep["cases"]) == {"BAD"}, rep["cases"]
    entry = rep["cases"]["BAD"]
    assert entry["outcome"] == outcome
    assert any(i["problem"] == problem and i["action"] == action for i in entry["issues"]), entry
    for v in videos:
        if v is not bad:
            assert assert_case_correct(out, v)["issues"] == []
    files = [p.name for sub in ("imagesTr", "labelsTr") for p in (out / sub).iterdir()]
    if outcome == "skipped":
        assert not [f for f in files if f.startswith("BAD")]
        assert not ds.metadata_path(out, "BAD").exists()
        assert "BAD" not in json.loads((out / "splits_final.json").read_text())[0]["train"]
    else:
        meta = assert_case_correct(out, bad)
        assert meta["issues"] == entry["issues"]
        assert "BAD" in json.loads((out / "splits_final.json").read_text())[0]["train"]
    if quirk == "more_than_two_traced_frames":
        assert (meta["ed_frame"], meta["es_frame"]) == (3, 12) and meta["traced_frames"] == [3, 12, 20]
    if quirk == "single_traced_frame":
        assert (meta["ed_frame"], meta["es_frame"], meta["ef_tracings"]) == (None, None, None)
    if quirk == "frame_count_mismatch":
        assert meta["num_frames"] == FRAMES and meta["filelist_num_frames"] == FRAMES + 7
    assert rep["summary"]["skipped_videos"] == (outcome == "skipped")
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 3 + (outcome == "converted")


def test_include_unlabeled(tmp_path, raw):
    videos = good_videos(4) + [dict(name="UNL", split="TRAIN", frames=FRAMES, traced={}),
                               dict(name="UNLTEST", split="TEST", frames=FRAMES, traced={})]
    root = make_echonet(tmp_path / "echo", videos)
    out = convert(root, include_unlabeled=True)
    meta = ds.read_case_metadata(out, "UNL")
    assert meta["split"] == "UNLABELED" and meta["subset"] == "imagesTr" and meta["traced_frames"] == []
    assert meta["ed_frame"] is None and meta["ef_tracings"] is None
    assert (read_volume(out / "labelsTr" / "UNL.mha") == ds.IGNORE).all()
    splits = json.loads((out / "splits_final.json").read_text())
    assert splits[0] == {"train": ["GOOD0", "GOOD1"], "val": ["GOOD2"]}
    assert splits[1] == {"train": ["GOOD0", "GOOD1", "UNL"], "val": ["GOOD2"]}
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 4
    assert report_of(out)["cases"]["UNLTEST"]["outcome"] == "skipped"  # test videos never feed pretraining
    assert not ds.metadata_path(out, "UNLTEST").exists()
    from conftest import nnunet_accepts

    nnunet_accepts(out)  # stock nnU-Net takes a fully-ignore case


def test_dense_truth_and_low_label_phantom(tmp_path, raw):
    """A severe-artefact, low-label phantom: every case carries the true LV of every frame and its corrupted
    frames; the untraced TRAIN videos become UNLABELED cases; a truth that does not fit is reported, not written."""
    from unilvseg_nnunet.data import echonet
    from unilvseg_nnunet.data.phantom import synthesize

    src = synthesize(tmp_path / "phantom", n=5, seed=2, frames=(30, 40), splits=(3, 1, 1), artefacts="severe",
                     labeled_train=1)
    corrupted = echonet.read_corrupted_frames(src / echonet.CORRUPTED_FRAMES)
    out = convert(src, include_unlabeled=True)
    metas = {m["case"]: m for m in ds.iter_case_metadata(out)}
    assert sorted(m["split"] for m in metas.values()) == ["TEST", "TRAIN", "UNLABELED", "UNLABELED", "VAL"]
    for case, meta in metas.items():
        truth = read_volume(ds.dense_truth_path(out, case, ".mha"))
        np.testing.assert_array_equal(truth, echonet.read_dense_truth(echonet.dense_truth_path(src, case)))
        assert meta["dense_truth"] is True
        assert meta["corrupted_frames"] == [{"frame": f, "kinds": k} for f, k in sorted(corrupted[case].items())]
        assert len(meta["corrupted_frames"]) == round(meta["num_frames"] / 4)
        label = read_volume(out / ("labelsTs" if meta["subset"] == "imagesTs" else "labelsTr") / f"{case}.mha")
        for f in meta["traced_frames"]:  # the traced masks agree with the truth of their frames
            inter = np.logical_and(label[f] == 1, truth[f] == 1).sum()
            assert 2 * inter / ((label[f] == 1).sum() + truth[f].sum()) > 0.9
    assert convert(src, include_unlabeled=True) and report_of(out)["summary"]["converted_now"] == 0

    # one truth of the wrong length, one truth removed from the source: both cases redone, neither keeps one
    first, second = sorted(metas)[:2]
    np.savez_compressed(echonet.dense_truth_path(src, first), masks=np.zeros((3, 112, 112), np.uint8))
    echonet.dense_truth_path(src, second).unlink()
    ds.metadata_path(out, first).unlink()
    convert(src, include_unlabeled=True)
    assert report_of(out)["summary"]["converted_now"] == 2
    assert [i["problem"] for i in report_of(out)["cases"][first]["issues"]] == ["dense_truth_mismatch"]
    for case in (first, second):
        assert ds.read_case_metadata(out, case)["dense_truth"] is False
        assert not ds.dense_truth_path(out, case, ".mha").exists()


def test_no_convertible_video_is_an_error(tmp_path, raw):
    root = make_echonet(tmp_path / "echo", [dict(name="A", split="TRAIN", frames=FRAMES, write=False)])
    proc = _run_script([str(root), "-d", "950", "-n", "Test"], raw)
    assert proc.returncode != 0 and "no video could be converted" in proc.stderr
    assert report_of(raw / "Dataset950_Test")["cases"]["A"]["issues"][0]["problem"] == "missing_video"


def test_colour_niigz_compressed_and_max_cases(tmp_path, raw):
    videos = good_videos(5)
    root = make_echonet(tmp_path / "echo", videos)
    out = convert(root, keep_color=True, file_ending=".nii.gz", compress=True, max_cases=3)
    dj = json.loads((out / "dataset.json").read_text())
    assert dj["channel_names"] == {"0": "R", "1": "G", "2": "B"} and dj["file_ending"] == ".nii.gz"
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == [f"GOOD{i}_{c:04d}.nii.gz" for i in range(3) for c in range(3)]
    assert read_volume(out / "imagesTr" / "GOOD0_0002.nii.gz").shape == (FRAMES, 112, 112)
    assert report_of(out)["summary"]["videos_listed"] == 5 and report_of(out)["summary"]["cases"] == 3
    # converting again with other options replaces the files of the earlier run (nothing stale left)
    out = convert(root, max_cases=2)
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == ["GOOD0_0000.mha", "GOOD1_0000.mha"]
    assert sorted(p.name for p in (out / ds.METADATA_DIR).iterdir()) == ["GOOD0.json", "GOOD1.json"]


def test_resumable_and_idempotent(tmp_path, raw):
    videos = good_videos(4)
    root = make_echonet(tmp_path / "echo", videos)
    out = convert(root)
    files = sorted(p for p in out.rglob("*.mha"))
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    out = convert(root)  # a re-run is a no-op
    assert report_of(out)["summary"]["converted_now"] == 0
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes

    # a killed run: GOOD1's metadata was never written, a truncated temporary file was left behind
    ds.metadata_path(out, "GOOD1").unlink()
    tmp = out / "imagesTr" / ".tmp-abc123.mha"
    tmp.write_bytes(b"truncated")
    (out / "labelsTr" / "GOOD2.mha").unlink()  # a missing file also means: redo the case
    out = convert(root)
    summary = report_of(out)["summary"]
    assert summary["converted_now"] == 2 and summary["reused_from_earlier_run"] == 2
    assert not tmp.exists()
    for v in videos:
        assert_case_correct(out, v)
    assert (out / "imagesTr" / "GOOD0_0000.mha").stat().st_mtime_ns == mtimes[out / "imagesTr" / "GOOD0_0000.mha"]


def test_killed_run_resumes(tmp_path, raw):
    """SIGKILL the converter mid-run; the re-run completes every case correctly and leaves no .tmp- file."""
    import os
    import signal
    import time

    videos = [dict(name=f"K{i:02d}", split=["TRAIN", "VAL", "TEST"][i % 3], frames=60) for i in range(12)]
    root = make_echonet(tmp_path / "echo", videos)
    env = dict(os.environ, nnUNet_raw=str(raw))
    proc = subprocess.Popen([sys.executable, str(SCRIPT), str(root), "-d", "950", "-n", "Test", "-np", "1", "--no-progress"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    meta_dir = raw / "Dataset950_Test" / ds.METADATA_DIR
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not (meta_dir.is_dir() and any(meta_dir.glob("*.json"))):
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    out = convert(root)
    for v in videos:
        assert_case_correct(out, v, frames=60)
    assert not list(out.rglob(".tmp-*"))
    assert report_of(out)["summary"]["cases"] == 12


def _run_script(args, env_raw: Path):
    import os

    env = dict(os.environ, nnUNet_raw=str(env_raw))
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("damage,needle", [
    ("no_filelist", "FileList.csv: file not found"),
    ("no_tracings_csv", "VolumeTracings.csv: file not found"),
    ("filelist_column", "FileList.csv: missing column(s) Split"),
    ("tracings_column", "VolumeTracings.csv: missing column(s) X2"),
    ("no_videos_dir", "Videos: folder not found"),
])
def test_dataset_level_errors_exit_nonzero_and_write_nothing(tmp_path, raw, damage, needle):
    root = make_echonet(tmp_path / "echo", good_videos(3))
    if damage == "no_filelist":
        (root / "FileList.csv").unlink()
    elif damage == "no_tracings_csv":
        (root / "VolumeTracings.csv").unlink()
    elif damage == "no_videos_dir":
        for p in (root / "Videos").iterdir():
            p.unlink()
        (root / "Videos").rmdir()
    else:
        name, col = ("FileList.csv", "Split") if damage == "filelist_column" else ("VolumeTracings.csv", "X2")
        lines = (root / name).read_text().splitlines()
        idx = lines[0].split(",").index(col)
        (root / name).write_text("\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != idx) for line in lines) + "\n")
    proc = _run_script([str(root), "-d", "950", "-n", "Test"], raw)
    assert proc.returncode != 0
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert list(raw.iterdir()) == []


def test_script_converts_with_two_processes(tmp_path, raw):
    videos = good_videos(4)
    root = make_echonet(tmp_path / "echo", videos)
    proc = _run_script([str(root), "-d", "950", "-n", "Test", "-np", "2"], raw)
    assert proc.returncode == 0, proc.stderr
    assert "Dataset950_Test: 4 cases" in proc.stdout
    for v in videos:
        assert_case_correct(raw / "Dataset950_Test", v)
    # another dataset under the same id is refused
    proc = _run_script([str(root), "-d", "950", "-n", "Other"], raw)
    assert proc.returncode != 0 and "Dataset950_Test" in proc.stderr


@pytest.mark.nnunet
def test_stock_nnunet_accepts_converted_phantom(preprocessed_dataset, raw_dataset):
    """nnUNetv2_plan_and_preprocess --verify_dataset_integrity ran on the converted phantom (fixture)."""
    splits_raw = json.loads((raw_dataset / "splits_final.json").read_text())
    assert json.loads((preprocessed_dataset / "splits_final.json").read_text()) == splits_raw
    metas = list(ds.iter_case_metadata(raw_dataset))
    assert sorted(splits_raw[0]["train"]) == sorted(m["case"] for m in metas if m["split"] == "TRAIN")
    assert sorted(splits_raw[0]["val"]) == sorted(m["case"] for m in metas if m["split"] == "VAL")
    plans = json.loads((preprocessed_dataset / "nnUNetPlans.json").read_text())
    assert {"2d", "3d_fullres"} <= set(plans["configurations"])
    folder = preprocessed_dataset / plans["configurations"]["3d_fullres"]["data_identifier"]
    names = {p.name.split(".")[0] for p in folder.iterdir()}
    assert {m["case"] for m in metas if m["subset"] == "imagesTr"} <= names
    assert json.loads((preprocessed_dataset / "dataset_fingerprint.json").read_text())["spacings"][0] == [1.0, 1.0, 1.0]


def test_bench_conversion_smoke(tmp_path):
    """bench/bench_conversion.py runs end to end on a tiny phantom and prints its figure last."""
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "bench_conversion.py"), "--n", "3", "--frames", "12",
                           "--listed", "30", "--repeats", "1", "--work", str(tmp_path / "bench")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "3 videos of" in proc.stdout and "out of 30 listed (1260 VolumeTracings.csv rows)" in proc.stdout
    src = next((tmp_path / "bench").glob("echonet_*"))  # real conditions: the CSVs list more videos, no dense truth
    assert len(read_filelist(src / "FileList.csv")) == 30 and not (src / "DenseTruth").exists()
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("conversion: ") and "videos/s with 2 processes" in last and "of the floor" in last
    assert "peak RSS" in proc.stdout
