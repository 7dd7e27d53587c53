"""The shipped Fashion-MNIST models (ghfeat/assets/fashion32) are real trained models.

As for MNIST (test_shipped_mnist.py): every check runs on random weights of the same architecture
too and must fail there; the bounds were measured on the shipped weights (docs/own-data.md) and
leave a margin. Data: 200 Fashion-MNIST test images (20 per class) as the image-folder loader
gives them (28x28 PNG -> 32x32 Lanczos), tests/data/fashion_test_200.npz (Fashion-MNIST, MIT).
"""
from pathlib import Path

import numpy as np
import pytest
import torch

import ghfeat
from _shipped import load_offline
from ghfeat._codes import mix_codes
from ghfeat.eval.classifier import classify, load_classifier
from ghfeat.eval.labelfree import nn_spread, random_fd

DATA = Path(__file__).parent / "data" / "fashion_test_200.npz"
# measured on the shipped pair / on random weights (seeds 0, 1, 2), 2026-12-01:
REC_MSE_BOUND = 0.2          # 0.048 / 0.91-1.17
AGREEMENT_BOUND = 0.5        # 0.86 / 0.10-0.105 (the shipped Fashion classifier reads the reconstruction as the input)
NCM_BOUND = 0.6              # 0.64 / 0.53-0.57 (nearest class mean, 10 class means from 100 images)
MIX_BOUND = 0.25             # 0.41 / 0.08-0.13 (B's levels 5-8 make the cell B's class)
SAMPLE_CONF_BOUND = 0.8      # 0.876 / 0.65-0.70 (the classifier's confidence on 500 samples)
RFD_BOUND = 200.0            # 55.9 / 630-1500 (random-feature FD of 500 samples vs the 200 images)


@pytest.fixture(scope="module")
def images():
    d = np.load(DATA)
    return torch.from_numpy(d["images"]).float().div(127.5).sub(1), torch.from_numpy(d["labels"]).long()


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    return load_offline(tmp_path_factory, "fashion32", "stylegan-fashion32")


@pytest.fixture(scope="module")
def random_pair():
    torch.manual_seed(0)
    return ghfeat.create_encoder("fashion32").eval(), ghfeat.create_generator("stylegan-fashion32").eval()


@pytest.fixture(scope="module")
def judge():
    return load_classifier("fashion-mnist")


def measure(enc, gen, images, judge) -> dict:
    """Every figure the bounds are on, for one encoder + generator."""
    x, y = images
    codes = ghfeat.encode(x, encoder=enc)
    rec = ghfeat.decode(codes, gen).clamp(-1, 1)[:, :1]
    _, pred_x, _ = classify(judge, x)
    _, pred_r, _ = classify(judge, rec)
    # nearest class mean on all-level features: class means from the first 100, tested on the rest
    f = ghfeat.extract(x, model=enc, flatten=True)
    f = (f - f[:100].mean(0)) / f[:100].std(0).clamp_min(1e-6)
    means = torch.stack([f[:100][y[:100] == k].mean(0) for k in range(10)])
    ncm = float((torch.cdist(f[100:], means).argmin(1) == y[100:]).float().mean())
    # style mixing: B's coarse levels (5-8) on A, for pairs of different classes -> reads as B's class
    g = torch.Generator().manual_seed(0)
    a, b = torch.randint(0, len(x), (400,), generator=g), torch.randint(0, len(x), (400,), generator=g)
    keep = y[a] != y[b]
    a, b = a[keep], b[keep]
    mixed = ghfeat.decode(mix_codes(codes[a], codes[b], [5, 6, 7, 8], enc.num_layers), gen).clamp(-1, 1)
    _, pred_m, _ = classify(judge, mixed[:, :1])
    samples = _samples(gen)
    _, _, conf = classify(judge, samples[:, :1])
    return {"rec_mse": float((rec - x).square().mean()), "agreement": float((pred_x == pred_r).mean()),
            "ncm": ncm, "mix": float((torch.from_numpy(pred_m) == y[b]).float().mean()),
            "sample_conf": float(conf.mean()), "sample_rfd": random_fd(samples[:, :1], x),
            "sample_spread": nn_spread(samples[:, :1], x)}


def _samples(gen, n=500):
    from ghfeat.eval.quality import generate
    return generate(gen, n, seed=0)


@pytest.fixture(scope="module")
def figures(shipped, random_pair, images, judge):
    return measure(*shipped[:2], images, judge), measure(*random_pair, images, judge)


def test_loads_offline_from_the_package(shipped):
    enc, gen, disc = shipped
    assert enc.in_channels == 1 and gen.num_channels == 1 and disc.num_channels == 1
    cfg = ghfeat.get_entry("encoder", "fashion32").pretrained_cfg
    assert cfg.embedded_path and cfg.sha256 and cfg.license == "mit" and cfg.paired_generator == "stylegan-fashion32"
    assert enc.generator_name == "stylegan-fashion32"


def test_reconstructs_held_out_images(figures):
    shipped, rand = figures
    assert shipped["rec_mse"] < REC_MSE_BOUND < rand["rec_mse"]
    assert shipped["agreement"] > AGREEMENT_BOUND > rand["agreement"]


def test_features_separate_the_classes(figures):
    shipped, rand = figures
    assert shipped["ncm"] > NCM_BOUND > rand["ncm"]


def test_coarse_levels_carry_the_class_through_encoding(figures):
    shipped, rand = figures
    assert shipped["mix"] > MIX_BOUND > rand["mix"]


def test_samples_are_clothes(figures):
    shipped, rand = figures
    assert shipped["sample_conf"] > SAMPLE_CONF_BOUND > rand["sample_conf"]
    assert shipped["sample_rfd"] < RFD_BOUND < rand["sample_rfd"]
    assert shipped["sample_spread"] > 0.3          # not a collapsed generator


def test_discriminator_prefers_real_images(shipped, images):
    _, gen, disc = shipped
    x, _ = images
    fake = _samples(gen, 200)
    with torch.no_grad():
        assert float(disc(x).mean()) > float(disc(fake).mean())
