"""Model registry: every buildable configuration is one small registered function (timm style).

    @register_model("generator", "stylegan-256", "StyleGAN v1, official 256x256 config")
    def stylegan_256(**overrides):
        return StyleGANGenerator(**dict(resolution=256, **overrides))

Pretrained weights are *data* attached to an entry (``ghfeat.pretrained.PretrainedCfg``); the
architecture never knows where its weights come from. ``create_*`` builds, then (optionally)
resolves + verifies + loads the weights strictly.
"""
from __future__ import annotations

import difflib
import fnmatch
import os
from dataclasses import dataclass, field
from typing import Callable

KINDS = ("generator", "discriminator", "encoder")


@dataclass(frozen=True)
class ModelEntry:
    """One registered configuration."""
    kind: str                      # "generator" | "discriminator" | "encoder"
    name: str                      # registry name, e.g. "ffhq256" or "stylegan-256"
    builder: Callable              # builder(**overrides) -> nn.Module
    description: str               # what it is for, one line
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def pretrained_cfg(self):
        """The ``ghfeat.pretrained.PretrainedCfg`` of this entry, or None (weights are data kept
        in ``ghfeat/pretrained.py``, not in the architecture)."""
        from .pretrained import get_pretrained_cfg
        return get_pretrained_cfg(self.kind, self.name)

    @property
    def has_pretrained(self) -> bool:
        return self.pretrained_cfg is not None


_REGISTRY: dict[str, dict[str, ModelEntry]] = {k: {} for k in KINDS}


def register_model(kind: str, name: str, description: str, tags=()):
    """Decorator registering ``builder(**overrides) -> nn.Module`` under ``(kind, name)``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")

    def deco(builder):
        if name in _REGISTRY[kind]:
            raise ValueError(f"{kind} {name!r} is registered twice")
        _REGISTRY[kind][name] = ModelEntry(kind, name, builder, description, tuple(tags))
        return builder
    return deco


def _ensure_loaded():
    from . import models  # noqa: F401  (module import registers the entries)


def get_entry(kind: str, name: str) -> ModelEntry:
    """The entry ``name`` of ``kind``; unknown names raise with close matches."""
    _ensure_loaded()
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    table = _REGISTRY[kind]
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        others = [k for k in KINDS if k != kind and name in _REGISTRY[k]]
        if others:
            hint += f" ({name!r} is a registered {others[0]}: use create_{others[0]}().)"
        raise ValueError(f"unknown {kind} {name!r}.{hint} Available: {sorted(table)} "
                         f"(see ghfeat.list_models()).")
    return table[name]


def list_models(pattern: str = "*", kind: str | None = None, pretrained: bool = False,
                with_info: bool = False, cached: bool | None = None):
    """Registered model names matching a glob ``pattern``.

    Args:
        pattern: fnmatch pattern, e.g. ``"*256"``.
        kind: restrict to "generator", "discriminator" or "encoder".
        pretrained: only entries that have pretrained weights.
        with_info: return ``(kind, name, description)`` tuples instead of names.
        cached: True = only entries whose weights are already here (no download on first use),
            False = only those not yet here (``ghfeat.pretrained.is_cached``).
    """
    _ensure_loaded()
    kinds = KINDS if kind is None else (kind,)
    out = []
    for k in kinds:
        for name, entry in sorted(_REGISTRY[k].items()):
            if fnmatch.fnmatch(name, pattern) and (entry.has_pretrained or not pretrained):
                if cached is not None and _is_cached(k, name) != cached:
                    continue
                out.append((k, name, entry.description) if with_info else name)
    return out if with_info else sorted(set(out), key=out.index)


def _is_cached(kind: str, name: str) -> bool:
    from .pretrained import is_cached
    return is_cached(kind, name)


def _create(kind: str, name: str, pretrained: bool, checkpoint_path, overrides):
    if isinstance(name, os.PathLike):             # a saved folder
        from .pretrained import create_from_location
        return create_from_location(kind, os.fspath(name), **overrides)
    if not isinstance(name, str):
        raise TypeError(f"{kind} must be a registry name (see ghfeat.list_models(kind={kind!r})), a saved "
                        f"folder path or 'hf-hub:org/name', got {type(name).__name__}")
    if name.startswith("hf-hub:") or (name.startswith((".", "/", "~")) or "\\" in name):
        from .pretrained import create_from_location
        return create_from_location(kind, name, **overrides)
    entry = get_entry(kind, name)
    model = entry.builder(**overrides)
    if pretrained or checkpoint_path is not None:
        from .pretrained import load_pretrained
        load_pretrained(model, entry, checkpoint_path=checkpoint_path, overrides=overrides)
    model.pretrained_cfg = entry.pretrained_cfg
    model.registry_name = name
    return model


def create_generator(name: str, pretrained: bool = False, checkpoint_path=None, **overrides):
    """Build the generator ``name`` (see ``list_models(kind="generator")``).

    ``pretrained=True`` resolves, verifies (sha256) and strictly loads its weights; ``checkpoint_path``
    loads a local ``.safetensors`` file or saved folder instead. Keyword overrides change the config
    (not allowed together with pretrained weights if they change shapes).
    """
    return _create("generator", name, pretrained, checkpoint_path, overrides)


def create_discriminator(name: str, pretrained: bool = False, checkpoint_path=None, **overrides):
    """Build the discriminator ``name``; same arguments as :func:`create_generator`."""
    return _create("discriminator", name, pretrained, checkpoint_path, overrides)


def create_encoder(name: str, pretrained: bool = False, checkpoint_path=None, **overrides):
    """Build the GH-Feat encoder ``name`` (e.g. "ffhq256", "mnist32"); same arguments as
    :func:`create_generator`. The encoder knows its paired generator (``encoder.generator_name``)."""
    return _create("encoder", name, pretrained, checkpoint_path, overrides)
