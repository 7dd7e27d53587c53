"""Pretrained weights: what exists (``PretrainedCfg`` entries), where it is, and loading it safely.

Weights are data, kept apart from the architectures. ``create_encoder("ffhq256", pretrained=True)``
builds the model, then :func:`load_pretrained` looks for the weights in this order:

1. ``checkpoint_path=`` given by the caller (``.safetensors``, ``.pt``/``.pth``, or a folder with
   ``config.json`` + ``model.safetensors``);
2. a file shipped inside the package (``PretrainedCfg.embedded_path``);
3. the local ghfeat cache, where ``ghfeat convert`` installs weights converted from the official
   files (``$GHFEAT_CACHE`` or ``~/.cache/ghfeat``, ``<kind>/<name>/model.safetensors`` plus a
   ``manifest.json`` recording its sha256 and source);
4. the Hugging Face cache / Hub (``hf_hub_download``), only for entries whose sha256 is published
   (pinned) in this file;
5. the official file (entries with an ``origin``): :func:`ghfeat.download.fetch_official`
   downloads, checks and converts it, installing every network it holds into step 3's cache.

Every file is checked before anything is loaded: the sha256 (the entry's, or the manifest's for a
local conversion), then the safetensors header, then keys and shapes (strict). The model is only
touched once the whole state dict has been read and checked, so a failure never leaves it
half-loaded. Each failure raises one :class:`WeightsError` subclass whose message says what to do.

Policy for entries without a published sha256 (all official entries until the ghfeat Hub repos
are published): ghfeat does not download them from the Hub. They load from ``checkpoint_path`` or
from a local conversion (``ghfeat convert``, or step 5 done automatically). Set ``GHFEAT_ALLOW_UNPINNED=1``
(or ``ghfeat.pretrained.ALLOW_UNPINNED = True``) to download an unpinned Hub file anyway; it is
then only checked for a valid safetensors header and strict keys/shapes.

Run ``python -m ghfeat.pretrained --markdown`` to print the model table of ``docs/weights.md``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ._io import (CONFIG_NAME, WEIGHTS_NAME, atomic_write_bytes, build_from_config, check_finite_state,
                  load_state_dict_strict, model_config, read_safetensors, state_dict_for_saving)

logger = logging.getLogger(__name__)

ALLOW_UNPINNED = False          # or env GHFEAT_ALLOW_UNPINNED=1: download Hub files with no sha256
MANIFEST_NAME = "manifest.json"
HUB_ORG = "ghfeat"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")


# ---------------------------------------------------------------------------------------------
# Errors: one class per failure; every message says what happened and what to do next.
# ---------------------------------------------------------------------------------------------
class WeightsError(RuntimeError):
    """Base class of every pretrained-weights failure."""


class WeightsNotFoundError(WeightsError):
    """No weights at the place asked for: missing file, unknown Hub repo or file, or an entry
    whose weights cannot be obtained automatically (see the message for where to get them)."""


class WeightsOfflineError(WeightsNotFoundError):
    """The weights are not cached locally and the Hub cannot be reached (``HF_HUB_OFFLINE=1`` or
    no network)."""


class WeightsCorruptError(WeightsError):
    """A weight file is truncated or corrupt: sha256 mismatch or an unreadable header."""


class WeightsMismatchError(WeightsError):
    """The weights do not fit the model: other keys/shapes, another class, or overrides that
    change the architecture."""


class WeightsDownloadError(WeightsError):
    """A download started but did not finish (connection lost, server error). Nothing was kept."""


# ---------------------------------------------------------------------------------------------
# Weight entries
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Origin:
    """Where the original (official) file comes from."""
    file: str                    # official file name, e.g. "ghfeat-encoder-ffhq-256.pkl"
    page: str                    # public page listing the download link (authoritative)
    url: str | None = None       # direct link as listed on that page (may break; page wins)
    format: str = "tf-pickle"    # "tf-pickle" (official TF (E, G, D, Gs) pickles), "genforce-pth"
    sha256: str | None = None    # of the official file, when known: checked before it is parsed


@dataclass(frozen=True)
class PretrainedCfg:
    """One set of pretrained weights for a registered model (timm ``pretrained_cfg`` style).

    ``architecture`` + ``arch_overrides`` name the registry builder and config the weights fit;
    ``sha256`` pins the published ``model.safetensors`` (None = not published: see the module
    docstring for what ghfeat does then).
    """
    name: str                                    # registry name, e.g. "ffhq256"
    kind: str                                    # "generator" | "discriminator" | "encoder"
    hf_hub_id: str | None = None                 # "ghfeat/ghfeat-encoder-ffhq256"
    filename: str = WEIGHTS_NAME
    revision: str = "main"                       # pinned 40-hex commit once published
    sha256: str | None = None                    # of `filename`; None = unpublished
    architecture: str = ""                       # registry name of the builder the weights fit
    arch_overrides: Mapping[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int, int] | None = None   # (C, H, W) the model expects; None for G
    input_range: tuple[float, float] | None = None   # value range of that input
    alignment: str | None = None                 # how inputs must be cropped/aligned
    paired_generator: str | None = None          # generator the encoder/discriminator goes with
    license: str = "other"                       # Hub license id ("other" = see notes)
    origin: Origin | None = None
    paper_ids: tuple[str, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    metrics_protocol: str = ""                   # how the metrics were measured, by whom
    notes: str = ""
    embedded_path: str | None = None             # package-relative file shipped with ghfeat

    def __post_init__(self):
        if self.sha256 is not None and not _SHA256_RE.match(self.sha256):
            raise ValueError(f"{self.kind} {self.name}: sha256 must be 64 lowercase hex chars")
        if self.revision != "main" and not _COMMIT_RE.match(self.revision):
            raise ValueError(f"{self.kind} {self.name}: revision must be 'main' or a 40-hex commit")

    @property
    def pinned(self) -> bool:
        """True when the published file's sha256 is recorded here (safe to download)."""
        return self.sha256 is not None

    @property
    def hub_url(self) -> str | None:
        return f"https://huggingface.co/{self.hf_hub_id}" if self.hf_hub_id else None


_GHFEAT_PAGE = "https://github.com/genforce/ghfeat#testing"
_STYLEGAN_PAGE = "https://github.com/genforce/ghfeat#training"
_PAPER = ("arXiv:2007.10379",)
_LICENSE_NOTE = ("License: the genforce/ghfeat repository has no LICENSE file and its code derives "
                 "from NVlabs/stylegan (CC BY-NC 4.0); treat these weights as non-commercial "
                 "research use. ")
_FFHQ_ALIGN = ("FFHQ alignment: faces cropped and rotated from 68 dlib landmarks as in the FFHQ "
               "data set, resized to 256x256")
_LSUN_ALIGN = "LSUN: resize the short side to 256, then center-crop 256x256"
_ALIGN = {"ffhq": _FFHQ_ALIGN, "tower": _LSUN_ALIGN, "bedroom": _LSUN_ALIGN}
_DATA = {"ffhq": "FFHQ faces", "tower": "LSUN Tower", "bedroom": "LSUN Bedroom"}
# Direct links as listed in the genforce/ghfeat README (the README's face/tower *encoder* links
# carry swapped labels; the file names below are the ones the links actually serve). The README
# lists them with ?dl=0 (a Dropbox preview page); ?dl=1 is the direct-download form used here.
_DROPBOX = {
    "ghfeat-encoder-ffhq-256.pkl": "https://www.dropbox.com/s/9lrof8l54t2s9lx/ghfeat-encoder-ffhq-256.pkl?dl=1",
    "ghfeat-encoder-tower-256.pkl": "https://www.dropbox.com/s/844koj8shv9y4gh/ghfeat-encoder-tower-256.pkl?dl=1",
    "ghfeat-encoder-bedroom-256.pkl": "https://www.dropbox.com/s/rxjzd4hsvlvbydi/ghfeat-encoder-bedroom-256.pkl?dl=1",
    "stylegan-ffhq-256.pkl": "https://www.dropbox.com/s/r068a4q2wcrs5kv/stylegan-ffhq-256.pkl?dl=1",
    "stylegan-tower-256.pkl": "https://www.dropbox.com/s/nme0ka0zjx81r0q/stylegan-tower-256.pkl?dl=1",
    "stylegan-bedrooms-256.pkl": "https://www.dropbox.com/s/1c8p1m0c6pv2cqr/stylegan-bedrooms-256.pkl?dl=1",
}
_PAPER_METRICS = {
    "ffhq": ({"mse": 0.0464, "ssim": 0.558, "fid": 18.48},
             "Reported in the paper (Xu et al., CVPR 2021, Tab. 1; Tab. 2 gives FID 18.42): "
             "reconstruction G(E(x)) vs x on FFHQ-256 real faces, MSE on [-1, 1] images. "
             "Not re-measured by ghfeat."),
    "bedroom": ({"mse": 0.068, "ssim": 0.507, "fid": 16.01},
                "Reported in the paper (Xu et al., CVPR 2021, Tab. 2): reconstruction G(E(x)) vs x "
                "on LSUN Bedroom 256. Not re-measured by ghfeat."),
}


def _official_entries() -> list[PretrainedCfg]:
    out = []
    for data in ("ffhq", "tower", "bedroom"):
        enc_file = f"ghfeat-encoder-{data}-256.pkl"
        gan_file = f"stylegan-{'bedrooms' if data == 'bedroom' else data}-256.pkl"
        gan_name = f"stylegan-{data}256"
        metrics, protocol = _PAPER_METRICS.get(data, ({}, ""))
        out.append(PretrainedCfg(
            name=f"{data}256", kind="encoder", hf_hub_id=f"{HUB_ORG}/ghfeat-encoder-{data}256",
            architecture=f"{data}256",         # the official-arithmetic ResNet-50 entry itself
            input_size=(3, 256, 256), input_range=(-1.0, 1.0), alignment=_ALIGN[data],
            paired_generator=gan_name, origin=Origin(enc_file, _GHFEAT_PAGE, _DROPBOX[enc_file]),
            paper_ids=_PAPER, metrics=metrics, metrics_protocol=protocol,
            notes=(f"Official GH-Feat encoder (ResNet-50 + FPN/SAM heads) trained on "
                   f"{_DATA[data]}, converted from the TF pickle's E. " + _LICENSE_NOTE)))
        for kind, what in (("generator", "G (smoothed Gs)"), ("discriminator", "D")):
            out.append(PretrainedCfg(
                name=gan_name, kind=kind, hf_hub_id=f"{HUB_ORG}/{gan_name}-{kind}",
                architecture="stylegan-256",
                input_size=None if kind == "generator" else (3, 256, 256),
                input_range=None if kind == "generator" else (-1.0, 1.0),
                alignment=None if kind == "generator" else _ALIGN[data],
                paired_generator=None if kind == "generator" else gan_name,
                origin=Origin(gan_file, _STYLEGAN_PAGE, _DROPBOX[gan_file]), paper_ids=_PAPER,
                notes=(f"StyleGAN v1 256x256 trained on {_DATA[data]} by the GH-Feat authors "
                       f"(official StyleGAN recipe), the {what} of the TF pickle. GH-Feat uses "
                       f"it frozen as the learned loss. " + _LICENSE_NOTE)))
    return out


# The embedded default: trained by ghfeat on MNIST on a 2-core CPU (docs/mnist.md), shipped in fp16.
# (kind, sha256 of ghfeat/assets/mnist32/<kind>.safetensors)
_MNIST_SHA256 = {
    "generator": "bbcc1024c8b24c01326971a2a91c1186e3bb83770e35f7c94c2389158aed562a",
    "discriminator": "9ae26f9f1b377a46c6b251ba02f00a573677ede4e3d363a50985f81e6334af54",
    "encoder": "bef80f7850835f3e2b39f914ea1afc6a06ec463ae27b8f6c4c5a92ce6c5fae3e",
}
_MNIST_METRICS = {     # `ghfeat eval card mnist32 --data mnist:DIR` (docs/mnist.md; v3, 2026-12-01)
    "generator": {"classifier_fd": 7.39, "class_entropy": 2.289, "confidence": 0.973, "min_class_fraction": 0.068},
    "encoder": {"mse": 0.0193, "class_agreement": 0.9856, "linear_probe_top1": 99.13, "knn_top1": 98.04,
                "mixing_5-8": 0.933, "mixing_1-4": 0.927, "mixing_7-8": 0.104},
}
_MNIST_NOTES = ("Trained by ghfeat (`--recipe mnist32-cpu`, then continued: v3) on the full MNIST training set (60,000 "
                "digits; MNIST is CC BY-SA 3.0, and so are these weights) on a 2-core CPU; see "
                "docs/mnist.md for the runs, the metrics and how to reproduce them.")


# Fashion-MNIST (docs/own-data.md): trained by ghfeat from a folder of PNGs, the own-data workflow.
_FASHION_SHA256: dict[str, str] = {
    "generator": "613d40a2c193cd8bd7c92795bcc5507bd3c434b95065d077281c580a6a0e15c5",
    "discriminator": "3bf1376dfd9c46088d2bebd5a4b2ca21bf1cfa6003bc708e44977020b7006b63",
    "encoder": "31baf041ab5b383fd5fd0a50b0044e20034c4ca76bdf057defb0b598cb171a46",
}
_FASHION_METRICS = {   # `ghfeat eval card fashion32 --data folder:DIR --classifier fashion-mnist` (docs/own-data.md)
    "generator": {"classifier_fd": 23.03, "class_entropy": 2.268, "confidence": 0.873, "min_class_fraction": 0.059},
    "encoder": {"mse": 0.0462, "class_agreement": 0.8313, "linear_probe_top1": 88.15, "knn_top1": 86.21,
                "mixing_5-8": 0.373, "mixing_1-4": 0.372, "mixing_7-8": 0.17},
}
_FASHION_NOTES = ("Trained by ghfeat from scratch on Fashion-MNIST (60,000 training images exported as a folder of "
                  "PNGs: the own-data workflow) on a 2-core CPU; Fashion-MNIST is MIT (Zalando SE), and so are "
                  "these weights. See docs/own-data.md for the runs, the metrics and how to reproduce them.")


def _shipped_entries(tag: str, gan: str, encoder: str, sha256: dict, metrics: dict, notes: str, license: str,
                     alignment: str, doc: str) -> list[PretrainedCfg]:
    """The registry entries of a GAN + encoder trained by ghfeat and shipped in ``assets/<tag>/``."""
    out = []
    for kind, name in (("generator", gan), ("discriminator", gan), ("encoder", encoder)):
        if kind not in sha256:
            continue
        out.append(PretrainedCfg(
            name=name, kind=kind, sha256=sha256[kind], architecture=name,
            input_size=None if kind == "generator" else (1, 32, 32),
            input_range=None if kind == "generator" else (-1.0, 1.0),
            alignment=None if kind == "generator" else alignment,
            paired_generator=None if kind == "generator" else gan,
            license=license, paper_ids=_PAPER, metrics=metrics.get(kind, {}),
            metrics_protocol=f"measured by ghfeat ({doc})" if metrics.get(kind) else "",
            notes=notes, embedded_path=f"assets/{tag}/{kind}.safetensors"))
    return out


def _mnist_entries() -> list[PretrainedCfg]:
    return _shipped_entries("mnist32", "stylegan-mnist32", "mnist32", _MNIST_SHA256, _MNIST_METRICS, _MNIST_NOTES,
                            "cc-by-sa-3.0", "MNIST digits padded from 28x28 to 32x32", "docs/mnist.md")


def _fashion_entries() -> list[PretrainedCfg]:
    return _shipped_entries("fashion32", "stylegan-fashion32", "fashion32", _FASHION_SHA256, _FASHION_METRICS,
                            _FASHION_NOTES, "mit", "Fashion-MNIST 28x28 PNGs resized to 32x32 (Lanczos, the "
                            "image-folder loader; ghfeat.data.make_dataset)", "docs/own-data.md")


# The raw (non-EMA) generator of a shipped GAN, so that `ghfeat train generator
# generator_pretrained=true` continues the run where it stopped (G, G_ema and D; docs/training.md).
# name -> (package-relative file, sha256)
_RAW_GENERATORS: dict[str, tuple[str, str]] = {
    "stylegan-fashion32": ("assets/fashion32/generator_raw.safetensors",
                           "69704ec5e2280c704a7866d24d94047be82716233d2e9a010f185c7c97b6eb19"),
    "stylegan-mnist32": ("assets/mnist32/generator_raw.safetensors",
                         "6d59d08d56673290bab46c20d944d8219983fb498fe5b52ab09ca3a0fddf1bd8"),
}


def raw_generator_path(name: str) -> Path | None:
    """The verified file of generator ``name``'s raw training weights (not the EMA the registry
    loads), or None when the entry ships none."""
    if name not in _RAW_GENERATORS:
        return None
    rel, sha = _RAW_GENERATORS[name]
    path = Path(__file__).resolve().parent / rel
    if not path.is_file():
        raise WeightsNotFoundError(f"the raw generator weights of {name!r} ({path}) are missing from the "
                                   "installation; reinstall ghfeat (pip install --force-reinstall ghfeat)")
    _verify_sha256(path, sha, f"packaged raw generator of {name!r}",
                   "Reinstall ghfeat (pip install --force-reinstall ghfeat).")
    return path


_PRETRAINED: dict[tuple[str, str], PretrainedCfg] = {
    (c.kind, c.name): c for c in _official_entries() + _mnist_entries() + _fashion_entries()}


def get_pretrained_cfg(kind: str, name: str) -> PretrainedCfg | None:
    """The weight entry of registry model ``(kind, name)``, or None when it has none."""
    return _PRETRAINED.get((kind, name))


def list_pretrained_cfgs(kind: str | None = None) -> list[PretrainedCfg]:
    """Every weight entry (of ``kind``), sorted by kind then name."""
    return [c for k, c in sorted(_PRETRAINED.items()) if kind is None or c.kind == kind]


def weights_availability(cfg: PretrainedCfg) -> str:
    """Where ``pretrained=True`` would get ``cfg``'s weights, checked locally (no network):
    ``"in the package (no download)"``, ``"converted (in the ghfeat cache)"``, ``"download from
    the Hub (...)"``, ``"downloads <official file> on first use ..."`` or ``"not available"``."""
    if cfg.embedded_path and (Path(__file__).resolve().parent / cfg.embedded_path).is_file():
        return "in the package (no download)"
    if (cache_dir() / cfg.kind / cfg.name / MANIFEST_NAME).is_file():
        return "converted (in the ghfeat cache)"
    if cfg.hf_hub_id and (cfg.pinned or _allow_unpinned()):
        return f"download from the Hub ({cfg.hf_hub_id})"
    if cfg.origin is not None:
        return (f"downloads the official {cfg.origin.file} on first use (or now: `ghfeat download "
                f"{cfg.name}`; a copy you have: `ghfeat convert {cfg.origin.file}`)")
    return "not available"


def convert_hint(cfg: PretrainedCfg) -> str:
    """How to get ``cfg``'s weights by hand: official file, page, ``ghfeat convert`` command."""
    if cfg.origin is None:
        return ""
    link = f" (direct link listed there: {cfg.origin.url})" if cfg.origin.url else ""
    return (f"Download the official file {cfg.origin.file} from {cfg.origin.page}{link}, then run "
            f"`ghfeat convert {cfg.origin.file} --name {cfg.name}` once: it installs the converted "
            f"weights into {cache_dir() / cfg.kind / cfg.name}, where pretrained=True finds them.")


# ---------------------------------------------------------------------------------------------
# Hashing and the local cache of converted weights
# ---------------------------------------------------------------------------------------------
def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, streamed in ``chunk_size`` chunks (constant memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    """Root of the ghfeat cache: ``$GHFEAT_CACHE``, else ``$XDG_CACHE_HOME/ghfeat``, else
    ``~/.cache/ghfeat`` (read at call time)."""
    if os.environ.get("GHFEAT_CACHE"):
        return Path(os.environ["GHFEAT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "ghfeat"


def install_converted(kind: str, name: str, state_dict_or_model: nn.Module | Mapping[str, torch.Tensor],
                      source_path: str | os.PathLike, source_sha256: str | None = None,
                      root: str | os.PathLike | None = None) -> Path:
    """Install converted weights into the ghfeat cache, where ``pretrained=True`` finds them.

    Writes ``<root>/<kind>/<name>/model.safetensors`` (+ ``config.json`` when given a ghfeat
    module) and last ``manifest.json`` (sha256, size, source file and its sha256). The manifest is
    removed first and written last, each file through temp file + rename, so an interrupted
    install is never taken for a good one.

    Args:
        kind, name: the registry entry the weights are for (e.g. "encoder", "ffhq256").
        state_dict_or_model: a ghfeat module or a ``{key: tensor}`` dict.
        source_path: the official file converted from (recorded as provenance).
        source_sha256: its sha256 (computed from ``source_path`` when None and the file exists).
        root: cache root (default :func:`cache_dir`).
    Returns:
        the path of the installed ``model.safetensors``.
    """
    from safetensors.torch import save

    from . import __version__

    if isinstance(state_dict_or_model, nn.Module):
        state = state_dict_for_saving(state_dict_or_model)
        config = model_config(state_dict_or_model) if hasattr(state_dict_or_model, "config") else None
    else:
        state = {k: v.detach().to("cpu").contiguous() for k, v in state_dict_or_model.items()}
        config = None
    source_path = Path(source_path)
    if source_sha256 is None and source_path.is_file():
        source_sha256 = sha256_file(source_path)

    target = Path(root).expanduser() if root is not None else cache_dir()
    target = target / kind / name
    target.mkdir(parents=True, exist_ok=True)
    (target / MANIFEST_NAME).unlink(missing_ok=True)
    data = save(state, metadata={"format": "pt", "ghfeat_kind": kind, "ghfeat_name": name})
    atomic_write_bytes(target / WEIGHTS_NAME, data)
    if config is not None:
        config = dict(config, ghfeat_kind=kind)
        atomic_write_bytes(target / CONFIG_NAME, (json.dumps(config, indent=2) + "\n").encode())
    else:
        (target / CONFIG_NAME).unlink(missing_ok=True)
    manifest = {
        "kind": kind, "name": name, "file": WEIGHTS_NAME,
        "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
        "source": {"file": source_path.name, "path": str(source_path.resolve()), "sha256": source_sha256},
        "ghfeat_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_bytes(target / MANIFEST_NAME, (json.dumps(manifest, indent=2) + "\n").encode())
    return target / WEIGHTS_NAME


def read_manifest(folder: str | os.PathLike, hint: str = "") -> dict:
    """The checked ``manifest.json`` of a converted entry in the cache: a JSON object whose ``file``
    is a plain file name in ``folder`` and whose ``sha256`` is 64 hex characters. Anything else
    (hand-edited, truncated, written by another tool) is a :class:`WeightsCorruptError` that says
    how to repair the entry."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    fix = f"Delete {folder} and run `ghfeat convert` (or `ghfeat download`) again. {hint}".rstrip()
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsCorruptError(f"{path} is not valid JSON ({exc}). {fix}") from exc
    if not isinstance(manifest, dict):
        raise WeightsCorruptError(f"{path} must hold a JSON object, got {type(manifest).__name__}. {fix}")
    manifest = dict(manifest)
    file = manifest.setdefault("file", WEIGHTS_NAME)
    if not isinstance(file, str) or not file or file in (".", "..") or "/" in file or "\\" in file:
        raise WeightsCorruptError(f"{path}: 'file' must be the name of a file in {folder}, got {file!r}. {fix}")
    sha = manifest.get("sha256")
    if not isinstance(sha, str) or not _SHA256_RE.match(sha):
        raise WeightsCorruptError(f"{path}: 'sha256' must be 64 lowercase hex characters, got {sha!r}. {fix}")
    return manifest


def is_cached(kind: str, name: str) -> bool:
    """True when ``pretrained=True`` finds ``(kind, name)``'s weights without downloading: a
    converted copy in the ghfeat cache, a packaged file, or the pinned Hub file in the HF cache."""
    if (cache_dir() / kind / name / MANIFEST_NAME).is_file():
        return True
    cfg = get_pretrained_cfg(kind, name)
    if cfg is None:
        return False
    if cfg.embedded_path and (Path(__file__).resolve().parent / cfg.embedded_path).is_file():
        return True
    if cfg.pinned and cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache
        found = try_to_load_from_cache(cfg.hf_hub_id, cfg.filename, cache_dir=_hf_cache_dir(),
                                       revision=cfg.revision)
        return isinstance(found, str)
    return False


# ---------------------------------------------------------------------------------------------
# Hugging Face Hub access (environment read at call time; errors mapped to WeightsError)
# ---------------------------------------------------------------------------------------------
def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def hf_offline() -> bool:
    """``HF_HUB_OFFLINE`` as set now (huggingface_hub itself reads it once, at import)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if var in os.environ:
            return _truthy(os.environ[var])
    from huggingface_hub import constants
    return bool(constants.HF_HUB_OFFLINE)


def _hf_endpoint() -> str | None:
    endpoint = os.environ.get("HF_ENDPOINT")
    return endpoint.rstrip("/") if endpoint else None


def _hf_cache_dir() -> str | None:
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return None  # huggingface_hub's own default (constants.HF_HUB_CACHE)


def _allow_unpinned() -> bool:
    return ALLOW_UNPINNED or _truthy(os.environ.get("GHFEAT_ALLOW_UNPINNED"))


def _host_unreachable(url: str) -> str | None:
    """Why ``url``'s host name cannot be looked up (one ``getaddrinfo``, no connection), or None.
    huggingface_hub retries a failed lookup for about 20 s; this answers at once."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                           type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return f"the name lookup of {parts.hostname} failed: {exc}"
    except OSError:
        return None
    return None


def hub_download(repo_id: str, filename: str, revision: str | None = "main", *, hint: str = "",
                 force_download: bool = False) -> Path:
    """``hf_hub_download`` with ``HF_ENDPOINT``/``HF_HUB_CACHE``/``HF_HOME``/``HF_HUB_OFFLINE``
    read now, and every failure turned into one :class:`WeightsError` (``hint`` is appended)."""
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download

    from . import __version__

    endpoint = _hf_endpoint()
    where = endpoint or "the Hugging Face Hub"
    offline = hf_offline()
    what = f"{filename!r} of {repo_id!r} (revision {revision or 'main'})"
    tail = f" {hint}" if hint else ""
    unreachable = None if offline else _host_unreachable(endpoint or "https://huggingface.co")
    if unreachable:            # no network: the cache only, instead of ~20 s of retries
        offline = True
    try:
        return Path(hf_hub_download(
            repo_id, filename, revision=revision, cache_dir=_hf_cache_dir(), endpoint=endpoint,
            local_files_only=offline, force_download=force_download and not offline,
            library_name="ghfeat", library_version=__version__))
    except hf_errors.HFValidationError as exc:
        raise WeightsNotFoundError(f"{repo_id!r} is not a valid Hub repo id ({exc}).{tail}") from None
    except hf_errors.GatedRepoError:
        raise WeightsNotFoundError(
            f"{repo_id!r} on {where} is gated: accept its terms on the Hub and log in "
            f"(`hf auth login` or HF_TOKEN).{tail}") from None
    except hf_errors.RepositoryNotFoundError:
        raise WeightsNotFoundError(
            f"Repository {repo_id!r} was not found on {where} (or it is private: log in with "
            f"`hf auth login` / HF_TOKEN). Check the repo id.{tail}") from None
    except hf_errors.RevisionNotFoundError:
        raise WeightsNotFoundError(
            f"Revision {revision!r} does not exist in {repo_id!r} on {where}.{tail}") from None
    except hf_errors.LocalEntryNotFoundError:
        why = (f"{where} cannot be reached ({unreachable}; no network?)" if unreachable else
               "offline mode is on (HF_HUB_OFFLINE=1)" if offline else
               f"{where} could not be reached (no network? proxy? HF_ENDPOINT?)")
        raise WeightsOfflineError(
            f"{what} is not in the Hugging Face cache ({_hf_cache_dir() or 'default HF cache'}) "
            f"and {why}. Download it once with network access (or copy the cache), or point "
            f"HF_ENDPOINT at a mirror.{tail}") from None
    except hf_errors.EntryNotFoundError:
        raise WeightsNotFoundError(
            f"{repo_id!r} on {where} has no file {filename!r} at revision {revision or 'main'}.{tail}") from None
    except (OSError, hf_errors.HfHubHTTPError) as exc:  # server errors, size check, disk
        raise WeightsDownloadError(
            f"Downloading {what} from {where} failed ({type(exc).__name__}: {exc}). The partial "
            f"file was discarded; check the connection/proxy and try again.{tail}") from None
    except Exception as exc:  # httpx transport errors (connection dropped mid-body, timeouts)
        if type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore"):
            raise WeightsDownloadError(
                f"Downloading {what} from {where} was interrupted ({type(exc).__name__}: {exc}). "
                f"The partial file was discarded; try again.{tail}") from None
        raise


def parse_hub_location(location: str) -> tuple[str, str | None]:
    """``"hf-hub:org/name@rev"`` -> ``("org/name", "rev")`` (revision None when absent)."""
    if not location.startswith("hf-hub:"):
        raise ValueError(f"not a Hub location: {location!r} (expected 'hf-hub:org/name[@revision]')")
    repo_id, _, revision = location[len("hf-hub:"):].partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"bad Hub location {location!r}: expected 'hf-hub:org/name[@revision]'")
    return repo_id, revision or None


# ---------------------------------------------------------------------------------------------
# Reading and checking a weight file (nothing touches the model here)
# ---------------------------------------------------------------------------------------------
def _verify_sha256(path: Path, expected: str | None, source: str, fix: str) -> None:
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsCorruptError(
            f"{source} ({path}) is corrupt or truncated: sha256 {actual[:16]}... does not match "
            f"the expected {expected[:16]}... ({path.stat().st_size} bytes). {fix}")


def _read_state(path: Path, source: str, fix: str) -> dict[str, torch.Tensor]:
    """Read a whole state dict from ``.safetensors`` or ``.pt``/``.pth`` into CPU memory."""
    if not path.is_file():
        raise WeightsNotFoundError(f"{source}: {path} does not exist. {fix}".rstrip())
    if path.suffix in (".pt", ".pth", ".bin", ".ckpt"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise WeightsCorruptError(
                f"{source}: {path} could not be read as a torch checkpoint with weights_only=True "
                f"({type(exc).__name__}: {exc}); it may be truncated, or hold pickled objects "
                f"(re-save it as a plain state dict or safetensors). {fix}") from exc
        if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
            obj = obj["state_dict"]
        if not (isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values())):
            keys = list(obj)[:6] if isinstance(obj, dict) else type(obj).__name__
            extra = (" It looks like a genforce StyleGAN checkpoint: convert it with "
                     "`ghfeat convert`." if isinstance(obj, dict) and "generator_smooth" in obj else "")
            raise WeightsMismatchError(
                f"{source}: {path} is not a flat {{name: tensor}} state dict (top level: {keys}).{extra}")
        return obj
    try:
        return read_safetensors(path)
    except ValueError as exc:
        raise WeightsCorruptError(f"{source}: {exc} {fix}".rstrip()) from exc


def _load_checked(model: nn.Module, state: dict[str, torch.Tensor], source: str,
                  overrides: Mapping[str, Any] | None) -> nn.Module:
    try:
        check_finite_state(state, source)
    except ValueError as exc:
        raise WeightsCorruptError(str(exc)) from exc
    try:
        return load_state_dict_strict(model, state, source)
    except ValueError as exc:
        msg = str(exc)
        if overrides:
            msg = (f"the config overrides {dict(overrides)} change the architecture, so these "
                   f"weights no longer fit; drop the overrides (or load without these weights).\n{msg}")
        raise WeightsMismatchError(msg) from exc


def _class_kind(cls_name: str) -> str | None:
    """Kind of a ghfeat module class: its ``ghfeat_kind`` attribute, else its name."""
    try:
        from ._io import _module_classes
        cls = _module_classes().get(cls_name)
    except Exception:
        cls = None
    kind = getattr(cls, "ghfeat_kind", None)
    if kind:
        return kind
    for k in ("discriminator", "generator", "encoder"):
        if k in cls_name.lower():
            return k
    return None


def _read_config(path: Path, source: str) -> dict:
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise WeightsCorruptError(f"{source}: {path} is not valid JSON ({exc}).") from exc
    if not isinstance(doc, dict) or "ghfeat_class" not in doc or "config" not in doc:
        raise WeightsMismatchError(
            f"{source}: {path} is not a ghfeat config.json (needs 'ghfeat_class' and 'config'); "
            "was the folder written by ghfeat's save_pretrained()/save_model()?")
    return doc


def _check_kind(doc: dict, kind: str | None, source: str) -> None:
    cls_name = doc["ghfeat_class"]
    found = doc.get("ghfeat_kind") or _class_kind(cls_name)
    if kind is not None and found is not None and found != kind:
        raise WeightsMismatchError(
            f"{source} holds {_a(found)} ({cls_name}), not {_a(kind)}: use create_{found}() for it.")


def _a(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


# ---------------------------------------------------------------------------------------------
# Resolution and loading
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResolvedWeights:
    """A weight file found by :func:`resolve_weights` (already sha256-verified)."""
    path: Path
    source: str          # "checkpoint" | "embedded" | "local-cache" | "hub"
    sha256: str | None   # the hash it was verified against (None: nothing to verify against)


def resolve_weights(kind: str, name: str, cfg: PretrainedCfg | None = None,
                    checkpoint_path: str | os.PathLike | None = None) -> ResolvedWeights:
    """Find and verify the weight file of ``(kind, name)`` (resolution order in the module doc)."""
    if checkpoint_path is not None:
        path = Path(checkpoint_path).expanduser()
        if path.is_dir():
            if not (path / WEIGHTS_NAME).is_file():
                raise WeightsNotFoundError(
                    f"checkpoint_path {checkpoint_path} is a folder without {WEIGHTS_NAME} (a saved model "
                    f"folder holds {CONFIG_NAME} + {WEIGHTS_NAME}; or pass the weight file itself).")
            path = path / WEIGHTS_NAME
        if not path.is_file():
            raise WeightsNotFoundError(
                f"checkpoint_path {checkpoint_path} does not exist (expected a .safetensors/.pt "
                f"file or a folder with {CONFIG_NAME} + {WEIGHTS_NAME}).")
        return ResolvedWeights(path, "checkpoint", None)

    hint = convert_hint(cfg) if cfg is not None else ""
    if cfg is not None and cfg.embedded_path:
        path = Path(__file__).resolve().parent / cfg.embedded_path
        if path.is_file():
            _verify_sha256(path, cfg.sha256, f"packaged weights of {kind} {name!r}",
                           "Reinstall ghfeat (pip install --force-reinstall ghfeat).")
            return ResolvedWeights(path, "embedded", cfg.sha256)

    local = cache_dir() / kind / name
    if (local / MANIFEST_NAME).is_file():
        manifest = read_manifest(local, hint)
        path = local / manifest["file"]
        if not path.is_file():
            raise WeightsNotFoundError(
                f"the converted {kind} {name!r} in {local} lists {path.name} but the file is gone. "
                f"Run `ghfeat convert` again. {hint}".rstrip())
        _verify_sha256(path, manifest["sha256"], f"converted {kind} {name!r}",
                       f"Delete {local} and run `ghfeat convert` again. {hint}".rstrip())
        return ResolvedWeights(path, "local-cache", manifest["sha256"])
    if (local / WEIGHTS_NAME).is_file():
        logger.warning("ignoring %s: it has no %s (an interrupted `ghfeat convert`?)",
                       local / WEIGHTS_NAME, MANIFEST_NAME)

    if cfg is None:
        raise WeightsNotFoundError(
            f"{kind} {name!r} has no pretrained weights (see ghfeat.list_models(pretrained=True)); "
            "build it with pretrained=False or pass checkpoint_path=...")
    if cfg.hf_hub_id is None:
        raise WeightsNotFoundError(f"no copy of the {kind} {name!r} weights was found. {hint}".rstrip())
    if not cfg.pinned and not _allow_unpinned() and cfg.origin is not None:
        from .download import fetch_official   # official file -> convert -> install (all networks)
        fetch_official(kind, name)
        if (local / MANIFEST_NAME).is_file():
            return resolve_weights(kind, name, cfg)
    if not cfg.pinned and not _allow_unpinned():
        raise WeightsNotFoundError(
            f"no verified copy of the {kind} {name!r} weights was found here (checked "
            f"{'packaged file, ' if cfg.embedded_path else ''}the ghfeat cache {local}), and its "
            f"Hub repo {cfg.hf_hub_id!r} has no published sha256 yet, so ghfeat does not download "
            f"it. {hint} Or pass checkpoint_path=... (To download the unverified Hub file anyway, "
            f"set GHFEAT_ALLOW_UNPINNED=1.)")

    path = hub_download(cfg.hf_hub_id, cfg.filename, cfg.revision, hint=hint)
    if not cfg.pinned:
        logger.warning("loading %s from %s without sha256 verification (GHFEAT_ALLOW_UNPINNED)",
                       cfg.filename, cfg.hf_hub_id)
        return ResolvedWeights(path, "hub", None)
    if sha256_file(path) != cfg.sha256 and not hf_offline():
        logger.warning("%s from %s failed its sha256 check; downloading it again", cfg.filename,
                       cfg.hf_hub_id)
        path = hub_download(cfg.hf_hub_id, cfg.filename, cfg.revision, hint=hint, force_download=True)
    _verify_sha256(path, cfg.sha256, f"{cfg.filename} of {cfg.hf_hub_id}",
                   f"Delete it from the Hugging Face cache and download again, or: {hint}")
    return ResolvedWeights(path, "hub", cfg.sha256)


def load_pretrained(model: nn.Module, entry, checkpoint_path: str | os.PathLike | None = None,
                    overrides: Mapping[str, Any] | None = None) -> nn.Module:
    """Resolve, verify and strictly load the weights of registry ``entry`` into ``model``.

    Args:
        model: the freshly built module (its parameters are only written once everything checked).
        entry: the ``ghfeat._registry.ModelEntry`` the model was built from.
        checkpoint_path: explicit weights (beats every other source).
        overrides: the config overrides the model was built with (named in the error when they
            make the weights not fit).
    Returns:
        ``model``, loaded. ``model.weights_source`` records where the weights came from.
    Raises:
        WeightsNotFoundError / WeightsOfflineError / WeightsCorruptError /
        WeightsMismatchError / WeightsDownloadError (all :class:`WeightsError`).
    """
    cfg = entry.pretrained_cfg if checkpoint_path is None else None
    found = resolve_weights(entry.kind, entry.name, cfg, checkpoint_path)
    source = {"checkpoint": f"checkpoint {found.path}", "embedded": f"packaged weights {found.path}",
              "local-cache": f"converted weights {found.path}",
              "hub": f"Hub weights {found.path}"}[found.source]
    config_path = found.path.parent / CONFIG_NAME
    if found.path.name == WEIGHTS_NAME and config_path.is_file():
        doc = _read_config(config_path, source)
        if doc["ghfeat_class"] != type(model).__name__:
            _check_kind(doc, entry.kind, str(found.path.parent))
            raise WeightsMismatchError(
                f"{found.path.parent} holds a {doc['ghfeat_class']}, but {entry.kind} {entry.name!r} "
                f"is a {type(model).__name__}; load that folder with ghfeat.load_model() instead.")
    fix = "Download or convert it again." if found.source != "checkpoint" else ""
    state = _read_state(found.path, source, fix)
    _load_checked(model, state, source, overrides)
    model.weights_source = f"{found.source}:{found.path}"
    return model


def load_location(location: str | os.PathLike, kind: str | None = None, revision: str | None = None,
                  overrides: Mapping[str, Any] | None = None, base_class: type | None = None) -> nn.Module:
    """Rebuild a saved module from ``"hf-hub:org/name[@rev]"`` or a local folder (strict load).

    ``kind`` (or ``base_class``) is checked against the saved class *before* building, so an
    encoder folder given to ``create_generator`` fails at once. Returns the module in eval mode.
    """
    location = str(location)
    overrides = dict(overrides or {})
    if location.startswith("hf-hub:"):
        repo_id, rev = parse_hub_location(location)
        rev = revision or rev
        source = f"hf-hub:{repo_id}" + (f"@{rev}" if rev else "")
        cfg_path = hub_download(repo_id, CONFIG_NAME, rev)
        commit = cfg_path.parent.name if _COMMIT_RE.match(cfg_path.parent.name) else rev
        doc = _read_config(cfg_path, source)
        _check_location_class(doc, kind, base_class, source)
        weights_path = hub_download(repo_id, WEIGHTS_NAME, commit)   # same commit as config.json
    else:
        folder = Path(location).expanduser()
        source = str(folder)
        if folder.is_file():
            raise WeightsNotFoundError(
                f"{folder} is a file; a location is a folder with {CONFIG_NAME} + {WEIGHTS_NAME}. "
                "For a bare weight file, pass the registry name and checkpoint_path=... instead.")
        if not (folder / CONFIG_NAME).is_file():
            raise WeightsNotFoundError(
                f"{folder} has no {CONFIG_NAME}: expected a folder written by save_pretrained() / "
                f"ghfeat.save_model() (config.json + model.safetensors), or 'hf-hub:org/name'.")
        doc = _read_config(folder / CONFIG_NAME, source)
        _check_location_class(doc, kind, base_class, source)
        weights_path = folder / WEIGHTS_NAME
    state = _read_state(weights_path, source, "Download or save it again.")
    doc = dict(doc, config=dict(doc["config"], **overrides))
    model = build_from_config(doc, f"{source}/{CONFIG_NAME}")
    _load_checked(model, state, source, overrides)
    pretrained_name = doc.get("pretrained_name")
    model_kind = kind or doc.get("ghfeat_kind") or _class_kind(doc["ghfeat_class"])
    model.pretrained_cfg = get_pretrained_cfg(model_kind, pretrained_name) if pretrained_name else None
    model.registry_name = location
    if isinstance(doc.get("ghfeat_name"), str):
        model.ghfeat_name = doc["ghfeat_name"]
    model.weights_source = f"location:{location}"
    return model.eval()


def _check_location_class(doc: dict, kind: str | None, base_class: type | None, source: str) -> None:
    _check_kind(doc, kind, source)
    if base_class is not None:
        from ._io import _module_classes
        cls = _module_classes().get(doc["ghfeat_class"])
        if cls is not None and not issubclass(cls, base_class):
            raise WeightsMismatchError(
                f"{source} holds a {doc['ghfeat_class']}, not a {base_class.__name__}: load it with "
                f"{doc['ghfeat_class']}.from_pretrained() or ghfeat.load_model().")


def create_from_location(kind: str, location: str, **overrides) -> nn.Module:
    """``create_<kind>("hf-hub:org/name[@rev]")`` or ``create_<kind>("./folder")``."""
    return load_location(location, kind=kind, overrides=overrides)


# ---------------------------------------------------------------------------------------------
# Docs: the model table
# ---------------------------------------------------------------------------------------------
def model_table_markdown() -> str:
    """The Markdown table of every weight entry (embedded in ``docs/weights.md``)."""
    rows = ["| kind | name | Hub repo | sha256 | input | pairs with | official file | metrics |",
            "|---|---|---|---|---|---|---|---|"]
    for cfg in sorted(_PRETRAINED.values(), key=lambda c: (("encoder", "generator",
                                                             "discriminator").index(c.kind), c.name)):
        hub = (f"[`{cfg.hf_hub_id}`]({cfg.hub_url})" if cfg.hf_hub_id
               else "in the package" if cfg.embedded_path else "-")
        pin = f"`{cfg.sha256[:12]}…`" if cfg.sha256 else "unpublished"
        inp = ("x".join(map(str, cfg.input_size[1:])) + f" in [{cfg.input_range[0]:g}, {cfg.input_range[1]:g}]"
               if cfg.input_size and cfg.input_range else "-")
        origin = f"[`{cfg.origin.file}`]({cfg.origin.page})" if cfg.origin else "-"
        metrics = ", ".join(f"{k} {v:g}" for k, v in cfg.metrics.items()) or "-"
        rows.append(f"| {cfg.kind} | `{cfg.name}` | {hub} | {pin} | {inp} | "
                    f"{cfg.paired_generator or '-'} | {origin} | {metrics} |")
    return "\n".join(rows) + "\n"


TABLE_START = "<!-- model-table:start -->"
TABLE_END = "<!-- model-table:end -->"


def render_doc_table(text: str) -> str:
    """``text`` with the part between the model-table markers replaced by the generated table."""
    head, sep, rest = text.partition(TABLE_START)
    _, sep2, tail = rest.partition(TABLE_END)
    if not sep or not sep2:
        raise ValueError(f"markers {TABLE_START} / {TABLE_END} not found")
    return f"{head}{TABLE_START}\n{model_table_markdown()}{TABLE_END}{tail}"


def _main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(prog="python -m ghfeat.pretrained", description=__doc__.split("\n")[0])
    p.add_argument("--markdown", action="store_true", help="print the model table")
    p.add_argument("--update", metavar="DOC", help="rewrite the table between the markers of DOC")
    args = p.parse_args(argv)
    if args.update:
        path = Path(args.update)
        from ._io import atomic_write_text
        atomic_write_text(path, render_doc_table(path.read_text()), what="doc")
    if args.markdown or not args.update:
        print(model_table_markdown(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
