"""Smoke test of examples/fewshot_segmentation.py on tiny fake MNIST IDX files and random weights."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ghfeat.data import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fewshot_segmentation.py"


def load_example():
    spec = importlib.util.spec_from_file_location("fewshot_segmentation", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fake_mnist(root: Path, n: int = 12) -> None:
    """Strokes (random bars) on black 28x28 images, train and t10k, as IDX files."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        images = np.zeros((n, 28, 28), np.uint8)
        for img in images:
            r, c = rng.integers(4, 14, 2)
            img[r:r + rng.integers(6, 12), c:c + 3] = 255
        labels = rng.integers(0, 10, n).astype(np.uint8)
        for name, arr, magic in ((f"{prefix}-images-idx3-ubyte", images, IDX_IMAGES_MAGIC),
                                 (f"{prefix}-labels-idx1-ubyte", labels, IDX_LABELS_MAGIC)):
            header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
            (root / name).write_bytes(header + arr.tobytes())


def test_labels_are_three_classes():
    mod = load_example()
    x = -torch.ones(1, 1, 32, 32)
    x[0, 0, 10:20, 14:17] = 1
    ring = mod.make_labels(x, "ring")
    assert ring[0, 10:20, 14:17].eq(1).all() and ring[0, 9, 13] == 2 and ring[0, 0, 0] == 0
    assert int((ring == 2).sum()) == 12 * 5 - 10 * 3
    halves = mod.make_labels(x, "halves")
    assert halves[0, 10:15, 14:17].eq(1).all() and halves[0, 15:20, 14:17].eq(2).all()


def test_fewshot_smoke(tmp_path, capsys):
    fake_mnist(tmp_path / "mnist")
    mod = load_example()
    out = tmp_path / "res.json"
    res = mod.main(["--data", str(tmp_path / "mnist"), "--model", "tiny32", "--random-weights", "--limit", "4",
                    "--shots", "1", "2", "--repeats", "1", "--steps", "5", "--levels", "1", "8", "--json", str(out)])
    assert set(res) == {"pixels", "backbone", "ghfeat"}
    for row in res.values():
        assert set(row) == {1, 2} and all(0.0 <= v <= 1.0 for v in row.values())
    assert json.loads(out.read_text())["limit"] == 4
    assert "mean IoU" in capsys.readouterr().out


def test_classifier_scale_floor_for_channels_constant_in_few_shots():
    """With one labelled digit a channel can be (nearly) constant over its pixels; dividing by that
    std would blow the channel up on test pixels. The scale is floored at 0.1 x the mean std."""
    mod = load_example()
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(200, 4, generator=g)
    feats[:, 3] = 5.0 + 1e-7 * torch.randn(200, generator=g)        # constant in the training pixels
    labels = (feats[:, 0] > 0).long()
    mean, std, head = mod.train_classifier(feats, labels, steps=50, seed=0)
    assert torch.allclose(std[:3], feats[:, :3].std(0))              # ordinary channels: their own std
    assert float(std[3]) == pytest.approx(0.1 * float(feats.std(0).mean()), rel=1e-5)
    assert head.weight[:, 3].abs().max() < 1e-2                       # (Adam moves it by noise only)
    test = torch.randn(100, 4, generator=g)                           # channel 3 now varies by O(1)
    pred = head((test - mean) / std).argmax(1)
    assert (pred == (test[:, 0] > 0).long()).float().mean() > 0.9


def test_ghfeat_pixel_features_drop_each_images_channel_affine(monkeypatch):
    """AdaIN gives every image its own per-channel scale and shift; 'ghfeat' removes them (two
    images whose maps differ only by such an affine get the same features), 'ghfeat-raw' keeps them."""
    mod = load_example()
    g = torch.Generator().manual_seed(0)
    base = torch.randn(1, 4, 8, 8, generator=g)
    scale, shift = torch.rand(1, 4, 1, 1, generator=g) + 0.5, torch.randn(1, 4, 1, 1, generator=g)
    maps = torch.cat([base, base * scale + shift])
    monkeypatch.setattr(mod.ghfeat, "extract_spatial", lambda x, **kw: {1: maps[:, :2], 2: maps[:, 2:]})
    f = mod.pixel_features("ghfeat", torch.zeros(2, 1, 8, 8), None, None, None)
    torch.testing.assert_close(f[0], f[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(f.mean((2, 3)), torch.zeros(2, 4), rtol=0, atol=1e-6)
    raw = mod.pixel_features("ghfeat-raw", torch.zeros(2, 1, 8, 8), None, None, None)
    torch.testing.assert_close(raw, maps)
