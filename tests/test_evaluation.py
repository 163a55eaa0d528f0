"""`unilvseg evaluate` end to end on a crafted raw dataset of beating ellipses (no nnU-Net needed)."""
import json
import math

import numpy as np
import pytest
from scipy import ndimage
from skimage.draw import ellipse

from unilvseg_nnunet.cli import main
from unilvseg_nnunet.data.dataset import (
    FILE_ENDING,
    IGNORE,
    LABELS,
    METADATA_FIELDS,
    dense_truth_path,
    resolve_raw_dataset,
    write_case_metadata,
)
from unilvseg_nnunet.errors import UnilvsegError
from unilvseg_nnunet.evaluation import cardiac
from unilvseg_nnunet.evaluation import scoring as evaluation
from unilvseg_nnunet.files import write_json, write_volume

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


def make_dataset(root, n=4, num_frames=100, subset="imagesTs", corrupted=None):
    """Raw dataset with ``n`` cases; returns (raw_dir, {case: reference mask video}). With ``corrupted``
    ({frame: [kinds]}, the same for every case) each case also gets its dense truth (the whole video)."""
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
        if corrupted is not None:
            write_volume(dense_truth_path(raw, case, FILE_ENDING), video)
            meta.update(dense_truth=True,
                        corrupted_frames=[{"frame": f, "kinds": k} for f, k in sorted(corrupted.items())])
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


def test_implausible_ef_is_counted_not_averaged(tmp_path):
    # one video's prediction loses the LV at its traced ES frame (3 pixels left): its EF of ~100 % would pull
    # the MAE up by tens of points; it is counted as unavailable and the MAE stays that of the plausible videos
    raw, truth = make_dataset(tmp_path, n=3)
    pred = tmp_path / "pred"
    write_predictions(pred, truth)
    meta = json.loads((raw / "unilvseg_metadata" / "case1.json").read_text())
    lost = truth["case1"].copy()
    lost[meta["es_frame"]] = 0
    lost[meta["es_frame"], 56, 55:58] = 1
    write_volume(pred / f"case1{FILE_ENDING}", lost)
    s = evaluation.evaluate(pred, raw, tmp_path / "r", n_boot=200, video_plots=False, progress=False)
    traced = s["ef"]["pred_traced_frames"]
    assert traced["n"] == 2 and traced["n_unavailable"] == 1 and traced["mae"] < 3.0
    assert s["ef"]["reference_masks"]["n_unavailable"] == 0
    assert "| pred_traced_frames |" in (tmp_path / "r" / "report.md").read_text()
    assert "| 2 | 1 |" in (tmp_path / "r" / "report.md").read_text()


def test_agreement_counts_missing_predictions():
    a = evaluation.agreement([50.0, math.nan, 61.0, 70.0], [55.0, 52.0, 58.0, math.nan])
    assert a["n"] == 2 and a["n_unavailable"] == 1
    assert a["mae"] == pytest.approx(4.0) and a["bias"] == pytest.approx(-1.0)


def test_dataset_id_lookup(tmp_path, monkeypatch):
    raw, truth = make_dataset(tmp_path, n=2)
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    assert resolve_raw_dataset("987") == raw
    assert resolve_raw_dataset(raw.name) == raw
    with pytest.raises(UnilvsegError, match="no such dataset"):
        resolve_raw_dataset("555")
    monkeypatch.delenv("nnUNet_raw")
    with pytest.raises(UnilvsegError, match="nnUNet_raw is not set"):
        resolve_raw_dataset("987")


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


# ------------------------------------------------------------------------------------------------
# Every frame against a dense truth
# ------------------------------------------------------------------------------------------------

CORRUPTED = {5: ["blank"], 6: ["blank"], 33: ["noise"], 61: ["shadow", "blur"], 88: ["dropout"]}


def flicker(video: np.ndarray, frames) -> np.ndarray:
    """``video`` with the LV of ``frames`` eroded by 2 px."""
    v = video.copy()
    v[frames] = ndimage.binary_erosion(v[frames], np.ones((1, 3, 3)), iterations=2)
    return v


def test_score_dense_perfect_prediction():
    truth = beating_ellipse(150, 0.3)
    d = evaluation.score_dense(truth, truth, CORRUPTED, FPS)
    assert d["dsc"] == {"all": 1.0, "corrupted": 1.0, "clean": 1.0, "kind:blank": 1.0, "kind:blur": 1.0,
                        "kind:dropout": 1.0, "kind:noise": 1.0, "kind:shadow": 1.0}
    assert d["worst_dsc"] == 1.0 and d["hf_ratio"] == 1.0 and d["jitter_ratio"] == 1.0 and d["area_swing"] == 1.0
    assert d["ed_error"] == 0.0 and d["es_error"] == 0.0
    assert d["n_beats_truth"] >= 3 and d["n_beats_matched"] == d["n_beats_truth"]
    assert d["ef_beat_errors"] == [0.0] * d["n_beats_truth"]
    assert d["sums"]["corrupted"]["n_frames"] == 5 and d["sums"]["clean"]["n_frames"] == 145
    assert d["kinds"][61] == ["shadow", "blur"] and d["kinds"][0] == []


def test_score_dense_wrong_only_on_corrupted_frames():
    truth = beating_ellipse(150, 0.3)
    pred = truth.copy()
    pred[[5, 6]] = 0  # blank frames: the LV lost
    pred[[33, 61, 88]] = flicker(truth, [33, 61, 88])[[33, 61, 88]]
    d = evaluation.score_dense(pred, truth, CORRUPTED, FPS)
    assert d["dsc"]["clean"] == 1.0 and d["dsc"]["corrupted"] < 0.75 and d["dsc"]["kind:blank"] == 0.0
    assert 0.8 < d["dsc"]["kind:noise"] < 1.0
    assert d["dsc"]["corrupted"] < d["dsc"]["all"] < d["dsc"]["clean"]
    assert d["worst_dsc"] == 0.0 and d["worst_frame"] in (5, 6)


def test_score_dense_flicker_raises_hf_and_jitter_ratios():
    truth = beating_ellipse(150, 0.3)
    d = evaluation.score_dense(flicker(truth, slice(1, None, 2)), truth, {}, FPS)
    assert d["hf_ratio"] > 20 and d["jitter_ratio"] > 5
    assert math.isnan(d["dsc"]["corrupted"]) and d["dsc"]["clean"] == d["dsc"]["all"] < 0.97
    # a smooth 1-frame delay keeps the curve smooth: ratio about 1, ED/ES off by about one frame
    late = evaluation.score_dense(np.roll(truth, 1, axis=0), truth, {}, FPS)
    assert late["hf_ratio"] == pytest.approx(1.0, abs=0.3) and 0.5 <= late["ed_error"] <= 1.5
    # eroding every frame shrinks ED areas more than ES areas: the curve swings less than the truth's
    assert evaluation.score_dense(flicker(truth, slice(None)), truth, {}, FPS)["area_swing"] < 0.97


def test_evaluate_scores_every_frame_with_dense_truth(tmp_path):
    raw, truth = make_dataset(tmp_path, n=3, corrupted=CORRUPTED)
    pred = tmp_path / "pred"
    for case, video in truth.items():  # right on clean frames, wrong on the corrupted ones
        write_volume(pred / f"{case}{FILE_ENDING}", flicker(video, sorted(CORRUPTED)))
    out = tmp_path / "report"
    s = evaluation.evaluate(pred, raw, out, n_boot=300, progress=False)
    d = s["dense"]
    assert d["n_videos"] == 3 and d["n_frames"] == 300
    assert d["dsc"]["clean"]["pooled_dsc"] == 1.0 and d["dsc"]["clean"]["n_frames"] == 3 * 95
    assert d["dsc"]["corrupted"]["n_frames"] == 15 and d["dsc"]["corrupted"]["pooled_dsc"] < 0.95
    lo, hi = d["dsc"]["all"]["pooled_dsc_ci95"]
    assert lo <= d["dsc"]["all"]["pooled_dsc"] <= hi < 1.0
    assert set(d["dsc_by_kind"]) == {"blank", "blur", "dropout", "noise", "shadow"}
    assert d["dsc_by_kind"]["blur"]["n_frames"] == 3
    assert d["worst_frame_dsc"]["mean"] < 0.95 and d["worst_frame_dsc"]["n"] == 3
    assert d["temporal"]["hf_ratio"] > 1.0 and d["temporal"]["hf_share_truth"] < 0.01
    assert d["ed_es"]["ed_abs_frame_error"]["n"] == 3 and d["ef_beats"]["n_beats_matched"] >= 6
    report = (out / "report.md").read_text()
    assert "## Every frame, against the dense truth" in report and "| Corrupted |" in report
    header, *rows = (out / "per_video.csv").read_text().splitlines()
    cols = header.split(",")
    assert {"dense_dsc", "dense_dsc_corrupted", "dense_worst_dsc", "dense_hf_ratio", "dense_ef_beat_mae"} <= set(cols)
    assert float(rows[0].split(",")[cols.index("dense_dsc_clean")]) == 1.0
    # the truth's own ED/ES beside the detected ones, so that each event's offset can be read from the file
    ed, es = cardiac.detect_ed_es(cardiac.area_curve(truth["case0"]), FPS)
    row = rows[0].split(",")
    assert len(ed) >= 2 and row[cols.index("dense_ed_truth")] == " ".join(map(str, ed))
    assert row[cols.index("dense_es_truth")] == " ".join(map(str, es))
    frames = (out / "per_frame_dense.csv").read_text().splitlines()
    assert frames[0] == "case,frame,artefacts,dice,area_pred,area_truth" and len(frames) == 1 + 300
    assert frames[1 + 61].split(",")[:3] == ["case0", "61", "shadow+blur"]


def test_evaluate_without_dense_truth_keeps_traced_scoring(tmp_path):
    raw, truth = make_dataset(tmp_path, n=2)
    pred = tmp_path / "pred"
    write_predictions(pred, truth)
    s = evaluation.evaluate(pred, raw, tmp_path / "r", n_boot=100, video_plots=False, progress=False)
    assert s["dense"] is None and not (tmp_path / "r" / "per_frame_dense.csv").exists()
    report = (tmp_path / "r" / "report.md").read_text()
    assert "Every frame" not in report and "**dense**" not in report
    header, row = (tmp_path / "r" / "per_video.csv").read_text().splitlines()[:2]
    assert row.split(",")[header.split(",").index("dense_dsc")] == ""


def test_bad_dense_truth_names_the_file(tmp_path):
    raw, truth = make_dataset(tmp_path, n=2, corrupted={})
    pred = tmp_path / "pred"
    write_predictions(pred, truth)
    write_volume(dense_truth_path(raw, "case0", FILE_ENDING), truth["case0"][:-1])
    bad = truth["case1"].copy()
    bad[0, 0, 0] = 2
    write_volume(dense_truth_path(raw, "case1", FILE_ENDING), bad)
    with pytest.raises(evaluation.EvaluationError) as e:
        evaluation.evaluate(pred, raw, tmp_path / "r", n_boot=100, progress=False)
    assert "unilvseg_dense_truth/case0.mha: shape (99, 112, 112) differs" in str(e.value)
    assert "unilvseg_dense_truth/case1.mha: unexpected label values [2]" in str(e.value)
    dense_truth_path(raw, "case0", FILE_ENDING).unlink()
    with pytest.raises(evaluation.EvaluationError, match="case0.mha: not found"):
        evaluation.evaluate(pred, raw, tmp_path / "r", n_boot=100, progress=False)
