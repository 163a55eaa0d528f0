"""`unilvseg compare` end to end on the phantom test split with the tiny trained model (real nnU-Net, CPU)."""
import json
import shutil

import pytest

from unilvseg_nnunet.cli import main
from unilvseg_nnunet.data.dataset import FILE_ENDING
from unilvseg_nnunet.errors import UnilvsegError
from unilvseg_nnunet.evaluation.compare import bubble_plot, comparison_markdown, folder_names, parse_models
from unilvseg_nnunet.evaluation.reports import jsonable
from unilvseg_nnunet.evaluation.scoring import evaluate
from unilvseg_nnunet.inference.predictor import PredictionError


def test_parse_models_and_folder_names():
    assert {k: str(v) for k, v in parse_models(["a=/x/y", "Ours 3D + SSL=rel"]).items()} == {"a": "/x/y", "Ours 3D + SSL": "rel"}
    for bad, msg in ((["nofolder"], "NAME=MODEL_FOLDER"), (["a=x", "a=y"], "given twice"), (["=x"], "NAME=MODEL_FOLDER")):
        with pytest.raises(UnilvsegError, match=msg):
            parse_models(bad)
    assert folder_names(["nnU-Net 2d (stock)", "Ours 3D + SSL", "Ours 3D  SSL", "../x"]) == {
        "nnU-Net 2d (stock)": "nnU-Net_2d_stock", "Ours 3D + SSL": "Ours_3D_SSL", "Ours 3D  SSL": "Ours_3D_SSL_2", "../x": "x"}


@pytest.mark.nnunet
def test_compare_table(tiny_3d_model, raw_dataset, nnunet_env, tmp_path, monkeypatch, capsys):
    for k, v in nnunet_env.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "cmp"
    assert main(["compare", "-d", raw_dataset.name, "-m", f"Ours 3D={tiny_3d_model}",
                 "-o", str(out), "--device", "cpu", "--n-boot", "500"]) == 0
    result = json.loads((out / "comparison.json").read_text())
    tests = sorted(p.name for p in (raw_dataset / "labelsTs").glob(f"*{FILE_ENDING}"))
    assert result["n_cases"] == len(tests) and result["tta"] is False and result["ci_level"] == 0.95
    [r] = result["models"]
    from unilvseg_nnunet.evaluation.cost import network_cost

    cost = network_cost(tiny_3d_model)
    assert sorted(p.name for p in (out / "Ours_3D" / "predictions").glob(f"*{FILE_ENDING}")) == tests
    assert r["frames"] > 0 and r["seconds"] > 0 and r["frames_per_second"] > 0
    assert r["params_m"] == pytest.approx(cost["params_m"]) and r["gflops_per_frame"] == pytest.approx(cost["gflops_per_frame"])
    assert r["trainer"] == tiny_3d_model.name.split("__")[0] and r["cost_error"] is None
    lo, hi = r["dsc"]["overall"]["pooled_dsc_ci95"]
    assert lo <= r["dsc"]["overall"]["pooled_dsc"] <= hi
    # the table's numbers are evaluate's own on the same predictions
    again = evaluate(out / "Ours_3D" / "predictions", raw_dataset, tmp_path / "ev", n_boot=500, video_plots=False, progress=False)
    assert jsonable(again["dsc"]) == r["dsc"] and jsonable(again["ef"]) == r["ef"]
    table = (out / "comparison.md").read_text()
    assert "| Ours 3D |" in table and "95% CI" in table and "GFLOPs/frame" in table
    assert (out / "bubble.png").stat().st_size > 1000
    assert "| Ours 3D |" in capsys.readouterr().out


def _row(name, dsc, params, gflops, cost_error=None):
    d = {"pooled_dsc": dsc, "pooled_dsc_ci95": [dsc - 0.01, dsc + 0.01]}
    stats = {"mean": 0.01, "median": 0.01, "n": 3, "n_undefined": 0}
    agree = {"mae": 4.0, "rmse": 5.0, "bias": 1.0, "r2": 0.5, "n": 3}
    return {"name": name, "params_m": params, "gflops_per_frame": gflops, "frames_per_second": 12.5, "cost_error": cost_error,
            "dsc": {"overall": d, "ed": d, "es": d}, "temporal": {"hf_share": stats, "jitter": stats},
            "ef": {"pred_traced_frames": agree, "pred_beats": agree}, "ed_es": {"ed_abs_frame_error": stats, "es_abs_frame_error": stats}}


def test_table_and_bubble_plot_for_several_models(tmp_path):
    rows = [_row("ours3d", 0.9332, 11.26, 0.85), _row("nnunet2d", 0.9286, 7.37, 2.30),
            _row("broken-cost", 0.90, float("nan"), float("nan"), "RuntimeError: no fvcore")]
    md = comparison_markdown({"dataset_dir": "/d", "subset": "imagesTs", "n_cases": 3, "device": "cpu", "n_boot": 10000,
                              "seed": 0, "models": rows})
    assert "| ours3d | 11.26 | 0.85 | 12.5 | 93.32 (92.32–94.32) |" in md
    assert "| nnunet2d | 7.37 | 2.30 |" in md and "| broken-cost | n/a | n/a |" in md
    assert "Cost of broken-cost not counted: RuntimeError: no fvcore" in md
    rows[1]["ef"] = {**rows[1]["ef"], "pred_beats": {**rows[1]["ef"]["pred_beats"], "n_unavailable": 2}}
    md = comparison_markdown({"dataset_dir": "/d", "subset": "imagesTs", "n_cases": 3, "device": "cpu", "n_boot": 10000,
                              "seed": 0, "models": rows})
    assert "| 4.00 | 4.00 (2 n/a) |" in md and "| 4.00 | 4.00 |" in md
    bubble_plot(rows, tmp_path / "bubble.png")
    assert (tmp_path / "bubble.png").stat().st_size > 1000


@pytest.mark.nnunet
def test_compare_checks_every_model_before_predicting(tiny_3d_model, raw_dataset, nnunet_env, tmp_path, monkeypatch):
    for k, v in nnunet_env.items():
        monkeypatch.setenv(k, v)
    broken = tmp_path / "Trainer__Plans__cfg"
    (broken / "fold_0").mkdir(parents=True)
    for name in ("plans.json", "dataset.json"):
        shutil.copy(tiny_3d_model / name, broken)
    out = tmp_path / "cmp"
    from unilvseg_nnunet.evaluation.compare import compare

    with pytest.raises(PredictionError, match="Trainer__Plans__cfg: no fold_"):
        compare(raw_dataset, {"ok": tiny_3d_model, "broken": broken}, out, progress=False)
    assert not out.exists()  # nothing predicted for the good model either
    assert main(["compare", "-d", str(raw_dataset), "-m", f"broken={broken}", "-o", str(out)]) == 2
