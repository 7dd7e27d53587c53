"""A stop sent to the whole process group (``kill -- -PGID``, ``pkill -f``, a batch scheduler's
preemption) while DataLoader workers run: the trainer checkpoints and exits cleanly, and the final
checkpoint is kept as readable (found on the Fashion-MNIST run: a worker killed by the same
SIGTERM made PyTorch raise into the check of the checkpoint just written, which was then set aside
as unreadable)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ghfeat.train import checkpoint as ck
from ghfeat.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow   # a fresh interpreter with a DataLoader worker
def test_sigterm_to_the_process_group_keeps_the_final_checkpoint(tmp_path):
    data = tmp_path / "imgs"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(data / f"{i}.png")
    cfg = TrainConfig(task="generator", data=str(data), generator="stylegan-tiny32", batch_size=4, num_workers=1,
                      progress=False, log_every=1, image_every=0, ckpt_every=3, total_steps=100_000,
                      keep_checkpoints=2)
    cfg.to_json(tmp_path / "cfg.json")
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "ghfeat.train.cli", "generator", "--config",
                             str(tmp_path / "cfg.json"), "--run-dir", str(run)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    t0 = time.time()
    while not (ck.list_checkpoints(run) and ck.list_checkpoints(run)[-1][0] >= 3):
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.time() - t0 < 120, "no checkpoint within 2 minutes"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)              # the trainer and its DataLoader worker alike
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == 0, out
    assert "(signal)" in out and "unreadable" not in out
    assert not list((run / "checkpoints").glob("*.corrupt*"))
    last_step, last = ck.list_checkpoints(run)[-1]
    assert ck.is_readable(last) and ck.load_checkpoint(last)["step"] == last_step
    assert last_step >= 3
