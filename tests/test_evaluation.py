"""`unilvseg evaluate` end to end on a crafted raw dataset of beating ellipses (no nnU-Net needed)."""
import json
import math

import numpy as np
import pytest
from scipy import ndimage
from skimage.draw import ellipse

from unilvseg_nnunet.errors import UnilvsegError
from unilvseg_nnunet.evaluation import scoring as evaluation
from unilvseg_nnunet.cli import main
from unilvseg_nnunet.data.dataset import FILE_ENDING, IGNORE, LABELS, METADATA_FIELDS, resolve_raw_dataset, write_case_metadata
from unilvseg_nnunet.files import read_volume, write_json, write_volume

FPS, HR = 50.0, 75.0
A_ED, B_ED, A_ES, B_ES = 40, 20, 32, 14
TRUE_EF = 100 * (1 - A_ES * B_ES**2 / (A_ED * B_ED**2))


def beating_ellipse(num_frames: int, offset: float) -> np.ndarray:
    """(F, 112, 112) mask video of an ellipse beating at HR: ED at phase 0, ES at phase 0.35."""
    phase = (np.arange(num_frames) / FPS * HR / 60.0 + offset) % 1.0
    s = np.where(phase < 0.35, 0.5 * (1 + np.cos(np.pi * phase / 0.35)), 0.5 * (1 - np.cos(np.pi * (phase - 0.35) / 0.65)))
    video = np.zeros((num_frames, 112, 112), np.uint8)
    for f, si in enumerate(s):
        r, c = ellipse(56, 56, A_ES + (A_ED - A_ES) * si, B_ES + (B_ED - B_ES) * si, (112, 112), rotation=0.25)
        video[f, r, c] = 1
    return video


def make_dataset(root, n=4, num_frames=100, subset="imagesTs"):
    """Raw dataset with ``n`` cases; returns (raw_dir, {case: reference mask video})."""
    raw = root / "Dataset987_Ellipses"
    truth = {}
    period = FPS * 60 / HR  # 40 frames
    for i in range(n):
        case = f"case{i}"
        video = beating_ellipse(num_frames, offset=0.3 + 0.1 * i)
        area = video.reshape(num_frames, -1).sum(1)
        # traced ED/ES: the first area maximum / minimum of the second beat (away from the borders)
        window = slice(int(period * 0.5), int(period * 1.5))
        ed = int(np.argmax(area[window]) + window.start)
        es = int(np.argmin(area[ed:ed + int(period * 0.6)]) + ed)
        label = np.full_like(video, IGNORE)
        label[[ed, es]] = video[[ed, es]]
        write_volume(raw / subset / f"{case}_0000{FILE_ENDING}", (video * 100).astype(np.uint8))
        write_volume(raw / subset.replace("images", "labels") / f"{case}{FILE_ENDING}", label)
        meta = {k: None for k in METADATA_FIELDS}
        meta.update(case=case, split="TEST", subset=subset, num_frames=num_frames, filelist_num_frames=num_frames,
                    fps=FPS, height=112, width=112, traced_frames=[ed, es], ed_frame=ed, es_frame=es,
                    ef=TRUE_EF, edv=None, esv=None, ef_tracings=TRUE_EF, issues=[])
        write_case_metadata(raw, meta)
        truth[case] = video
    write_json(raw / "dataset.json", {"channel_names": {"0": "echo"}, "labels": LABELS, "numTraining": 0,
                                      "file_ending": FILE_ENDING})
    return raw, truth


def write_predictions(pred_dir, truth, shift=0):
    for case, video in truth.items():
        write_volume(pred_dir / f"{case}{FILE_ENDING}", np.roll(video, shift, axis=2))


def test_evaluate_cli_end_to_end(tmp_path):
    raw, truth = make_dataset(tmp_path, n=4)
    pred = tmp_path / "pred"
    write_predictions(pred, truth, shift=2)
    out = tmp_path / "report"
    assert main(["evaluate", "-p", str(pred), "-d", str(raw), "-o", str(out), "--n-boot", "2000", "--seed", "1"]) == 0

    s = json.loads((out / "summary.json").read_text())
    # expected pooled DSC computed independently from the traced frames
    inter = size = 0
    for case, video in truth.items():
        meta = json.loads((raw / "unilvseg_metadata" / f"{case}.json").read_text())
        p = np.roll(video, 2, axis=2)
        for f in (meta["ed_frame"], meta["es_frame"]):
            inter += np.logical_and(p[f], video[f]).sum()
            size += p[f].sum() + video[f].sum()
    assert s["dsc"]["overall"]["pooled_dsc"] == pytest.approx(2 * inter / size)
    assert s["dsc"]["overall"]["n_frames"] == 8 and s["dsc"]["ed"]["n_frames"] == 4 and s["dsc"]["es"]["n_frames"] == 4
    lo, hi = s["dsc"]["overall"]["pooled_dsc_ci95"]
    assert lo <= s["dsc"]["overall"]["pooled_dsc"] <= hi
    assert s["dsc"]["es"]["pooled_dsc"] < s["dsc"]["ed"]["pooled_dsc"]  # a 2-px shift hurts the smaller ES more
    assert s["ci_level"] == 0.95 and s["n_boot"] == 2000 and s["n_cases"] == 4
    assert s["hd95_px"]["overall"]["mean"] == pytest.approx(2.0, abs=0.5)
    # a shifted but exact shape: EF and ED/ES timing are those of the truth
    assert s["ef"]["pred_traced_frames"]["mae"] < 2.0 and s["ef"]["reference_masks"]["mae"] < 2.0
    assert s["ef"]["pred_beats"]["n"] == 4 and s["ef"]["pred_beats"]["mae"] < 2.5
    assert s["ed_es"]["ed_abs_frame_error"]["mean"] <= 1.0 and s["ed_es"]["es_abs_frame_error"]["mean"] <= 1.0
    assert s["temporal"]["hf_share"]["mean"] < 0.01 and s["temporal"]["hf_cutoff_hz"] == 10.0
    assert s["skipped"] == [] and s["extra_predictions"] == []

    rows = (out / "per_frame.csv").read_text().splitlines()
    assert rows[0].startswith("case,frame,phase,dice") and len(rows) == 1 + 8
    assert len((out / "per_video.csv").read_text().splitlines()) == 1 + 4
    report = (out / "report.md").read_text()
    assert "95%" in report and "Pooled DSC" in report
    for name in ("dsc.png", "ef.png", "temporal.png", "area_curves/case0.png"):
        assert (out / name).stat().st_size > 1000
    assert not list(out.rglob(".tmp-*"))


def test_perfect_prediction_and_flicker(tmp_path):
    raw, truth = make_dataset(tmp_path, n=3)
    pred = tmp_path / "pred"
    write_predictions(pred, truth)
    s = evaluation.evaluate(pred, raw, tmp_path / "r1", n_boot=500, video_plots=False, progress=False)
    assert s["dsc"]["overall"]["pooled_dsc"] == 1.0 and s["dsc"]["overall"]["pooled_dsc_ci95"] == [1.0, 1.0]
    assert s["hd95_px"]["overall"]["mean"] == 0.0
    assert not (tmp_path / "r1" / "area_curves").exists()
    # shrink every other frame by 2 px (flicker) but keep the traced frames: same DSC, worse consistency
    for case, video in truth.items():
        v = video.copy()
        v[1::2] = ndimage.binary_erosion(v[1::2], np.ones((1, 3, 3)), iterations=2)
        meta = json.loads((raw / "unilvseg_metadata" / f"{case}.json").read_text())
        v[meta["traced_frames"]] = video[meta["traced_frames"]]
        write_volume(pred / f"{case}{FILE_ENDING}", v)
    s2 = evaluation.evaluate(pred, raw, tmp_path / "r2", n_boot=500, video_plots=False, progress=False)
    assert s2["dsc"]["overall"]["pooled_dsc"] == 1.0
    assert s2["temporal"]["hf_share"]["mean"] > 10 * max(s["temporal"]["hf_share"]["mean"], 1e-4)
    assert s2["temporal"]["jitter"]["mean"] > 5 * s["temporal"]["jitter"]["mean"]


def test_dataset_id_lookup(tmp_path, monkeypatch):
    raw, truth = make_dataset(tmp_path, n=2)
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    assert resolve_raw_dataset("987") == raw
    with pytest.raises(UnilvsegError, match="no such dataset"):
        resolve_raw_dataset("555")


def test_bad_inputs_name_the_file_and_keep_previous_outputs(tmp_path, capsys):
    raw, truth = make_dataset(tmp_path, n=5)
    pred = tmp_path / "pred"
    write_predictions(pred, truth)
    out = tmp_path / "report"
    assert main(["evaluate", "-p", str(pred), "-d", str(raw), "-o", str(out), "--n-boot", "200", "--no-video-plots"]) == 0
    before = (out / "summary.json").read_text()

    (pred / f"case0{FILE_ENDING}").unlink()                                   # missing
    write_volume(pred / f"case1{FILE_ENDING}", truth["case1"][:-3])           # wrong length
    bad = truth["case2"].copy()
    bad[0, 0, 0] = 3
    write_volume(pred / f"case2{FILE_ENDING}", bad)                           # unexpected label
    (pred / f"case3{FILE_ENDING}").write_bytes(b"not an image at all")        # unreadable
    write_volume(pred / f"other{FILE_ENDING}", truth["case4"])                # outside the subset

    assert main(["evaluate", "-p", str(pred), "-d", str(raw), "-o", str(out), "--n-boot", "200"]) == 2
    err = capsys.readouterr().err
    assert "4 of 5 cases have bad input" in err
    assert f"case0{FILE_ENDING}: prediction missing" in err
    assert f"case1{FILE_ENDING}: shape (97, 112, 112) differs" in err
    assert f"case2{FILE_ENDING}: unexpected label values [3]" in err
    assert f"case3{FILE_ENDING}: unreadable" in err
    assert (out / "summary.json").read_text() == before  # nothing overwritten by the failed run

    s = evaluation.evaluate(pred, raw, out, n_boot=200, skip_bad=True, video_plots=False, progress=False)
    assert s["n_cases"] == 1 and [p["case"] for p in s["skipped"]] == ["case0", "case1", "case2", "case3"]
    assert s["extra_predictions"] == ["other"]
    assert "Skipped cases" in (out / "report.md").read_text()

    (raw / "unilvseg_metadata" / "case4.json").unlink()
    with pytest.raises(evaluation.EvaluationError, match="case4.json: no case metadata"):
        evaluation.evaluate(pred, raw, out, n_boot=200, video_plots=False, progress=False)
    with pytest.raises(evaluation.EvaluationError, match="prediction folder not found"):
        evaluation.evaluate(tmp_path / "nope", raw, out, progress=False)
    with pytest.raises(UnilvsegError, match="labelsTr: labels folder not found"):
        evaluation.evaluate(pred, raw, out, subset="imagesTr", progress=False)
    assert math.isfinite(json.loads((out / "summary.json").read_text())["dsc"]["overall"]["pooled_dsc"])
