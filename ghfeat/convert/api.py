"""``convert()``: official weight file -> ghfeat modules, installed in the cache or written as
Hub-ready folders. The command line front end is :mod:`ghfeat.convert.cli` (``ghfeat convert``).

Formats (detected from the content, not only the file name):

=============================  ===================  ==========================================
file                           content              converted networks
=============================  ===================  ==========================================
``stylegan-*-256.pkl``         TF ``(G, D, Gs)``    generator (``Gs``, or ``G``), discriminator
``ghfeat-encoder-*-256.pkl``   TF ``(E, G, D, Gs)`` encoder, generator, discriminator
genforce ``*.pth``             ``{'generator', 'generator_smooth', 'discriminator'}`` state dicts
=============================  ===================  ==========================================
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from torch import nn

from .._io import check_writable
from .stylegan_tf import Converted, convert_tf_discriminator, convert_tf_generator

__all__ = ["convert", "detect_format", "default_tag", "registry_names"]

_DATASETS = {"bedrooms": "bedroom", "church": "church", "tower": "tower", "ffhq": "ffhq", "bedroom": "bedroom"}


def detect_format(path: str | os.PathLike) -> str:
    """``"genforce-pth"`` for a PyTorch checkpoint, ``"tf-pickle"`` for a (TF) pickle."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise ValueError(f"{path} is empty; download it again")
    if head.startswith(b"PK\x03\x04") or path.suffix.lower() in (".pth", ".pt"):
        return "genforce-pth"
    if head[:1] == b"\x80":
        return "tf-pickle"
    raise ValueError(f"{path} is neither a pickle nor a PyTorch checkpoint (starts with {head!r}); expected an "
                     "official stylegan-*.pkl / ghfeat-encoder-*.pkl or a genforce .pth")


def default_tag(path: str | os.PathLike) -> str | None:
    """``stylegan-ffhq-256.pkl`` / ``ghfeat-encoder-bedroom-256.pkl`` / ``stylegan_ffhq256.pth`` -> ``"ffhq256"``."""
    stem = Path(path).name.lower()
    m = re.search(r"(ffhq|tower|bedrooms?|church)[-_]?(\d{2,4})", stem)
    return f"{_DATASETS[m.group(1)]}{m.group(2)}" if m else None


def registry_names(tag: str) -> dict[str, str]:
    """The ghfeat registry names for a weight set: encoder ``tag``, G and D ``stylegan-{tag}``."""
    tag = tag[len("stylegan-"):] if tag.startswith("stylegan-") else tag
    return {"encoder": tag, "generator": f"stylegan-{tag}", "discriminator": f"stylegan-{tag}"}


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _check_registry(kind: str, name: str, model: nn.Module) -> None:
    """If ``name`` is a registered ``kind``, the converted weights must fit its architecture."""
    import torch

    from .._registry import _REGISTRY, _ensure_loaded
    _ensure_loaded()
    entry = _REGISTRY[kind].get(name)
    if entry is None:
        return
    with torch.device("meta"):
        ref = entry.builder().state_dict()
    own = model.state_dict()
    bad = [k for k in set(ref) | set(own) if k not in ref or k not in own or ref[k].shape != own[k].shape]
    if bad:
        raise ValueError(f"the converted {kind} does not have the architecture of the registered {kind} {name!r} "
                         f"(differences: {', '.join(sorted(bad)[:5])}); pass another --name, or --out DIR to "
                         "write a standalone folder")


def _convert_tf(path: Path, which: str, raw_generator: bool = False) -> tuple[str, dict[str, Converted | tuple]]:
    from .tfpickle import read_tf_pickle

    nets = read_tf_pickle(path)
    names = [n["name"] for n in nets]
    if len(nets) == 3:
        fmt, (G, D, Gs), E = "tf-stylegan", nets, None
    elif len(nets) == 4:
        fmt, (E, G, D, Gs) = "tf-ghfeat-encoder", nets
    else:
        raise ValueError(f"{path} holds {len(nets)} networks {names}; expected (G, D, Gs) (stylegan-*.pkl) or "
                         "(E, G, D, Gs) (ghfeat-encoder-*.pkl)")
    out: dict = {"generator": convert_tf_generator(Gs if which == "Gs" else G, which),
                 "discriminator": convert_tf_discriminator(D, "D")}
    other = "G" if which == "Gs" else "Gs"
    contents = {which: "converted as the generator", "D": "converted as the discriminator",
                other: f"skipped: which={which!r} converts {which} (which={other!r} converts this one)"}
    if raw_generator and which == "Gs":
        out["generator-G"] = convert_tf_generator(G, "G")
        contents["G"] = "converted as the raw training generator (generator-G)"
    if E is not None:
        out["encoder"] = E
        contents = {"E": "converted as the encoder", **contents}
    return fmt, out, contents


def _convert_genforce(path: Path, which: str, genforce_kwargs: dict | None):
    from .genforce import (convert_genforce_discriminator, convert_genforce_generator, genforce_static_kwargs,
                           read_genforce_checkpoint)

    g_static, g_assumed = genforce_static_kwargs(genforce_kwargs, "G")    # checked before reading the file
    d_static, d_assumed = genforce_static_kwargs(genforce_kwargs, "D")
    others: dict = {}
    ckpt = read_genforce_checkpoint(path, others)
    key = "generator_smooth" if which == "Gs" else "generator"
    if key not in ckpt and which == "Gs" and "generator" in ckpt:
        raise ValueError(f"{path} has no 'generator_smooth'; pass which='G' to convert its 'generator'")
    out, contents, assumed = {}, {}, {}
    if key in ckpt:
        out["generator"] = convert_genforce_generator(ckpt[key], key, g_static)
        contents[key] = "converted as the generator"
        assumed["generator"] = g_assumed
    other = "generator" if key == "generator_smooth" else "generator_smooth"
    if other in ckpt:
        contents[other] = (f"skipped: which={which!r} converts {key!r} "
                           f"(which={'G' if which == 'Gs' else 'Gs'!r} converts this one)")
    if "discriminator" in ckpt:
        out["discriminator"] = convert_genforce_discriminator(ckpt["discriminator"], "discriminator", d_static)
        contents["discriminator"] = "converted as the discriminator"
        assumed["discriminator"] = d_assumed
    if not out:
        raise ValueError(f"{path} holds neither {key!r} nor 'discriminator'")
    for k, desc in others.items():
        why = ("a genforce encoder is not converted: only the official GH-Feat encoder (ghfeat-encoder-*.pkl) "
               "is supported, genforce's port wires the levels differently" if "encoder" in k.lower()
               else "not a StyleGAN generator/discriminator")
        contents[k] = f"skipped ({desc}): {why}"
    return out, contents, assumed


def _build_encoder(E: dict, generator: nn.Module, names: dict, tag: str | None):
    """Official encoder network dict -> GHFeatEncoder (via ghfeat.convert.tf_encoder)."""
    try:
        from .tf_encoder import convert_tf_encoder
    except ImportError as exc:  # pragma: no cover - integration point
        raise ImportError("converting the encoder needs ghfeat.convert.tf_encoder.convert_tf_encoder") from exc
    extra = {"style_dims": list(generator.style_dims), "generator_name": names["generator"]}
    if tag is not None:
        from ..pretrained import get_pretrained_cfg
        cfg = get_pretrained_cfg("encoder", names["encoder"])
        if cfg is not None and getattr(cfg, "alignment", None):
            extra["alignment"] = cfg.alignment
    encoder, report = convert_tf_encoder(E["variables"], **extra)
    return encoder, report


def convert(path: str | os.PathLike, name: str | None = None, out: str | os.PathLike | None = None,
            which: str = "Gs", install: bool | None = None, genforce_kwargs: dict | None = None,
            raw_generator: bool = False) -> dict:
    """Convert an official weight file and install or write the result.

    Args:
        path: ``stylegan-*-256.pkl`` (``(G, D, Gs)``), ``ghfeat-encoder-*-256.pkl``
            (``(E, G, D, Gs)``) or a genforce ``.pth`` checkpoint.
        name: registry tag, e.g. ``"ffhq256"`` (``"stylegan-ffhq256"`` is accepted too): the encoder
            is installed as ``ffhq256``, G and D as ``stylegan-ffhq256``. Default: read off the
            official file name; required for other file names when installing.
        out: write Hub-ready folders ``out/generator``, ``out/discriminator`` (and ``out/encoder``)
            instead of installing into the ghfeat cache.
        which: ``"Gs"`` (default: the smoothed generator, what the official code samples and
            GH-Feat decodes with) or ``"G"`` (the raw training generator).
        install: install into the cache (default: when ``out`` is None).
        genforce_kwargs: for a genforce ``.pth``, the genforce constructor settings a state dict
            cannot tell (``fused_scale``, ``mapping_lr_mul``, ``use_wscale``, ``final_tanh``,
            ``truncation_psi``, ``truncation_layers``, ``minibatch_std_group_size``; see
            :data:`ghfeat.convert.genforce.GENFORCE_SETTINGS`). Those not given are assumed to be
            genforce's defaults and listed under ``"assumed"`` in the result.
        raw_generator: with ``which="Gs"``, also convert a TF pickle's raw training ``G``, as the
            generator ``stylegan-TAG-G`` (key ``"generator-G"``; load it from its folder).
    Returns:
        ``{"format", "source", "sha256", "which", "contents": {entry in the file: what was done
        with it}, "networks": {kind: {"name", "class", "config", "num_params", "source", "ignored",
        "assumed", "path"}}, "models": {kind: nn.Module}}``.
    """
    if which not in ("Gs", "G"):
        raise ValueError(f"which must be 'Gs' (smoothed generator, default) or 'G', got {which!r}")
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; pass the weight file (.pkl or .pth) itself")
    tag = name or default_tag(path)
    install = (out is None) if install is None else install
    if install and tag is None:
        raise ValueError(f"cannot tell which model {path.name} holds from its name; pass name=... "
                         "(CLI: --name), e.g. 'ffhq256', or out=DIR to write standalone folders")
    if out is not None:                  # destinations are checked before the (long) conversion
        check_writable(out, folder=True, what="--out")
    if install:
        from ..pretrained import cache_dir
        check_writable(cache_dir(), folder=True, what="the ghfeat cache (GHFEAT_CACHE)")
    fmt = detect_format(path)
    assumed: dict = {}
    if fmt == "tf-pickle":
        if genforce_kwargs:
            raise ValueError("genforce_kwargs apply to genforce .pth files only; a TF pickle stores its own "
                             "settings (static_kwargs)")
        fmt, converted, contents = _convert_tf(path, which, raw_generator)
    else:
        converted, contents, assumed = _convert_genforce(path, which, genforce_kwargs)
    names = registry_names(tag) if tag else {k: f"converted-{path.stem}" for k in ("encoder", "generator", "discriminator")}
    names["generator-G"] = names["generator"] + "-G"

    models, info = {}, {}
    for kind in ("generator", "discriminator", "generator-G"):
        if kind in converted:
            c = converted[kind]
            models[kind] = c.build()
            info[kind] = {"ignored": list(c.ignored), "source": c.source, "config": dict(c.config),
                          "assumed": assumed.get(kind, {})}
    if "encoder" in converted:
        encoder, report = _build_encoder(converted["encoder"], models["generator"], names, tag)
        models = {"encoder": encoder, **models}
        info["encoder"] = {"ignored": [], "source": converted["encoder"]["name"], "config": dict(encoder.config),
                           "report": report, "assumed": {}}

    from ..pretrained import sha256_file
    sha = sha256_file(path)
    result = {"format": fmt, "source": str(path), "sha256": sha, "which": which, "contents": contents,
              "networks": {}, "models": models}
    if install:   # every check before the first write: a refused conversion installs nothing
        for kind, model in models.items():
            _check_registry(kind.split("-")[0], names[kind], model)
    for kind, model in models.items():
        entry = dict(info[kind], name=names[kind], num_params=_num_params(model), **{"class": type(model).__name__})
        if install:
            from ..pretrained import install_converted
            entry["path"] = str(install_converted(kind.split("-")[0], names[kind], model, path, sha))
        if out is not None:
            from ..hub import write_hub_folder
            from ..pretrained import get_pretrained_cfg
            cfg = get_pretrained_cfg(kind, names[kind]) if tag else None
            entry["out"] = str(write_hub_folder(model, Path(out) / kind, cfg=cfg))
        result["networks"][kind] = entry
    return result
