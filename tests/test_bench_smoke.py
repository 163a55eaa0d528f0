"""Smoke checks of bench/: every script starts, the report renders without results, and the
memory measurement the benchmarks rely on sees a known allocation. Nothing is timed here."""
from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
SCRIPTS = ["bench_conversion.py", "bench_cost.py", "bench_training.py", "bench_inference.py", "bench_memory.py", "run_all.py",
           "hf_at_corrupted_frames.py", "superimage_frame_norm_cost.py",
           "traced_frame_gaps.py", "area_blur.py", "bench_superimage_window.py"]


def bench_module(name: str):
    """A module of bench/ imported as its scripts import one another (bench/ on the path while importing)."""
    import importlib

    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_starts(script, monkeypatch, capsys):
    """``python bench/SCRIPT --help``, run as ``__main__`` in this process (the script's folder first on the path, as
    python puts it) rather than in a new interpreter."""
    monkeypatch.setattr(sys, "argv", [str(BENCH / script), "--help"])
    monkeypatch.setattr(sys, "path", [str(BENCH), *sys.path])
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(BENCH / script), run_name="__main__")
    assert stop.value.code in (0, None)
    assert "usage:" in capsys.readouterr().out


def test_gpu_check_is_valid_bash():
    proc = subprocess.run(["bash", "-n", str(BENCH / "gpu_check.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_report_renders_without_results(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "run_all.py"), "--report-only", "--small", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = (tmp_path / "BENCHMARKS_small.md").read_text()
    assert report.startswith("# Benchmarks")
    assert "No GPU figures yet" in report


def test_run_measured_sees_peak_memory_and_marker(tmp_path):
    common = bench_module("common")
    code = ("import time; print('start', flush=True); b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
            "time.sleep(0.6); print('MARK')")
    r = common.run_measured([sys.executable, "-c", code], {}, tmp_path / "log.txt", marker="MARK", sample_s=0.05)
    assert r["max_rss_mb"] >= 300  # the child's own peak, not the (larger or smaller) parent's
    assert r["max_rss_mb"] < 300 + 200
    assert r["tree_memory_peak_mb"] >= 250
    assert r["marker_s"] is not None and r["marker_s"] <= r["wall_s"]
    assert (tmp_path / "log.txt").read_text().splitlines() == ["start", "MARK"]
    with pytest.raises(RuntimeError, match="command failed"):
        common.run_measured([sys.executable, "-c", "raise SystemExit(3)"], {}, tmp_path / "fail.txt")


def test_accuracy_table_gives_dsc_by_artefact_kind():
    """The accuracy benchmark reads each artefact kind's pooled DSC from `unilvseg evaluate`'s summary and tables it
    per model, mean ± SD over seeds; a setting without corrupted frames gets no such table."""
    ba = bench_module("bench_accuracy")
    summary = {"dense": {"dsc": {"all": {"pooled_dsc": 0.9}},
                         "dsc_by_kind": {"blank": {"pooled_dsc": 0.5}, "noise": {"pooled_dsc": 0.8}}}}
    runs = [{"model": "A", "seed": seed, **ba.figures(summary, {})} for seed in (0, 1)]
    runs[1][ba.KIND_PREFIX + "blank"] = 0.7
    setting = {"setting": {"artefacts": "severe", "labeled": None}, "seeds": 2, "runs": runs}
    text = ba.table({"models": [{"name": "A"}, {"name": "B"}], "settings": {"artefacts": setting}})
    assert "| Model | blank | noise |" in text
    assert "| A | 60.00 ± 14.14 | 80.00 ± 0.00 |" in text and "| B |" not in text
    clean = {"setting": {"artefacts": "none", "labeled": None}, "seeds": 1,
             "runs": [{"model": "A", "seed": 0, **ba.figures({"dense": {"dsc": {}}}, {})}]}
    assert "artefact kind" not in ba.table({"models": [{"name": "A"}], "settings": {"clean": clean}})


def test_accuracy_benchmark_prepares_a_setting_once(tmp_path, monkeypatch):
    """The phantom, conversion and planning of a setting are reused while the code and parameters are the same
    (the cache key holds tuples, which its JSON copy holds as lists), and redone when a parameter changes."""
    from types import SimpleNamespace

    ba = bench_module("bench_accuracy")
    calls = []
    monkeypatch.setattr(ba.common, "run", lambda cmd, env, log: calls.append(cmd[0]))
    setting = next(s for s in ba.SETTINGS if s.name == "artefacts")
    args = SimpleNamespace(workdir=tmp_path, videos=12, frames=(20, 30))
    env = {"nnUNet_raw": str(tmp_path / "raw")}
    ba.prepare(setting, args, env)
    first = len(calls)
    assert first and calls[0] == "unilvseg"
    ba.prepare(setting, args, env)
    assert len(calls) == first
    ba.prepare(setting, SimpleNamespace(workdir=tmp_path, videos=18, frames=(20, 30)), env)
    assert len(calls) == 2 * first


def test_area_blur_tells_a_blurred_curve_from_a_flattened_one():
    """bench/area_blur.py: a prediction that is the truth blurred along time by 2 frames is found at σ = 2 with a
    blur coefficient near 1; one that shrinks the cycle toward its mean is best explained unblurred, with a size
    coefficient near -0.2; corrupted frames are left out of the fit."""
    from scipy.ndimage import gaussian_filter1d

    blur_fit = bench_module("area_blur").blur_fit
    rng = np.random.default_rng(0)
    t = np.arange(90)
    videos = [1000 + 300 * np.sin(2 * np.pi * t / p + ph) + 30 * rng.standard_normal(90) for p, ph in ((37, 0), (29, 1), (41, 2))]
    clean = np.ones(90, bool)
    blurred = blur_fit([(gaussian_filter1d(a, 2, mode="nearest"), a, clean) for a in videos])
    assert blurred["best_sigma"] == 2 and blurred["b"] == pytest.approx(1, abs=0.05) and abs(blurred["a"]) < 0.05
    flat = [a.mean() + 0.8 * (a - a.mean()) for a in videos]
    flat[0][10] = 0  # a blank frame the model lost, marked corrupted
    clean_but_10 = clean.copy()
    clean_but_10[10] = False
    shrunk = blur_fit([(f, a, clean_but_10 if i == 0 else clean) for i, (f, a) in enumerate(zip(flat, videos))])
    assert shrunk["best_sigma"] == 0 and shrunk["a"] == pytest.approx(-0.2, abs=0.01) and abs(shrunk["b"]) < 0.01
    assert shrunk["gain"][0.0] == pytest.approx(0.8, abs=0.01)
