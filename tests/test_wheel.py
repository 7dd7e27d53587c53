"""The package as a user gets it: build the wheel, install it into a fresh virtual environment and run
the main job (``python -m ghfeat demo``) from a folder outside the source tree.

The venv sees the system site-packages (so torch is not installed again); the wheel is installed
without dependencies and without an index (no network). Slow (a build, a venv and a demo run in
fresh interpreters): run by ``.ci/run`` / ``pytest -m slow``."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run(cmd, cwd, timeout=900, env=None):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_wheel_installs_and_runs_the_main_job_outside_the_source_tree(tmp_path):
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", dist, ROOT], cwd=tmp_path)
    wheel, = dist.glob("ghfeat-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("ghfeat/py.typed", "ghfeat/assets/mnist32/encoder.safetensors", "ghfeat/assets/mnist32/LICENSE",
              "ghfeat/assets/LICENSE", "ghfeat/assets/mnist_test_digits.png"):
        assert f in names, f
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(n for n in names if "dist-info" in n)
    meta = next(zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "Project-URL: Documentation" in meta and "License-Expression: MIT" in meta

    # the venv and pip see no PYTHONPATH either: one pointing at the source tree (which holds the
    # ghfeat.egg-info of the build above) makes pip take ghfeat as installed and skip the wheel
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", venv], cwd=tmp_path, env=env)
    py = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], cwd=tmp_path, env=env)
    user = tmp_path / "user"                                # outside the source tree
    user.mkdir()
    env.update(OMP_NUM_THREADS="1", GHFEAT_OFFLINE="1", GHFEAT_CACHE=str(tmp_path / "cache"))
    where = run([py, "-c", "import ghfeat; print(ghfeat.__file__)"], cwd=user, env=env).strip()
    assert Path(where).is_relative_to(venv) and not Path(where).is_relative_to(ROOT), where
    out = run([py, "-m", "ghfeat", "demo", "--out", "demo"], cwd=user, env=env)
    assert "reconstruction MSE" in out
    assert {p.name for p in (user / "demo").iterdir()} == {"reconstruction.png", "style_mixing.png", "samples.png"}
    run([py, "-m", "ghfeat", "sample-digits", "--out", "digits"], cwd=user, env=env)
    assert len(list((user / "digits").glob("digit_*.png"))) == 10
