"""Spatial GH-Feat: per-level generator feature maps from the encoder's codes (tiny models, CPU)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import ghfeat
from ghfeat.api import encode


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return ghfeat.create_encoder("tiny32").eval(), ghfeat.create_generator("stylegan-tiny32").eval()


def rand_images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g) * 2 - 1


def test_shapes_and_level_mapping(models):
    enc, gen = models
    L = gen.num_layers
    maps = ghfeat.extract_spatial(rand_images(3), levels=[8, 1, 4], model=enc, generator=gen)
    assert list(maps) == [1, 4, 8]                                  # ascending
    for k, m in maps.items():
        c = gen.style_dims[L - k] // 2                              # level k = layer L - k, C_k channels
        assert m.shape == (3, c, 32, 32) and m.dtype == torch.float32
    with pytest.raises(ValueError, match="1..8"):
        ghfeat.extract_spatial(rand_images(1), levels=[0], model=enc, generator=gen)


def test_equals_hooked_synthesis(models):
    enc, gen = models
    x = rand_images(2, 1)
    L = gen.num_layers
    seen = {}
    hooks = [layer.register_forward_hook(lambda m, i, o, idx=idx: seen.__setitem__(idx, o.detach()))
             for idx, layer in enumerate(gen.synthesis.layers)]
    try:
        with torch.no_grad():
            gen.synthesis(styles=encode(x, enc), randomize_noise=False)
    finally:
        for h in hooks:
            h.remove()
    maps = ghfeat.extract_spatial(x, levels=None, model=enc, generator=gen)       # one batch, as above
    for k in range(1, L + 1):
        ref = F.interpolate(seen[L - k], size=(32, 32), mode="bilinear", align_corners=False)
        assert torch.allclose(maps[k], ref, atol=1e-6), (k, (maps[k] - ref).abs().max())
    assert torch.equal(maps[1], seen[L - 1])                        # full resolution: no resampling


def test_empty_batch(models):
    enc, gen = models
    maps = ghfeat.extract_spatial(torch.zeros(0, 3, 32, 32), levels=[2], model=enc, generator=gen)
    assert maps[2].shape == (0, gen.style_dims[-2] // 2, 32, 32)


def test_batching_changes_float_rounding_only(models):
    enc, gen = models
    x = rand_images(3, 2)
    whole = ghfeat.extract_spatial(x, levels=[1, 8], model=enc, generator=gen)
    parts = ghfeat.extract_spatial(x, levels=[1, 8], model=enc, generator=gen, batch_size=2, progress=False)
    for k in (1, 8):                      # 8 layers of float32 conv + instance norm: ~1e-5
        assert torch.allclose(whole[k], parts[k], atol=1e-4)
