"""Training that continues across sessions, and the encoder's code-regression term."""
import numpy as np
import pytest
import torch
from PIL import Image

import ghfeat
from ghfeat.losses import code_regression_loss
from ghfeat.train.config import TrainConfig
from ghfeat.train.trainer import Trainer, build_models


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(root / f"{i}.png")
    return str(root)


def tiny(task, data, **kw):
    base = dict(task=task, data=data, generator="stylegan-tiny32", batch_size=4, num_workers=0,
                progress=False, log_every=1, image_every=0, ckpt_every=0, total_steps=100, keep_checkpoints=0)
    if task == "encoder":
        base.update(encoder="tiny32", allow_untrained=True, vgg_weights=None, perceptual_weight=0.0)
    return TrainConfig(**{**base, **kw})


def _perturbed(module, amount):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(amount)
    return module


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# -- code regression ---------------------------------------------------------------------------------

def test_code_regression_loss_hand_computed():
    pred = [torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0, 3.0, 1.0]])]
    target = [torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 2.0, 0.0, 1.0]])]
    # layer 0: (1 + 4) / 2 = 2.5; layer 1: (0 + 4 + 9 + 0) / 4 = 3.25; mean 2.875
    assert code_regression_loss(pred, target).item() == pytest.approx(2.875)
    scale = [torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0, 3.0, 1.0])]
    # layer 0: (1 + 1) / 2 = 1; layer 1: (0 + 1 + 1 + 0) / 4 = 0.5; mean 0.75
    assert code_regression_loss(pred, target, scale).item() == pytest.approx(0.75)
    with pytest.raises(ValueError, match="layer 1"):
        code_regression_loss(pred, [target[0], target[1][:, :2]])


def test_generated_batch_codes_are_the_generators(images, tmp_path):
    """x = G.synthesis(y) with y = the affine styles of the sampled w+; with mixing, each sample's
    w+ is one latent up to a crossover layer in 1..L-1 and another from there on."""
    tr = Trainer(tiny("encoder", images, code_weight=1.0, style_mixing_prob=1.0), tmp_path)
    L = tr.G.num_layers
    torch.manual_seed(0)
    x, ys = tr._generated_batch(6)
    assert x.shape == (6, 3, 32, 32) and [y.shape[1] for y in ys] == tr.G.style_dims
    torch.testing.assert_close(tr.G.synthesis(styles=ys, randomize_noise=False), x)
    torch.manual_seed(0)
    w_plus = tr._sample_w_plus(6)
    for y, ref in zip(ys, tr.G.synthesis.styles_from_w(w_plus)):
        torch.testing.assert_close(y, ref)
    for sample in w_plus:
        changes = [i for i in range(1, L) if not torch.equal(sample[i], sample[i - 1])]
        assert len(changes) == 1 and 1 <= changes[0] <= L - 1
    tr.cfg.style_mixing_prob = 0.0
    assert all(torch.equal(s[0].expand_as(s), s) for s in tr._sample_w_plus(4))


def test_code_term_trains_and_logs(images, tmp_path):
    """The code error on fresh generated batches falls (the term trains E); off by default."""
    cfg = tiny("encoder", images, code_weight=1.0, adv_weight=0.0, flip=False, lr=1e-2, batch_size=4, code_batch=16)
    tr = Trainer(cfg, tmp_path / "on")
    errs = []
    for _ in range(60):
        tr.train_step([tr._fixed[:4]])
        errs.append(tr.log_sums.pop("e/code").item())
        tr.log_sums.clear()
    assert np.isfinite(errs).all() and np.mean(errs[-5:]) < 0.7 * np.mean(errs[:5]), errs
    off = Trainer(tiny("encoder", images), tmp_path / "off")
    off.train_step([off._fixed[:4]])
    assert "e/code" not in off.log_sums


@pytest.mark.parametrize("kw, msg", [(dict(code_weight=-1.0), "code_weight"), (dict(code_batch=-2), "code_batch"),
                                     (dict(code_weight=float("nan")), "code_weight")])
def test_code_options_validated(images, kw, msg):
    with pytest.raises(ValueError, match=msg):
        tiny("encoder", images, **kw)


# -- continuing a generator run ------------------------------------------------------------------------

def test_generator_continues_from_a_run_checkpoint(images, tmp_path):
    first = Trainer(tiny("generator", images, total_steps=2), tmp_path / "a")
    first.run()
    ckpt = sorted((tmp_path / "a" / "checkpoints").glob("ckpt-*.pt"))[-1]
    models = build_models(tiny("generator", images, generator_checkpoint=str(ckpt)))
    for name in ("G", "G_ema", "D"):
        assert _same(models[name], first.models[name]), name
    assert not _same(models["G"], models["G_ema"])     # the raw G is not the EMA


def test_generator_continues_from_saved_folders(images, tmp_path):
    G = _perturbed(ghfeat.create_generator("stylegan-tiny32"), 0.25)
    D = _perturbed(ghfeat.create_discriminator("stylegan-tiny32"), -0.25)
    ghfeat.save_model(G, tmp_path / "run" / "generator")
    ghfeat.save_model(D, tmp_path / "run" / "discriminator")
    models = build_models(tiny("generator", images, generator_checkpoint=str(tmp_path / "run" / "generator")))
    assert _same(models["G"], G) and _same(models["G_ema"], G) and _same(models["D"], D)
    ghfeat.save_model(G, tmp_path / "lone")
    with pytest.raises(ValueError, match="discriminator_checkpoint"):
        build_models(tiny("generator", images, generator_checkpoint=str(tmp_path / "lone")))


def test_generator_continues_from_the_registry(images, tmp_path):
    """generator_pretrained on the generator task: the shipped G_ema and D (offline, in the
    package); the raw G is the shipped one when the entry has it, else the EMA."""
    from ghfeat.pretrained import raw_generator_path
    cfg = tiny("generator", images, generator="stylegan-mnist32", generator_pretrained=True)
    models = build_models(cfg)
    ref_G = ghfeat.create_generator("stylegan-mnist32", pretrained=True)
    ref_D = ghfeat.create_discriminator("stylegan-mnist32", pretrained=True)
    assert _same(models["G_ema"], ref_G) and _same(models["D"], ref_D)
    raw = raw_generator_path("stylegan-mnist32")
    if raw is None:
        assert _same(models["G"], ref_G)
    else:
        from ghfeat._io import read_safetensors
        state = read_safetensors(raw)
        assert all(torch.equal(state[k].to(v.dtype), v) for k, v in models["G"].state_dict().items())
        assert not _same(models["G"], ref_G)
    from ghfeat.pretrained import WeightsNotFoundError
    with pytest.raises(WeightsNotFoundError, match="no pretrained weights"):
        build_models(tiny("generator", images, generator_pretrained=True))


def test_package_ships_the_raw_generator_beside_the_ema(images, tmp_path):
    """The packager writes G_ema, the raw G and D of a generator run (fp16), so that the next
    session continues the run from the package alone."""
    from ghfeat._io import read_safetensors
    from ghfeat.train.package import package
    tr = Trainer(tiny("generator", images, total_steps=2, ema_kimg=0.01), tmp_path / "run")
    tr.run()
    ckpt = sorted((tmp_path / "run" / "checkpoints").glob("ckpt-*.pt"))[-1]
    shas = package(tmp_path / "out", str(ckpt), None, None)
    assert set(shas) == {"generator", "generator_raw", "discriminator"}
    for kind, name in (("generator", "G_ema"), ("generator_raw", "G"), ("discriminator", "D")):
        state = read_safetensors(tmp_path / "out" / f"{kind}.safetensors")
        for key, ref in tr.models[name].state_dict().items():
            assert state[key].dtype == torch.float16
            torch.testing.assert_close(state[key].float(), ref.half().float(), rtol=0, atol=0, msg=f"{kind}.{key}")
