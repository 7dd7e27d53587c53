"""GHFeatEncoder: shapes, head split rule, packing, input checks, save/load, parameter counts."""
from __future__ import annotations

import pytest
import torch

import ghfeat.models.encoder_zoo as encoder_zoo
from ghfeat._io import load_model, save_model
from ghfeat._registry import get_entry, list_models
from ghfeat.models.encoder import OFFICIAL_256_STYLE_DIMS, GHFeatEncoder, split_layers
from ghfeat.models.generator import unpack_styles

TINY_256 = dict(style_dims=OFFICIAL_256_STYLE_DIMS, backbone="resnet50", channels=[4, 8, 8, 16],
                fpn_channels=8, official_tf=True)


def images(n, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


def build(name, **overrides):
    return get_entry("encoder", name).builder(**overrides)


# ------------------------------------------------------------------ head split rule
def test_split_official_14_layers():
    assert split_layers(14) == (4, 4, 6)
    enc = GHFeatEncoder(**TINY_256)
    assert [list(r) for r in enc.heads.layer_ranges] == [[0, 1, 2, 3], [4, 5, 6, 7], list(range(8, 14))]
    assert [sum(g) for g in enc.heads.groups] == [4096, 4096, 1792]          # official FC widths


@pytest.mark.parametrize("layers,expected", [(6, (2, 2, 2)), (8, (2, 2, 4)), (10, (4, 4, 2)),
                                             (12, (4, 4, 4)), (16, (4, 4, 8)), (18, (4, 4, 10)), (7, (2, 2, 3))])
def test_split_other_generators(layers, expected):
    split = split_layers(layers)
    assert split == expected and sum(split) == layers and min(split) >= 1


def test_split_rejects_too_few_layers_and_bad_override():
    with pytest.raises(ValueError, match="at least 5 layers"):
        split_layers(4)
    with pytest.raises(ValueError, match="layers_per_head"):
        build("tiny32", layers_per_head=[2, 2, 2])
    enc = build("tiny32", layers_per_head=[1, 3, 4])
    assert [len(r) for r in enc.heads.layer_ranges] == [1, 3, 4]


# ------------------------------------------------------------------ shapes and packing
def test_256_layout_shapes_and_tiling():
    enc = GHFeatEncoder(**TINY_256).eval()
    x = images(2, 256)
    with torch.no_grad():
        r4, r5, r6 = enc.forward_features(x)
        packed, layers = enc(x), enc.forward_layers(x)
    assert [t.shape[-1] for t in (r4, r5, r6)] == [16, 8, 4] and enc.head_size == 4
    assert packed.shape == (2, 14, 1024) and enc.style_dim_max == 1024 and enc.num_layers == 14
    assert [t.shape[1] for t in layers] == OFFICIAL_256_STYLE_DIMS
    for i, (y, d) in enumerate(zip(layers, OFFICIAL_256_STYLE_DIMS)):
        assert torch.equal(packed[:, i, :d], y)
        for k in range(1024 // d):                      # narrower codes tiled: [y, y, ...]
            assert torch.equal(packed[:, i, k * d:(k + 1) * d], y)
    for a, b in zip(unpack_styles(packed, enc.style_dims), layers):
        assert torch.equal(a, b)


def test_mnist32_config():
    enc = build("mnist32").eval()
    gen_dims = list(encoder_zoo.generator_style_dims("stylegan-mnist32"))
    assert enc.style_dims == gen_dims and enc.num_layers == 8 and enc.generator_name == "stylegan-mnist32"
    assert enc.feature_sizes == [8, 4, 2] and enc.head_size == 2       # small stem: 32 -> R4 8, R5 4, R6 2
    assert sum(p.numel() for p in enc.parameters()) <= 3_000_000
    assert enc.input_spec["size"] == 32 and enc.input_spec["range"] == "[-1, 1]"
    assert "MNIST" in enc.input_spec["alignment"] and enc.input_spec["channels"] == 1
    with torch.no_grad():
        y = enc(images(3, 32)[:, :1])                                # one gray channel
    assert y.shape == (3, 8, max(gen_dims)) and torch.isfinite(y).all()


def test_head_size_option_upsamples_small_maps():
    enc = build("tiny32", head_size=4).eval()
    assert enc.heads.high.fc.in_features == 16 * 4 * 4
    with torch.no_grad():
        assert enc(images(1, 32)).shape == (1, 8, 64)


def test_training_mode_backward_reaches_every_parameter():
    enc = build("tiny32").train()
    enc(images(4, 32)).square().mean().backward()
    missing = [n for n, p in enc.named_parameters() if p.grad is None]
    assert not missing


def test_official_tf_requires_bottleneck_imagenet_stem():
    with pytest.raises(ValueError, match="official_tf"):
        GHFeatEncoder(backbone="resnet18", official_tf=True)
    with pytest.raises(ValueError, match="backbone must be one of"):
        GHFeatEncoder(backbone="resnet99")


# ------------------------------------------------------------------ input validation
@pytest.mark.parametrize("bad,error,match", [
    (torch.zeros(2, 1, 32, 32), ValueError, "3 channels.*replicate grayscale"),
    (torch.zeros(2, 32, 32, 3), ValueError, "3 channels.*permute"),
    (torch.zeros(2, 3, 28, 28), ValueError, "built for 32x32"),
    (torch.zeros(3, 32, 32), ValueError, "add a batch dimension"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.uint8), TypeError, "floating-point.*127.5"),
    (torch.zeros(2, 3, 32, 32, dtype=torch.long), TypeError, "floating-point"),
    (torch.full((2, 3, 32, 32), float("nan")), ValueError, "NaN"),
    (torch.full((2, 3, 32, 32), 255.0), ValueError, r"\[-1, 1\].*127.5"),
    ([[0.0]], TypeError, "torch.Tensor"),
])
def test_invalid_inputs_raise(bad, error, match):
    enc = build("tiny32").eval()
    with pytest.raises(error, match=match):
        enc(bad)


# ------------------------------------------------------------------ save / load
def test_save_load_round_trip_bit_identical(tmp_path):
    enc = build("tiny32").train()
    enc(images(4, 32))                               # move the BN running stats off their init
    enc.eval()
    save_model(enc, tmp_path / "enc")
    loaded = load_model(tmp_path / "enc")
    assert type(loaded) is GHFeatEncoder and loaded.config == enc.config
    assert loaded.generator_name == "stylegan-tiny32"
    for (k, a), (k2, b) in zip(enc.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = images(2, 32, seed=1)
    with torch.no_grad():
        assert torch.equal(enc(x), loaded(x))


# ------------------------------------------------------------------ registry
@pytest.mark.parametrize("name", list_models(kind="encoder"))
def test_registry_entries_pair_with_a_generator(name):
    entry = get_entry("encoder", name)
    with torch.device("meta"):
        enc = entry.builder()
    assert entry.description and enc.generator_name in list_models(kind="generator")
    assert enc.style_dims == list(encoder_zoo.generator_style_dims(enc.generator_name))
    assert enc.input_spec["size"] == enc.input_size == (32 if name.endswith("32") else 256)


# ------------------------------------------------------------------ parameter counts (by hand)
def conv(k, cin, cout, bias=False):
    return k * k * cin * cout + (cout if bias else 0)


def bn(c):
    return 2 * c


def bottleneck(cin, width, projection, conv_bias=False):
    cout = 4 * width
    n = (conv(1, cin, width, conv_bias) + bn(width) + conv(3, width, width, conv_bias) + bn(width)
         + conv(1, width, cout, conv_bias) + bn(cout))
    return n + (conv(1, cin, cout) + bn(cout) if projection else 0)


def official_counts(conv_bias=False):
    """Parameters of the official ResNet-50 GH-Feat encoder, from the layer shapes.

    ``conv_bias=True`` counts the TF graph (block convs carry a bias before BN); ghfeat folds those
    biases into BN's running mean, so its module has ``conv_bias=False``.
    """
    trunk = conv(7, 3, 64) + bn(64)
    cin = 64
    for units, width in zip((3, 4, 6, 3), (64, 128, 256, 512)):
        for u in range(units):
            trunk += bottleneck(cin, width, u == 0, conv_bias)
            cin = 4 * width
    extra = bottleneck(2048, 512, True, conv_bias)
    fpn = conv(3, 1024, 512, True) + 2 * conv(3, 2048, 512, True) + 3 * conv(3, 512, 512, True)
    sam = 3 * conv(3, 512, 512, True)
    heads = sum(8192 * out + out + bn(out) for out in (4 * 1024, 4 * 1024, 2 * 512 + 2 * 256 + 2 * 128))
    return dict(trunk=trunk, extra=extra, fpn=fpn, sam=sam, heads=heads,
                total=trunk + extra + fpn + sam + heads)


def test_official_resnet50_param_count_and_forward():
    hand = official_counts()
    assert hand["total"] == 151_741_248                     # ghfeat module (biases folded)
    assert official_counts(conv_bias=True)["total"] == 151_766_976   # TF graph: "about 151.8M"
    assert round(hand["heads"] / 1e6, 1) == 81.8 and round(hand["fpn"] / 1e6, 1) == 30.7

    enc = build("ffhq256").eval()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(enc) == hand["total"]
    assert count(enc.heads) == hand["heads"]
    assert count(enc.neck.lateral) + count(enc.neck.output) == hand["fpn"]
    assert count(enc.neck.fuse) == hand["sam"]
    assert count(enc.backbone.trunk) == hand["trunk"] and count(enc.backbone.extra) == hand["extra"]
    x = images(1, 256)
    with torch.no_grad():
        r4, r5, r6 = enc.forward_features(x)
        y = enc(x)
    assert (r4.shape, r5.shape, r6.shape) == ((1, 1024, 16, 16), (1, 2048, 8, 8), (1, 2048, 4, 4))
    assert y.shape == (1, 14, 1024) and torch.isfinite(y).all()
    assert enc.generator_name == "stylegan-ffhq256" and "FFHQ" in enc.input_spec["alignment"]
