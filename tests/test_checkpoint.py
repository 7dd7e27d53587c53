"""Atomic checkpoints, RNG capture/restore, graceful exit, EMA, distributed no-op helpers."""
import os
import random
import signal

import numpy as np
import pytest
import torch
from torch import nn

from ghfeat.train import checkpoint as ck
from ghfeat.train import distributed as dd
from ghfeat.train.utils import JsonlLogger, Timer, ema_update, image_grid, read_jsonl, requires_grad, save_image_grid


def make_state(step):
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return {"step": step, "model": model.state_dict(), "opt": opt.state_dict(),
            "rng": ck.capture_rng_state(), "config": {"name": "x", "betas": (0.9, 0.99)}}


def test_save_load_roundtrip_weights_only(tmp_path):
    state = make_state(3)
    path = ck.save_checkpoint(ck.checkpoint_path(tmp_path, 3), state)
    loaded = ck.load_checkpoint(path)
    assert loaded["step"] == 3 and loaded["config"]["betas"] == (0.9, 0.99)
    assert torch.equal(loaded["model"]["weight"], state["model"]["weight"])
    assert loaded["opt"]["state"][0]["exp_avg"].shape == (2, 3)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == [path.name]   # no temp left


def test_crash_mid_write_keeps_previous(tmp_path, monkeypatch):
    good = ck.save_checkpoint(ck.checkpoint_path(tmp_path, 1), make_state(1))
    before = good.read_bytes()
    # a crash after part of the new file was written, before the rename
    real_save = torch.save

    def dying_save(obj, f):
        real_save(obj, f)
        f.flush()
        raise KeyboardInterrupt("killed mid-write")
    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ck.save_checkpoint(ck.checkpoint_path(tmp_path, 2), make_state(2))
    monkeypatch.undo()
    # a hard kill (no cleanup) leaves a temp file behind: simulate it too
    (tmp_path / "checkpoints" / f".{ck.checkpoint_path(tmp_path, 3).name}.tmp-999").write_bytes(b"torn")
    assert ck.find_latest_checkpoint(tmp_path) == good
    assert good.read_bytes() == before
    assert ck.load_checkpoint(ck.find_latest_checkpoint(tmp_path))["step"] == 1


def test_latest_prune_and_verify(tmp_path):
    for s in (5, 10, 20):
        ck.save_checkpoint(ck.checkpoint_path(tmp_path, s), {"step": s})
    assert ck.find_latest_checkpoint(tmp_path).name == "ckpt-000000020.pt"
    ck.checkpoint_path(tmp_path, 20).write_bytes(b"corrupt")       # e.g. a disk that lied
    with pytest.raises(ValueError, match="could not be loaded"):
        ck.load_checkpoint(ck.checkpoint_path(tmp_path, 20))
    assert ck.find_latest_checkpoint(tmp_path, verify=True).name == "ckpt-000000010.pt"
    with pytest.warns(RuntimeWarning, match="moved it aside"):     # unreadable: set aside, not counted
        deleted = ck.prune_checkpoints(tmp_path, keep=2)
    assert deleted == [] and [s for s, _ in ck.list_checkpoints(tmp_path)] == [5, 10]
    ck.save_checkpoint(ck.checkpoint_path(tmp_path, 30), {"step": 30})
    deleted = ck.prune_checkpoints(tmp_path, keep=2)
    assert [p.name for p in deleted] == ["ckpt-000000005.pt"]
    assert ck.find_latest_checkpoint(tmp_path / "nothing") is None


def test_weights_only_refuses_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": ck.GracefulExit()}, path)
    with pytest.raises(ValueError, match="not a ghfeat checkpoint"):
        ck.load_checkpoint(path)


def draw():
    return (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist(), random.gauss(0, 1))


def test_rng_capture_restore(tmp_path):
    random.gauss(0, 1)                 # leaves a cached gaussian in python's state
    state = ck.capture_rng_state()
    first = draw()
    ck.save_checkpoint(tmp_path / "rng.pt", {"rng": state})
    draw()
    ck.restore_rng_state(ck.load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert draw() == first


def test_graceful_exit_flag():
    old = signal.getsignal(signal.SIGTERM)
    with ck.GracefulExit() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == old


def test_ema_matches_formula_and_copies_buffers():
    torch.manual_seed(0)
    model, ema = nn.BatchNorm1d(4), nn.BatchNorm1d(4)
    with torch.no_grad():
        model.weight.normal_(), model.bias.normal_(), ema.weight.normal_()
    model(torch.randn(8, 4))           # moves running stats
    expected_w = 0.9 * ema.weight.detach().clone() + 0.1 * model.weight.detach()
    expected_b = 0.9 * ema.bias.detach().clone() + 0.1 * model.bias.detach()
    ema_update(ema, model, 0.9)
    assert torch.allclose(ema.weight, expected_w) and torch.allclose(ema.bias, expected_b)
    assert torch.equal(ema.running_mean, model.running_mean) and ema.num_batches_tracked == 1
    requires_grad(model, False)
    assert not any(p.requires_grad for p in model.parameters())


def test_grid_logger_timer_dist_noop(tmp_path):
    imgs = torch.linspace(-2, 2, 5 * 3 * 4 * 4).reshape(5, 3, 4, 4)
    grid = image_grid(imgs, nrow=2, padding=1)
    assert grid.shape == (3 * 5 + 1, 2 * 5 + 1, 3) and grid.dtype == np.uint8
    assert grid[1, 1, 0] == 0 and grid[-2, 4, 2] == 255           # clamped
    from PIL import Image
    assert Image.open(save_image_grid(imgs, tmp_path / "g" / "x.png", 3)).size == (3 * 6 + 2, 2 * 6 + 2)
    with JsonlLogger(tmp_path / "m.jsonl") as log:
        log.log({"step": 1, "loss": torch.tensor(0.5), "x": np.float32(2)})
    with JsonlLogger(tmp_path / "m.jsonl") as log:                # appends
        log.log({"step": 2})
    assert read_jsonl(tmp_path / "m.jsonl") == [{"step": 1, "loss": 0.5, "x": 2.0}, {"step": 2}]
    timer = Timer("cpu")
    with timer("a"):
        pass
    assert set(timer.means()) == {"a"}
    info = dd.init_distributed("cpu")
    assert info.world_size == 1 and info.backend is None and dd.is_main()
    t = torch.tensor([1.0, 3.0])
    assert dd.all_reduce_mean(t) is t and dd.all_gather_object(5) == [5]
    dd.barrier(), dd.cleanup()
