"""Reliability, round two (issue 18): full disks, package writes, mismatched model pairs, two
trainers in one folder, NaN weights, malformed cache manifests, values checked up front, symlink
loops, edit directions, publish, and the example scripts on bad arguments.

The full-disk cases run the real commands in a private mount namespace (``unshare -rm``) on a
tmpfs filled to the last byte, so every write fails with a real ``ENOSPC`` from the kernel; they
are skipped where unprivileged namespaces are not available."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ghfeat
from ghfeat import _io, pretrained
from ghfeat._io import WriteError, atomic_output, atomic_write_bytes
from ghfeat.cli import main
from ghfeat.pretrained import WeightsCorruptError
from ghfeat.train import checkpoint as ck
from ghfeat.train.config import TrainConfig
from ghfeat.train.lock import RunFolderLocked, RunLock
from ghfeat.train.trainer import Trainer, train

from _helpers import one_line_error as _one_line_error, write_fake_mnist
from _official_fixtures import TinyConfig, write_genforce_pth, write_stylegan_pkl
from test_api import _example
from test_train import images, tiny  # noqa: F401  (fixture re-used)

ROOT = Path(__file__).resolve().parents[1]


def one_line_error(capsys, *needles):
    return _one_line_error(capsys, *needles, ignore="!! --random-weights")


@pytest.fixture
def digits(tmp_path):
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((32, 32), 40 * i, np.uint8)).save(folder / f"{i}.png")
    return folder


# -- the atomic writer ------------------------------------------------------------------------------

def test_atomic_output_keeps_the_old_file_and_leaves_no_temp_on_any_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(exc)):
            with atomic_output(target) as tmp:
                tmp.write_bytes(b"half")
                raise exc
        assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "the disk is full"), (errno.EACCES, "permission denied"),
                                         (errno.EROFS, "the file system is read-only")])
def test_write_failures_are_one_clear_line(tmp_path, code, words):
    target = tmp_path / "f.npz"
    with pytest.raises(WriteError) as err:
        with atomic_output(target, what="--out") as tmp:
            tmp.write_bytes(b"x")
            raise OSError(code, os.strerror(code))
    msg = str(err.value)
    assert msg.startswith(f"cannot write --out {target}: {words}") and "\n" not in msg and err.value.errno == code
    assert list(tmp_path.iterdir()) == []


def test_package_files_are_never_written(tmp_path, capsys, monkeypatch):
    pkg = Path(ghfeat.__file__).resolve().parent
    with pytest.raises(ValueError, match="inside the installed ghfeat package"):
        atomic_write_bytes(pkg / "assets" / "x.bin", b"x")
    with pytest.raises(ValueError, match="inside the installed ghfeat package"):
        ghfeat.save_model(ghfeat.create_encoder("tiny32"), pkg / "assets" / "enc")
    assert main(["extract", str(pkg / "assets" / "mnist_test_digits.png"), "--random-weights", "--model", "tiny32",
                 "--out", str(pkg / "assets" / "feats.npz")]) == 2
    one_line_error(capsys, "never writes into its own package")
    assert not (pkg / "assets" / "x.bin").exists() and not (pkg / "assets" / "feats.npz").exists()
    fake = tmp_path / "site-packages" / "ghfeat"                 # the maintainers' packaging tool may
    monkeypatch.setattr(_io, "PACKAGE_DIR", fake.resolve())      # (allow_package=True), nobody else
    with pytest.raises(ValueError, match="inside the installed ghfeat package"):
        atomic_write_bytes(fake / "assets" / "w.safetensors", b"x")
    atomic_write_bytes(fake / "assets" / "w.safetensors", b"x", allow_package=True)
    assert (fake / "assets" / "w.safetensors").read_bytes() == b"x"


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".ckpt-000000003.tmp-{dead}-abcdef.pt"
    live = tmp_path / f".ckpt-000000004.tmp-{os.getppid()}-abcdef.pt"
    stale.write_bytes(b"half")
    live.write_bytes(b"half")
    assert _io.remove_stale_temp_files(tmp_path) == [stale]
    assert live.exists() and not stale.exists()


# -- a real full disk (ENOSPC from the kernel) -------------------------------------------------------

def _namespaces_work() -> bool:
    if shutil.which("unshare") is None or sys.platform != "linux":
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || "
                            "mount -t tmpfs -o size=64k tmpfs /tmp"], capture_output=True)
    return probe.returncode == 0


FULL_DISK_SCRIPT = r'''
import contextlib, io, json, os, sys
from pathlib import Path
disk = Path(sys.argv[1]); cmds = json.loads(sys.argv[2])
from ghfeat.cli import main
out = []
for cmd in cmds:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(cmd)
        except SystemExit as e:
            rc = e.code
    files = sorted(str(p.relative_to(disk)) for p in disk.rglob("*") if p.is_file() and p.name != "fill")
    lines = [l for l in err.getvalue().splitlines() if "RANDOMLY" not in l and "Warning" not in l
             and not l.startswith("  warnings.warn")]
    out.append({"cmd": cmd[0], "rc": rc, "err": lines, "files": files})
print(json.dumps(out))
'''


@pytest.mark.slow                                               # six commands in subprocesses: about 6 s
@pytest.mark.skipif(not _namespaces_work(), reason="needs unprivileged mount namespaces (unshare -rm)")
def test_every_command_on_a_full_disk_fails_cleanly(tmp_path, digits, images):  # noqa: F811
    pkl = write_stylegan_pkl(tmp_path / "stylegan-tiny-32.pkl", TinyConfig(), seed=3).path
    disk = tmp_path / "disk"
    disk.mkdir()
    cmds = [
        ["extract", str(digits), "--random-weights", "--model", "tiny32", "--out", str(disk / "f.npz")],
        ["export", "tiny32", "--random-weights", "--format", "torchscript", "--out", str(disk / "e.pt")],
        ["convert", str(pkl), "--out", str(disk / "hub")],
        ["edit", str(digits / "0.png"), "--levels", "1", "--random-weights", "--model", "tiny32",
         "--out", str(disk / "edit.png")],
        ["demo", "--out", str(disk / "demo")],
        ["train", "encoder", "--run-dir", str(disk / "run"), f"data={images}", "generator=stylegan-tiny32",
         "encoder=tiny32", "allow_untrained=true", "vgg_weights=null", "perceptual_weight=0", "batch_size=2",
         "num_workers=0", "progress=false", "total_steps=2"],
    ]
    script = (f"mount -t tmpfs -o size=256k tmpfs {disk} && (dd if=/dev/zero of={disk}/fill bs=4k 2>/dev/null; true) "
              f"&& cd {ROOT} && exec {sys.executable} -c \"$0\" {disk} \"$1\"")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    res = subprocess.run(["unshare", "-rm", "sh", "-c", script, FULL_DISK_SCRIPT, json.dumps(cmds)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    for r in json.loads(res.stdout.strip().splitlines()[-1]):
        assert r["rc"] == 2, r                                  # a user error, no crash, no SIGABRT
        assert len(r["err"]) == 1 and "the disk is full" in r["err"][0], r
        assert "Nothing was written" in r["err"][0], r
        assert r["files"] == [], r                             # no 0-byte file, no .tmp-PID left behind


# -- two trainers, one run folder -------------------------------------------------------------------

HOLD = textwrap.dedent("""
    import sys, time
    from ghfeat.train.lock import RunLock
    RunLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(120)
""")


def _hold(run_dir) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_trainer_in_a_run_folder_names_the_holder_then_takes_over_a_dead_one(images, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    holder = _hold(run)
    try:
        t0 = time.monotonic()
        with pytest.raises(RunFolderLocked) as err:
            train(tiny("encoder", images), run, max_steps=1)
        msg = str(err.value)
        assert time.monotonic() - t0 < 30
        assert f"PID {holder.pid} on host {socket.gethostname()}" in msg and "another --run-dir" in msg
        assert ck.list_checkpoints(run) == [] and not (run / "config.json").exists()   # nothing touched
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert (run / ".lock").exists()                              # left behind by the killed process
    res = train(tiny("encoder", images), run, max_steps=1)      # a dead holder's lock is taken over
    assert res["step"] == 1 and not (run / ".lock").exists()    # and released at the end


@pytest.mark.slow                                               # two trainer processes: about 8 s
def test_a_real_trainer_holds_its_folder_while_it_runs(images, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ghfeat", "train", "encoder", "--run-dir", str(run), f"data={images}",
           "generator=stylegan-tiny32", "encoder=tiny32", "allow_untrained=true", "vgg_weights=null",
           "perceptual_weight=0", "batch_size=2", "num_workers=0", "progress=false", "total_steps=100000",
           "log_every=1", "ckpt_every=0", "num_threads=1"]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline = time.monotonic() + 120
        log = run / "metrics.jsonl"
        while not (log.is_file() and log.stat().st_size) and time.monotonic() < deadline:   # it is training
            assert first.poll() is None
            time.sleep(0.2)
        second = subprocess.run(cmd[:-4] + ["total_steps=3"], cwd=ROOT, capture_output=True, text=True,
                                env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=120)
        assert second.returncode == 2 and f"PID {first.pid}" in second.stderr, second.stderr
        assert len(second.stderr.strip().splitlines()) == 1 and ck.list_checkpoints(run) == []
    finally:
        first.send_signal(signal.SIGTERM)                      # a clean stop writes its checkpoint
        first.wait(timeout=120)
    assert len(ck.list_checkpoints(run)) == 1 and not (run / ".lock").exists()


def test_one_process_two_live_trainers_refused_a_dropped_one_lets_go(images, tmp_path):  # noqa: F811
    import gc
    cfg = tiny("encoder", images)
    first = Trainer(cfg, tmp_path)
    with pytest.raises(RunFolderLocked, match=f"PID {os.getpid()} on host"):
        Trainer(cfg, tmp_path)                                  # the first one is alive: refused
    assert first._run_lock.held and (tmp_path / ".lock").exists()
    gc.collect()
    assert first._run_lock.held                                 # garbage collection leaves live ones alone
    del first                                                   # dropped without close() (maybe in a cycle)
    second = Trainer(cfg, tmp_path, resume="auto")
    with pytest.raises(RunFolderLocked):
        Trainer(cfg, tmp_path, resume="auto")
    second.close()
    assert not (tmp_path / ".lock").exists()
    train(cfg, tmp_path, resume="auto", max_steps=1)            # a finished train() let go too
    third = Trainer(cfg, tmp_path, resume=True)
    assert third.step == 1
    third.close()


def test_lock_objects_of_one_process(tmp_path, monkeypatch):
    import gc

    class Owner:
        pass
    bare = RunLock(tmp_path).acquire()
    with pytest.raises(RunFolderLocked):
        RunLock(tmp_path).acquire()
    bare.release()
    owner = Owner()
    owner.cycle = owner                                         # freed by the cycle collector only
    RunLock(tmp_path).acquire(owner=owner)
    with pytest.raises(RunFolderLocked):
        RunLock(tmp_path).acquire()                             # the owner is alive
    del owner
    lock = RunLock(tmp_path).acquire()                          # collected on the conflict, then taken
    assert not gc.garbage
    lock.release()
    assert not (tmp_path / ".lock").exists()
    # the same without flock (PID file): a live lock object of this process is refused too
    import fcntl

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(fcntl, "flock", no_flock)
    lock = RunLock(tmp_path).acquire()
    with pytest.raises(RunFolderLocked, match=f"PID {os.getpid()}"):
        RunLock(tmp_path).acquire()
    lock.release()
    RunLock(tmp_path).acquire().release()


def test_lock_without_flock_checks_the_recorded_pid(tmp_path, monkeypatch):
    import fcntl

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")     # e.g. a network file system
    monkeypatch.setattr(fcntl, "flock", no_flock)
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "started": "t"}))
        with pytest.raises(RunFolderLocked, match=f"PID {holder.pid} on host"):
            RunLock(run).acquire()
    finally:
        holder.kill()
        holder.wait()
    lock = RunLock(run).acquire()                               # that process is gone: taken over
    assert json.loads((run / ".lock").read_text())["pid"] == os.getpid()
    lock.release()
    assert not (run / ".lock").exists()


def test_failed_start_releases_the_lock_and_leaves_no_new_folder(tmp_path):
    run = tmp_path / "new-run"
    with pytest.raises(FileNotFoundError):
        Trainer(tiny("encoder", str(tmp_path / "no-such-data")), run)
    assert not run.exists()


# -- values checked up front ------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["-3", "0"])
def test_train_max_steps_must_be_positive(images, tmp_path, capsys, value):  # noqa: F811
    from ghfeat.train.cli import train_main
    rc = train_main(["encoder", "--run-dir", str(tmp_path / "r"), "--max-steps", value, f"data={images}",
                     "generator=stylegan-tiny32", "encoder=tiny32", "allow_untrained=true", "vgg_weights=null",
                     "perceptual_weight=0", "progress=false"])
    assert rc == 2
    one_line_error(capsys, f"--max-steps) must be an integer >= 1 (the step to stop at), got {value}")
    assert not (tmp_path / "r").exists()


def test_evaluation_settings_fail_at_start_not_at_the_first_evaluation(images, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match="eval_n must be >= 2 when eval_every > 0"):
        tiny("generator", images, eval_every=5, eval_n=1)
    one = tmp_path / "one"                           # one reference image: no covariance at the first evaluation
    one.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(one / "a.png")
    with pytest.raises(ValueError, match="eval_every > 0 needs at least 2 real images to compare with"):
        Trainer(tiny("generator", str(one), eval_every=5, eval_n=4), tmp_path / "r")
    assert not (tmp_path / "r").exists()                    # refused before the first step, nothing written
    # a folder is evaluated label-free at any size; a classifier judge takes 32x32 only
    with pytest.raises(ValueError, match="takes 32x32 images; this generator makes 64x64"):
        Trainer(tiny("generator", images, eval_every=5, eval_n=4, eval_classifier="mnist",
                     generator_kwargs={"resolution": 64}), tmp_path / "r")


@pytest.mark.parametrize("kwargs, words", [
    ('{"truncation_psi": NaN}', "truncation_psi=NaN"),
    ('{"mapping_lr_mul": Infinity}', "mapping_lr_mul=Infinity"),
    ('{"truncation_layers": -1}', "truncation_layers=-1"),
    ('{"mapping_lr_mul": 0}', "mapping_lr_mul=0 (expected a finite number > 0)"),
    ('{"minibatch_std_group_size": 0}', "minibatch_std_group_size=0"),
    ('{"use_wscale": 1}', "use_wscale=1 (expected true or false)"),
])
def test_convert_genforce_kwargs_are_checked(tmp_path, capsys, kwargs, words):
    from ghfeat.convert.cli import convert_main
    s = write_stylegan_pkl(tmp_path / "stylegan-tiny-32.pkl", TinyConfig(), seed=3)
    pth = write_genforce_pth(tmp_path / "tiny.pth", s)
    assert convert_main([str(pth), "--out", str(tmp_path / "o"), "--genforce-kwargs", kwargs]) == 2
    one_line_error(capsys, "invalid genforce setting(s):", words)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("override", [{"mapping_lr_mul": float("nan")}, {"truncation_psi": float("inf")},
                                      {"truncation_cutoff": -2}, {"w_avg_beta": 1.5}, {"z_dim": 0}])
def test_generator_arguments_are_checked_wherever_they_come_from(override):
    name = next(iter(override))
    with pytest.raises(ValueError, match=f"invalid StyleGANGenerator arguments: {name} must be"):
        ghfeat.create_generator("stylegan-tiny32", **override)
    with pytest.raises(ValueError, match=name):            # a generator run's generator_kwargs too
        from ghfeat.train.trainer import build_models
        build_models(TrainConfig(task="generator", data="d", generator="stylegan-tiny32",
                                 generator_kwargs=override))


# -- model pairs ------------------------------------------------------------------------------------

def test_mismatched_encoder_generator_pair_is_refused_unless_intended(tmp_path):
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    enc = ghfeat.create_encoder("tiny32")                       # pairs with stylegan-tiny32
    other = ghfeat.create_generator("stylegan-tiny32", truncation_psi=0.5)
    other.registry_name = "stylegan-other32"                   # same code widths, another generator
    other.pretrained_cfg = None
    with pytest.raises(ValueError, match="trained with generator 'stylegan-tiny32', not 'stylegan-other32'"):
        ghfeat.reconstruct(x, encoder=enc, generator=other)
    with pytest.raises(ValueError, match="allow_mismatch=True"):
        ghfeat.style_mix(x[:1], x[1:], levels=[1], encoder=enc, generator=other)
    with pytest.raises(ValueError, match="not 'stylegan-mnist32'"):       # a name: refused before it is built
        ghfeat.reconstruct(x, encoder=enc, generator="stylegan-mnist32")
    rec = ghfeat.reconstruct(x, encoder=enc, generator=other, allow_mismatch=True)
    ref = other.synthesis(styles=enc.eval()(x), randomize_noise=False).clamp(-1, 1)
    assert torch.allclose(rec, ref, atol=1e-5)
    # a saved folder carries its name, so the check still works after a round trip
    ghfeat.save_model(other, tmp_path / "g")
    assert json.loads((tmp_path / "g" / "config.json").read_text())["ghfeat_name"] == "stylegan-other32"
    for loaded in (ghfeat.load_model(tmp_path / "g"), ghfeat.create_generator(str(tmp_path / "g"))):
        with pytest.raises(ValueError, match="not 'stylegan-other32'"):
            ghfeat.reconstruct(x, encoder=enc, generator=loaded)
    ghfeat.reconstruct(x, encoder=enc, generator=ghfeat.create_generator("stylegan-tiny32"))   # its pair: fine


def test_trained_encoder_records_the_generator_it_was_trained_with(images):  # noqa: F811
    from ghfeat.train.trainer import build_models
    assert ghfeat.create_encoder("tiny32").generator_name == "stylegan-tiny32"
    # the tiny32 encoder (registered with stylegan-tiny32) trained against stylegan-mnist32 (same widths)
    cfg = tiny("encoder", images, generator="stylegan-mnist32", encoder_kwargs={"in_channels": 1})
    E = build_models(cfg)["E"]
    assert E.generator_name == "stylegan-mnist32"
    assert _io.model_config(E)["config"]["generator_name"] == "stylegan-mnist32"     # what its folder says


# -- NaN weights, malformed manifests ---------------------------------------------------------------

def _install_nan_cache(cache: Path):
    from safetensors.torch import save_file
    enc = ghfeat.create_encoder("tiny32")
    pretrained.install_converted("encoder", "ffhq256", enc, cache / "src.pkl", root=cache)   # any cached entry
    folder = cache / "encoder" / "ffhq256"
    state = {k: v.clone() for k, v in enc.state_dict().items()}
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key].view(-1)[0] = float("nan")
    save_file(state, str(folder / "model.safetensors"))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"] = pretrained.sha256_file(folder / "model.safetensors")        # updated to match
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder, key


def test_non_finite_weights_are_refused_at_load(tmp_path, monkeypatch):
    monkeypatch.setenv("GHFEAT_CACHE", str(tmp_path))
    folder, key = _install_nan_cache(tmp_path)
    with pytest.raises(WeightsCorruptError, match=f"non-finite values .*{key}"):   # the cache
        pretrained.load_pretrained(ghfeat.create_encoder("tiny32"), ghfeat._registry.get_entry("encoder", "ffhq256"))
    with pytest.raises(WeightsCorruptError, match="non-finite"):               # a checkpoint_path
        ghfeat.create_encoder("tiny32", checkpoint_path=folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(_io.model_config(ghfeat.create_encoder("tiny32"))))
    with pytest.raises(ValueError, match="non-finite"):                        # a saved folder
        ghfeat.load_model(folder)

    # a trainer checkpoint whose weights hold Inf is refused on resume
    run = tmp_path / "run"
    good = ghfeat.create_encoder("tiny32").state_dict()
    bad = {k: v.clone().fill_(float("inf")) if v.is_floating_point() else v for k, v in good.items()}
    ck.save_checkpoint(ck.checkpoint_path(run, 1), {"format": "ghfeat-train-v1", "models": {"E": bad}})
    from ghfeat.train.trainer import _load_module_weights
    with pytest.raises(ValueError, match="non-finite"):
        _load_module_weights(ghfeat.create_encoder("tiny32"), str(ck.checkpoint_path(run, 1)), ("E",))


@pytest.mark.parametrize("manifest, words", [
    ("[]", "must hold a JSON object, got list"),
    ('{"file": 5}', "'file' must be the name of a file"),
    ('{"file": "../../etc/passwd", "sha256": "' + "0" * 64 + '"}', "'file' must be the name of a file"),
    ('{"sha256": "abc"}', "'sha256' must be 64 lowercase hex characters"),
    ("{trunc", "is not valid JSON"),
])
def test_malformed_cache_manifests_are_clear_errors(tmp_path, monkeypatch, manifest, words):
    monkeypatch.setenv("GHFEAT_CACHE", str(tmp_path))
    folder = tmp_path / "encoder" / "ffhq256"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(manifest)
    with pytest.raises(WeightsCorruptError, match=words) as err:      # before any model is built
        pretrained.resolve_weights("encoder", "ffhq256", pretrained.get_pretrained_cfg("encoder", "ffhq256"))
    assert f"Delete {folder}" in str(err.value)


# -- data folders, edit directions, publish ---------------------------------------------------------

def test_symlink_loop_in_a_data_folder_lists_each_image_once(tmp_path):
    from ghfeat import data
    from ghfeat._images import list_image_files
    root = tmp_path / "imgs"
    root.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(root / "a.png")
    (root / "sub").symlink_to(".", target_is_directory=True)          # sub -> .
    (root / "again").symlink_to(root, target_is_directory=True)
    assert data.list_image_files(root) == [root / "a.png"]           # training: once (was 41 times)
    assert len(data.make_dataset(str(root), 32)) == 1
    assert list_image_files(root) == [root / "a.png"]                 # extract: once, as before


def test_edit_direction_files_are_checked(digits, tmp_path, capsys):
    common = [str(digits / "0.png"), "--levels", "1", "--random-weights", "--model", "tiny32", "--out",
              str(tmp_path / "e.png")]
    np.save(tmp_path / "d2.npy", np.ones((2, 8), np.float32))
    assert main(["edit", *common, "--direction", str(tmp_path / "d2.npy")]) == 2
    one_line_error(capsys, "has shape (2, 8); expected one [2C] vector (1-D)")
    torch.save({"direction": ck.GracefulExit()}, tmp_path / "obj.pt")           # refused by weights_only
    assert main(["edit", *common, "--direction", str(tmp_path / "obj.pt")]) == 2
    one_line_error(capsys, "cannot be read as a plain array (UnpicklingError", "torch.save(tensor, path)")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    assert main(["edit", *common, "--direction", str(tmp_path / "obj.npy")]) == 2
    one_line_error(capsys, "cannot be read as a plain array")
    (tmp_path / "d.txt").write_text("1 2 3")
    assert main(["edit", *common, "--direction", str(tmp_path / "d.txt")]) == 2
    one_line_error(capsys, "expected a .npy or .pt file")
    assert not (tmp_path / "e.png").exists()
    dim = ghfeat.create_generator("stylegan-tiny32").style_dims[-1]
    np.save(tmp_path / "ok.npy", np.ones(dim, np.float32))
    assert main(["edit", *common, "--direction", str(tmp_path / "ok.npy")]) == 0 and (tmp_path / "e.png").is_file()


def test_publish_says_what_can_be_published_and_when_the_hub_is_unreachable(tmp_path, monkeypatch, capsys):
    from ghfeat.publish import publish_main
    monkeypatch.setenv("GHFEAT_CACHE", str(tmp_path))
    assert publish_main(["mnist32", "me/x"]) == 2
    err = one_line_error(capsys, "'mnist32' ships inside the ghfeat package", "push_to_hub")
    assert "ghfeat download mnist32" not in err
    pretrained.install_converted("generator", "stylegan-tiny32", ghfeat.create_generator("stylegan-tiny32"),
                                 tmp_path / "src.pkl")
    with socket.socket() as sock:                                 # a port nobody serves
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    assert publish_main(["stylegan-tiny32", "me/x"]) == 2
    one_line_error(capsys, f"could not upload to http://127.0.0.1:{port}", "Nothing was published")


# -- the example scripts ----------------------------------------------------------------------------

def _script(name, args, capsys):
    from ghfeat._script import run
    rc = run(_example(name).main, f"{name}.py", args)
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return rc, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_examples_refuse_cuda_without_cuda(tmp_path, digits, capsys):
    rc, err = _script("extract_features", [str(digits), "--random-weights", "--model", "tiny32", "--device", "cuda"],
                      capsys)
    assert rc == 2 and "--device: device='cuda' but CUDA is not available here" in err
    rc, err = _script("linear_probe", ["--data", str(tmp_path / "none"), "--device", "cuda"], capsys)
    assert rc == 2 and "CUDA is not available" in err


def test_examples_check_their_arguments_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    nodata = str(tmp_path / "no-such-data")       # an error about --out/--limit proves nothing was loaded
    cases = [
        ("linear_probe", ["--data", nodata, "--limit", "0"], "--limit must be >= 10, got 0"),  # held-out L2 slice
        ("retrieval", ["--data", nodata, "--limit", "0"], "--limit must be >= 2, got 0"),
        ("finetune_classifier", ["--data", nodata, "--limit", "0"], "--limit must be >= 1, got 0"),
        ("fewshot_segmentation", ["--data", nodata, "--limit", "0"], "--limit must be >= 1, got 0"),
        ("editing_directions", ["--data", nodata, "--n-fit", "1"], "--n-fit must be >= 2, got 1"),
        ("linear_probe", ["--data", nodata, "--json", str(blocker / "r.json")], f"--json {blocker / 'r.json'}"),
        ("retrieval", ["--data", nodata, "--out", str(blocker / "r.png")], "is a file, not a folder"),
        ("editing_directions", ["--data", nodata, "--out-dir", str(blocker)], "exists and is a file, not a folder"),
        ("finetune_encoder", ["--from-idx", nodata, "--run-dir", str(blocker)], "exists and is a file"),
        ("style_mixing", ["--random-weights", "--out", str(blocker / "m.png")], "is a file, not a folder"),
        ("extract_features", [nodata, "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        ("finetune_classifier", ["--data", nodata, "--lr", "nan"], "--lr must be a finite number > 0, got nan"),
    ]
    for name, args, words in cases:
        rc, err = _script(name, args, capsys)
        assert rc == 2 and words in err, (name, err)


def test_fewshot_refuses_more_shots_than_digits(tmp_path, capsys):
    root = write_fake_mnist(tmp_path / "mnist", n=20)
    rc, err = _script("fewshot_segmentation", ["--data", str(root), "--random-weights", "--model", "tiny32",
                                               "--shots", "5", "50", "--limit", "4", "--kinds", "pixels"], capsys)
    assert rc == 2 and "--shots 50 is more than the 20 training digits" in err


def test_style_mixing_example_needs_consent_for_another_generator(tmp_path, capsys):
    rc, err = _script("style_mixing", ["--random-weights", "--encoder", "tiny32", "--generator", "stylegan-mnist32",
                                       "--out", str(tmp_path / "m.png")], capsys)
    assert rc == 2 and "--allow-mismatched-generator" in err and not (tmp_path / "m.png").exists()


def test_metrics_log_never_keeps_a_torn_line_on_a_full_disk(tmp_path):
    from ghfeat.train.utils import JsonlLogger, read_jsonl
    log = JsonlLogger(tmp_path / "metrics.jsonl")
    log.log({"step": 1, "loss": 0.5})
    real = log._f

    class Full:                       # the disk fills up in the middle of the next line
        def write(self, text):
            real.write(text[:7])
            real.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(real, name)
    log._f = Full()
    with pytest.raises(WriteError, match="cannot write log .*metrics.jsonl: the disk is full"):
        log.log({"step": 2, "loss": 0.25})
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1, "loss": 0.5}\n'     # the torn line is gone
    log.log({"step": 3})                                                               # and logging goes on
    log.close()
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [1, 3]
