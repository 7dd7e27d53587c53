"""``ghfeat app`` without a browser: the model side of every view (:class:`ghfeat.app.Explorer`),
checked against the library functions it stands on, the upload messages, and the command line
when the extra is missing. The page itself is tested in ``test_app_browser.py``."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ghfeat
from ghfeat.app import ATTRIBUTES, BadUpload, Explorer, UploadError, measure, to_uint8
from ghfeat.editing import sefa_directions

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "ghfeat" / "assets" / "mnist_test_digits.png"


@pytest.fixture(scope="module")
def models():
    enc = ghfeat.create_encoder("mnist32", pretrained=True).eval()
    return enc, ghfeat.create_generator(enc.generator_name, pretrained=True).eval()


@pytest.fixture(scope="module")
def ex(models):
    return Explorer(*models)


@pytest.fixture(scope="module")
def digits():
    strip = np.asarray(Image.open(DIGITS).convert("L"))
    return [Image.fromarray(strip[:, 32 * i:32 * (i + 1)]) for i in range(10)]


def _u8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def test_reconstruct_is_ghfeat_reconstruct(ex, models, digits):
    enc, gen = models
    x, rec, err, m = ex.reconstruct(digits[3])
    assert x.shape == rec.shape == err.shape == (32, 32) and rec.dtype == np.uint8
    assert np.array_equal(x, np.asarray(digits[3]))
    want = ghfeat.reconstruct(digits[3], encoder=enc, generator=gen)[0, 0].numpy()   # uint8 for PIL input
    assert np.abs(rec.astype(int) - want).max() <= 1
    xf = torch.from_numpy(np.asarray(digits[3])).float() / 127.5 - 1
    rf = ghfeat.reconstruct(xf[None, None], encoder=enc, generator=gen)[0, 0]
    mse = float((rf - xf).pow(2).mean())
    assert m["mse"] == pytest.approx(mse, rel=1e-4)
    assert m["psnr"] == pytest.approx(10 * np.log10(4 / mse), rel=1e-4)
    assert np.array_equal(err, _u8((rf - xf).abs().clamp(0, 1) * 2 - 1))


def test_mix_levels(ex, models, digits):
    enc, gen = models
    ra, rb, none = ex.mix(digits[0], digits[7], [])
    assert np.array_equal(none, ra) and np.array_equal(ra, ex.reconstruct(digits[0])[1])     # bit for bit
    assert np.array_equal(ex.mix(digits[0], digits[7], range(1, 9))[2], rb)
    ca, cb = ghfeat.encode([digits[0], digits[7]], enc, progress=False)
    ca = ca.clone()
    ca[[0, 1]] = cb[[0, 1]]                                        # levels 8, 7 = generator layers 0, 1
    want = _u8(ghfeat.decode(ca[None], gen, progress=False)[0, 0])
    got = ex.mix(digits[0], digits[7], ["7", 8])[2]                # the page sends values as given
    assert np.abs(got.astype(int) - want).max() <= 1
    assert not np.array_equal(got, ra) and not np.array_equal(got, rb)
    with pytest.raises(UploadError, match="Image B: No image yet"):
        ex.mix(digits[0], None, [])
    with pytest.raises(ValueError, match="9"):
        ex.mix(digits[0], digits[7], [9])


def test_edit_sefa_and_supervised(ex, models, digits):
    enc, gen = models
    rec, zero = ex.edit(digits[4], "sefa:0", [5], 0.0)
    assert np.array_equal(rec, zero) and np.array_equal(rec, ex.reconstruct(digits[4])[1])
    _, edited = ex.edit(digits[4], "sefa:1", [5, 2], 3.0)
    codes = ghfeat.encode(digits[4], enc, progress=False).clone()
    for k in (5, 2):                                               # level k = layer 8 - k, 2C numbers
        d = gen.style_dims[8 - k]
        codes[0, 8 - k, :d] += 3.0 * sefa_directions(gen, k)[0][1]
    assert np.abs(edited.astype(int) - _u8(ghfeat.decode(codes, gen, progress=False)[0, 0])).max() <= 1
    d = ex.direction("thickness", [1, 2, 3, 4])
    assert sorted(d) == [1, 2, 3, 4] and d[1].shape == (gen.style_dims[7],) and d[4].shape == (gen.style_dims[4],)
    assert float(torch.cat(list(d.values())).norm()) == pytest.approx(1.0, abs=1e-5)
    m = {s: measure(torch.from_numpy(np.stack([ex.edit(x, "thickness", [1, 2, 3, 4], s)[1] for x in digits])
                                     ).float()[:, None] / 127.5 - 1, "thickness") for s in (-6.0, 6.0)}
    assert (m[6.0] > m[-6.0]).all()               # fitted on G's samples, it thickens every real test digit
    with pytest.raises(UploadError, match="at least one level"):
        ex.edit(digits[4], "sefa:0", [], 1.0)
    with pytest.raises(ValueError, match="unknown direction"):
        ex.edit(digits[4], "nope", [1], 1.0)


def test_magnitudes_and_spatial(ex, models, digits):
    enc, gen = models
    mags = ex.magnitudes(digits[5])
    feats = ghfeat.extract(digits[5], model=enc)
    assert list(mags) == list(range(1, 9))
    for k, f in feats.items():
        assert mags[k] == pytest.approx(float(f.pow(2).mean().sqrt()), rel=1e-5)
    grid, info = ex.spatial(digits[5], 3)
    assert grid.shape == (4 * 33 - 1, 4 * 33 - 1) and grid.dtype == np.uint8
    assert info == {"channels": gen.style_dims[5] // 2, "shown": 16, "layer": 5, "resolution": 16}
    fmap = ghfeat.extract_spatial(digits[5], levels=[3], model=enc, generator=gen)[3][0]
    top = fmap[fmap.flatten(1).std(1).argmax()]
    assert np.array_equal(grid[:32, :32], ((top - top.min()) / (top.max() - top.min()) * 255).round().byte().numpy())
    assert (grid[32, :] == 64).all()                               # the gap between tiles


def test_measure_on_drawn_strokes():
    img = -torch.ones(3, 1, 32, 32)
    img[0, :, 6:26, 15:17] = 1                                     # upright bar, 2 px wide
    img[1, :, 6:26, 14:18] = 1                                     # upright bar, 4 px wide
    for r in range(6, 26):                                         # leaning right at the top
        c = 16 + (16 - r) // 2
        img[2, :, r, c:c + 2] = 1
    thick, slant, bright = (measure(img, a) for a in ATTRIBUTES)
    assert thick[1] > thick[0]
    assert slant[0] == pytest.approx(0, abs=1e-6) and slant[2] > 0.3
    assert torch.allclose(bright, img.mean((1, 2, 3)))
    with pytest.raises(ValueError, match="unknown attribute"):
        measure(img, "colour")


def test_upload_messages(ex, tmp_path, digits):
    with pytest.raises(UploadError, match=r"64x48 pixels; the model takes 32x32\. Tick 'Resize uploads"):
        ex.to_tensor(Image.new("L", (64, 48)))
    x = ex.to_tensor(Image.new("RGB", (64, 48), "white"), resize=True)
    assert x.shape == (1, 1, 32, 32) and torch.allclose(x, torch.ones_like(x))
    with pytest.raises(UploadError, match="'notes.txt' is not an image"):
        ex.to_tensor(BadUpload("notes.txt", "UnidentifiedImageError"))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    with pytest.raises(UploadError, match="'junk.png' is not an image"):
        ex.to_tensor(str(junk))
    with pytest.raises(UploadError, match="No image yet"):
        ex.to_tensor(None)
    with pytest.raises(UploadError, match="drawing is empty"):
        ex.to_tensor({"composite": None})
    drawn = ex.to_tensor({"composite": Image.new("RGBA", (256, 256), (0, 0, 0, 255))})   # resized, always
    assert drawn.shape == (1, 1, 32, 32) and torch.allclose(drawn, -torch.ones_like(drawn))
    assert np.array_equal(to_uint8(ex.to_tensor(digits[1])[0]), np.asarray(digits[1]))


def test_core_package_does_not_import_gradio():
    code = ("import sys, ghfeat, ghfeat.api, ghfeat.editing, ghfeat.cli, ghfeat.app; "
            "assert 'gradio' not in sys.modules, 'gradio imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=600)


@pytest.mark.slow                                               # two CLI subprocesses: about 6 s
def test_cli_without_the_extra(tmp_path):
    """No gradio: one line naming the extra, exit 2, before any model is loaded."""
    (tmp_path / "gradio.py").write_text("raise ImportError('No module named gradio')\n")
    r = subprocess.run([sys.executable, "-m", "ghfeat", "app"], capture_output=True, text=True, timeout=600,
                       cwd=ROOT, env={**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"})
    assert r.returncode == 2
    assert r.stderr.strip() == 'ghfeat app: error: ghfeat app needs the optional extra: pip install "ghfeat[app]" ' \
                               '(it installs Gradio)'
    r = subprocess.run([sys.executable, "-m", "ghfeat", "app", "--port", "70000"], capture_output=True, text=True,
                       timeout=600, cwd=ROOT)
    assert r.returncode == 2 and r.stderr.strip() == "ghfeat app: error: --port must be in 1..65535, got 70000"
