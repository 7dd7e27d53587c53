"""Trainer reliability (issue 12): checkpoints are never lost, explicit --resume fails loudly,
non-finite training stops before saving, config values are checked for type and finiteness."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from ghfeat.train import checkpoint as ck
from ghfeat.train.cli import build_parser, train_main
from ghfeat.train.config import TrainConfig
from ghfeat.train.trainer import Trainer, train

from test_train import ROOT, images, tiny  # noqa: F401  (fixture re-used)


def steps(run):
    return [s for s, _ in ck.list_checkpoints(run)]


def corrupt(run, step):
    path = ck.checkpoint_path(run, step)
    path.write_bytes(path.read_bytes()[:100])          # truncated: a disk that lied about fsync
    return path


# -- checkpoint module ------------------------------------------------------------------------------

def test_prune_counts_only_readable_and_moves_unreadable_aside(tmp_path):
    for s in (1, 2, 3, 4):
        ck.save_checkpoint(ck.checkpoint_path(tmp_path, s), {"step": s})
    corrupt(tmp_path, 4)
    torch.save({"obj": ck.GracefulExit()}, ck.checkpoint_path(tmp_path, 3))   # refused by weights_only
    with pytest.warns(RuntimeWarning, match="moved it aside"):
        deleted = ck.prune_checkpoints(tmp_path, keep=1)
    assert [p.name for p in deleted] == ["ckpt-000000001.pt"]
    assert steps(tmp_path) == [2]
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["ckpt-000000002.pt", "ckpt-000000003.pt.corrupt", "ckpt-000000004.pt.corrupt"]
    # nothing readable at all: nothing is deleted, the unreadable one is kept aside
    corrupt(tmp_path, 2)
    with pytest.warns(RuntimeWarning):
        assert ck.prune_checkpoints(tmp_path, keep=1) == []
    assert steps(tmp_path) == [] and len(list((tmp_path / "checkpoints").iterdir())) == 3
    # a second corrupt file of the same step does not overwrite the first one set aside
    ck.checkpoint_path(tmp_path, 4).write_bytes(b"again")
    with pytest.warns(RuntimeWarning):
        ck.prune_checkpoints(tmp_path, keep=1)
    assert (tmp_path / "checkpoints" / "ckpt-000000004.pt.corrupt-1").read_bytes() == b"again"


# -- trainer: resume and pruning ----------------------------------------------------------------------

def test_corrupt_newest_keep3_resumes_older_and_keeps_three_good(images, tmp_path):
    cfg = tiny("encoder", images, ckpt_every=1, keep_checkpoints=3)
    train(cfg, tmp_path, max_steps=3)
    assert steps(tmp_path) == [1, 2, 3]
    corrupt(tmp_path, 3)
    with pytest.warns(RuntimeWarning, match="moved it aside"):
        tr = Trainer(cfg, tmp_path, resume=True, max_steps=5)
    assert tr.step == 2
    tr.run()
    assert steps(tmp_path) == [3, 4, 5]
    assert all(ck.is_readable(p) for _, p in ck.list_checkpoints(tmp_path))
    assert (tmp_path / "checkpoints" / "ckpt-000000003.pt.corrupt").is_file()


def test_corrupt_newest_keep1_never_loses_the_last_good(images, tmp_path):
    cfg = tiny("encoder", images, ckpt_every=1, keep_checkpoints=0)
    train(cfg, tmp_path, max_steps=2)
    corrupt(tmp_path, 2)
    with pytest.warns(RuntimeWarning):
        train(cfg.replace(keep_checkpoints=1), tmp_path, resume=True, max_steps=3)
    assert steps(tmp_path) == [3]
    assert Trainer(cfg, tmp_path, resume=True).step == 3       # the second --resume still finds it
    # the only checkpoint unreadable: --resume fails and lists it; nothing is deleted
    corrupt(tmp_path, 3)
    with pytest.warns(RuntimeWarning), pytest.raises(FileNotFoundError, match=r"no readable checkpoint(.|\n)*ckpt-000000003"):
        Trainer(cfg, tmp_path, resume=True)
    assert (tmp_path / "checkpoints" / "ckpt-000000003.pt.corrupt").is_file()
    assert Trainer(cfg, tmp_path, resume="auto").step == 0     # auto: nothing readable -> a new run


def test_resume_modes_on_empty_and_used_run_folders(images, tmp_path, capsys):
    cfg = tiny("encoder", images)
    with pytest.raises(FileNotFoundError, match="no readable checkpoint"):
        Trainer(cfg, tmp_path / "empty", resume=True)
    assert Trainer(cfg, tmp_path / "auto", resume="auto").step == 0
    train(cfg, tmp_path / "used", max_steps=1)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        Trainer(cfg, tmp_path / "used")                         # a fresh run would prune the old one
    assert Trainer(cfg, tmp_path / "used", resume="auto").step == 1
    # the CLI: one line, exit 2, --debug raises
    cfg.to_json(tmp_path / "cfg.json")
    args = ["encoder", "--config", str(tmp_path / "cfg.json"), "--run-dir", str(tmp_path / "empty2"), "--resume"]
    assert train_main(args) == 2
    assert "no readable checkpoint" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        train_main(args + ["--debug"])


@pytest.mark.slow   # a fresh interpreter per process (issue 17: deselected by default)
def test_sigkill_while_writing_a_checkpoint_then_resume(images, tmp_path):
    cfg = tiny("encoder", images, ckpt_every=2, keep_checkpoints=1)
    cfg.to_json(tmp_path / "cfg.json")
    run = tmp_path / "run"
    args = ["encoder", "--config", str(tmp_path / "cfg.json"), "--run-dir", str(run), "--max-steps", "4"]
    script = textwrap.dedent(f"""
        import os, signal, torch
        from ghfeat.train import checkpoint as ck
        from ghfeat.train.cli import train_main
        real_save = torch.save
        def dying_save(obj, f, *a, **k):
            if ck.list_checkpoints({str(run)!r}):        # the second checkpoint: killed half-way
                real_save(obj, f, *a, **k)
                f.truncate(f.tell() // 2); f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            real_save(obj, f, *a, **k)
        torch.save = dying_save
        train_main({args!r})
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    assert steps(run) == [2]
    # the half-written temp file of step 4 (atomic_output's name: .<stem>.tmp-<pid>-<token>.pt)
    assert any(p.name.startswith(".ckpt-000000004.tmp-") for p in (run / "checkpoints").iterdir())
    assert train_main(args + ["--resume"]) == 0
    assert steps(run) == [4] and ck.load_checkpoint(ck.checkpoint_path(run, 4))["step"] == 4
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["ckpt-000000004.pt"]   # stale temp removed


# -- non-finite training and config values -------------------------------------------------------------

def test_non_finite_parameters_stop_without_saving(images, tmp_path):
    cfg = tiny("generator", images, ckpt_every=2, log_every=0)
    train(cfg, tmp_path, max_steps=2)
    good = ck.checkpoint_path(tmp_path, 2).read_bytes()
    tr = Trainer(cfg, tmp_path, resume=True, max_steps=4)
    with torch.no_grad():
        next(tr.models["G"].parameters()).fill_(float("inf"))
    with pytest.raises(FloatingPointError, match=r"non-finite parameters of G(.|\n)*ckpt-000000002"):
        tr.run()
    tr.close()
    assert steps(tmp_path) == [2] and ck.checkpoint_path(tmp_path, 2).read_bytes() == good


def test_non_finite_loss_stops_at_the_log(images, tmp_path):
    tr = Trainer(tiny("encoder", images), tmp_path)
    tr.log_sums = {"e/pixel": torch.tensor(float("nan"))}
    tr.log_count = 1
    with pytest.raises(FloatingPointError, match="non-finite e/pixel"):
        tr._flush_logs(1.0, 1)
    tr.close()


@pytest.mark.parametrize("override, msg", [
    ("lr=Infinity", "lr must be a finite number"),
    ("lr=NaN", "lr must be a finite number"),
    ("eps=abc", "eps must be a finite number > 0, got 'abc'"),
    ("r1_gamma=[1]", r"r1_gamma must be a finite number >= 0, got \[1\]"),
    ("betas=[0.9,Infinity]", "betas must be two numbers"),
    ("flip=1", "flip must be true or false"),
    ("style_mixing_prob=x", "style_mixing_prob must be a number"),
    ("lr_decay_every=-Infinity", "lr_decay_every must be a finite number"),
])
def test_bad_values_are_clear_errors(tmp_path, capsys, override, msg):
    assert train_main(["generator", "--run-dir", str(tmp_path), "data=d", override]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    with pytest.raises(ValueError, match=msg):
        TrainConfig(task="generator", data="d").with_overrides([override])


def test_cli_user_errors_are_one_liners(images, tmp_path, capsys):
    (tmp_path / "bad.json").write_text("{not json")
    assert train_main(["generator", "--run-dir", str(tmp_path / "r"), "--config", str(tmp_path / "bad.json")]) == 2
    assert "bad.json is not valid JSON" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert train_main(["generator", "--run-dir", str(tmp_path / "afile"), f"data={images}",
                       "generator=stylegan-tiny32", "progress=false"]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert train_main(["generator", "--run-dir", str(tmp_path / "r2"), "generator=stylegan-tiny32"]) == 2
    assert "no training data: set data=" in capsys.readouterr().err
    assert "``" not in build_parser().format_help()
    if not torch.cuda.is_available():
        assert train_main(["generator", "--run-dir", str(tmp_path / "r3"), f"data={images}",
                           "generator=stylegan-tiny32", "device=cuda"]) == 1
        assert "CUDA is not available" in capsys.readouterr().err
