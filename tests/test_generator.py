"""StyleGAN v1 generator/discriminator: shapes, published parameter counts, layer identities
checked against independent computations, and input validation."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ghfeat.models import StyleGANDiscriminator, StyleGANGenerator, pack_styles, unpack_styles
from ghfeat.models.layers import (Blur, EqualizedConv2d, EqualizedLinear, instance_norm,
                                  minibatch_stddev, pixel_norm)

TINY = dict(fmap_base=256, fmap_max=32, z_dim=32, w_dim=32, mapping_layers=2)


def tiny_g(resolution=32, **kw):
    torch.manual_seed(0)
    return StyleGANGenerator(resolution, **{**TINY, **kw}).eval()


# --- published parameter counts, computed by hand from the official architecture -------------
def hand_count_generator(res, fmap_base=8192, fmap_max=512, z=512, w=512, depth=8):
    nf = lambda s: min(fmap_base // 2 ** s, fmap_max)  # noqa: E731
    total = z * w + w + (depth - 1) * (w * w + w)            # mapping
    c = nf(1)
    total += c * 16                                           # const
    def layer(cin, cout, k):                                  # conv + noise w + bias + style affine
        return cin * cout * k * k + cout + cout + (w * 2 * cout + 2 * cout)
    total += layer(0, c, 0) + layer(c, c, 3)                  # 4x4: const layer, conv layer
    for r in range(3, int(math.log2(res)) + 1):
        total += layer(nf(r - 2), nf(r - 1), 3) + layer(nf(r - 1), nf(r - 1), 3)
    last = nf(int(math.log2(res)) - 1)
    return total + last * 3 + 3                               # ToRGB


def hand_count_discriminator(res, fmap_base=8192, fmap_max=512):
    nf = lambda s: min(fmap_base // 2 ** s, fmap_max)  # noqa: E731
    log2 = int(math.log2(res))
    total = 3 * nf(log2 - 1) + nf(log2 - 1)                   # FromRGB
    for r in range(log2, 2, -1):
        a, b = nf(r - 1), nf(r - 2)
        total += a * a * 9 + a + a * b * 9 + b
    c = nf(1)
    total += (c + 1) * c * 9 + c + c * 16 * nf(0) + nf(0) + nf(0) + 1
    return total


def test_official_256_config_matches_published_sizes():
    G, D = StyleGANGenerator(256), StyleGANDiscriminator(256)
    assert G.num_layers == 14
    assert G.style_dims == [1024] * 8 + [512] * 2 + [256] * 2 + [128] * 2
    assert sum(G.style_dims) == 9984
    assert G.layer_resolutions == [4, 4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256, 256]
    n_g = sum(p.numel() for p in G.parameters())
    n_d = sum(p.numel() for p in D.parameters())
    assert n_g == hand_count_generator(256)
    assert n_d == hand_count_discriminator(256)
    assert abs(n_g / 1e6 - 26.1) < 0.05          # published: about 26.1M
    assert abs(n_d / 1e6 - 23.1) < 0.1           # published: about 23.1M
    assert sum(p.numel() for p in G.mapping.parameters()) == 8 * (512 * 512 + 512)
    # fused up/down convs exactly at >= 128 px (official 'auto')
    ups = [layer.conv.up for layer in G.synthesis.layers[2::2]]
    assert ups == ["nearest"] * 4 + ["fused"] * 2
    downs = [b.conv1.down for b in D.blocks]
    assert downs == ["fused", "fused", "avgpool", "avgpool", "avgpool", "avgpool"]


@pytest.mark.parametrize("res", [8, 16, 32, 64, 128, 256, 512, 1024])
def test_any_resolution_builds_and_runs(res):
    G = StyleGANGenerator(res, fmap_base=2 * res, fmap_max=8, z_dim=8, w_dim=8, mapping_layers=1).eval()
    D = StyleGANDiscriminator(res, fmap_base=2 * res, fmap_max=8)
    L = 2 * int(math.log2(res)) - 2
    assert G.num_layers == L
    with torch.no_grad():
        img = G(torch.randn(2, 8), randomize_noise=False)
        assert img.shape == (2, 3, res, res) and torch.isfinite(img).all()
        assert D(img).shape == (2, 1)


def test_bad_resolution():
    with pytest.raises(ValueError, match="raise fmap_base"):
        StyleGANGenerator(256, fmap_base=64)
    with pytest.raises(ValueError, match="power of two"):
        StyleGANGenerator(48)
    with pytest.raises(ValueError, match="power of two"):
        StyleGANDiscriminator(4)


# --- layer identities against independent computations --------------------------------------
def test_equalized_linear_scale():
    torch.manual_seed(0)
    lin = EqualizedLinear(16, 4, gain=math.sqrt(2), lr_mul=0.01)
    x = torch.randn(3, 16)
    ref = x.numpy() @ (lin.weight.detach().numpy().T * math.sqrt(2) / 4 * 0.01) + lin.bias.detach().numpy() * 0.01
    np.testing.assert_allclose(lin(x).detach().numpy(), ref, rtol=1e-5, atol=1e-6)
    assert lin.weight.std() > 50  # stored pre-scale: N(0, 1/lr_mul)


def test_blur_impulse_response():
    x = torch.zeros(1, 2, 5, 5)
    x[0, :, 2, 2] = 16.0
    y = Blur()(x)[0, 0].numpy()
    expected = np.zeros((5, 5))
    expected[1:4, 1:4] = np.outer([1, 2, 1], [1, 2, 1])
    np.testing.assert_allclose(y, expected, atol=1e-6)


def test_fused_upconv_is_transposed_conv_semantics():
    """TF conv2d_transpose with the widened kernel == nearest 2x upsampling + conv with the
    spatially flipped 3x3 kernel (independent formulation)."""
    torch.manual_seed(0)
    fused = EqualizedConv2d(4, 5, 3, up="fused", bias=False)
    x = torch.randn(2, 4, 6, 6)
    w = fused.weight.detach() * fused.weight_gain
    ref = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), w.flip(2, 3), padding=1)
    torch.testing.assert_close(fused(x), ref, atol=1e-5, rtol=1e-5)


def test_fused_downconv_is_conv_then_avgpool():
    torch.manual_seed(0)
    fused = EqualizedConv2d(4, 5, 3, down="fused", bias=False)
    x = torch.randn(2, 4, 8, 8)
    w = fused.weight.detach() * fused.weight_gain
    ref = F.avg_pool2d(F.conv2d(x, w, padding=1), 2)
    torch.testing.assert_close(fused(x), ref, atol=1e-5, rtol=1e-5)


def test_norms_against_numpy():
    x = torch.randn(3, 4, 5, 5)
    xn = x.numpy().astype(np.float64)
    c = xn - xn.mean(axis=(2, 3), keepdims=True)
    ref = c / np.sqrt((c ** 2).mean(axis=(2, 3), keepdims=True) + 1e-8)
    np.testing.assert_allclose(instance_norm(x).numpy(), ref, atol=1e-5)
    z = torch.randn(3, 7)
    zn = z.numpy().astype(np.float64)
    np.testing.assert_allclose(pixel_norm(z).numpy(), zn / np.sqrt((zn ** 2).mean(1, keepdims=True) + 1e-8), atol=1e-6)


def test_minibatch_stddev_by_hand():
    x = torch.randn(8, 3, 2, 2)
    out = minibatch_stddev(x, group_size=4)
    assert out.shape == (8, 4, 2, 2)
    xn = x.numpy().astype(np.float64)
    for i in range(8):
        members = [j for j in range(8) if j % 2 == i % 2]       # groups of i % M, M = 8 / 4
        g = xn[members]
        std = np.sqrt(((g - g.mean(0)) ** 2).mean(0) + 1e-8).mean()
        np.testing.assert_allclose(out[i, 3].numpy(), np.full((2, 2), std), rtol=1e-5)
    torch.testing.assert_close(out[:, :3], x)


def test_synthesis_layer_by_hand():
    """Layer 1 (4x4 conv layer) recomputed step by step with torch.nn.functional."""
    G = tiny_g()
    layer = G.synthesis.layers[1]
    x = torch.randn(2, layer.channels, 4, 4)
    w = torch.randn(2, G.w_dim)
    y = layer.style(w)
    with torch.no_grad():
        layer.noise.weight.normal_()
        layer.bias.normal_()
        h = F.conv2d(x, layer.conv.weight * math.sqrt(2) / math.sqrt(layer.conv.weight[0].numel()), padding=1)
        h = h + layer.noise.noise * layer.noise.weight.view(1, -1, 1, 1) + layer.bias.view(1, -1, 1, 1)
        h = F.leaky_relu(h, 0.2)
        h = (h - h.mean((2, 3), keepdim=True)) / torch.sqrt(h.var((2, 3), unbiased=False, keepdim=True) + 1e-8)
        c = layer.channels
        ref = h * (1 + y[:, :c, None, None]) + y[:, c:, None, None]
        torch.testing.assert_close(layer(x, y, randomize_noise=False), ref, atol=1e-4, rtol=1e-4)


# --- inputs: z, w, w+, y, truncation, mixing, noise -------------------------------------------
def test_all_input_kinds_agree():
    G = tiny_g()
    z = torch.randn(3, G.z_dim)
    with torch.no_grad():
        w = G.mapping(z)
        w_plus = w[:, None].repeat(1, G.num_layers, 1)
        a = G.generate(z=z)
        b = G.generate(w=w)
        c = G.generate(w_plus=w_plus)
        ys = G.styles_from_w(w_plus)
        d = G.generate(styles=ys)
        e = G.generate(styles=pack_styles(ys, G.style_dim_max))
        f = G(z, randomize_noise=False)
    for t in (b, c, d, e, f):
        torch.testing.assert_close(a, t)
    assert a.shape == (3, 3, 32, 32)


def test_pack_unpack_tiles_like_official():
    ys = [torch.arange(4.0).view(1, 4), torch.arange(2.0).view(1, 2) + 10]
    packed = pack_styles(ys, 4)
    assert packed.tolist() == [[[0, 1, 2, 3], [10, 11, 10, 11]]]
    back = unpack_styles(packed, [4, 2])
    assert back[1].tolist() == [[10, 11]]


def test_packed_styles_read_only_first_2c_entries():
    G = tiny_g(fmap_base=512, fmap_max=64)  # widths 64,64,...,32 -> style dims differ
    assert len(set(G.style_dims)) > 1
    packed = torch.randn(2, G.num_layers, G.style_dim_max)
    other = packed.clone()
    for i, d in enumerate(G.style_dims):
        other[:, i, d:] = 123.0                       # garbage in the unread tail
    with torch.no_grad():
        torch.testing.assert_close(G.generate(styles=packed), G.generate(styles=other))


def test_truncation_formula():
    G = tiny_g()
    G.w_avg.normal_()
    w_plus = torch.randn(2, G.num_layers, G.w_dim)
    out = G.truncate(w_plus, 0.7, cutoff=3)
    ref = w_plus.clone()
    ref[:, :3] = G.w_avg + 0.7 * (w_plus[:, :3] - G.w_avg)
    torch.testing.assert_close(out, ref)
    with torch.no_grad():  # psi = 0 on all layers -> every sample decodes w_avg
        imgs = G.generate(z=torch.randn(2, G.z_dim), truncation_psi=0.0, truncation_cutoff=G.num_layers)
    torch.testing.assert_close(imgs[0], imgs[1])


def test_w_avg_tracking_and_style_mixing_in_training():
    G = tiny_g(style_mixing_prob=0.0)
    G.train()
    z = torch.randn(4, G.z_dim)
    with torch.no_grad():
        w = G.mapping(z)
        G(z)
    torch.testing.assert_close(G.w_avg, 0.995 * torch.zeros(G.w_dim) + 0.005 * w.mean(0))
    mixed = G.mix(w[:1], w[1:2], crossover=3)
    assert torch.equal(mixed[0, :3], w[0].expand(3, -1)) and torch.equal(mixed[0, 3:], w[1].expand(G.num_layers - 3, -1))
    G2 = tiny_g(style_mixing_prob=1.0)
    G2.train()
    torch.manual_seed(1)
    _, wp = G2(z, return_w=True)
    assert not torch.allclose(wp[:, 0], wp[:, -1])     # two different latents were mixed


def test_noise_modes():
    G = tiny_g()
    for layer in G.synthesis.layers:
        layer.noise.weight.data.fill_(1.0)
    z = torch.randn(2, G.z_dim)
    with torch.no_grad():
        assert torch.equal(G(z, randomize_noise=False), G(z, randomize_noise=False))
        assert not torch.allclose(G(z, randomize_noise=True), G(z, randomize_noise=True))


# --- bad inputs get clear errors ---------------------------------------------------------------
def test_bad_codes():
    G = tiny_g()
    L, D = G.num_layers, G.style_dim_max
    with pytest.raises(ValueError, match=r"\[N, 32\]"):
        G(torch.randn(2, 31))
    with pytest.raises(TypeError, match="floating-point"):
        G(torch.ones(2, 32, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN"):
        G(torch.full((2, 32), float("nan")))
    with pytest.raises(ValueError, match=rf"\[N, {L}, {D}\]"):
        G.generate(styles=torch.randn(2, L - 1, D))
    with pytest.raises(ValueError, match=f"list of {L}"):
        G.generate(styles=[torch.randn(2, d) for d in G.style_dims[:-1]])
    with pytest.raises(ValueError, match=r"layer 2"):
        G.generate(styles=[torch.randn(2, d + (i == 2)) for i, d in enumerate(G.style_dims)])
    with pytest.raises(ValueError, match="exactly one"):
        G.generate(z=torch.randn(1, 32), w=torch.randn(1, 32))
    with pytest.raises(TypeError, match="torch.Tensor"):
        G.generate(w_plus=np.zeros((1, L, 32)))
    with pytest.raises(ValueError, match="discriminator input"):
        StyleGANDiscriminator(32, fmap_base=64, fmap_max=8)(torch.randn(2, 3, 16, 16))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_mismatch_message():
    G = tiny_g()
    with pytest.raises(ValueError, match="move them"):
        G.generate(styles=torch.randn(1, G.num_layers, G.style_dim_max, device="cuda"))


def test_minibatch_stddev_keeps_fp64_and_empty_batch():
    x = torch.randn(8, 3, 2, 2, dtype=torch.float64)
    out = minibatch_stddev(x, group_size=4)
    assert out.dtype == torch.float64
    g = x.reshape(4, 2, 3, 2, 2)
    std = ((g - g.mean(0)).pow(2).mean(0) + 1e-8).sqrt().mean(dim=(1, 2, 3))     # [M]
    torch.testing.assert_close(out[:, 3, 0, 0], std.repeat(4), rtol=1e-12, atol=0)
    assert torch.autograd.gradcheck(lambda t: minibatch_stddev(t, 2), torch.randn(4, 2, 2, 2, dtype=torch.float64,
                                                                                   requires_grad=True))
    assert minibatch_stddev(torch.randn(0, 3, 2, 2)).shape == (0, 4, 2, 2)


def test_finiteness_check_is_switchable_and_at_the_edge(monkeypatch):
    G = tiny_g()
    nan_styles = torch.full((1, G.num_layers, G.style_dim_max), float("nan"))
    with pytest.raises(ValueError, match="validate_inputs"):
        G.generate(styles=nan_styles)
    calls = []
    real = torch.isfinite
    monkeypatch.setattr(torch, "isfinite", lambda t: calls.append(t.shape) or real(t))
    G.generate(z=torch.randn(2, 32))
    G(torch.randn(2, 32))
    assert calls == [(2, 32), (2, 32)]                # z only: never again inside (one sync per call)
    G.validate_inputs = False
    assert not G.synthesis.validate_inputs
    G.generate(styles=nan_styles)                     # no check, no error
    G(torch.randn(2, 32))
    assert len(calls) == 2
    with pytest.raises(ValueError, match=r"\[N, 32\]"):   # shapes are still checked (no sync)
        G(torch.randn(2, 31))
