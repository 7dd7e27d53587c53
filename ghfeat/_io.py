"""Save and load any ghfeat module as ``config.json`` + ``model.safetensors``.

The folder layout is the one diffusers and the Hugging Face Hub use, so a saved folder can be
pushed to the Hub as it is. Loading is strict: a missing or unexpected tensor is an error.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _module_classes():
    from . import models  # noqa: F401  (registers the classes)
    from .models._base import MODULE_CLASSES
    return MODULE_CLASSES


def model_config(model: nn.Module) -> dict:
    """The JSON document describing ``model``: its class and constructor arguments."""
    if not hasattr(model, "config"):
        raise TypeError(f"{type(model).__name__} is not a ghfeat module (it has no .config); "
                        "only modules built by ghfeat can be saved with save_model().")
    from . import __version__
    doc = {"ghfeat_class": type(model).__name__, "ghfeat_version": __version__,
           "config": model.config}
    if getattr(model, "pretrained_cfg", None) is not None:
        doc["pretrained_name"] = model.pretrained_cfg.name
    return doc


def build_from_config(doc: dict, source: str = "config.json") -> nn.Module:
    """Build a module (random init) from a ``config.json`` document (``source`` names it in errors)."""
    classes = _module_classes()
    name = doc.get("ghfeat_class") if isinstance(doc, dict) else None
    if name not in classes:
        raise ValueError(f"{source} names class {name!r}, which this version of ghfeat does not "
                         f"know; known classes: {sorted(classes)}. Upgrade ghfeat?")
    config = doc.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{source}: 'config' must be an object of {name} arguments, got {type(config).__name__}")
    import inspect
    params = inspect.signature(classes[name].__init__).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(config) - set(params) - {"self"})
        if unknown:
            raise ValueError(f"{source}: {name} has no argument(s) {unknown}; the file was written by another "
                             f"ghfeat version or edited by hand (known: {sorted(set(params) - {'self'})})")
    try:
        return classes[name](**config)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: cannot build {name} from its config ({exc})") from exc


def check_writable(path: str | os.PathLike, *, folder: bool, what: str = "output") -> Path:
    """Refuse, before any work, an output ``path`` that cannot be written: a folder (``folder=True``)
    or a file (``folder=False``) whose place is taken by the other kind, under a regular file, or
    in a folder without write permission. Creates nothing; returns ``Path(path)``."""
    path = Path(path).expanduser()
    if path.exists() and path.is_dir() != folder:
        raise ValueError(f"{what} {path} exists and is {'a file' if folder else 'a folder'}, not "
                         f"{'a folder' if folder else 'a file'}")
    p = path if folder else path.parent
    while not p.exists() and p.parent != p:
        p = p.parent
    if not p.is_dir():
        raise ValueError(f"{what} {path}: {p} is a file, not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: {p} is not writable")
    return path


def state_dict_for_saving(model: nn.Module, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies of every parameter and persistent buffer (floats cast to ``dtype``)."""
    out = {}
    for key, value in model.state_dict().items():
        value = value.detach().to("cpu")
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        out[key] = value.contiguous().clone()
    return out


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_model(model: nn.Module, directory: str | os.PathLike, dtype: torch.dtype | None = None,
               extra_config: dict | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for ``model`` into ``directory``.

    Args:
        model: a ghfeat module (built by ghfeat, so it has ``.config``).
        directory: created if missing; existing files of the same names are replaced atomically.
        dtype: optional storage dtype for floating tensors (e.g. ``torch.float16``).
        extra_config: extra JSON keys written into ``config.json`` (e.g. provenance).
    Returns:
        the directory as a ``Path``.
    """
    from safetensors.torch import save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    doc = model_config(model)
    if extra_config:
        doc.update(extra_config)
    atomic_write_bytes(directory / WEIGHTS_NAME, save(state_dict_for_saving(model, dtype),
                                                       metadata={"format": "pt"}))
    atomic_write_bytes(directory / CONFIG_NAME, (json.dumps(doc, indent=2) + "\n").encode())
    return directory


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file, turning a truncated or corrupt file into a clear error."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file {path} does not exist")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises SafetensorError / OSError on bad headers
        raise ValueError(f"{path} is not a valid safetensors file ({exc}); it may be truncated or "
                         "corrupt: delete it and download or convert it again.") from exc


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "weights") -> nn.Module:
    """``model.load_state_dict(state, strict=True)`` with shapes checked and a readable error."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or mismatched:
        def head(items):
            return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")
        lines = [f"{source} do not match {type(model).__name__}:"]
        if missing:
            lines.append(f"  missing tensors: {head(missing)}")
        if unexpected:
            lines.append(f"  unexpected tensors: {head(unexpected)}")
        if mismatched:
            lines.append(f"  shape mismatches: {head(mismatched)}")
        lines.append("  The file was made for another architecture/config; build the model with the "
                     "config saved next to the weights (ghfeat.load_model(dir)).")
        raise ValueError("\n".join(lines))
    with torch.no_grad():
        model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
    return model


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a module saved by :func:`save_model` (strict load; returns it in eval mode)."""
    directory = Path(directory)
    cfg_path = directory / CONFIG_NAME
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{directory} has no {CONFIG_NAME}; expected a folder written by "
                                "ghfeat.save_model() / save_pretrained() (config.json + model.safetensors)")
    try:
        doc = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{cfg_path} is not valid JSON ({exc})") from exc
    model = build_from_config(doc, str(cfg_path))
    load_state_dict_strict(model, read_safetensors(directory / WEIGHTS_NAME), str(directory / WEIGHTS_NAME))
    return model.to(device).eval()
