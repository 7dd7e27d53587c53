"""Editing: code mixing, global/local editing, harmonization, interpolation (tiny models, CPU)."""
from __future__ import annotations

import pytest
import torch

import ghfeat
from ghfeat import editing
from ghfeat.api import decode, encode


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    enc = ghfeat.create_encoder("tiny32").eval()
    gen = ghfeat.create_generator("stylegan-tiny32").eval()
    return enc, gen


def rand_images(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g) * 2 - 1


@pytest.fixture(scope="module")
def pair(models):
    enc, gen = models
    a, b = rand_images(2, 1), rand_images(2, 2)
    return a, b, ghfeat.reconstruct(a, encoder=enc, generator=gen), ghfeat.reconstruct(b, encoder=enc, generator=gen)


def test_mix_codes_rows():
    c, s = torch.randn(2, 8, 64), torch.randn(1, 8, 64)
    c0 = c.clone()
    m = editing.mix_codes(c, s, [1, 8])
    assert torch.equal(c, c0)                                    # input untouched
    assert torch.equal(m[:, 7], s[:, 7].expand(2, -1)) and torch.equal(m[:, 0], s[:, 0].expand(2, -1))
    assert torch.equal(m[:, 1:7], c[:, 1:7])
    assert torch.equal(editing.mix_codes(c, s, []), c)
    assert torch.equal(editing.mix_codes(c, s, None), s.expand(2, -1, -1))
    with pytest.raises(ValueError, match=r"1\.\.8"):
        editing.mix_codes(c, s, [9])


def test_mixing_no_and_all_levels_decodes_to_reconstructions(models, pair):
    enc, gen = models
    a, b, rec_a, rec_b = pair
    ca, cb = encode(a, enc), encode(b, enc)
    assert torch.allclose(decode(editing.mix_codes(ca, cb, []), gen).clamp(-1, 1), rec_a, atol=1e-6)
    assert torch.allclose(decode(editing.mix_codes(ca, cb, None), gen).clamp(-1, 1), rec_b, atol=1e-6)


def test_local_edit_zero_mask_is_reconstruction(models, pair):
    enc, gen = models
    a, b, rec_a, _ = pair
    for mode in ("feature", "image"):
        out = editing.local_edit(a, b, torch.zeros(32, 32), levels=[6], encoder=enc, generator=gen, mode=mode)
        assert out.shape == (2, 3, 32, 32) and out.dtype == torch.float32
        assert torch.allclose(out, rec_a, atol=1e-6), mode


def test_local_edit_full_mask_at_finest_level_is_reference(models, pair):
    enc, gen = models
    a, b, _, rec_b = pair
    out = editing.local_edit(a, b, torch.ones(32, 32), levels=[1], encoder=enc, generator=gen)
    assert torch.allclose(out, rec_b, atol=1e-6)                 # last layer's map swapped whole
    out = editing.local_edit(a, b, torch.ones(1, 1, 32, 32, dtype=torch.bool), levels=[8, 3, 1],
                             encoder=enc, generator=gen)
    assert torch.allclose(out, rec_b, atol=1e-6)


def test_local_edit_is_local(models, pair):
    enc, gen = models
    a, b, rec_a, rec_b = pair
    mask = torch.zeros(32, 32)
    mask[8:24, 8:24] = 1
    # at level 1 only the 1x1 ToRGB follows: outside the mask exactly the content, inside the reference
    out = editing.local_edit(a, b, mask, levels=1, encoder=enc, generator=gen)
    inside = mask.bool().expand(2, 3, -1, -1)
    assert torch.allclose(out[~inside], rec_a[~inside], atol=1e-6)
    assert torch.allclose(out[inside], rec_b[inside], atol=1e-6)
    # at a coarse level the swap goes through the later layers (3x3 convs spread it)
    coarse = editing.local_edit(a, b, mask, levels=6, encoder=enc, generator=gen)
    assert not torch.allclose(coarse, rec_a, atol=1e-3)


def test_local_edit_image_mode_pastes_mixed_decode(models, pair):
    enc, gen = models
    a, b, rec_a, _ = pair
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, :, 16:] = 1
    out = editing.local_edit(a, b, mask, levels=[7, 8], encoder=enc, generator=gen, mode="image")
    mixed = decode(editing.mix_codes(encode(a, enc), encode(b, enc), [7, 8]), gen).clamp(-1, 1)
    assert torch.allclose(out[..., 16:], mixed[..., 16:], atol=1e-6)
    assert torch.allclose(out[..., :16], rec_a[..., :16], atol=1e-6)


def test_local_edit_random_reference_and_errors(models, pair):
    enc, gen = models
    a = pair[0]
    m = torch.ones(32, 32)
    r1 = editing.local_edit(a, None, m, levels=[2], encoder=enc, generator=gen, seed=3)
    r2 = editing.local_edit(a, None, m, levels=[2], encoder=enc, generator=gen, seed=3)
    assert torch.equal(r1, r2) and r1.min() >= -1 and r1.max() <= 1
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        editing.local_edit(a, None, m * 2, levels=[2], encoder=enc, generator=gen)
    with pytest.raises(ValueError, match="16x16 but the images are 32x32"):
        editing.local_edit(a, None, torch.ones(16, 16), levels=[2], encoder=enc, generator=gen)
    with pytest.raises(ValueError, match="mode must be"):
        editing.local_edit(a, None, m, levels=[2], encoder=enc, generator=gen, mode="pixels")


def test_sample_codes_and_global_edit(models, pair):
    enc, gen = models
    codes = editing.sample_codes(gen, 3, seed=0)
    assert codes.shape == (3, 8, 64)
    assert torch.equal(codes[:, 7, :32], codes[:, 7, 32:])        # 32-wide layers tiled in the pack
    assert torch.equal(codes, editing.sample_codes(gen, 3, seed=0))
    a, _, rec_a, _ = pair
    out = editing.global_edit(a, [7, 8], encoder=enc, generator=gen, seed=1)
    assert out.shape == a.shape and out.min() >= -1 and out.max() <= 1
    assert not torch.allclose(out, rec_a, atol=1e-3)


def test_harmonize(models, pair):
    enc, gen = models
    a, b, rec_a, rec_b = pair
    zeros, ones = torch.zeros(32, 32), torch.ones(32, 32)
    assert torch.allclose(editing.harmonize(a, b, zeros, encoder=enc, generator=gen), rec_a, atol=1e-6)
    assert torch.allclose(editing.harmonize(a, b, ones, encoder=enc, generator=gen), rec_b, atol=1e-6)
    mask = torch.zeros(32, 32)
    mask[4:12, 4:20] = 1
    out, comp = editing.harmonize(a, b, mask, encoder=enc, generator=gen, return_composite=True)
    assert torch.equal(comp[..., 4:12, 4:20], b[..., 4:12, 4:20]) and torch.equal(comp[..., 20:, :], a[..., 20:, :])
    assert torch.allclose(out, ghfeat.reconstruct(comp, encoder=enc, generator=gen), atol=1e-6)
    kept = editing.harmonize(a, b, mask, encoder=enc, generator=gen, background_levels=None)
    assert torch.allclose(kept, out)
    all_bg = editing.harmonize(a, b, mask, encoder=enc, generator=gen, background_levels=list(range(1, 9)))
    assert torch.allclose(all_bg, rec_a, atol=1e-6)


def test_paste_patch():
    bg = -torch.ones(2, 3, 8, 8)
    comp, mask = editing.paste_patch(bg, torch.ones(1, 3, 2, 3), top=1, left=4)
    assert mask.shape == (2, 1, 8, 8) and mask.sum() == 2 * 6
    assert (comp[:, :, 1:3, 4:7] == 1).all() and comp.sum() == 2 * 3 * (6 - 58)
    with pytest.raises(ValueError, match="does not fit"):
        editing.paste_patch(bg, torch.ones(1, 3, 2, 3), top=7, left=0)


def test_interpolate():
    a, b = torch.randn(2, 8, 64), torch.randn(2, 8, 64)
    path = editing.interpolate(a, b, 5)
    assert path.shape == (5, 2, 8, 64)
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    assert torch.allclose(path[2], (a + b) / 2, atol=1e-6)
    part = editing.interpolate(a, b, 3, levels=[8])
    assert torch.equal(part[:, :, 1:], a[None, :, 1:].expand(3, -1, -1, -1))
    assert torch.equal(part[-1, :, 0], b[:, 0])
    with pytest.raises(ValueError, match="steps"):
        editing.interpolate(a, b, 1)
