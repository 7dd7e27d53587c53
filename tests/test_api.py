"""User-facing API: image conversion, level numbering, extract / reconstruct / style_mix.

Tiny random-weight models ("tiny32" encoder + "stylegan-tiny32" generator), CPU only.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import ghfeat
from ghfeat import _models, api
from ghfeat.api import level_to_layer, layer_to_level, parse_levels
from _helpers import write_fake_mnist


@pytest.fixture(scope="module")
def enc():
    torch.manual_seed(0)
    e = ghfeat.create_encoder("tiny32")
    # non-trivial BatchNorm statistics: results then depend on eval mode being used
    for m in e.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return e


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(1)
    return ghfeat.create_generator("stylegan-tiny32")


def rand_images(n=4, seed=0, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


# ------------------------------------------------------------------------------------------------
# load_images: every input kind, values checked by hand
# ------------------------------------------------------------------------------------------------

def test_tensor_signed_passes_through():
    x = rand_images(2)
    y = ghfeat.load_images(x)
    assert y.dtype == torch.float32 and y.shape == (2, 3, 32, 32)
    assert torch.equal(y, x)
    assert ghfeat.load_images(x[0]).shape == (1, 3, 32, 32)     # [C, H, W] -> batch of one


def test_tensor_unit_range_needs_input_range():
    x = torch.zeros(1, 3, 4, 4)
    x[0, :, 0, 0], x[0, :, 0, 1] = 1.0, 0.5
    y = ghfeat.load_images(x, input_range="[0,1]")
    assert y[0, 0, 0, 0] == 1.0 and y[0, 0, 0, 1] == 0.0 and y[0, 0, 1, 1] == -1.0
    with pytest.warns(UserWarning, match=r"input_range='\[0,1\]'"):
        ghfeat.load_images(x)                          # [0, 1] data read as [-1, 1]: warned
    with pytest.raises(ValueError, match=r"outside the expected range.*input_range='\[0,1\]'"):
        ghfeat.load_images(x * 255)                    # [0, 255] floats: refused, with the fix
    y = ghfeat.load_images(x * 255, input_range="[0, 255]")
    assert y[0, 0, 0, 0] == 1.0 and y[0, 0, 1, 1] == -1.0


def test_tensor_uint8_and_grayscale_and_rgba():
    x = torch.zeros(1, 1, 2, 2, dtype=torch.uint8)
    x[0, 0, 0, 0] = 255
    y = ghfeat.load_images(x)
    assert y.shape == (1, 3, 2, 2)
    assert (y[0, :, 0, 0] == 1.0).all() and (y[0, :, 1, 1] == -1.0).all()   # gray -> 3 equal channels
    rgba = torch.zeros(1, 4, 1, 2, dtype=torch.uint8)
    rgba[0, :3] = 0                      # black ...
    rgba[0, 3, 0, 0] = 255               # ... opaque at (0, 0), transparent at (0, 1) -> white
    y = ghfeat.load_images(rgba)
    assert (y[0, :, 0, 0] == -1.0).all() and (y[0, :, 0, 1] == 1.0).all()


def test_integer_tensor_needs_range():
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.int64)
    with pytest.raises(TypeError, match="input_range"):
        ghfeat.load_images(x)
    assert (ghfeat.load_images(x, input_range="[0,255]") == 1.0).all()


def test_pil_modes():
    rgb = Image.new("RGB", (3, 2), (255, 0, 128))
    y = ghfeat.load_images(rgb)
    assert y.shape == (1, 3, 2, 3)
    assert y[0, 0, 0, 0] == 1.0 and y[0, 1, 0, 0] == -1.0 and abs(y[0, 2, 0, 0] - (128 / 127.5 - 1)) < 1e-6
    gray = Image.new("L", (2, 2), 255)
    assert (ghfeat.load_images(gray) == 1.0).all()
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (0, 0, 0, 255))
    y = ghfeat.load_images(rgba)
    assert (y[0, :, 0, 0] == -1.0).all() and (y[0, :, 0, 1] == 1.0).all()     # transparent -> white


def test_numpy_layouts():
    hwc = np.zeros((2, 3, 3), np.uint8)
    hwc[0, 0] = (255, 0, 0)
    y = ghfeat.load_images(hwc)
    assert y.shape == (1, 3, 2, 3) and y[0, 0, 0, 0] == 1.0 and y[0, 1, 0, 0] == -1.0
    hw = np.full((4, 5), 255, np.uint8)
    assert ghfeat.load_images(hw).shape == (1, 3, 4, 5) and (ghfeat.load_images(hw) == 1).all()
    nhwc = np.zeros((3, 4, 4, 1), np.float32)
    assert ghfeat.load_images(nhwc, input_range="[0,1]").shape == (3, 3, 4, 4)
    with pytest.raises(ValueError, match="channels-last"):
        ghfeat.load_images(np.zeros((3, 8, 8), np.uint8))          # CHW numpy: hint to transpose


def test_paths_folders_and_lists(tmp_path):
    a = np.zeros((32, 32, 3), np.uint8)
    a[0, 0] = 255
    Image.fromarray(a).save(tmp_path / "a.png")
    Image.fromarray(np.full((32, 32), 255, np.uint8)).save(tmp_path / "b.png")
    y = ghfeat.load_images(tmp_path / "a.png")
    assert y.shape == (1, 3, 32, 32) and (y[0, :, 0, 0] == 1).all() and (y[0, :, 1, 1] == -1).all()
    folder = ghfeat.load_images(str(tmp_path))                      # a folder: sorted files
    assert folder.shape == (2, 3, 32, 32) and torch.equal(folder[:1], y) and (folder[1] == 1).all()
    mixed = ghfeat.load_images([str(tmp_path / "b.png"), Image.fromarray(a), torch.zeros(3, 32, 32)])
    assert mixed.shape == (3, 3, 32, 32) and (mixed[0] == 1).all() and torch.equal(mixed[1], y[0])


def test_size_and_resize():
    x = rand_images(1, size=16)
    with pytest.raises(ValueError, match=r"expects 32x32.*resize=True"):
        ghfeat.load_images(x, size=32)
    # 64x96 image: dark | white | dark thirds -> shorter side to 32 (48 wide) -> centre crop 32
    img = -torch.ones(1, 3, 64, 96)
    img[..., 32:64] = 1.0
    y = ghfeat.load_images(img, size=32, resize=True)
    assert y.shape == (1, 3, 32, 32)
    assert torch.allclose(y[..., 16], torch.ones(1, 3, 32)) and torch.allclose(y[..., 0], -torch.ones(1, 3, 32))
    assert torch.allclose(y[..., 31], -torch.ones(1, 3, 32))
    with pytest.raises(ValueError, match="resize=True needs"):
        ghfeat.load_images(x, resize=True)


@pytest.mark.parametrize("bad, exc, match", [
    (torch.zeros(8, 8), ValueError, r"\[N, C, H, W\].*x\[None\]"),
    (torch.zeros(1, 1, 3, 8, 8), ValueError, r"\[N, C, H, W\]"),
    (torch.zeros(1, 2, 8, 8), ValueError, "2 channels"),
    (torch.zeros(1, 5, 8, 8), ValueError, "5 channels"),
    (torch.zeros(1, 8, 8, 3), ValueError, "permute"),
    (torch.full((1, 3, 2, 2), float("nan")), ValueError, "NaN"),
    (torch.zeros(1, 3, 2, 2, dtype=torch.bool), TypeError, "bool"),
    (torch.zeros(1, 3, 2, 2, dtype=torch.complex64), TypeError, "complex"),
    ([], ValueError, "empty list"),
    ([torch.zeros(3, 8, 8), torch.zeros(3, 4, 4)], ValueError, "different sizes"),
    (42, TypeError, "unsupported type int"),
])
def test_refusals(bad, exc, match):
    with pytest.raises(exc, match=match):
        ghfeat.load_images(bad)


def test_refusals_paths_and_ranges(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ghfeat.load_images(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="cannot read"):
        ghfeat.load_images(tmp_path / "notes.png")
    with pytest.raises(ValueError, match="input_range must be"):
        ghfeat.load_images(torch.zeros(1, 3, 2, 2), input_range="0-1")


# ------------------------------------------------------------------------------------------------
# Levels
# ------------------------------------------------------------------------------------------------

def test_level_numbering():
    assert level_to_layer(1, 8) == 7 and level_to_layer(8, 8) == 0 and level_to_layer(5, 14) == 9
    assert layer_to_level(0, 14) == 14 and layer_to_level(13, 14) == 1
    assert parse_levels(None, 4) == [1, 2, 3, 4]
    assert parse_levels(3, 4) == [3]
    assert parse_levels([4, 2], 4) == [4, 2]                     # order kept, not a range
    assert parse_levels(np.array([1, 2]), 4) == [1, 2]
    assert parse_levels([], 4, allow_empty=True) == []


@pytest.mark.parametrize("bad", [0, 9, [1, 1], True, [2, False], 1.5, "5", []])
def test_bad_levels(bad):
    with pytest.raises(ValueError, match=r"1\.\.8"):
        parse_levels(bad, 8)


def test_level_dims(enc, gen):
    dims = ghfeat.level_dims(enc)
    assert list(dims) == list(range(1, 9))
    assert dims == {1: 32, 2: 32, 3: 64, 4: 64, 5: 64, 6: 64, 7: 64, 8: 64}
    assert ghfeat.level_dims(gen) == dims
    # mnist32: nf(stage) = min(256 / 2**stage, 32): 32 channels up to 16x16, 16 at 32x32 (levels 1-2)
    assert ghfeat.level_dims("mnist32") == {1: 32, 2: 32, **{k: 64 for k in range(3, 9)}}


# ------------------------------------------------------------------------------------------------
# extract
# ------------------------------------------------------------------------------------------------

def test_extract_levels_match_packed_output(enc):
    x = rand_images(3)
    L = enc.num_layers
    enc.eval()
    with torch.no_grad():
        packed = enc(x)
    feats = ghfeat.extract(x, levels=[L, 1], model=enc)
    assert list(feats) == [1, L]                                 # ascending level order
    assert torch.allclose(feats[1], packed[:, L - 1, :enc.style_dims[L - 1]], atol=1e-6)   # finest layer
    assert torch.allclose(feats[L], packed[:, 0, :enc.style_dims[0]], atol=1e-6)           # coarsest layer
    allf = ghfeat.extract(x, model=enc)
    assert list(allf) == list(range(1, L + 1))
    assert {k: v.shape[1] for k, v in allf.items()} == ghfeat.level_dims(enc)


def test_extract_flatten_order(enc):
    x = rand_images(2)
    f = ghfeat.extract(x, levels=[3, 1], model=enc)
    flat = ghfeat.extract(x, levels=[3, 1], model=enc, flatten=True)
    assert flat.shape == (2, 64 + 32)
    assert torch.allclose(flat, torch.cat([f[3], f[1]], 1))


def test_extract_batching_and_eval_mode(enc):
    x = rand_images(7)
    enc.train()
    one = ghfeat.extract(x, levels=[2, 6], model=enc, batch_size=64)
    many = ghfeat.extract(x, levels=[2, 6], model=enc, batch_size=3, progress=False)
    assert enc.training                                        # mode restored
    enc.eval()
    for k in one:
        assert torch.allclose(one[k], many[k], atol=1e-5)
    single = ghfeat.extract(x[4:5], levels=[2], model=enc)       # batch statistics are not used
    assert torch.allclose(single[2], one[2][4:5], atol=1e-5)


def test_extract_input_kinds_agree(enc, tmp_path):
    u8 = (torch.rand(2, 3, 32, 32) * 255).round().to(torch.uint8)
    Image.fromarray(u8[0].permute(1, 2, 0).numpy()).save(tmp_path / "0.png")
    ref = ghfeat.extract(u8, levels=[1], model=enc)[1]
    from_float = ghfeat.extract(u8.float() / 255, levels=[1], model=enc, input_range="[0,1]")[1]
    from_path = ghfeat.extract([tmp_path / "0.png"], levels=[1], model=enc)[1]
    from_pil = ghfeat.extract(Image.fromarray(u8[1].permute(1, 2, 0).numpy()), levels=[1], model=enc)[1]
    assert torch.allclose(ref, from_float, atol=1e-5)
    assert torch.allclose(ref[:1], from_path, atol=1e-6) and torch.allclose(ref[1:], from_pil, atol=1e-6)


def test_extract_size_and_dtype_errors(enc):
    with pytest.raises(ValueError, match=r"expects 32x32.*resize=True"):
        ghfeat.extract(rand_images(1, size=64), model=enc)
    assert ghfeat.extract(rand_images(1, size=64), levels=1, model=enc, resize=True)[1].shape == (1, 32)
    with pytest.raises(ValueError, match="float16.*CPU"):
        ghfeat.extract(rand_images(1), model=enc, dtype=torch.float16)
    bf = ghfeat.extract(rand_images(1), levels=[8], model=enc, dtype="bf16")[8]
    assert bf.dtype == torch.float32 and bf.shape == (1, 64)
    with pytest.raises(TypeError, match="registry name"):
        ghfeat.extract(rand_images(1), model=3)


def test_extract_string_model_is_built_once(monkeypatch, enc):
    from ghfeat import _registry
    calls = []

    def fake_create(name, pretrained=False, **kw):
        calls.append((name, pretrained))
        return enc

    api.clear_model_cache()
    monkeypatch.setattr(_registry, "create_encoder", fake_create)
    try:
        ghfeat.extract(rand_images(1), model="tiny32")
        ghfeat.extract(rand_images(1), model="tiny32")
        assert calls == [("tiny32", True)]
    finally:
        api.clear_model_cache()


# ------------------------------------------------------------------------------------------------
# reconstruct / style_mix
# ------------------------------------------------------------------------------------------------

def test_reconstruct_matches_generator_and_range(enc, gen):
    x = rand_images(3)
    rec, codes = ghfeat.reconstruct(x, encoder=enc, generator=gen, return_codes=True)
    assert rec.shape == (3, 3, 32, 32) and rec.dtype == torch.float32 and codes.shape == (3, 8, 64)
    enc.eval()
    with torch.no_grad():
        expect = gen.synthesis(styles=enc(x), randomize_noise=False).clamp(-1, 1)
    assert torch.allclose(rec, expect, atol=1e-5)
    assert rec.min() >= -1 and rec.max() <= 1
    unit = ghfeat.reconstruct((x + 1) / 2, encoder=enc, generator=gen, input_range="[0,1]")
    assert unit.min() >= 0 and unit.max() <= 1 and torch.allclose(unit, (expect + 1) / 2, atol=1e-5)
    u8 = ghfeat.reconstruct(((x + 1) * 127.5).round().to(torch.uint8), encoder=enc, generator=gen)
    assert u8.dtype == torch.uint8 and u8.shape == (3, 3, 32, 32)
    pil = ghfeat.reconstruct(Image.new("RGB", (32, 32), (10, 200, 30)), encoder=enc, generator=gen)
    assert pil.dtype == torch.uint8 and pil.shape == (1, 3, 32, 32)


def test_reconstruct_generator_resolution(enc, gen, monkeypatch):
    calls = []

    def fake(kind, name, pretrained):
        calls.append((kind, name, pretrained))
        return gen

    monkeypatch.setattr(_models, "get_model", fake)
    ghfeat.reconstruct(rand_images(1), encoder=enc)               # generator=None -> paired generator
    assert calls == [("generator", "stylegan-tiny32", True)]
    other = ghfeat.create_generator("stylegan-tiny32", fmap_max=16)     # other style widths
    with pytest.raises(ValueError, match="do not fit"):
        ghfeat.reconstruct(rand_images(1), encoder=enc, generator=other)


def test_style_mix_grid(enc, gen, tmp_path):
    content, style = rand_images(3, seed=1), rand_images(2, seed=2)
    grid = ghfeat.style_mix(content, style, levels=[7, 8], encoder=enc, generator=gen, out=tmp_path / "g.png")
    assert grid.shape == (3, 4, 3, 32, 32)
    assert torch.equal(grid[0, 1:], content) and torch.equal(grid[1:, 0], style)
    assert (grid[0, 0] == 1).all()                                # blank top-left cell (white)
    png = Image.open(tmp_path / "g.png")
    assert png.size == (4 * 34 + 2, 3 * 34 + 2)
    rec_c = ghfeat.reconstruct(content, encoder=enc, generator=gen)
    rec_s = ghfeat.reconstruct(style, encoder=enc, generator=gen)
    none = ghfeat.style_mix(content, style, levels=[], encoder=enc, generator=gen)
    every = ghfeat.style_mix(content, style, levels=None, encoder=enc, generator=gen)
    for j in range(2):
        assert torch.allclose(none[1 + j, 1:], rec_c, atol=1e-5)       # no level mixed: content
        for i in range(3):
            assert torch.allclose(every[1 + j, 1 + i], rec_s[j], atol=1e-5)   # all levels: style
    assert not torch.allclose(grid[1, 1], rec_c[0], atol=1e-3)         # some levels: something new


def test_make_grid_shapes():
    g = ghfeat.api.make_grid(rand_images(5), nrow=3, padding=1)
    assert g.shape == (3, 2 * 33 + 1, 3 * 33 + 1)
    assert ghfeat.api.make_grid(torch.zeros(2, 3, 1, 4, 4), padding=0).shape == (3, 8, 12)


# ------------------------------------------------------------------------------------------------
# Example scripts (random weights: pipeline only)
# ------------------------------------------------------------------------------------------------

def _example(name):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_scripts(tmp_path):
    mix = _example("style_mixing")
    assert mix.main(["--random-weights", "--out", str(tmp_path / "mix.png")]) == 0
    assert Image.open(tmp_path / "mix.png").size == (6 * 34 + 2, 6 * 34 + 2)
    digits = mix.bundled_digits()
    assert digits.shape == (10, 3, 32, 32)
    (tmp_path / "digits").mkdir()
    for i in range(3):
        Image.fromarray(((digits[i, 0] + 1) * 127.5).round().to(torch.uint8).numpy()).save(tmp_path / "digits" / f"{i}.png")
    ext = _example("extract_features")
    assert ext.main([str(tmp_path / "digits"), "--random-weights", "--levels", "8", "2", "--out", str(tmp_path / "f.npz")]) == 0
    data = np.load(tmp_path / "f.npz")
    assert data["level_2"].shape == (3, 32) and data["level_8"].shape == (3, 64)     # mnist32 widths
    assert [p.endswith(f"{i}.png") for i, p in enumerate(data["files"])] == [True] * 3




def test_example_linear_probe(tmp_path, capsys):
    root = write_fake_mnist(tmp_path / "mnist")
    probe = _example("linear_probe")
    out = tmp_path / "probe.json"
    assert probe.main(["--data", str(root), "--random-weights", "--limit", "64",
                       "--no-single-levels", "--json", str(out)]) == 0
    import json
    res = json.loads(out.read_text())
    assert res["n_train"] == 64 and 0 <= res["top1"]["all"] <= 100 and "L-BFGS" in res["solver_notes"]["all"]
    assert probe.main(["--data", str(root), "--random-weights", "--limit", "64", "--solver", "adam", "--epochs", "1",
                       "--no-single-levels", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["solver_notes"]["all"] == "Adam, 1 epochs"
    from ghfeat._script import run
    capsys.readouterr()
    for bad, words in ((["--limit", "9"], "--limit must be >= 10, got 9"),
                       (["--epochs", "5"], "--epochs only apply to --solver adam"),
                       (["--solver", "adam", "--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
                       (["--l2", "nan"], "--l2 must be a finite number >= 0, got nan"),
                       (["--solver", "adam", "--l2", "1"], "--l2 only applies to --solver lbfgs")):
        assert run(probe.main, "linear_probe.py", ["--data", str(root), "--random-weights", *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith("linear_probe.py: error: ") and words in err, err
