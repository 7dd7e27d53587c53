"""ghfeat.losses checked against hand computations (tiny tensors, CPU, no network)."""
from __future__ import annotations

import hashlib
import math
import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ghfeat.losses import (PREPROCESS_PRESETS, LogisticR1Loss, VGG16Features, VGGPerceptualLoss,
                           WGANGPLoss, encoder_loss, get_adversarial_loss, pixel_mse,
                           real_gradient_penalty)
from ghfeat.losses import perceptual as perceptual_mod

HED_FILE = Path("/work/shared/weights/vgg16_features_hed.safetensors")
HED_SHA256 = "fe595e30b4a12704cd4b09f53677c51f987fd59ace6378acac6888eab7e98355"

# (index in vgg16().features, in_ch, out_ch) for all 13 convs; the first 10 reach conv4_3.
CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256),
         (14, 256, 256), (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512),
         (26, 512, 512), (28, 512, 512)]
POOL_AFTER = {2, 7, 14}  # a 2x2 max-pool follows these convs (before conv3_1, conv4_1, ...)


def fake_vgg_state(n_convs: int = 13, seed: int = 0) -> dict[str, torch.Tensor]:
    """He-scaled random VGG16 conv weights in torchvision ``features`` key layout."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for idx, cin, cout in CONVS[:n_convs]:
        std = math.sqrt(2 / (9 * cin))
        state[f"{idx}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * std
        state[f"{idx}.bias"] = torch.randn(cout, generator=g) * 0.1
    return state


def reference_conv4_3(state: dict[str, torch.Tensor], inp: torch.Tensor) -> torch.Tensor:
    """Independent conv4_3-after-ReLU: a plain F.conv2d / relu / max_pool chain."""
    h = inp
    for idx, _, _ in CONVS[:10]:
        h = F.relu(F.conv2d(h, state[f"{idx}.weight"], state[f"{idx}.bias"], padding=1))
        if idx in POOL_AFTER:
            h = F.max_pool2d(h, 2)
    return h


def caffe_by_hand(x: torch.Tensor, mean_bgr=(103.939, 116.779, 123.68)) -> torch.Tensor:
    rgb255 = (x + 1) / 2 * 255
    bgr = torch.stack([rgb255[:, 2], rgb255[:, 1], rgb255[:, 0]], dim=1)
    return bgr - torch.tensor(mean_bgr).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    state = fake_vgg_state()
    path = tmp_path_factory.mktemp("vgg") / "vgg16_features.safetensors"
    save_file(state, str(path))
    return path, state


# ----------------------------------------------------------------------------- preprocessing

def test_caffe_preprocessing_of_pure_red():
    vgg = VGG16Features(weights="random", preprocess="caffe")   # random: explicit opt-in
    assert vgg.weights_source == "random"
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)
    # RGB (255, 0, 0) -> BGR (0, 0, 255) -> minus the BGR mean.
    expected = torch.tensor([0 - 103.939, 0 - 116.779, 255 - 123.68]).view(1, 3, 1, 1)
    torch.testing.assert_close(vgg.normalize(red), expected)


def test_hed_and_torchvision_preprocessing_of_pure_red(vgg_file):
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)
    hed = VGG16Features(weights=vgg_file[0], preprocess="caffe-hed").normalize(red)
    torch.testing.assert_close(hed.flatten(),
                               torch.tensor([-104.00699, -116.66877, 255 - 122.67892]))
    tv = VGG16Features(weights=vgg_file[0], preprocess="torchvision").normalize(red)
    torch.testing.assert_close(tv.flatten(), torch.tensor([(1 - 0.485) / 0.229, -0.456 / 0.224,
                                                           -0.406 / 0.225]))


def test_grayscale_is_repeated_and_bad_shapes_refused(vgg_file):
    vgg = VGG16Features(weights=vgg_file[0], preprocess="caffe")
    gray = torch.rand(2, 1, 4, 4) * 2 - 1
    torch.testing.assert_close(vgg.normalize(gray), vgg.normalize(gray.expand(-1, 3, -1, -1)))
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        vgg.normalize(torch.zeros(2, 4, 4, 4))
    with pytest.raises(ValueError, match="unknown preprocess"):
        VGG16Features(weights=vgg_file[0], preprocess="keras")


# ----------------------------------------------------------------------------- perceptual loss

def test_features_match_independent_conv_chain(vgg_file):
    path, state = vgg_file
    vgg = VGG16Features(weights=path)  # a file without metadata -> Caffe (official mean)
    assert vgg.preprocess == PREPROCESS_PRESETS["caffe"]
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    out = vgg(x)
    assert out.shape == (2, 512, 2, 2)
    torch.testing.assert_close(out, reference_conv4_3(state, caffe_by_hand(x)),
                               rtol=1e-4, atol=1e-4)


def test_same_layout_as_torchvision_features(vgg_file):
    from torchvision.models.vgg import cfgs, make_layers

    path, state = vgg_file
    tv = make_layers(cfgs["D"])          # == torchvision.models.vgg16().features
    tv.load_state_dict(state)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(VGG16Features(weights=path)(x), tv[:23](caffe_by_hand(x)),
                               rtol=1e-4, atol=1e-4)


def test_perceptual_loss_value_and_gradient(vgg_file):
    path, state = vgg_file
    loss_fn = VGGPerceptualLoss(weights=path)
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    y = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_(True)
    loss = loss_fn(x, y)
    ref = (reference_conv4_3(state, caffe_by_hand(x)) -
           reference_conv4_3(state, caffe_by_hand(y.detach()))).square().mean()
    torch.testing.assert_close(loss.detach(), ref, rtol=1e-4, atol=1e-3)
    loss.backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in loss_fn.parameters())
    assert loss_fn(x, x).item() == 0.0


def test_stays_frozen_and_in_eval_mode(vgg_file):
    loss_fn = VGGPerceptualLoss(weights=vgg_file[0])
    loss_fn.train()
    assert not loss_fn.training and not loss_fn.vgg.training
    assert not any(p.requires_grad for p in loss_fn.parameters())


def test_input_size_resizes_nearest(vgg_file):
    path, state = vgg_file
    vgg = VGG16Features(weights=path, input_size=16)
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    up = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    torch.testing.assert_close(vgg(x), reference_conv4_3(state, caffe_by_hand(up)),
                               rtol=1e-4, atol=1e-4)


def test_preprocess_declared_in_file_metadata(tmp_path):
    state = fake_vgg_state(10)
    path = tmp_path / "hed_like.safetensors"
    save_file(state, str(path), metadata={
        "preprocess": "caffe BGR 0-255 minus mean [104.00699,116.66877,122.67892]"})
    assert VGG16Features(weights=path).preprocess == PREPROCESS_PRESETS["caffe-hed"]
    assert VGG16Features(weights=path, preprocess="caffe").preprocess.name == "caffe"


def test_accepted_layouts_pt_file_and_full_vgg_state(tmp_path):
    state = fake_vgg_state(10)
    pt = tmp_path / "features.pt"
    torch.save(state, pt)
    full = {f"features.{k}": v for k, v in fake_vgg_state(13).items()}
    full["classifier.0.weight"] = torch.zeros(4, 4)
    full_path = tmp_path / "vgg16_full.safetensors"
    save_file(full, str(full_path))
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    torch.testing.assert_close(VGG16Features(weights=pt)(x),
                               reference_conv4_3(state, caffe_by_hand(x)), rtol=1e-4, atol=1e-4)
    assert VGG16Features(weights=full_path)(x).shape == (1, 512, 1, 1)


# ----------------------------------------------------------------------------- weight errors

def test_weights_none_is_refused():
    with pytest.raises(ValueError, match="weights='random'"):
        VGG16Features(weights=None)
    with pytest.raises(ValueError, match="refused"):
        VGGPerceptualLoss(weights=None)


def test_missing_and_truncated_files(tmp_path, vgg_file):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VGG16Features(weights=tmp_path / "nope.safetensors")
    data = vgg_file[0].read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        VGG16Features(weights=cut)
    bad_pt = tmp_path / "cut.pt"
    bad_pt.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="weights_only"):
        VGG16Features(weights=bad_pt)


def test_wrong_keys_and_shapes(tmp_path):
    state = fake_vgg_state(10)
    cases = {
        "missing": {k: v for k, v in state.items() if k != "21.weight"},
        "unexpected": dict(state, **{"head.weight": torch.zeros(1)}),
        "shape mismatch": dict(state, **{"0.weight": torch.zeros(64, 1, 3, 3)}),
    }
    for label, bad in cases.items():
        path = tmp_path / f"{label.replace(' ', '_')}.safetensors"
        save_file(bad, str(path))
        with pytest.raises(ValueError, match=label):
            VGG16Features(weights=path)


def test_imagenet_offline_errors_are_clear(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match=r"weights=<path"):
        VGG16Features(weights="imagenet", download=False)

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(RuntimeError, match=r"could not download.*hub/checkpoints"):
        VGGPerceptualLoss(weights="imagenet")


def test_imagenet_from_hub_cache_uses_torchvision_preprocessing(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    state = {f"features.{k}": v for k, v in fake_vgg_state(13).items()}
    state["classifier.6.bias"] = torch.zeros(10)
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(state, cache / Path(perceptual_mod.TORCHVISION_VGG16_URL).name)
    vgg = VGG16Features(weights="imagenet", download=False)
    assert vgg.preprocess == PREPROCESS_PRESETS["torchvision"]
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    ref = reference_conv4_3({k[9:]: v for k, v in state.items() if k.startswith("features.")},
                            ((x + 1) / 2 - mean) / std)
    torch.testing.assert_close(vgg(x), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not HED_FILE.is_file(), reason="development weight file not present")
def test_real_hed_weight_file_loads():
    assert hashlib.sha256(HED_FILE.read_bytes()).hexdigest() == HED_SHA256
    vgg = VGG16Features(weights=HED_FILE)
    assert vgg.preprocess == PREPROCESS_PRESETS["caffe-hed"]
    out = vgg(torch.zeros(1, 3, 16, 16))
    assert out.shape == (1, 512, 2, 2) and torch.isfinite(out).all()


# ----------------------------------------------------------------------------- adversarial

class LinearD(torch.nn.Module):
    """D(x) = sum(w * x) + b per sample: its input gradient is w for every sample."""

    def __init__(self, w: torch.Tensor, b: float = 0.0):
        super().__init__()
        self.w = torch.nn.Parameter(w.clone())
        self.b = torch.nn.Parameter(torch.tensor(b))

    def forward(self, x):
        return (self.w * x).flatten(1).sum(1, keepdim=True) + self.b  # [N, 1]


def linear_d():
    return LinearD(torch.full((1, 1, 2, 2), 0.5))  # ||w||^2 = 4 * 0.25 = 1


def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


def test_logistic_r1_d_loss_by_hand():
    D = linear_d()
    real = torch.ones(3, 1, 2, 2)          # D(real) = 2
    fake = torch.zeros(3, 1, 2, 2)         # D(fake) = 0
    loss, logs = get_adversarial_loss("logistic-r1").d_loss(D, real, fake)
    # softplus(0) + softplus(-2) + r1_gamma / 2 * ||w||^2 = ln 2 + ln(1 + e^-2) + 5
    assert loss.item() == pytest.approx(math.log(2) + math.log1p(math.exp(-2)) + 5.0, rel=1e-6)
    assert logs["d/r1_penalty"].item() == pytest.approx(1.0)
    assert logs["d/loss_gp"].item() == pytest.approx(5.0)
    assert logs["d/score_real"].item() == pytest.approx(2.0)
    loss2, logs2 = LogisticR1Loss(r1_gamma=0).d_loss(D, real, fake)
    assert loss2.item() == pytest.approx(math.log(2) + softplus(-2), rel=1e-6)
    assert "d/r1_penalty" not in logs2


def test_logistic_g_loss_by_hand():
    D = linear_d()
    fake = torch.full((2, 1, 2, 2), -0.5)   # D(fake) = -1
    loss, logs = LogisticR1Loss().g_loss(D, fake)
    assert loss.item() == pytest.approx(softplus(1.0), rel=1e-6)     # softplus(-D) = ln(1 + e)
    assert logs["g/score_fake"].item() == pytest.approx(-1.0)


def test_wgan_gp_by_hand():
    D = linear_d()
    real = torch.ones(2, 1, 2, 2)
    fake = torch.full((2, 1, 2, 2), 0.25)   # D(fake) = 0.5
    adv = get_adversarial_loss("wgan-gp")
    loss, logs = adv.d_loss(D, real, fake)
    assert loss.item() == pytest.approx(0.5 - 2.0 + 5.0 * 1.0, rel=1e-6)   # paper: lambda_3 = 5
    assert logs["d/grad_penalty"].item() == pytest.approx(1.0)
    g, _ = adv.g_loss(D, fake)
    assert g.item() == pytest.approx(-0.5)
    assert WGANGPLoss(gp_weight=2.0).d_loss(D, real, fake)[0].item() == pytest.approx(0.5)


def test_penalty_is_per_sample_sum_then_batch_mean_and_trains_d():
    class QuadD(torch.nn.Module):        # D(x) = a * sum(x^2): grad = 2 a x
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.tensor(1.5))

        def forward(self, x):
            return self.a * x.square().flatten(1).sum(1)

    D = QuadD()
    real = torch.tensor([[1.0, 2.0], [0.0, 3.0]]).view(2, 1, 1, 2)
    penalty, scores = real_gradient_penalty(D, real)
    # per sample 4 a^2 sum(x^2): sums 5 and 9 -> mean 7 -> 4 * 2.25 * 7 = 63
    assert penalty.item() == pytest.approx(63.0)
    torch.testing.assert_close(scores.detach(), torch.tensor([7.5, 13.5]))
    penalty.backward()                    # d/da (4 a^2 * 7) = 56 a = 84 (needs create_graph)
    assert D.a.grad.item() == pytest.approx(84.0)
    assert not real.requires_grad


def test_d_loss_does_not_backprop_into_fake():
    D = linear_d()
    src = torch.zeros(2, 1, 2, 2, requires_grad=True)
    fake = src * 2
    loss, _ = LogisticR1Loss().d_loss(D, torch.ones(2, 1, 2, 2), fake)
    loss.backward()
    assert src.grad is None and D.w.grad is not None


def test_penalty_under_autocast_is_float32():
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 8), torch.nn.LeakyReLU(0.2),
                            torch.nn.Linear(8, 1))
    real = torch.randn(3, 1, 2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, logs = LogisticR1Loss().d_loss(D, real, torch.randn(3, 1, 2, 2))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    ref, _ = real_gradient_penalty(D, real)
    assert logs["d/r1_penalty"].item() == pytest.approx(ref.item(), rel=0.05)


def test_unknown_adversarial_name_and_bad_args():
    with pytest.raises(ValueError, match=r"valid names: \['logistic-r1', 'wgan-gp'\].*logistic-r1"):
        get_adversarial_loss("logistic_r1")
    with pytest.raises(TypeError, match="r1_gamma"):
        get_adversarial_loss("logistic-r1", gamma=10)
    with pytest.raises(ValueError, match=">= 0"):
        get_adversarial_loss("wgan-gp", gp_weight=-1)


# ----------------------------------------------------------------------------- pixel / encoder

def test_pixel_mse_by_hand():
    assert pixel_mse(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 3.0])).item() == 2.5
    with pytest.raises(ValueError, match="equal shapes"):
        pixel_mse(torch.zeros(2), torch.zeros(3))


def test_encoder_loss_by_hand():
    D = linear_d()
    x = torch.zeros(2, 1, 2, 2)
    x_rec = torch.full((2, 1, 2, 2), 0.5, requires_grad=True)   # D(x_rec) = 1
    loss, logs = encoder_loss(x, x_rec, feat_fn=lambda t: 2 * t, D=D)
    pix = 0.25
    perc = 4 * pix                                              # F = 2 * identity
    adv = softplus(-1.0)
    assert logs["e/pixel"].item() == pytest.approx(pix)
    assert logs["e/perceptual"].item() == pytest.approx(perc)
    assert logs["e/adv"].item() == pytest.approx(adv, rel=1e-6)
    assert loss.item() == pytest.approx(pix + 5e-5 * perc + 0.08 * adv, rel=1e-6)
    loss.backward()
    assert x_rec.grad is not None
    w_loss, w_logs = encoder_loss(x, x_rec, None, D, adv_weight=0.1, adv="wgan-gp")
    assert w_loss.item() == pytest.approx(pix - 0.1 * 1.0, rel=1e-6)
    assert set(w_logs) == {"e/pixel", "e/adv", "e/loss"}


def test_encoder_loss_accepts_perceptual_module(vgg_file):
    loss_fn = VGGPerceptualLoss(weights=vgg_file[0])
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    y = torch.rand(1, 3, 16, 16) * 2 - 1
    _, logs = encoder_loss(x, y, loss_fn, None)
    assert logs["e/perceptual"].item() == pytest.approx(loss_fn(y, x).item(), rel=1e-5)
