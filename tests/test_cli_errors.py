"""Internal errors that are now clear ones (issue 12): the CLI prints one line and exits non-zero
(``--debug`` for the traceback), outputs are checked before any work, image files are checked
from their header, and a few API arguments get clear messages."""
from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ghfeat
from ghfeat.cli import main
from ghfeat.pretrained import WeightsError
from _helpers import one_line_error

ROOT = Path(__file__).resolve().parents[1]




def png_header(path, width, height):
    """A PNG file whose header claims ``width x height`` (no real pixel data)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
                           + chunk(b"IEND", b""))
    return path


@pytest.fixture
def digits(tmp_path):
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((32, 32), 40 * i, np.uint8)).save(folder / f"{i}.png")
    return folder


def test_version_and_gitignore(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"ghfeat {ghfeat.__version__}"
    assert "ghfeat_demo/" in (ROOT / ".gitignore").read_text().split()


def test_list_pretrained_says_where_weights_are(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GHFEAT_CACHE", str(tmp_path))
    assert main(["list", "--pretrained", "*ffhq*"]) == 0
    out = capsys.readouterr().out
    assert ("weights: downloads the official ghfeat-encoder-ffhq-256.pkl on first use (or now: "
            "`ghfeat download ffhq256`; a copy you have: `ghfeat convert ghfeat-encoder-ffhq-256.pkl`)") in out
    assert main(["list", "--pretrained", "mnist32"]) == 0
    out = capsys.readouterr().out
    assert "[in the package]" in out and "weights: in the package (no download)" in out
    (tmp_path / "encoder" / "ffhq256").mkdir(parents=True)
    (tmp_path / "encoder" / "ffhq256" / "manifest.json").write_text("{}")
    assert main(["list", "--pretrained", "ffhq256", "--kind", "encoder"]) == 0
    assert "weights: converted (in the ghfeat cache)" in capsys.readouterr().out


def test_extract_folders_checkpoint_and_out(digits, tmp_path, capsys):
    out = tmp_path / "new" / "sub" / "f.npz"                     # missing folders are created
    assert main(["extract", str(digits), "--random-weights", "--model", "tiny32", "--levels", "1",
                 "--out", str(out)]) == 0
    data = np.load(out)
    assert data["level_1"].shape[0] == 2 and [Path(f).name for f in data["files"]] == ["0.png", "1.png"]
    ghfeat.save_model(ghfeat.create_encoder("tiny32"), tmp_path / "enc")
    assert main(["extract", str(digits / "0.png"), "--model", "tiny32", "--checkpoint", str(tmp_path / "enc"),
                 "--out", str(tmp_path / "g")]) == 0
    assert (tmp_path / "g.npz").is_file()
    capsys.readouterr()
    assert main(["extract", str(digits), "--model", "stylegan-none"]) == 2        # default: pretrained weights
    one_line_error(capsys, "ghfeat extract: error:")


def test_outputs_checked_before_any_work(digits, tmp_path, monkeypatch, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    monkeypatch.setattr(ghfeat, "extract", lambda *a, **k: pytest.fail("extracted before checking --out"))
    for out in (afile / "f.npz", tmp_path):                       # under a file; a folder
        assert main(["extract", str(digits), "--random-weights", "--model", "tiny32", "--out", str(out)]) == 2
        one_line_error(capsys, "--out")
    assert main(["demo", "--random-weights", "--out", str(afile)]) == 2
    one_line_error(capsys, "ghfeat demo: error: --out", "is a file")


def test_cli_errors_one_line_and_debug_traceback(tmp_path, capsys):
    args = ["extract", str(tmp_path / "missing.png"), "--random-weights", "--model", "tiny32",
            "--out", str(tmp_path / "f.npz")]
    assert main(args) == 2
    one_line_error(capsys, "does not exist")
    with pytest.raises(FileNotFoundError):
        main(args + ["--debug"])
    assert main(["convert", str(tmp_path)]) == 2
    one_line_error(capsys, "is a folder")
    assert main(["train", "generator", "--run-dir", str(tmp_path / "r"), "lr=Infinity"]) == 2
    one_line_error(capsys, "lr must be a finite number")


def test_image_files_checked_from_header_and_regular_files_only(tmp_path):
    big = png_header(tmp_path / "big.png", 15000, 12000)
    with pytest.raises(ValueError, match=r"big\.png.*too large"):
        ghfeat.load_images(big)
    with pytest.raises(ValueError, match=r"10000x10000"):
        ghfeat.load_images(png_header(tmp_path / "b2.png", 10000, 10000))
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo.png"
        os.mkfifo(fifo)
        with pytest.raises(ValueError, match="not a regular file"):
            ghfeat.load_images(str(fifo))                       # would block forever if opened


def test_create_and_load_arguments(tmp_path):
    with pytest.raises(TypeError, match="registry name"):
        ghfeat.create_encoder(None)
    enc = ghfeat.create_encoder("tiny32")
    ghfeat.save_model(enc, tmp_path / "enc")
    assert type(ghfeat.create_encoder(tmp_path / "enc")) is type(enc)          # a Path is a saved folder
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="folder without model.safetensors"):
        ghfeat.create_encoder("tiny32", checkpoint_path=tmp_path / "empty")
    cfg = json.loads((tmp_path / "enc" / "config.json").read_text())
    cfg["config"]["not_an_argument"] = 1
    (tmp_path / "enc" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"enc/config\.json.*not_an_argument"):
        ghfeat.load_model(tmp_path / "enc")
