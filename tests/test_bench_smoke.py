"""Smoke checks of bench/: every script starts, the report renders without results, and the
memory measurement the benchmarks rely on sees a known allocation. Nothing is timed here."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
SCRIPTS = ["bench_conversion.py", "bench_cost.py", "bench_training.py", "bench_inference.py", "bench_memory.py", "run_all.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_starts(script):
    proc = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout


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
    sys.path.insert(0, str(BENCH))
    try:
        import common
    finally:
        sys.path.remove(str(BENCH))
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
