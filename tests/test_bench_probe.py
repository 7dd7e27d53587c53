"""benchmarks/bench_probe.py runs and its two gradients agree (timings are printed, never asserted)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_probe_runs_on_a_small_problem():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_probe.py"), "--n", "300", "--dim", "16",
                          "--iters", "1"], capture_output=True, text=True, timeout=120, check=True).stdout
    diff = float(re.search(r"max \|gradient difference\| (\S+)", out).group(1))
    assert diff < 1e-12
    assert "autograd (before)" in out and "closed form" in out
