"""Editing directions in y space (SeFa on the consumer conv, supervised normals, edit grids); tiny models."""
from __future__ import annotations

import numpy as np
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
    with torch.no_grad():                       # non-zero noise weights and biases: a less trivial generator
        for layer in gen.synthesis.layers:
            layer.noise.weight.normal_(0, 0.1)
            layer.bias.normal_(0, 0.1)
    return enc, gen


def rand_images(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g) * 2 - 1


@pytest.mark.parametrize("part", ["both", "scale", "shift"])
@pytest.mark.parametrize("level", [1, 4, 8])
def test_sefa_directions_orthonormal_and_sorted(models, level, part):
    _, gen = models
    dirs, vals = editing.sefa_directions(gen, level, part=part)
    C = gen.style_dims[gen.num_layers - level] // 2
    assert dirs.shape == (C, 2 * C) and vals.shape == (C,)
    assert torch.allclose(dirs @ dirs.T, torch.eye(C), atol=1e-5)
    assert (vals[:-1] >= vals[1:]).all()


@pytest.mark.parametrize("level", [1, 3, 8])
def test_sefa_matches_numpy_eigendecomposition(models, level):
    _, gen = models
    L = gen.num_layers
    i = L - level
    conv = gen.synthesis.to_rgb if i == L - 1 else gen.synthesis.layers[i + 1].conv   # the consumer, by hand
    w = conv.weight.detach().numpy().astype(np.float64) * conv.weight_gain          # [Cout, C, k, k]
    m = sum(w[:, :, a, b].T @ w[:, :, a, b] for a in range(w.shape[2]) for b in range(w.shape[3]))
    ev, evec = np.linalg.eigh(m)
    ev, evec = ev[::-1], evec[:, ::-1]
    dirs, vals = editing.sefa_directions(gen, level, part="scale")
    C = w.shape[1]
    np.testing.assert_allclose(vals.numpy(), np.clip(ev, 0, None), rtol=1e-8, atol=1e-10)
    k = int((ev > 1e-8 * ev[0]).sum())             # non-degenerate part (ToRGB has rank <= 3)
    top = min(k, 5)
    dots = np.abs(np.sum(dirs[:top, :C].double().numpy() * evec[:, :top].T, axis=1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-5)
    assert torch.equal(dirs[:, C:], torch.zeros(C, C))


def test_sefa_level1_null_directions_are_invisible(models):
    enc, gen = models
    C = gen.style_dims[-1] // 2
    dirs, vals = editing.sefa_directions(gen, 1, part="shift")
    assert (vals[3:] < 1e-10 * vals[0]).all()      # ToRGB to 3 channels has rank 3
    codes = encode(rand_images(2, 0), enc)
    base = decode(codes, gen)
    moved = decode(editing.edit_codes(codes, dirs[C - 1], [5.0], [1], style_dims=gen.style_dims)[0], gen)
    top = decode(editing.edit_codes(codes, dirs[0], [5.0], [1], style_dims=gen.style_dims)[0], gen)
    assert (moved - base).abs().max() < 1e-4 < (top - base).abs().max()


def test_edit_codes_touches_only_the_edited_levels(models):
    enc, gen = models
    codes = encode(rand_images(3, 1), enc)
    L, dims = gen.num_layers, gen.style_dims
    d = torch.randn(dims[L - 3])
    out = editing.edit_codes(codes, d, [-2.0, 0.0, 1.5], levels=[3], style_dims=dims)
    assert out.shape == (3, *codes.shape)
    for s_idx, s in enumerate([-2.0, 0.0, 1.5]):
        for row in range(L):
            if row == L - 3:
                assert torch.allclose(out[s_idx, :, row, :dims[row]], codes[:, row, :dims[row]] + s * d)
            else:
                assert torch.equal(out[s_idx, :, row], codes[:, row])
    assert torch.equal(out[1], codes)                                  # strength 0: exact
    with pytest.raises(ValueError, match="length"):
        editing.edit_codes(codes, torch.randn(7), [1.0], levels=[3], style_dims=dims)
    with pytest.raises(ValueError, match="1..8"):
        editing.edit_codes(codes, d, [1.0], levels=[9], style_dims=dims)


def test_edit_grid_strength_zero_is_reconstruction(models, tmp_path):
    enc, gen = models
    x = rand_images(2, 2)
    dirs, _ = editing.sefa_directions(gen, 5)
    grid = editing.edit(x, dirs[0], [-3.0, 0.0, 3.0], levels=[5], encoder=enc, generator=gen, out=tmp_path / "e.png")
    assert grid.shape == (2, 3, 3, 32, 32) and grid.dtype == torch.float32
    rec = ghfeat.reconstruct(x, encoder=enc, generator=gen)
    assert torch.equal(grid[:, 1], rec)                                # exact, not approximately
    assert not torch.allclose(grid[:, 0], rec)
    assert (tmp_path / "e.png").exists()


def test_supervised_direction_recovers_planted_normal():
    g = torch.Generator().manual_seed(0)
    n, d = 400, 12
    x = torch.randn(n, d, generator=g)
    true = torch.zeros(d)
    true[2], true[7] = 0.6, -0.8
    labels = (x @ true > 0).long()
    for method in ("logistic", "lstsq"):
        w = editing.supervised_direction(x, labels, method=method)
        assert w.shape == (d,) and abs(float(w.norm()) - 1) < 1e-5
        assert float(w @ true) > 0.95, method
    feats = {7: x[:, :5], 8: x[:, 5:]}                 # extract()-style dict: split back per level
    wd = editing.supervised_direction(feats, labels)
    assert set(wd) == {7, 8} and wd[7].shape == (5,) and wd[8].shape == (7,)
    assert abs(float(torch.cat([wd[7], wd[8]]).norm()) - 1) < 1e-5
    with pytest.raises(ValueError, match="exactly two"):
        editing.supervised_direction(x, torch.arange(n) % 3)


def test_supervised_direction_edits_along_the_classifier(models):
    enc, gen = models
    x = rand_images(16, 3)
    feats = ghfeat.extract(x, levels=[6, 7], model=enc)
    labels = feats[6][:, 0] > feats[6][:, 0].median()
    w = editing.supervised_direction(feats, labels)
    codes = encode(x, enc)
    out = editing.edit_codes(codes, w, [2.0], style_dims=gen.style_dims)[0]
    L = gen.num_layers
    assert torch.equal(out[:, [r for r in range(L) if r not in (L - 6, L - 7)]],
                       codes[:, [r for r in range(L) if r not in (L - 6, L - 7)]])


def test_cli_edit_random_weights(tmp_path, capsys):
    from PIL import Image

    from ghfeat.cli import main

    files = []
    for i in range(2):
        arr = (np.random.default_rng(i).random((32, 32, 3)) * 255).astype(np.uint8)
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(arr).save(files[-1])
    vec = tmp_path / "d.npy"
    np.save(vec, np.ones(64, np.float32) / 8)
    for direction in ("sefa:1", str(vec)):
        out = tmp_path / "grid.png"
        rc = main(["edit", *map(str, files), "--model", "tiny32", "--random-weights", "--levels", "5",
                   "--strengths", "-2", "0", "2", "--direction", direction, "--out", str(out)])
        assert rc == 0 and Image.open(out).size == ((2 + 3) * 34 + 2, 2 * 34 + 2)   # input, reconstruction, 3 edits
    rc = main(["edit", str(files[0]), "--model", "tiny32", "--random-weights", "--levels", "5",
               "--direction", "sefa:99", "--out", str(tmp_path / "x.png")])
    assert rc == 2 and "0..31" in capsys.readouterr().err
