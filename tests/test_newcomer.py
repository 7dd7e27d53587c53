"""A newcomer's first hour (issue 17): the CLI verbs for reconstruction and style mixing, the
bundled sample digits, flags in CLI messages and defaults in ``--help``, the edit grid's reference
columns, a broken torch/torchvision install named as such, no network failing fast with one
exception, and the packaging files."""
from __future__ import annotations

import argparse
import re
import runpy
import socket
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ghfeat
from ghfeat import editing
from ghfeat.api import clear_model_cache, make_grid
from ghfeat.cli import main
from _helpers import one_line_error

ROOT = Path(__file__).resolve().parents[1]




def png(path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("digits")
    return ghfeat.save_sample_digits(folder)


@pytest.fixture(scope="module")
def models():
    enc = ghfeat.create_encoder("mnist32", pretrained=True)
    return enc, ghfeat.create_generator(enc.generator_name, pretrained=True)


# -- sample digits ------------------------------------------------------------------------------------

def test_sample_digits_are_the_bundled_strip(digits, tmp_path, capsys):
    strip = png(ROOT / "ghfeat" / "assets" / "mnist_test_digits.png")          # [32, 320], one per class
    strip = strip if strip.ndim == 2 else strip[..., 0]
    assert [p.name for p in digits] == [f"digit_{i}.png" for i in range(10)]
    for i, p in enumerate(digits):
        assert Image.open(p).mode == "L" and np.array_equal(png(p), strip[:, 32 * i:32 * (i + 1)])
    x = ghfeat.sample_digits()
    assert x.shape == (10, 1, 32, 32) and np.array_equal(((x[3, 0] + 1) * 127.5).round().byte().numpy(), png(digits[3]))
    assert main(["sample-digits", "--out", str(tmp_path / "d")]) == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == sorted(p.name for p in digits)


# -- reconstruct / mix / edit on the command line -------------------------------------------------------

def test_cli_reconstruct_writes_what_the_api_computes(digits, models, tmp_path, capsys):
    enc, gen = models
    folder = digits[0].parent
    assert main(["reconstruct", str(folder), "--out", str(tmp_path / "rec"), "--grid", str(tmp_path / "g.png")]) == 0
    out = capsys.readouterr().out
    api = ghfeat.reconstruct([str(p) for p in digits], encoder=enc, generator=gen)     # uint8 [10, 1, 32, 32]
    for i, p in enumerate(digits):
        got = png(tmp_path / "rec" / p.name)
        assert got.shape == (32, 32) and np.abs(got.astype(int) - api[i, 0].numpy().astype(int)).max() <= 1
    mse = ((api.float() / 127.5 - 1) - ghfeat.load_images([str(p) for p in digits], channels=1)).pow(2).mean()
    printed = float(re.search(r"MSE to the inputs \(in \[-1, 1\]\): ([0-9.]+)", out).group(1))
    assert abs(printed - float(mse)) < 2e-4
    grid = png(tmp_path / "g.png")                                   # 10 rows of input | reconstruction
    assert grid.shape == (10 * 34 + 2, 2 * 34 + 2)
    assert np.array_equal(grid[2:34, 2:34], png(digits[0]))


def test_cli_mix_matches_style_mix(digits, models, tmp_path, capsys):
    enc, gen = models
    args = ["mix", "--content", str(digits[0]), str(digits[1]), "--style", str(digits[7]), "--out", str(tmp_path / "m.png")]
    assert main(args) == 0
    assert "levels [5, 6, 7, 8]" in capsys.readouterr().out                    # default: the coarse half
    grid = ghfeat.style_mix([str(digits[0]), str(digits[1])], [str(digits[7])], [5, 6, 7, 8], encoder=enc, generator=gen)
    expected = ((make_grid(grid.flatten(0, 1), nrow=3)[0] + 1) * 127.5).round().clamp(0, 255).byte().numpy()
    assert np.array_equal(png(tmp_path / "m.png"), expected)
    assert main(args[:-2] + ["--levels", "1", "--out", str(tmp_path / "m1.png")]) == 0
    assert not np.array_equal(png(tmp_path / "m1.png"), expected)


def test_cli_edit_shows_the_input_and_the_unedited_reconstruction(digits, models, tmp_path, capsys):
    enc, gen = models
    assert main(["edit", str(digits[2]), str(digits[3]), "--levels", "7", "--strengths", "-2", "2",
                 "--out", str(tmp_path / "e.png")]) == 0
    assert "input, unedited reconstruction" in capsys.readouterr().out
    grid = png(tmp_path / "e.png")
    assert grid.shape == (2 * 34 + 2, 4 * 34 + 2)                    # 2 rows x (input, rec, 2 strengths)
    cell = lambda r, c: grid[2 + 34 * r: 34 + 34 * r, 2 + 34 * c: 34 + 34 * c].astype(int)
    rec = ghfeat.reconstruct([str(digits[2]), str(digits[3])], encoder=enc, generator=gen)
    for r, p in enumerate(digits[2:4]):
        assert np.array_equal(cell(r, 0), png(p))
        assert np.abs(cell(r, 1) - rec[r, 0].numpy().astype(int)).max() <= 1
        assert np.abs(cell(r, 2) - cell(r, 1)).max() > 5                 # the edits differ from it
    x = editing.edit([str(digits[2])], editing.sefa_directions(gen, 7)[0][0], [0.0], [7],
                            encoder=enc, generator=gen, originals=True)
    assert x.shape == (1, 3, 1, 32, 32) and torch.equal(x[0, 1], x[0, 2])   # strength 0 = the reconstruction


def test_cli_messages_name_flags_and_help_shows_defaults(tmp_path, capsys):
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(tmp_path / "big.png")
    for verb in (["reconstruct", str(tmp_path / "big.png"), "--out", str(tmp_path / "r")],
                 ["mix", "--content", str(tmp_path / "big.png"), "--style", str(tmp_path / "big.png"),
                  "--out", str(tmp_path / "m.png")]):
        assert main(verb) == 2
        err = one_line_error(capsys, "--resize", "48x48")
        assert "resize=True" not in err and "size=..." not in err
    assert main(["reconstruct", str(tmp_path / "nope.png")]) == 2
    one_line_error(capsys, "nope.png", "does not exist")
    for verb, defaults in (("reconstruct", ["(default: mnist32)", "(default: 64)", "(default: reconstructions)"]),
                           ("mix", ["(default: mix.png)", "coarse half"]),
                           ("edit", ["(default: sefa:0)", "(default: [-3.0, -1.5, 0.0, 1.5, 3.0])"]),
                           ("extract", ["(default: features.npz)"]), ("demo", ["(default: ghfeat_demo)"])):
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert all(d in text for d in defaults), (verb, text)
        assert "(default: None)" not in text and "(default: False)" not in text
    with pytest.raises(SystemExit):
        main(["download-data", "--help"])
    assert "default: data/NAME" in " ".join(capsys.readouterr().out.split())


# -- a broken install -----------------------------------------------------------------------------------

def test_torchvision_mismatch_is_named_with_both_versions_and_the_fix(tmp_path, monkeypatch, capsys):
    from importlib import metadata

    from ghfeat import _compat
    from ghfeat.models import encoder as encoder_mod

    assert _compat.matching_torchvision("2.14.1+cpu") == "0.29" and _compat.matching_torchvision("2.1.0") == "0.16"
    # the pair installed here belongs together (what the README's CPU note installs)
    tv = metadata.version("torchvision").split("+")[0]
    assert tv.startswith(_compat.matching_torchvision(metadata.version("torch")) + ".")

    def broken():
        raise RuntimeError("operator torchvision::nms does not exist")
    monkeypatch.setattr(encoder_mod, "_timm_parts", broken)
    clear_model_cache()
    with pytest.raises(_compat.TorchvisionMismatchError) as err:
        ghfeat.create_encoder("mnist32")
    msg = str(err.value)
    assert metadata.version("torch") in msg and metadata.version("torchvision") in msg
    assert "pip install torch==" in msg and "torchvision==0.29" in msg and err.value.__cause__ is None
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    err = one_line_error(capsys, "do not work together", "not a ghfeat bug", "--index-url")
    assert "internal error" not in err and "please report" not in err
    # other errors pass through unchanged
    monkeypatch.setattr(encoder_mod, "_timm_parts", lambda: (_ for _ in ()).throw(RuntimeError("other")))
    with pytest.raises(RuntimeError, match="^other$"):
        ghfeat.create_encoder("mnist32")


# -- no network -----------------------------------------------------------------------------------------

@pytest.fixture
def no_dns(monkeypatch):
    calls = []

    def fail(host, *a, **k):
        calls.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    monkeypatch.setattr(socket, "getaddrinfo", fail)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    return calls


def test_failed_name_lookup_fails_at_once_with_one_exception(tmp_path, no_dns):
    from ghfeat import download
    from ghfeat.pretrained import WeightsDownloadError

    t = time.perf_counter()
    with pytest.raises(WeightsDownloadError) as err:
        download.download_file("https://files.example.org/x.pkl", tmp_path / "x.pkl", progress=False)
    assert time.perf_counter() - t < 2.0 and no_dns == ["files.example.org"]     # looked up once, no retries
    assert err.value.__cause__ is None and err.value.__suppress_context__         # not three chained tracebacks
    assert "files.example.org cannot be reached" in str(err.value) and "No network here?" in str(err.value)
    assert not list(tmp_path.iterdir())


def test_refused_connection_fails_at_once(tmp_path):
    from ghfeat import download
    from ghfeat.pretrained import WeightsDownloadError

    with socket.socket() as sock:                      # a port on 127.0.0.1 that nobody serves
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t = time.perf_counter()
    with pytest.raises(WeightsDownloadError, match="connection was refused") as err:
        download.download_file(f"http://127.0.0.1:{port}/x.pkl", tmp_path / "x.pkl", progress=False)
    assert time.perf_counter() - t < 2.0 and err.value.__cause__ is None


def test_hub_without_network_answers_at_once_from_the_cache_only(tmp_path, monkeypatch, no_dns):
    from ghfeat.pretrained import WeightsOfflineError, hub_download

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    t = time.perf_counter()
    with pytest.raises(WeightsOfflineError) as err:
        hub_download("someone/model", "model.safetensors")
    assert time.perf_counter() - t < 3.0 and err.value.__cause__ is None and err.value.__suppress_context__
    assert "huggingface.co failed" in str(err.value) and "not in the Hugging Face cache" in str(err.value)


# -- examples without their data -------------------------------------------------------------------------

@pytest.mark.parametrize("script", ["linear_probe", "retrieval", "fewshot_segmentation", "finetune_classifier",
                                    "editing_directions"])
def test_examples_without_data_end_with_one_line(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [f"{script}.py", "--data", str(tmp_path / "mnist")])
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(ROOT / "examples" / f"{script}.py"), run_name="__main__")
    assert exc.value.code == 2                       # ghfeat._script.run: one line, exit 2
    msg = capsys.readouterr().err.strip()
    assert "\n" not in msg and msg.startswith(f"{script}.py: error:"), msg
    assert f"ghfeat download-data mnist --out {tmp_path / 'mnist'}" in msg


# -- packaging ----------------------------------------------------------------------------------------

def test_licence_files_typing_marker_urls_and_input_spec():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    for lic in (ROOT / "ghfeat" / "assets" / "LICENSE", ROOT / "ghfeat" / "assets" / "mnist32" / "LICENSE"):
        assert "CC BY-SA 3.0" in lic.read_text()
    assert (ROOT / "ghfeat" / "py.typed").is_file()
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert {"Homepage", "Documentation", "Source", "Issues", "Paper"} <= set(meta["project"]["urls"])
    assert "py.typed" in meta["tool"]["setuptools"]["package-data"]["ghfeat"]
    assert all((ROOT / f).is_file() for f in meta["project"]["license-files"])
    gray = ghfeat.create_encoder("mnist32")
    assert gray.input_spec["channels"] == 1 and "grayscale" in gray.input_spec["layout"] and "RGB" not in gray.input_spec["layout"]
    rgb = ghfeat.create_encoder("tiny32")
    assert rgb.input_spec["channels"] == 3 and "RGB" in rgb.input_spec["layout"]


def _all_parsers(parser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_parsers(sub)


def test_every_help_page_renders():
    """argparse %-formats help strings: a bare '%' made ``ghfeat eval --help`` exit with 'incomplete format'."""
    from ghfeat.cli import build_parser as ghfeat_parser
    from ghfeat.eval.cli import build_parser as eval_parser
    from ghfeat.train.cli import build_parser as train_parser
    pages = [p.format_help() for root in (ghfeat_parser(), eval_parser(), train_parser()) for p in _all_parsers(root)]
    assert len(pages) > 20 and all("usage:" in page for page in pages)
    assert any("per-class %" in page for page in pages)      # the escaped percent sign, shown as one
