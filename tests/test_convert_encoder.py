"""Official TF encoder variables -> GHFeatEncoder, checked against an independent NumPy model.

The NumPy reference below is written from the official TF graph (genforce/ghfeat
``training/networks_ghfeat.py``), not from ghfeat: NHWC tensors, TF 'SAME' padding (extra pixel at
the bottom/right), conv + bias -> BN -> ReLU bottlenecks, leaky-ReLU stem, FPN / SAM with biases,
dense on the NCHW-flattened map (the official graph is NCHW). Synthetic random variables use a
ResNet-50 layout with tiny widths; the torch model runs in float64 so tolerances are tight.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ghfeat.convert.tf_encoder import (convert_tf_encoder, convert_tf_encoder_variables,
                                       infer_tf_encoder_config, tf_encoder_state_dict)
from ghfeat.models.encoder import GHFeatEncoder

UNITS = (3, 4, 6, 3)                  # ResNet-50
HIDDEN = (4, 8, 8, 16)                # official filter_list[1:] / 4, shrunk
STEM = 64                             # timm's stem width (fixed)
FPN = 8
SIZE = 128                            # R4 8x8, R5 4x4, R6 2x2 -> heads read 2x2x8 = 32 values
STYLE = [16] * 8 + [8] * 2 + [4] * 2 + [2] * 2
CONFIG = dict(style_dims=STYLE, backbone="resnet50", channels=list(HIDDEN),
              fpn_channels=FPN, input_size=SIZE, official_tf=True)


# ---------------------------------------------------------------- synthetic official variables
def _official_variables(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    v: dict[str, np.ndarray] = {}

    def conv(scope, k, cin, cout, bias):
        v[f"{scope}/weight"] = (rng.standard_normal((k, k, cin, cout)) / math.sqrt(k * k * cin)).astype(np.float32)
        if bias:
            v[f"{scope}/bias"] = (0.1 * rng.standard_normal(cout)).astype(np.float32)

    def bn(scope, c):
        v[f"{scope}/batch_norm/gamma"] = rng.uniform(0.5, 1.0, c).astype(np.float32)
        v[f"{scope}/batch_norm/beta"] = (0.1 * rng.standard_normal(c)).astype(np.float32)
        v[f"{scope}/batch_norm/moving_mean"] = (0.1 * rng.standard_normal(c)).astype(np.float32)
        v[f"{scope}/batch_norm/moving_variance"] = rng.uniform(0.5, 2.0, c).astype(np.float32)

    def bottleneck(scope, cin, hidden):
        for name, (k, a, b) in {"Conva": (1, cin, hidden), "Convb": (3, hidden, hidden),
                                "Convc": (1, hidden, 4 * hidden)}.items():
            conv(f"{scope}/{name}", k, a, b, True)
            bn(f"{scope}/{name}", b)

    conv("Conv0", 7, 3, STEM, False)
    bn("Conv0", STEM)
    cin = STEM
    for s, (n, hidden) in enumerate(zip(UNITS, HIDDEN), start=1):
        for u in range(1, n + 1):
            if u == 1:  # dim_match=False on every stage's first unit
                conv(f"stage{s}_unit1/Shortcut", 1, cin, 4 * hidden, False)
                bn(f"stage{s}_unit1/Shortcut", 4 * hidden)
            bottleneck(f"stage{s}_unit{u}", cin, hidden)
            cin = 4 * hidden
    conv("stage5/Shortcut", 1, cin, cin, False)
    bn("stage5/Shortcut", cin)
    bottleneck("stage5", cin, cin // 4)
    for i, c in zip((3, 4, 5), (4 * HIDDEN[2], 4 * HIDDEN[3], 4 * HIDDEN[3])):
        conv(f"fpn/lconv_{i}", 3, c, FPN, True)
    for i in range(3):
        conv(f"fpn/fconv_{i}", 3, FPN, FPN, True)
        conv(f"fuse_conv_{i}", 3, FPN, FPN, True)
    head_in = FPN * 2 * 2
    for name, dims in (("HighLevel", STYLE[:4]), ("MidLevel", STYLE[4:8]), ("LowLevel", STYLE[8:])):
        v[f"{name}/weight"] = (rng.standard_normal((head_in, sum(dims))) / math.sqrt(head_in)).astype(np.float32)
        v[f"{name}/bias"] = (0.1 * rng.standard_normal(sum(dims))).astype(np.float32)
        bn(name, sum(dims))
    return v


# ---------------------------------------------------------------- NumPy reference (NHWC, TF 'SAME')
def _same_pads(n, k, s):
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def np_conv(x, w, stride=1, bias=None):
    """TF ``conv2d(padding='SAME')``: x [N, H, W, Ci], w [kh, kw, Ci, Co]."""
    n, h, wd, _ = x.shape
    kh, kw = w.shape[:2]
    (t, b), (l, r) = _same_pads(h, kh, stride), _same_pads(wd, kw, stride)
    xp = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    ho, wo = math.ceil(h / stride), math.ceil(wd / stride)
    out = np.zeros((n, ho, wo, w.shape[3]))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride, :]
            out += np.einsum("nhwc,co->nhwo", patch, w[i, j].astype(np.float64))
    return out if bias is None else out + bias


def np_maxpool_same(x, k=3, s=2):
    n, h, w, c = x.shape
    (t, b), (l, r) = _same_pads(h, k, s), _same_pads(w, k, s)
    xp = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=-np.inf)
    ho, wo = math.ceil(h / s), math.ceil(w / s)
    out = np.full((n, ho, wo, c), -np.inf)
    for i in range(k):
        for j in range(k):
            out = np.maximum(out, xp[:, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s, :])
    return out


def np_bn(x, v, scope):
    g, b = v[f"{scope}/batch_norm/gamma"], v[f"{scope}/batch_norm/beta"]
    m, var = v[f"{scope}/batch_norm/moving_mean"], v[f"{scope}/batch_norm/moving_variance"]
    return (x - m) / np.sqrt(var.astype(np.float64) + 1e-5) * g + b


def relu(x):
    return np.maximum(x, 0.0)


def np_stem(x, v):
    y = np_bn(np_conv(x, v["Conv0/weight"], 2), v, "Conv0")
    y = np.maximum(0.2 * y, y)            # leaky ReLU 0.2
    return np_maxpool_same(y)


def np_bottleneck(x, v, scope, stride, projection):
    sc = np_bn(np_conv(x, v[f"{scope}/Shortcut/weight"], stride), v, f"{scope}/Shortcut") if projection else x
    y = relu(np_bn(np_conv(x, v[f"{scope}/Conva/weight"], 1, v[f"{scope}/Conva/bias"]), v, f"{scope}/Conva"))
    y = relu(np_bn(np_conv(y, v[f"{scope}/Convb/weight"], stride, v[f"{scope}/Convb/bias"]), v, f"{scope}/Convb"))
    y = np_bn(np_conv(y, v[f"{scope}/Convc/weight"], 1, v[f"{scope}/Convc/bias"]), v, f"{scope}/Convc")
    return relu(y + sc)


def np_backbone(x, v):
    y = np_stem(x, v)
    res = []
    for s, n in enumerate(UNITS, start=1):
        for u in range(1, n + 1):
            y = np_bottleneck(y, v, f"stage{s}_unit{u}", 2 if (u == 1 and s > 1) else 1, u == 1)
        res.append(y)
    res.append(np_bottleneck(y, v, "stage5", 2, True))
    return res[2:]                       # R4, R5, R6


def np_fpn_sam(feats, v):
    lat = [np_conv(f, v[f"fpn/lconv_{i}/weight"], 1, v[f"fpn/lconv_{i}/bias"]) for i, f in zip((3, 4, 5), feats)]
    up = lambda t: t.repeat(2, axis=1).repeat(2, axis=2)  # noqa: E731  (upscale2d: tile 2x2)
    lat[1] = lat[1] + up(lat[2])
    lat[0] = lat[0] + up(lat[1])
    outs = [np_conv(t, v[f"fpn/fconv_{i}/weight"], 1, v[f"fpn/fconv_{i}/bias"]) for i, t in enumerate(lat)]
    down = lambda t: t.reshape(t.shape[0], t.shape[1] // 2, 2, t.shape[2] // 2, 2, -1).mean(axis=(2, 4))  # noqa: E731
    outs = [down(down(outs[0])), down(outs[1]), outs[2]]   # the official "recurrent downsample"
    fused = [np_conv(t, v[f"fuse_conv_{i}/weight"], 1, v[f"fuse_conv_{i}/bias"]) for i, t in enumerate(outs)]
    return [fused[0] + fused[2], fused[1] + fused[2], fused[2]]


def np_head(f, v, scope):
    flat = f.transpose(0, 3, 1, 2).reshape(f.shape[0], -1)   # the official graph flattens NCHW
    return np_bn(flat @ v[f"{scope}/weight"].astype(np.float64) + v[f"{scope}/bias"], v, scope)


def np_encoder(x, v):
    f4, f5, f6 = np_fpn_sam(np_backbone(x, v), v)
    heads = [np_head(f6, v, "HighLevel"), np_head(f5, v, "MidLevel"), np_head(f4, v, "LowLevel")]
    codes = np.concatenate(heads, axis=1)
    dmax, out, start = max(STYLE), [], 0
    for d in STYLE:                     # official reshape + tf.tile to the widest code
        out.append(np.tile(codes[:, start:start + d], (1, dmax // d)))
        start += d
    return np.stack(out, axis=1)


# ---------------------------------------------------------------- fixtures / helpers
@pytest.fixture(scope="module")
def variables():
    return _official_variables()


@pytest.fixture(scope="module")
def encoder(variables):
    enc = GHFeatEncoder(**CONFIG)
    enc.load_state_dict(tf_encoder_state_dict(variables, enc), strict=True)
    return enc.double().eval()


def nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().permute(0, 2, 3, 1).numpy()


def nchw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))


def close(a, b, tol=1e-6):   # float32 weights, bias folded in float32
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    err = np.abs(a - b).max() / max(np.abs(b).max(), 1e-12)
    assert err < tol, f"relative error {err:.3g}"


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("size", [64, 65])
def test_stem_matches_tf_same(encoder, variables, size):
    x = np.random.default_rng(1).uniform(-1, 1, (2, size, size, 3))
    t = encoder.backbone.trunk
    with torch.no_grad():
        y = t.maxpool(t.act1(t.bn1(t.conv1(nchw(x)))))
    close(nhwc(y), np_stem(x, variables))


def test_stride2_bottleneck_matches(encoder, variables):
    x = np.random.default_rng(2).uniform(0, 1, (2, 10, 10, 4 * HIDDEN[0]))
    with torch.no_grad():
        y = encoder.backbone.trunk.layer2[0](nchw(x))
    ref = np_bottleneck(x, variables, "stage2_unit1", 2, True)
    assert ref.shape[1:3] == (5, 5)
    close(nhwc(y), ref)


def test_neck_matches(encoder, variables):
    rng = np.random.default_rng(3)
    feats = [rng.standard_normal((2, s, s, c)) for s, c in ((8, 4 * HIDDEN[2]), (4, 4 * HIDDEN[3]), (2, 4 * HIDDEN[3]))]
    with torch.no_grad():
        out = encoder.neck([nchw(f) for f in feats])
    for got, ref in zip(out, np_fpn_sam(feats, variables)):
        close(nhwc(got), ref)


def test_head_matches_nchw_flatten(encoder, variables):
    f = np.random.default_rng(4).standard_normal((3, 2, 2, FPN))
    with torch.no_grad():
        got = encoder.heads.low(nchw(f))
    close(got.numpy(), np_head(f, variables, "LowLevel"))


def test_full_encoder_matches(encoder, variables):
    x = np.random.default_rng(5).uniform(-1, 1, (2, SIZE, SIZE, 3))
    with torch.no_grad():
        got = encoder(nchw(x))
    assert got.shape == (2, 14, 16)
    close(got.numpy(), np_encoder(x, variables))


def test_report_and_every_variable_used(variables):
    enc = GHFeatEncoder(**CONFIG)
    state, report = convert_tf_encoder_variables(variables, enc)
    assert set(state) == set(enc.state_dict())
    assert report["num_variables"] == len(variables)
    assert len(report["folded_conv_biases"]) == 3 * (sum(UNITS) + 1)
    assert report["num_tf_parameters"] == sum(a.size for a in variables.values())


def test_unused_missing_and_mismatched_variables_raise(variables):
    enc = GHFeatEncoder(**CONFIG)
    with pytest.raises(ValueError, match="not used.*Extra/weight"):
        convert_tf_encoder_variables({**variables, "Extra/weight": np.zeros(3)}, enc)
    missing = {k: v for k, v in variables.items() if k != "stage3_unit2/Convb/bias"}
    with pytest.raises(ValueError, match="missing TF variable 'stage3_unit2/Convb/bias'"):
        convert_tf_encoder_variables(missing, enc)
    bad = dict(variables, **{"fpn/fconv_1/bias": np.zeros(FPN + 1, np.float32)})
    with pytest.raises(ValueError, match="neck.output.1.bias"):
        convert_tf_encoder_variables(bad, enc)


def test_nhwc_dense_layout_option(variables):
    enc = GHFeatEncoder(**CONFIG)
    w = variables["MidLevel/weight"]                         # rows in NCHW order (c, h, w)
    w_nhwc = w.reshape(FPN, 2, 2, -1).transpose(1, 2, 0, 3).reshape(w.shape)
    state = tf_encoder_state_dict(dict(variables, **{"MidLevel/weight": w_nhwc}), enc, dense_layout="NHWC")
    assert torch.equal(state["heads.mid.fc.weight"], torch.from_numpy(w.T.copy()))


def test_convert_infers_config(variables):
    cfg = infer_tf_encoder_config(variables)
    assert cfg["backbone"] == "resnet50" and cfg["channels"] == list(HIDDEN)
    assert cfg["fpn_channels"] == FPN and cfg["input_size"] == SIZE and cfg["official_tf"]
    assert "style_dims" not in cfg                           # not the official 256 head sizes
    with pytest.raises(ValueError, match="style_dims"):
        convert_tf_encoder(variables)
    enc, report = convert_tf_encoder(variables, style_dims=STYLE, generator_name="stylegan-tiny")
    assert not enc.training and enc.generator_name == "stylegan-tiny"
    assert report["config"]["channels"] == list(HIDDEN)
