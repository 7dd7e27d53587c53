"""Trainer: config, a few CPU steps of both tasks, exact resume (in-process, SIGKILL, SIGTERM), 2-process gloo."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ghfeat
from ghfeat.train import checkpoint as ck
from ghfeat.train.cli import train_main
from ghfeat.train.config import TrainConfig
from ghfeat.train.trainer import Trainer, train
from ghfeat.train.utils import read_jsonl

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(8):      # smooth blobs: something a tiny G can fit
        yy, xx = np.mgrid[:32, :32]
        cy, cx = rng.integers(8, 24, 2)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 40.0)
        rgb = (np.stack([blob, blob * rng.random(), 1 - blob], -1) * 255).astype(np.uint8)
        Image.fromarray(rgb).save(root / f"{i}.png")
    return str(root)


def tiny(task, data, **kw):
    base = dict(task=task, data=data, generator="stylegan-tiny32", batch_size=4, num_workers=0,
                progress=False, log_every=1, image_every=0, ckpt_every=0, total_steps=100, keep_checkpoints=0)
    if task == "encoder":
        base.update(encoder="tiny32", allow_untrained=True, vgg_weights=None, perceptual_weight=0.0)
    return TrainConfig(**{**base, **kw})


# -- config ----------------------------------------------------------------------------------------

def test_config_official_defaults_paper_recipe_and_json(tmp_path):
    cfg = TrainConfig(data="x", generator_checkpoint="g")
    assert (cfg.lr, cfg.betas, cfg.eps, cfg.batch_size, cfg.total_steps) == (1e-4, (0.9, 0.99), 1e-8, 12, 145_833)
    assert (cfg.adv_loss, cfg.r1_gamma, cfg.adv_weight, cfg.perceptual_weight, cfg.flip) == ("logistic-r1", 10.0, 0.08, 5e-5, True)
    assert cfg.lr_at(36458) == pytest.approx(1e-4 * 0.8 ** 2)          # 1e-4 * 0.8 ** (2 * it / 36458)
    paper = TrainConfig.from_recipe("paper", data="x", generator_checkpoint="g")
    assert (paper.betas[0], paper.adv_weight, paper.adv_loss, paper.gp_weight) == (0.0, 0.1, "wgan-gp", 5.0)
    gen = TrainConfig(task="generator", data="x")
    assert (gen.lr, gen.betas, gen.lr_at(10 ** 6), gen.encoder) == (1e-3, (0.0, 0.99), 1e-3, None)
    assert gen.ema_beta(10_000) == pytest.approx(0.5)
    cfg.to_json(tmp_path / "c.json")
    assert TrainConfig.from_json(tmp_path / "c.json") == cfg
    assert cfg.with_overrides(["batch_size=3", "betas=[0, 0.9]", "vgg_weights=null", "perceptual_weight=0",
                              "data=mnist:/d"]).to_dict() \
        == {**cfg.to_dict(), "batch_size": 3, "betas": [0, 0.9], "vgg_weights": None, "perceptual_weight": 0,
            "data": "mnist:/d"}


@pytest.mark.parametrize("kw, msg", [
    (dict(task="decoder"), "task must be one of"),
    (dict(batch_size=0), "batch_size must be an integer >= 1"),
    (dict(betas=(0.9,)), "betas must be two numbers"),
    (dict(precision="fp8"), "precision must be one of"),
    (dict(adv_loss="hinge"), "adv_loss must be"),
    (dict(generator_checkpoint=None), "needs a trained generator"),
    (dict(vgg_weights=None), "perceptual_weight > 0 needs vgg_weights"),
    (dict(task="generator", encoder="tiny32"), "encoder is not used"),
])
def test_bad_configs_refused(kw, msg):
    base = dict(data="x", generator_checkpoint="g")
    with pytest.raises(ValueError, match=msg):
        TrainConfig(**{**base, **kw})


def test_unknown_fields_and_cli_errors(tmp_path, capsys):
    with pytest.raises(ValueError, match="did you mean 'batch_size'"):
        TrainConfig.from_dict({"batchsize": 3})
    assert train_main(["encoder", "--run-dir", str(tmp_path), "bach_size=2"]) == 2
    assert "did you mean 'batch_size'" in capsys.readouterr().err
    assert train_main(["generator", "--run-dir", str(tmp_path), "--print-config", "data=d", "batch_size=2"]) == 0
    assert json.loads(capsys.readouterr().out)["batch_size"] == 2


# -- steps -----------------------------------------------------------------------------------------

def test_encoder_loss_goes_down_on_fixed_batch(images, tmp_path):
    cfg = tiny("encoder", images, adv_weight=0.0, flip=False, lr=3e-3, batch_size=8)
    tr = Trainer(cfg, tmp_path)
    batch = [tr._fixed[:8]]
    pixel = []
    for _ in range(15):
        tr.train_step(batch)
        pixel.append(tr.log_sums.pop("e/pixel").item())
    assert pixel[-1] < 0.7 * pixel[0], pixel


def test_encoder_full_objective_with_vgg_and_export(images, tmp_path):
    cfg = tiny("encoder", images, vgg_weights="random", perceptual_weight=5e-5, total_steps=2,
               image_every=2, sample_n=3, grad_accum=2)
    result = train(cfg, tmp_path)
    assert result["stopped_by"] == "done"
    log = result["last_log"]
    for key in ("e/pixel", "e/perceptual", "e/adv", "d/loss", "d/r1_penalty", "images_per_sec"):
        assert np.isfinite(log[key]), key
    assert log["kimg"] == 2 * 4 * 2 / 1000
    enc = ghfeat.load_model(tmp_path / "encoder")
    assert enc(torch.zeros(1, 3, 32, 32)).shape[:2] == (1, 8)
    assert Image.open(tmp_path / "images" / "000000002.png").size[0] > 64
    assert json.loads((tmp_path / "config.json").read_text())["grad_accum"] == 2


def test_generator_steps_ema_w_avg_export(images, tmp_path):
    cfg = tiny("generator", images, total_steps=3, image_every=3, sample_n=4, ema_kimg=0.01)
    tr = Trainer(cfg, tmp_path)
    G, G_ema = tr.models["G"], tr.models["G_ema"]
    w_avg0 = G.w_avg.clone()
    result = tr.run()
    assert result["stopped_by"] == "done" and np.isfinite(result["last_log"]["g/adv"])
    assert not torch.equal(G.w_avg, w_avg0) and torch.equal(G_ema.w_avg, G.w_avg)
    assert not torch.equal(G_ema.synthesis.const, G.synthesis.const)           # beta = 0.5 ** 0.4
    gen = ghfeat.load_model(tmp_path / "generator")
    assert torch.equal(gen.synthesis.const, G_ema.synthesis.const)
    assert (tmp_path / "images" / "000000003.png").is_file()


# -- exact resume ----------------------------------------------------------------------------------

def assert_same_state(a: dict, b: dict):
    assert a["step"] == b["step"] and a["data_position"] == b["data_position"]
    for name in a["models"]:
        for key, t in a["models"][name].items():
            torch.testing.assert_close(t, b["models"][name][key], rtol=0, atol=0, msg=f"{name}.{key}")
    for name in a["optimizers"]:
        for pid, st in a["optimizers"][name]["state"].items():
            for key, t in st.items():
                torch.testing.assert_close(t, b["optimizers"][name]["state"][pid][key], rtol=0, atol=0)
    assert torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"])


@pytest.mark.parametrize("task", ["encoder", "generator"])
def test_resume_equals_straight_run(images, tmp_path, task):
    extra = dict(vgg_weights="random", perceptual_weight=5e-5) if task == "encoder" else {}
    cfg = tiny(task, images, **extra)
    train(cfg, tmp_path / "straight", max_steps=4)
    r1 = train(cfg, tmp_path / "split", max_steps=2)
    assert r1 == {**r1, "step": 2, "stopped_by": "max_steps"}
    train(cfg.replace(total_steps=50, log_every=2), tmp_path / "split", resume=True, max_steps=4)  # allowed changes
    a = ck.load_checkpoint(ck.find_latest_checkpoint(tmp_path / "straight"))
    b = ck.load_checkpoint(ck.find_latest_checkpoint(tmp_path / "split"))
    assert a["step"] == 4
    assert_same_state(a, b)
    with pytest.raises(ValueError, match="lr: checkpoint"):
        Trainer(cfg.replace(lr=0.5), tmp_path / "split", resume=True)


def run_cli(args, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("RANK", None), env.pop("WORLD_SIZE", None)
    return subprocess.Popen([sys.executable, "-m", "ghfeat.train.cli", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def wait_for_checkpoint(run_dir, min_step, proc, timeout=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        found = ck.list_checkpoints(run_dir)
        if found and found[-1][0] >= min_step:
            return found[-1][0]
        assert proc.poll() is None, proc.stdout.read().decode()
        time.sleep(0.05)
    raise TimeoutError(f"no checkpoint >= {min_step} in {run_dir}")


@pytest.mark.slow   # a fresh interpreter per process (issue 17: deselected by default)
def test_sigkill_then_resume_then_sigterm_matches_straight_run(images, tmp_path):
    cfg = tiny("encoder", images, ckpt_every=2, total_steps=10_000, log_every=1)
    cfg.to_json(tmp_path / "cfg.json")
    run = tmp_path / "run"
    args = ["encoder", "--config", str(tmp_path / "cfg.json"), "--run-dir", str(run)]
    proc = run_cli(args)
    wait_for_checkpoint(run, 4, proc)
    proc.send_signal(signal.SIGKILL)                 # no chance to clean up
    proc.wait()
    killed_at = ck.list_checkpoints(run)[-1][0]
    proc = run_cli(args + ["--resume"])              # continues, then SIGTERM -> checkpoint + clean exit
    wait_for_checkpoint(run, killed_at + 2, proc)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, out
    assert "(signal)" in out
    stopped = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("event") == "stop"]
    final_step = stopped[-1]["step"]
    assert stopped[-1]["stopped_by"] == "signal" and ck.list_checkpoints(run)[-1][0] == final_step
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                         # as the subprocesses (float sums depend on it)
    try:
        train(cfg, tmp_path / "straight", max_steps=final_step)
    finally:
        torch.set_num_threads(threads)
    assert_same_state(ck.load_checkpoint(ck.find_latest_checkpoint(tmp_path / "straight")),
                      ck.load_checkpoint(ck.find_latest_checkpoint(run)))


# -- 2-process data parallel on CPU ----------------------------------------------------------------

@pytest.mark.slow   # a fresh interpreter per process (issue 17: deselected by default)
def test_two_process_gloo_run(images, tmp_path):
    cfg = tiny("encoder", images, batch_size=2, total_steps=3, ckpt_every=2, log_every=1)
    cfg.to_json(tmp_path / "cfg.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "ghfeat.train.cli", "encoder", "--config", str(tmp_path / "cfg.json"),
           "--run-dir", str(tmp_path / "run"), "device=cpu"]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = ck.load_checkpoint(ck.find_latest_checkpoint(tmp_path / "run"))
    assert state["step"] == 3 and state["world_size"] == 2 and len(state["rng"]) == 2
    assert state["data_position"] == 3 * 2 * 2                     # global batch = 2 ranks x 2
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])   # per-rank streams
    logs = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "step" in r and "event" not in r]
    assert [r["step"] for r in logs] == [1, 2, 3]                  # rank 0 logs only
    assert (tmp_path / "run" / "encoder" / "model.safetensors").is_file()


def test_betas_from_json_ints_are_floats():
    # Adam refuses betas=(0, 0.99) (an int and a float); the CLI parses "betas=[0,0.99]" to ints
    cfg = TrainConfig(task="generator", data="x").with_overrides(["betas=[0,0.99]"])
    assert cfg.betas == (0.0, 0.99) and all(type(b) is float for b in cfg.betas)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)], betas=cfg.betas)


@pytest.mark.parametrize("adv_loss,key,weight", [("logistic-r1", "r1_gamma", 0.5), ("wgan-gp", "gp_weight", 1.0)])
def test_lazy_r1_every_k_steps_weighted_by_k(images, tmp_path, adv_loss, key, weight):
    cfg = tiny("generator", images, r1_every=4, adv_loss=adv_loss, **{key: 3.0}, total_steps=8)
    tr = Trainer(cfg, tmp_path)
    seen = []
    for step in range(8):
        tr.step = step
        loss, _ = tr._d_loss_fn()
        w = loss.r1_gamma * 0.5 if adv_loss == "logistic-r1" else loss.gp_weight
        seen.append(w)
    # the penalty weight is 3 * 4 (x 1/2 for R1) on steps 0 and 4, and 0 elsewhere
    assert seen == [3.0 * 4 * weight, 0, 0, 0, 3.0 * 4 * weight, 0, 0, 0]
    tr.step = 0
    tr.run()
    log = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if "step" in r and "d/loss" in r]
    pen = "d/r1_penalty" if adv_loss == "logistic-r1" else "d/grad_penalty"
    assert [pen in r for r in log] == [True, False, False, False, True, False, False, False]


def test_grayscale_generator_task_and_channel_mismatch(tmp_path):
    digits = tmp_path / "d"
    digits.mkdir()
    for i in range(4):
        Image.fromarray((np.random.default_rng(i).random((32, 32)) * 255).astype(np.uint8), "L").save(digits / f"{i}.png")
    cfg = tiny("generator", str(digits), total_steps=2, image_every=2, sample_n=4,
               generator_kwargs={"num_channels": 1}, discriminator_kwargs={"num_channels": 1})
    tr = Trainer(cfg, tmp_path / "run")
    assert tr.dataset[0].shape == (1, 32, 32)
    tr.run()
    assert Image.open(tmp_path / "run" / "images" / "000000002.png").mode == "L"
    with pytest.raises(ValueError, match="num_channels"):
        Trainer(tiny("generator", str(digits), generator_kwargs={"num_channels": 1}), tmp_path / "bad")


def test_mode_seeking_loss_hand_computed():
    from ghfeat.train.trainer import mode_seeking_loss
    imgs = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, -0.5], [1.0, 3.0]]).view(4, 1, 1, 2)
    z = torch.tensor([[0.0], [2.0], [1.0], [0.0]])
    # pairs (0, 2) and (1, 3): mean|dx| = (0.5 + 0.5 + 0 + 2) / 4 = 0.75, mean|dz| = (1 + 2) / 2 = 1.5
    loss, ratio = mode_seeking_loss(imgs, z)
    assert ratio.item() == pytest.approx(0.5) and loss.item() == pytest.approx(1 / (0.5 + 1e-5))
    with pytest.raises(ValueError, match="at least 2"):
        mode_seeking_loss(imgs[:1], z[:1])


def test_generator_task_defaults_d_lr_and_flip(images, tmp_path):
    assert TrainConfig(task="generator", data="x").flip is False           # StyleGAN: mirror_augment off
    assert TrainConfig(data="x", generator_checkpoint="g").flip is True     # GH-Feat encoder: flips
    cfg = tiny("generator", images, lr=2e-3, d_lr=5e-4, total_steps=1, mode_seeking_weight=1.0,
               randomize_noise=False)
    tr = Trainer(cfg, tmp_path)
    tr.run()
    assert tr.opts["G"].param_groups[0]["lr"] == 2e-3 and tr.opts["D"].param_groups[0]["lr"] == 5e-4
    assert "g/ms_ratio" in read_jsonl(tmp_path / "metrics.jsonl")[0]
    with pytest.raises(ValueError, match="d_lr"):
        tiny("generator", images, d_lr=-1.0)


def test_eval_every_logs_sample_quality(tmp_path):
    from ghfeat.data import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 8), ("t10k", 8)):
        imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labs = rng.integers(0, 10, n, dtype=np.uint8)
        for suffix, arr, magic in (("images-idx3-ubyte", imgs, IDX_IMAGES_MAGIC), ("labels-idx1-ubyte", labs, IDX_LABELS_MAGIC)):
            header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
            (tmp_path / f"{prefix}-{suffix}").write_bytes(header + arr.tobytes())
    cfg = tiny("generator", f"mnist:{tmp_path}", total_steps=2, eval_every=2, eval_n=8,
               generator_kwargs={"num_channels": 1}, discriminator_kwargs={"num_channels": 1})
    Trainer(cfg, tmp_path / "run").run()
    evals = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if "eval/fd" in r]
    assert len(evals) == 1 and evals[0]["step"] == 2
    assert np.isfinite(evals[0]["eval/fd"]) and 0 <= evals[0]["eval/class_entropy"] <= np.log(10) + 1e-9


# -- encoder initialisation (fine-tuning) -----------------------------------------------------------

def test_encoder_init_from_checkpoint_or_pretrained(images, tmp_path):
    from ghfeat.train.trainer import build_models
    src = ghfeat.create_encoder("tiny32")
    with torch.no_grad():
        for p in src.parameters():
            p.add_(0.5)                                     # weights no fresh init would have
    ghfeat.save_model(src, tmp_path / "enc")
    E = build_models(tiny("encoder", images, encoder_checkpoint=str(tmp_path / "enc")))["E"]
    for (k, a), b in zip(src.state_dict().items(), E.state_dict().values()):
        assert torch.equal(a, b), k
    # the shipped MNIST encoder through encoder_pretrained (offline: it is in the package)
    cfg = tiny("encoder", images, generator="stylegan-mnist32", encoder="mnist32", encoder_pretrained=True)
    E = build_models(cfg)["E"]
    ref = ghfeat.create_encoder("mnist32", pretrained=True)
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), E.state_dict().values()))


@pytest.mark.parametrize("kw, msg", [
    (dict(encoder_checkpoint="x", encoder_pretrained=True), "not both"),
    (dict(encoder="custom", encoder_pretrained=True), "registered encoder name"),
    (dict(encoder_pretrained="yes"), "encoder_pretrained must be true or false"),
])
def test_encoder_init_options_validated(kw, msg):
    with pytest.raises(ValueError, match=msg):
        tiny("encoder", "x", **kw)


def test_generator_task_refuses_encoder_init():
    with pytest.raises(ValueError, match="for task='encoder'"):
        tiny("generator", "x", encoder_checkpoint="e")


# -- loading networks back from runs (ghfeat eval, the packager) ------------------------------------

def test_load_network_from_an_encoder_run_checkpoint(images, tmp_path):
    """An encoder run's checkpoint gives back its E and D, even when the files its config started
    from (encoder_checkpoint) are gone; fp16 packaging writes those weights rounded, nothing else."""
    from safetensors.torch import load_file

    from ghfeat.eval.cli import load_network
    from ghfeat.train import checkpoint as ck
    from ghfeat.train.package import package
    ghfeat.save_model(ghfeat.create_encoder("tiny32"), tmp_path / "init")
    cfg = tiny("encoder", images, total_steps=2, encoder_checkpoint=str(tmp_path / "init"))
    train(cfg, tmp_path / "run")
    shutil.rmtree(tmp_path / "init")
    ckpt_path = ck.find_latest_checkpoint(tmp_path / "run")
    saved = ck.load_checkpoint(ckpt_path)["models"]
    E = load_network(str(ckpt_path), "encoder")
    assert not E.training
    for k, v in E.state_dict().items():
        assert torch.equal(v, saved["E"][k]), k
    assert load_network(str(ckpt_path), "discriminator").num_channels == 3
    G = load_network(str(ckpt_path), "generator")          # the run's frozen G
    assert all(torch.equal(v, saved["G"][k]) for k, v in G.state_dict().items())
    train(tiny("generator", images, total_steps=1), tmp_path / "grun")
    with pytest.raises(ValueError, match=r"holds none of \['E'\]"):
        load_network(str(ck.find_latest_checkpoint(tmp_path / "grun")), "encoder")
    (tmp_path / "w.safetensors").write_bytes(b"x")
    with pytest.raises(ValueError, match="give a saved folder, a ckpt-\\*.pt or a model name"):
        load_network(str(tmp_path / "w.safetensors"), "encoder")
    out = package(tmp_path / "assets", None, str(ckpt_path), None)
    assert set(out) == {"encoder"}
    packed = load_file(str(out["encoder"][0]))
    for k, v in saved["E"].items():
        if v.is_floating_point():
            assert packed[k].dtype == torch.float16 and torch.equal(packed[k], v.half()), k
