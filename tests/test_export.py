"""Export of the encoder and the generator's synthesis, checked against eager PyTorch (tiny models, CPU).

Tolerance: max |exported - eager| <= 1e-4 on a batch of 3 (traced with 2, so the batch is dynamic).
TorchScript and ExportedProgram run the same kernels (measured diff 0); ONNX Runtime's kernels differ
in float rounding (measured ~4e-8 for the encoder's codes, ~3e-5 for the tiny synthesis's images).
"""
from __future__ import annotations

import importlib.util

import pytest
import torch

import ghfeat
from ghfeat.cli import main
from ghfeat.export import export, exported_max_abs_diff, load_exported

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))
FORMATS = ["torchscript", "exported-program",
           pytest.param("onnx", marks=pytest.mark.skipif(not HAS_ONNX, reason="pip install 'ghfeat[onnx]'"))]
EXT = {"torchscript": "pt", "exported-program": "pt2", "onnx": "onnx"}
TOL = 1e-4


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {"encoder": ghfeat.create_encoder("tiny32"), "synthesis": ghfeat.create_generator("stylegan-tiny32")}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("part", ["encoder", "synthesis"])
def test_export_matches_eager(models, part, fmt, tmp_path):
    model = models[part]
    path = export(model, fmt, tmp_path / f"{part}.{EXT[fmt]}")
    assert path.is_file() and model.training                     # train/eval state restored
    assert exported_max_abs_diff(model, path, fmt, batch=3) <= TOL
    run = load_exported(path, fmt)
    x = torch.rand(5, 3, 32, 32) * 2 - 1 if part == "encoder" else torch.randn(5, 8, 64) * 0.5
    out = run(x)
    assert out.shape == ((5, 8, 64) if part == "encoder" else (5, 3, 32, 32))   # another batch size


def test_export_refuses_bad_input(models, tmp_path):
    with pytest.raises(ValueError, match="format must be one of"):
        export(models["encoder"], "tflite", tmp_path / "x")
    with pytest.raises(TypeError, match="encoder or a StyleGAN generator"):
        export(torch.nn.Linear(2, 2), "torchscript", tmp_path / "x")


def test_cli_export(tmp_path, capsys):
    out = tmp_path / "syn.pt"
    assert main(["export", "stylegan-tiny32", "--format", "torchscript", "--out", str(out), "--random-weights"]) == 0
    assert out.is_file() and "max |exported - eager|" in capsys.readouterr().out
    assert main(["export", "no-such-model", "--format", "onnx", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "neither an encoder nor a generator" in capsys.readouterr().err
