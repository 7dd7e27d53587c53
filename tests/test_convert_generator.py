"""Official StyleGAN v1 generator/discriminator weights -> ghfeat, checked against NumPy.

The synthetic files (``_official_fixtures``) have the official names, shapes, layouts and *raw*
(pre-scale) values. The reference below is an independent NumPy transcription of the official TF
graph (NVlabs/stylegan ``training/networks_stylegan.py``, as vendored by genforce/ghfeat): NCHW
activations, ``[kh, kw, in, out]`` kernels, ``tf.nn.conv2d`` 'SAME' padding, ``conv2d_transpose``
as the adjoint of the strided conv, run-time ``gain / sqrt(fan_in) * lrmul`` scaling. It never
calls ghfeat. The converted torch models run in float64, so the tolerances are tight.
"""
from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from _official_fixtures import (FakeNetwork, TinyConfig, encoder_variables_stub, official_pickle_bytes,
                                tf_discriminator_variables, tf_generator_variables, write_encoder_pkl,
                                write_genforce_pth, write_stylegan_pkl, g_network, d_network)
from ghfeat.convert import api as convert_api
from ghfeat.convert.cli import convert_main
from ghfeat.convert.genforce import read_genforce_checkpoint
from ghfeat.convert.stylegan_tf import convert_tf_discriminator, convert_tf_generator
from ghfeat.convert.tfpickle import UnsafePickleError, loads_tf_pickle, read_tf_pickle

SQRT2 = np.sqrt(2.0)
CFG32 = TinyConfig(resolution=32)                                        # nearest-up / avg-pool path
CFG128 = TinyConfig(resolution=128, fmap_base=64, fmap_max=8, z_dim=6, w_dim=6, mapping_layers=2)  # fused


# ============================================================ NumPy reference (TF conventions)
def lrelu(x):
    return np.maximum(x, 0.2 * x)


def scaled(w, gain, lrmul=1.0):
    """``get_weight``: raw variable * gain / sqrt(fan_in) * lrmul, fan_in = prod(shape[:-1])."""
    return w.astype(np.float64) * (gain / np.sqrt(np.prod(w.shape[:-1])) * lrmul)


def dense(x, w, b, gain, lrmul=1.0):
    """``dense`` + ``apply_bias``; x is flattened in NCHW order like ``tf.reshape`` of an NCHW tensor."""
    return x.reshape(x.shape[0], -1) @ scaled(w, gain, lrmul) + b.astype(np.float64) * lrmul


def tf_same(size, k, s):
    """TF 'SAME': out = ceil(size / s), total pad = max((out-1)*s + k - size, 0), extra pixel after."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def conv_same(x, k):
    """``tf.nn.conv2d(x, k, strides 1, 'SAME', NCHW)``, k ``[kh, kw, in, out]`` (cross-correlation)."""
    kh, kw = k.shape[:2]
    n, _, h, w = x.shape
    _, pt, pb = tf_same(h, kh, 1)
    _, pl, pr = tf_same(w, kw, 1)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    out = np.zeros((n, k.shape[3], h, w))
    for a in range(kh):
        for b in range(kw):
            out += np.einsum("nchw,co->nohw", xp[:, :, a:a + h, b:b + w], k[a, b])
    return out


def conv_stride2_same(x, k):
    """``tf.nn.conv2d`` with stride 2, 'SAME', written as an explicit loop over output pixels."""
    kh, kw = k.shape[:2]
    n, _, h, w = x.shape
    oh, pt, pb = tf_same(h, kh, 2)
    ow, pl, pr = tf_same(w, kw, 2)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    out = np.zeros((n, k.shape[3], oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = np.einsum("ncab,abco->no", xp[:, :, 2 * i:2 * i + kh, 2 * j:2 * j + kw], k)
    return out


def conv_transpose_stride2_same(x, k):
    """``tf.nn.conv2d_transpose(x, k, [N, out, 2H, 2W], strides 2, 'SAME')``, k ``[kh, kw, out, in]``:
    the gradient (adjoint) of :func:`conv_stride2_same` on a 2H x 2W input. Each input pixel
    scatters ``k`` into the padded output (explicit loop)."""
    kh, kw = k.shape[:2]
    n, _, h, w = x.shape
    oh, ow = 2 * h, 2 * w
    _, pt, pb = tf_same(oh, kh, 2)
    _, pl, pr = tf_same(ow, kw, 2)
    yp = np.zeros((n, k.shape[2], oh + pt + pb, ow + pl + pr))
    for i in range(h):
        for j in range(w):
            yp[:, :, 2 * i:2 * i + kh, 2 * j:2 * j + kw] += np.einsum("nc,aboc->noab", x[:, :, i, j], k)
    return yp[:, :, pt:pt + oh, pl:pl + ow]


def widen(w):
    """Official fused-scale kernel trick: pad by 1 and add the four 1-pixel shifts."""
    wp = np.pad(w, ((1, 1), (1, 1), (0, 0), (0, 0)))
    return wp[1:, 1:] + wp[:-1, 1:] + wp[1:, :-1] + wp[:-1, :-1]


def upscale2d(x):
    return x.repeat(2, axis=2).repeat(2, axis=3)


def downscale2d(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def blur2d(x):
    f = np.outer([1.0, 2.0, 1.0], [1.0, 2.0, 1.0])
    f /= f.sum()
    c = x.shape[1]
    k = np.zeros((3, 3, c, c))
    for ch in range(c):
        k[:, :, ch, ch] = f                           # depthwise
    return conv_same(x, k)


def pixel_norm(x):
    return x / np.sqrt(np.mean(x ** 2, axis=1, keepdims=True) + 1e-8)


def instance_norm(x):
    x = x - x.mean(axis=(2, 3), keepdims=True)
    return x / np.sqrt(np.mean(x ** 2, axis=(2, 3), keepdims=True) + 1e-8)


def minibatch_stddev(x, group_size=4):
    """Explicit-loop version of ``minibatch_stddev_layer`` (1 feature): sample n = g*M + m is in
    group m with the samples m, M + m, 2M + m, ... (the [G, M, ...] reshape)."""
    n = x.shape[0]
    g = min(group_size, n)
    m_count = n // g
    feat = np.empty((n, 1) + x.shape[2:])
    for s in range(n):
        members = x[[s % m_count + gi * m_count for gi in range(g)]]
        std = np.sqrt(((members - members.mean(axis=0)) ** 2).mean(axis=0) + 1e-8)
        feat[s] = std.mean()
    return np.concatenate([x, feat], axis=1)


def f64(variables):
    """All reference arithmetic in float64 (the raw variables are float32)."""
    return {k: np.asarray(v, np.float64) for k, v in variables.items()}


def np_mapping(mv, z, cfg):
    mv = f64(mv)
    x = pixel_norm(z.astype(np.float64))
    for i in range(cfg.mapping_layers):
        x = lrelu(dense(x, mv[f"Dense{i}/weight"], mv[f"Dense{i}/bias"], SQRT2, cfg.mapping_lrmul))
    return x


def np_synthesis(sv, dlatents, cfg):
    """``G_synthesis`` at lod 0 with stored noise (randomize_noise=False). Returns (image, per-layer outputs)."""
    sv = f64(sv)
    def epilogue(x, scope, i):
        x = x + sv[f"noise{i}"] * sv[f"{scope}/Noise/weight"].reshape(1, -1, 1, 1)
        x = lrelu(x + sv[f"{scope}/bias"].reshape(1, -1, 1, 1))
        x = instance_norm(x)
        style = dense(dlatents[:, i], sv[f"{scope}/StyleMod/weight"], sv[f"{scope}/StyleMod/bias"], 1.0)
        style = style.reshape(-1, 2, x.shape[1], 1, 1)
        return x * (style[:, 0] + 1) + style[:, 1]

    n = dlatents.shape[0]
    x = epilogue(np.tile(sv["4x4/Const/const"].astype(np.float64), (n, 1, 1, 1)), "4x4/Const", 0)
    acts = [x]
    x = epilogue(conv_same(x, scaled(sv["4x4/Conv/weight"], SQRT2)), "4x4/Conv", 1)
    acts.append(x)
    for res_log2 in range(3, cfg.log2 + 1):
        r = 2 ** res_log2
        w = scaled(sv[f"{r}x{r}/Conv0_up/weight"], SQRT2)
        if x.shape[2] * 2 >= 128:                   # fused_scale='auto'
            y = conv_transpose_stride2_same(x, widen(w.transpose(0, 1, 3, 2)))
        else:
            y = conv_same(upscale2d(x), w)
        x = epilogue(blur2d(y), f"{r}x{r}/Conv0_up", 2 * res_log2 - 4)
        acts.append(x)
        x = epilogue(conv_same(x, scaled(sv[f"{r}x{r}/Conv1/weight"], SQRT2)), f"{r}x{r}/Conv1", 2 * res_log2 - 3)
        acts.append(x)
    img = conv_same(x, scaled(sv["ToRGB_lod0/weight"], 1.0)) + sv["ToRGB_lod0/bias"].reshape(1, -1, 1, 1)
    return img, acts


def np_generator(gv, z, cfg, psi=0.7, cutoff=8):
    """``G_style`` (eval): mapping, broadcast, truncation toward dlatent_avg, synthesis."""
    L = 2 * cfg.log2 - 2
    w = np_mapping(gv["G_mapping"], z, cfg)
    dl = np.repeat(w[:, None], L, axis=1)
    coefs = np.where(np.arange(L)[None, :, None] < cutoff, psi, 1.0)
    avg = gv["G"]["dlatent_avg"].astype(np.float64)
    dl = avg + (dl - avg) * coefs
    return np_synthesis(gv["G_synthesis"], dl, cfg)


def np_discriminator(dv, img, cfg, group_size=4):
    """``D_basic`` at lod 0. Returns (scores, features after the blocks, after mbstd)."""
    dv = f64(dv)
    x = lrelu(conv_same(img, scaled(dv["FromRGB_lod0/weight"], SQRT2)) + dv["FromRGB_lod0/bias"].reshape(1, -1, 1, 1))
    for res_log2 in range(cfg.log2, 2, -1):
        r = 2 ** res_log2
        x = lrelu(conv_same(x, scaled(dv[f"{r}x{r}/Conv0/weight"], SQRT2)) + dv[f"{r}x{r}/Conv0/bias"].reshape(1, -1, 1, 1))
        x = blur2d(x)
        w = scaled(dv[f"{r}x{r}/Conv1_down/weight"], SQRT2)
        if x.shape[2] >= 128:                       # fused_scale='auto'
            x = conv_stride2_same(x, widen(w) * 0.25)
        else:
            x = downscale2d(conv_same(x, w))
        x = lrelu(x + dv[f"{r}x{r}/Conv1_down/bias"].reshape(1, -1, 1, 1))
    blocks_out = x
    x = minibatch_stddev(x, group_size)
    mbstd = x
    x = lrelu(conv_same(x, scaled(dv["4x4/Conv/weight"], SQRT2)) + dv["4x4/Conv/bias"].reshape(1, -1, 1, 1))
    x = lrelu(dense(x, dv["4x4/Dense0/weight"], dv["4x4/Dense0/bias"], SQRT2))
    return dense(x, dv["4x4/Dense1/weight"], dv["4x4/Dense1/bias"], 1.0), blocks_out, mbstd


def close(ours, ref, tol=1e-9):
    ours = ours.detach().double().numpy() if isinstance(ours, torch.Tensor) else ours
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(ours, ref, rtol=tol * 10, atol=tol * scale)


# ============================================================ fixtures
@pytest.fixture(scope="module", params=[CFG32, CFG128], ids=["32px", "128px-fused"])
def official(request, tmp_path_factory):
    cfg = request.param
    path = tmp_path_factory.mktemp("official") / f"stylegan-tiny-{cfg.resolution}.pkl"
    s = write_stylegan_pkl(path, cfg, seed=cfg.resolution)
    nets = read_tf_pickle(path)
    G = convert_tf_generator(nets[2], "Gs").build().double()
    D = convert_tf_discriminator(nets[1], "D").build().double()
    return s, nets, G, D


# ============================================================ the restricted reader
def test_reader_returns_official_structure(official):
    s, nets, _, _ = official
    assert [n["name"] for n in nets] == ["G", "D", "Gs"]
    Gs = nets[2]
    assert set(Gs["components"]) == {"mapping", "synthesis"}
    assert Gs["build_func_name"].endswith("G_style") and Gs["version"] == 3
    assert "build_module_src" not in Gs
    # flattened like TF's Network.vars: own names + "<component name>/<name>"
    assert "G_mapping/Dense0/weight" in Gs["variables"] and "dlatent_avg" in Gs["variables"]
    assert "G_synthesis/4x4/Const/const" in Gs["variables"]
    np.testing.assert_array_equal(Gs["components"]["synthesis"]["own_variables"]["noise0"],
                                  s.Gs["G_synthesis"]["noise0"])
    assert Gs["static_kwargs"]["resolution"] == s.cfg.resolution


@pytest.mark.parametrize("protocol,numpy_names", [(2, "1.x"), (4, "2.x"), (5, "2.x")])
def test_reader_accepts_other_protocols_and_numpy_names(protocol, numpy_names):
    cfg = CFG32
    gv = tf_generator_variables(cfg)
    data = official_pickle_bytes((g_network(cfg, gv, "Gs"),), protocol, numpy_names)
    (net,) = loads_tf_pickle(data)
    np.testing.assert_array_equal(net["components"]["mapping"]["own_variables"]["Dense1/bias"],
                                  gv["G_mapping"]["Dense1/bias"])


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(UnsafePickleError, match=r"refusing to load global '(posix|os|nt)\.system'"):
        loads_tf_pickle(pickle.dumps(_Evil(marker), protocol=4))
    # hidden inside an otherwise official-looking network (static kwargs)
    gv = tf_generator_variables(CFG32)
    net = FakeNetwork("Gs", "G_style", {"resolution": 32, "payload": _Evil(marker)}, gv["G"])
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        loads_tf_pickle(official_pickle_bytes((net,)))
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        loads_tf_pickle(b"\x80\x04cbuiltins\neval\n\x8c\x011\x85R.")
    assert not marker.exists()


def test_truncated_corrupt_and_wrong_structure_give_clear_errors(tmp_path, official):
    s, _, _, _ = official
    data = s.path.read_bytes()
    bad = tmp_path / "stylegan-ffhq-256.pkl"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_tf_pickle(bad)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        loads_tf_pickle(b"\x80\x04garbage")
    bad.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        convert_api.convert(bad, out=tmp_path / "o")
    with pytest.raises(ValueError, match="tuple of dnnlib Networks"):
        loads_tf_pickle(pickle.dumps({"G": 1}, protocol=4))
    no_vars = FakeNetwork("G", "G_style", {}, {})
    del no_vars._state["variables"]
    with pytest.raises(ValueError, match="lacks \\['variables'\\]"):
        loads_tf_pickle(official_pickle_bytes((no_vars,)))
    with pytest.raises(FileNotFoundError):
        read_tf_pickle(tmp_path / "missing.pkl")


# ============================================================ generator vs NumPy
def _hooked_layers(G):
    outs = []
    hooks = [layer.register_forward_hook(lambda m, i, o: outs.append(o)) for layer in G.synthesis.layers]  # -> None
    return outs, hooks


def test_mapping_matches_numpy(official):
    s, _, G, _ = official
    z = np.random.default_rng(0).standard_normal((3, s.cfg.z_dim))
    close(G.mapping(torch.from_numpy(z)), np_mapping(s.Gs["G_mapping"], z, s.cfg))
    close(G.w_avg, s.Gs["G"]["dlatent_avg"].astype(np.float64))


def test_every_synthesis_layer_and_torgb_match_numpy(official):
    """(b) const 4x4 layer, plain convs, nearest-up layers (32 px) and fused conv2d_transpose
    layers (128 px, layers 10-11), (d) ToRGB: every layer output is compared."""
    s, _, G, _ = official
    L = G.num_layers
    rng = np.random.default_rng(1)
    w_plus = rng.standard_normal((2, L, s.cfg.w_dim))
    ref_img, ref_acts = np_synthesis(s.Gs["G_synthesis"], w_plus, s.cfg)
    outs, hooks = _hooked_layers(G)
    with torch.no_grad():
        img = G.synthesis(w_plus=torch.from_numpy(w_plus), randomize_noise=False)
    for h in hooks:
        h.remove()
    assert len(outs) == len(ref_acts) == L
    for i, (o, r) in enumerate(zip(outs, ref_acts)):
        assert tuple(o.shape) == r.shape, i
        close(o, r)
    close(img, ref_img)
    if s.cfg.resolution >= 128:
        assert G.synthesis.layers[L - 2].conv.up == "fused"


def test_generator_z_to_image_with_truncation_matches_numpy(official):
    s, _, G, _ = official
    z = np.random.default_rng(2).standard_normal((2, s.cfg.z_dim))
    ref, _ = np_generator(s.Gs, z, s.cfg, psi=0.7, cutoff=8)
    with torch.no_grad():
        img = G.generate(z=torch.from_numpy(z), truncation_psi=0.7, randomize_noise=False)
    close(img, ref)


def test_conv2d_transpose_reference_is_the_adjoint_of_the_strided_conv():
    """(c) the NumPy conv2d_transpose used above is TF's: the adjoint of conv2d(stride 2, SAME)."""
    rng = np.random.default_rng(3)
    k = rng.standard_normal((4, 4, 3, 2))                     # conv: 3 -> 2 channels
    y = rng.standard_normal((2, 3, 6, 6))
    x = rng.standard_normal((2, 2, 3, 3))
    lhs = np.sum(conv_stride2_same(y, k) * x)
    rhs = np.sum(y * conv_transpose_stride2_same(x, k))      # filter [kh, kw, out=3, in=2]
    assert abs(lhs - rhs) < 1e-9 * max(1.0, abs(lhs))
    # and a single input pixel scatters the kernel centred on its 2x2 output block, offset -1
    x1 = np.zeros((1, 1, 3, 3))
    x1[0, 0, 1, 1] = 1.0
    k1 = rng.standard_normal((4, 4, 1, 1))
    out = conv_transpose_stride2_same(x1, k1)[0, 0]
    np.testing.assert_allclose(out[1:5, 1:5], k1[:, :, 0, 0])
    assert np.count_nonzero(out) == 16


def test_which_G_takes_the_training_generator(official):
    s, nets, _, _ = official
    G = convert_tf_generator(nets[0], "G").build()
    torch.testing.assert_close(G.mapping.layers[0].weight, torch.from_numpy(s.G["G_mapping"]["Dense0/weight"].T))
    assert not torch.equal(G.mapping.layers[0].weight,
                           torch.from_numpy(s.Gs["G_mapping"]["Dense0/weight"].T))


def test_generator_config_and_ignored_report(official):
    s, nets, G, _ = official
    conv = convert_tf_generator(nets[2], "Gs")
    cfg = s.cfg
    assert conv.config["resolution"] == cfg.resolution
    assert (conv.config["z_dim"], conv.config["w_dim"], conv.config["mapping_layers"]) == \
        (cfg.z_dim, cfg.w_dim, cfg.mapping_layers)
    assert [layer.channels for layer in G.synthesis.layers] == \
        [cfg.nf(1)] * 2 + [cfg.nf(r - 1) for r in range(3, cfg.log2 + 1) for _ in range(2)]
    skipped = {i.split(" ")[0] for i in conv.ignored}
    assert skipped == {"Gs/lod", "Gs/G_synthesis/lod"} | {
        f"Gs/G_synthesis/ToRGB_lod{k}/{v}" for k in range(1, cfg.log2 - 1) for v in ("weight", "bias")}


# ============================================================ discriminator vs NumPy
def test_discriminator_matches_numpy(official):
    """(e) FromRGB, conv blocks (avg-pool at 32 px, fused strided conv at 128 px), minibatch
    stddev (groups of 4 with the official [G, M] layout), 4x4 conv and both dense layers."""
    s, _, _, D = official
    n = 8 if s.cfg.resolution <= 32 else 4
    img = np.random.default_rng(4).standard_normal((n, 3, s.cfg.resolution, s.cfg.resolution))
    ref, ref_blocks, ref_mbstd = np_discriminator(s.D, img, s.cfg)
    captured = {}
    h = D.conv.register_forward_pre_hook(lambda m, i: captured.update(mbstd=i[0]))  # returns None
    with torch.no_grad():
        score = D(torch.from_numpy(img))
    h.remove()
    close(captured["mbstd"], ref_mbstd)
    close(captured["mbstd"][:, :-1], ref_blocks)
    close(score, ref)
    assert score.shape == (n, 1)


def test_discriminator_ignored_report(official):
    s, nets, _, _ = official
    conv = convert_tf_discriminator(nets[1], "D")
    skipped = {i.split(" ")[0] for i in conv.ignored}
    assert skipped == {"D/lod"} | {f"D/FromRGB_lod{k}/{v}" for k in range(1, s.cfg.log2 - 1) for v in ("weight", "bias")}


# ============================================================ strictness of the TF converter
def _gs_net(cfg=CFG32, mutate=None, static=None):
    gv = tf_generator_variables(cfg)
    if mutate:
        mutate(gv)
    net = g_network(cfg, gv, "Gs")
    if static:
        for n in (net, net._state["components"]["synthesis"]):
            n._state["static_kwargs"].update(static)
    (parsed,) = loads_tf_pickle(official_pickle_bytes((net,)))
    return parsed


def test_unmatched_missing_and_unsupported_variables_are_errors():
    with pytest.raises(ValueError, match="match no ghfeat parameter.*8x8/Conv1/Extra/weight"):
        convert_tf_generator(_gs_net(mutate=lambda gv: gv["G_synthesis"].__setitem__(
            "8x8/Conv1/Extra/weight", np.zeros(3, np.float32))))
    with pytest.raises(ValueError, match="'8x8/Conv1/StyleMod/bias' is missing"):
        convert_tf_generator(_gs_net(mutate=lambda gv: gv["G_synthesis"].pop("8x8/Conv1/StyleMod/bias")))
    with pytest.raises(ValueError, match="progressive"):
        convert_tf_generator(_gs_net(mutate=lambda gv: gv["G_synthesis"].__setitem__("lod", np.float32(1.0))))
    with pytest.raises(ValueError, match="use_pixel_norm=True"):
        convert_tf_generator(_gs_net(static={"use_pixel_norm": True}))
    with pytest.raises(ValueError, match="do not follow the StyleGAN rule"):
        convert_tf_generator(_gs_net(mutate=lambda gv: gv["G_synthesis"].__setitem__(
            "8x8/Conv1/bias", np.zeros(5, np.float32))))
    with pytest.raises(ValueError, match=r"8x8/Conv1/weight converts to synthesis.layers.3.conv.weight .* needs"):
        convert_tf_generator(_gs_net(mutate=lambda gv: gv["G_synthesis"].__setitem__(
            "8x8/Conv1/weight", np.zeros((3, 3, 16, 7), np.float32))))
    dv = tf_discriminator_variables(CFG32)
    dv["4x4/Dense1/weight"] = np.zeros((CFG32.nf(0), 10), np.float32)     # conditional D (labels)
    (d,) = loads_tf_pickle(official_pickle_bytes((d_network(CFG32, dv),)))
    with pytest.raises(ValueError, match="dense1"):
        convert_tf_discriminator(d)


def test_static_fused_scale_is_honoured():
    net = _gs_net(static={"fused_scale": True})
    G = convert_tf_generator(net).build()
    assert all(layer.conv.up == "fused" for layer in G.synthesis.layers[2::2])


# ============================================================ genforce .pth
def test_genforce_pth_equals_tf_path(official, tmp_path):
    s, nets, G_tf, D_tf = official
    pth = write_genforce_pth(tmp_path / "stylegan_tiny.pth", s)
    res = convert_api.convert(pth, out=tmp_path / "out", install=False)
    assert res["format"] == "genforce-pth"
    G, D = res["models"]["generator"].double(), res["models"]["discriminator"].double()
    for a, b in ((G, G_tf), (D, D_tf)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), k
    assert any("blur.kernel" in i for i in res["networks"]["generator"]["ignored"])
    z = torch.from_numpy(np.random.default_rng(5).standard_normal((2, s.cfg.z_dim)))
    with torch.no_grad():
        torch.testing.assert_close(G.generate(z=z), G_tf.generate(z=z), rtol=0, atol=0)
    # the genforce generator (not smooth) maps to which="G"
    res_g = convert_api.convert(pth, out=None, install=False, which="G")
    torch.testing.assert_close(res_g["models"]["generator"].mapping.layers[0].weight,
                               torch.from_numpy(s.G["G_mapping"]["Dense0/weight"].T))


def test_genforce_training_checkpoint_layout_and_errors(official, tmp_path):
    s, _, _, _ = official
    pth = write_genforce_pth(tmp_path / "ckpt.pth", s, wrap_models=True)
    assert set(read_genforce_checkpoint(pth)) == {"generator", "generator_smooth", "discriminator"}
    # a checkpoint that needs code to unpickle is refused, and nothing runs
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"generator": _Evil(marker)}, evil)
    with pytest.raises(pickle.UnpicklingError, match="needs code"):
        read_genforce_checkpoint(evil)
    assert not marker.exists()
    # truncated
    data = pth.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_genforce_checkpoint(cut)
    # an unknown key, and a blur kernel that is not [1, 2, 1]
    state = torch.load(pth, weights_only=True)["models"]
    state["generator_smooth"]["synthesis.layer2.extra"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match="synthesis.layer2.extra"):
        convert_api.convert(tmp_path / "extra.pth", install=False)
    del state["generator_smooth"]["synthesis.layer2.extra"]
    state["discriminator"]["layer1.blur.kernel"] = state["discriminator"]["layer1.blur.kernel"] * 2
    torch.save(state, tmp_path / "blur.pth")
    with pytest.raises(ValueError, match="blur"):
        convert_api.convert(tmp_path / "blur.pth", install=False)


# ============================================================ convert() / CLI
def test_convert_out_folders_round_trip(official, tmp_path):
    import ghfeat

    s, _, G_ref, D_ref = official
    res = convert_api.convert(s.path, out=tmp_path / "hub", name="unit-test")
    assert res["format"] == "tf-stylegan" and len(res["sha256"]) == 64
    assert set(res["networks"]) == {"generator", "discriminator"}
    assert res["networks"]["generator"]["name"] == "stylegan-unit-test"
    G = ghfeat.load_model(tmp_path / "hub" / "generator").double()
    D = ghfeat.load_model(tmp_path / "hub" / "discriminator").double()
    w = torch.from_numpy(np.random.default_rng(6).standard_normal((2, s.cfg.w_dim)))
    torch.testing.assert_close(G.generate(w=w), G_ref.generate(w=w))
    x = torch.from_numpy(np.random.default_rng(7).standard_normal((4, 3, s.cfg.resolution, s.cfg.resolution)))
    torch.testing.assert_close(D(x), D_ref(x))


def test_convert_installs_into_cache_and_checks_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("GHFEAT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "stylegan-tiny-32.pkl"
    write_stylegan_pkl(path, CFG32)
    res = convert_api.convert(path, name="convtest32")
    for kind in ("generator", "discriminator"):
        p = res["networks"][kind]["path"]
        assert p.startswith(str(tmp_path / "cache" / kind / "stylegan-convtest32"))
    # "tiny32" is registered with another architecture: installing under it must fail
    with pytest.raises(ValueError, match="registered generator 'stylegan-tiny32'"):
        convert_api.convert(path, name="tiny32")
    assert not (tmp_path / "cache" / "discriminator" / "stylegan-tiny32").exists()   # nothing written
    with pytest.raises(ValueError, match="pass name="):
        convert_api.convert(path)            # name cannot be read off "stylegan-tiny-32.pkl"


def test_default_names_follow_the_official_files():
    assert convert_api.default_tag("stylegan-ffhq-256.pkl") == "ffhq256"
    assert convert_api.default_tag("/x/stylegan-bedrooms-256.pkl") == "bedroom256"
    assert convert_api.default_tag("ghfeat-encoder-tower-256.pkl") == "tower256"
    assert convert_api.registry_names("stylegan-ffhq256") == convert_api.registry_names("ffhq256") == {
        "encoder": "ffhq256", "generator": "stylegan-ffhq256", "discriminator": "stylegan-ffhq256"}


def test_encoder_pickle_routes_E_to_the_encoder_converter(tmp_path, monkeypatch):
    import ghfeat.convert.tf_encoder as tf_encoder

    seen = {}

    def fake_convert(variables, **config):
        seen.update(variables=dict(variables), config=config)
        enc = torch.nn.Linear(1, 1)
        enc.config = {"fake": True}
        return enc, {"num_tensors": 2}

    monkeypatch.setattr(tf_encoder, "convert_tf_encoder", fake_convert)
    ev = encoder_variables_stub()
    path = tmp_path / "ghfeat-encoder-tiny-32.pkl"
    s = write_encoder_pkl(path, CFG32, ev)
    res = convert_api.convert(path, name="enc32", install=False)
    assert res["format"] == "tf-ghfeat-encoder"
    assert list(res["models"]) == ["encoder", "generator", "discriminator"]
    np.testing.assert_array_equal(seen["variables"]["Conv0/weight"], ev["Conv0/weight"])
    assert seen["config"]["style_dims"] == res["models"]["generator"].style_dims
    assert seen["config"]["generator_name"] == "stylegan-enc32"
    torch.testing.assert_close(res["models"]["generator"].w_avg, torch.from_numpy(s.Gs["G"]["dlatent_avg"]))


def test_cli_summary_and_error(official, tmp_path, capsys):
    s, _, _, _ = official
    assert convert_main([str(s.path), "--out", str(tmp_path / "o"), "--name", "clitest"]) == 0
    out = capsys.readouterr().out
    assert "generator" in out and "stylegan-clitest" in out and "progressive-growing" in out
    assert (tmp_path / "o" / "generator" / "model.safetensors").is_file()
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps(_Evil(tmp_path / "pwned"), protocol=4))
    assert convert_main([str(bad), "--out", str(tmp_path / "o2")]) == 2
    assert "refusing to load global" in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists()


def test_encoder_pickle_end_to_end(tmp_path):
    """(E, G, D, Gs) through the real encoder converter: E pairs with the converted Gs and the three
    Hub folders load back. E's variables come from the encoder converter's own test (tiny ResNet-50
    heads sized for a 256 px generator with [16]*8 + [8]*2 + [4]*2 + [2]*2 style dims)."""
    import ghfeat

    enc_test = pytest.importorskip("test_convert_encoder")
    cfg = TinyConfig(resolution=256, fmap_base=128, fmap_max=8, z_dim=8, w_dim=8, mapping_layers=2)
    path = tmp_path / "ghfeat-encoder-ffhq-256.pkl"
    write_encoder_pkl(path, cfg, enc_test._official_variables())
    res = convert_api.convert(path, name="e2e256", out=tmp_path / "hub")
    assert [res["networks"][k]["name"] for k in ("encoder", "generator", "discriminator")] == \
        ["e2e256", "stylegan-e2e256", "stylegan-e2e256"]
    E = ghfeat.load_model(tmp_path / "hub" / "encoder")
    G = ghfeat.load_model(tmp_path / "hub" / "generator")
    assert E.generator_name == "stylegan-e2e256" and list(E.config["style_dims"]) == G.style_dims
    x = torch.rand(2, 3, E.config["input_size"], E.config["input_size"]) * 2 - 1
    with torch.no_grad():
        y = E(x)
        torch.testing.assert_close(y, res["models"]["encoder"](x))
        img = G.synthesis(styles=y)
    assert img.shape == (2, 3, 256, 256) and torch.isfinite(img).all()
