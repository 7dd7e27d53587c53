"""Model resolution and run context shared by ``api.py`` and ``editing.py`` (one home, so that
``editing`` depends on ``api`` and nothing depends back).

* :func:`get_model` / :func:`clear_model_cache` - registry names -> built modules, cached.
* :func:`resolve_encoder` / :func:`resolve_generator` - a name or a module -> a checked module
  (device, meta, paired style widths).
* :func:`model_device`, :func:`eval_mode`, :func:`autocast` - where a model runs and how.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn

def style_dims_of(model) -> list[int]:
    dims = getattr(model, "style_dims", None)
    if dims is None:
        raise TypeError(f"{type(model).__name__} has no `style_dims`; expected a GH-Feat encoder or a "
                        "StyleGAN generator (or a registry name)")
    return [int(d) for d in dims]


# ------------------------------------------------------------------------------------------------

_MODEL_CACHE: dict[tuple[str, str, bool], nn.Module] = {}


def clear_model_cache() -> None:
    """Forget the models that :func:`extract` & co. built from registry names."""
    _MODEL_CACHE.clear()


def get_model(kind: str, name: str, pretrained: bool) -> nn.Module:
    """A registry name (built with its pretrained weights when ``pretrained``), or the folder of a
    saved model (``ghfeat.save_model``; a training run's ``encoder`` / ``generator`` folder)."""
    key = (kind, name, bool(pretrained))
    if key not in _MODEL_CACHE:
        from pathlib import Path
        folder = Path(name).expanduser()
        if folder.is_dir() and (folder / "config.json").is_file():
            from ._io import load_model
            model = load_model(folder)
            want = {"encoder": "GHFeatEncoder", "generator": "StyleGANGenerator"}[kind]
            if type(model).__name__ != want:
                raise ValueError(f"{folder} holds a {type(model).__name__}, not a {want} (the {kind} asked for)")
            _MODEL_CACHE[key] = model.eval()
            return _MODEL_CACHE[key]
        from . import _registry
        from .models import encoder_zoo  # noqa: F401  (registers the encoders; models/__init__ does not yet)
        build = _registry.create_encoder if kind == "encoder" else _registry.create_generator
        _MODEL_CACHE[key] = build(name, pretrained=pretrained)
    return _MODEL_CACHE[key]


def usable_device(device):
    """``device`` as a torch.device, refused with a clear message when it cannot run anything here."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r} is not a device ('cpu', 'cuda', 'cuda:1', ...): {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(dev)!r} but CUDA is not available here (torch {torch.__version__}, "
                         f"built with CUDA {torch.version.cuda}); use device='cpu' or leave device=None")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device={str(dev)!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")
    if dev.type == "meta":
        raise ValueError("device='meta' holds no data; features need a real device ('cpu' or 'cuda')")
    return dev


def check_not_meta(model: nn.Module, what: str) -> None:
    if model_device(model).type == "meta":
        raise ValueError(f"the {what} is on the 'meta' device (no weights); load or build it on a real device "
                         f"(e.g. {what}.to_empty(device='cpu') and then load a state dict)")


def resolve_encoder(model, pretrained: bool, device) -> nn.Module:
    device = usable_device(device)
    if isinstance(model, str):
        model = get_model("encoder", model, pretrained)
        if device is not None:
            model.to(device)
    elif not isinstance(model, nn.Module):
        raise TypeError(f"model/encoder must be a registry name (see ghfeat.list_models(kind='encoder')) "
                        f"or an nn.Module, got {type(model).__name__}")
    check_device(model, device, "encoder")
    check_not_meta(model, "encoder")
    for attr in ("num_layers", "style_dims"):
        if not hasattr(model, attr):
            raise TypeError(f"{type(model).__name__} lacks `{attr}`; expected a GH-Feat encoder")
    return model


def generator_identity(generator: nn.Module) -> str | None:
    """The registry name a generator's weights go by: its pretrained entry, the name recorded in
    the folder it was loaded from (``config.json``'s ``ghfeat_name``), or the registry name it was
    built from; None when unknown (a module built by hand)."""
    cfg = getattr(generator, "pretrained_cfg", None)
    if getattr(cfg, "name", None):
        return cfg.name
    for attr in ("ghfeat_name", "registry_name"):
        name = getattr(generator, attr, None)
        if isinstance(name, str) and name and not _looks_like_location(name):
            return name
    return None


def _looks_like_location(name: str) -> bool:
    return name.startswith("hf-hub:") or "/" in name or "\\" in name or name.startswith(".")


def check_pair(encoder: nn.Module, generator: nn.Module, allow_mismatch: bool = False) -> None:
    """Refuse a generator the encoder was not trained with (``encoder.generator_name``): its codes
    are meaningless to another generator, even when the code widths happen to match. Nothing is
    checked when either name is unknown or ``allow_mismatch`` is set."""
    paired = getattr(encoder, "generator_name", None)
    found = generator_identity(generator)
    if allow_mismatch or not paired or not found or paired == found:
        return
    _mismatch(encoder, paired, found)


def _mismatch(encoder: nn.Module, paired: str, found: str):
    enc = getattr(encoder, "registry_name", None) or type(encoder).__name__
    raise ValueError(f"encoder {enc!r} was trained with generator {paired!r}, not {found!r}: its codes mean "
                     f"nothing to another generator (the output would be garbage even though it runs). Leave "
                     f"generator unset to use its pair, or pass allow_mismatch=True (CLI: "
                     f"--allow-mismatched-generator) if this is intended")


def resolve_generator(generator, encoder: nn.Module, pretrained: bool, device,
                      allow_mismatch: bool = False) -> nn.Module:
    device = usable_device(device)
    if generator is None:
        name = getattr(encoder, "generator_name", None)
        if not name:
            raise ValueError("this encoder does not name its paired generator (encoder.generator_name is "
                             "None); pass generator= (a module or a registry name)")
        generator = name
    if isinstance(generator, str):
        paired = getattr(encoder, "generator_name", None)
        if paired and not allow_mismatch and not _looks_like_location(generator) and generator != paired:
            _mismatch(encoder, paired, generator)           # before building (or downloading) it
        generator = get_model("generator", generator, pretrained)
        if device is not None:
            generator.to(device)
    elif not isinstance(generator, nn.Module) or not hasattr(generator, "synthesis"):
        raise TypeError(f"generator must be a registry name or a StyleGANGenerator, got {type(generator).__name__}")
    check_not_meta(generator, "generator")
    check_pair(encoder, generator, allow_mismatch)
    g_dims, e_dims = style_dims_of(generator), style_dims_of(encoder)
    if g_dims != e_dims:
        raise ValueError(f"encoder and generator do not fit: encoder style dims {e_dims}, generator style dims "
                         f"{g_dims} (coarse layer 0 first); the encoder's paired generator is "
                         f"{getattr(encoder, 'generator_name', None)!r}")
    return generator


def model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return torch.device("cpu")


def check_device(model: nn.Module, device, what: str) -> None:
    if device is None:
        return
    want, have = torch.device(device), model_device(model)
    if want.type != have.type or (want.index is not None and want.index != have.index):
        raise ValueError(f"device={str(want)!r} but the {what} is on {have}; move it with {what}.to({str(want)!r}) "
                         "(or leave device=None to run on the model's device)")


def autocast(dtype, device: torch.device):
    """Autocast context for ``dtype`` (None / float32 = off; bf16 / fp16 = mixed precision)."""
    if dtype is None:
        return contextlib.nullcontext()
    names = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
             "half": torch.float16, "fp32": torch.float32, "float32": torch.float32}
    d = names.get(dtype.lower()) if isinstance(dtype, str) else dtype
    if d not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be None, torch.float32, torch.bfloat16 or torch.float16 "
                         f"('fp32' / 'bf16' / 'fp16'), got {dtype!r}")
    if d == torch.float32:
        return contextlib.nullcontext()
    if d == torch.float16 and device.type == "cpu":
        raise ValueError("dtype=float16 autocast is not supported on CPU; use dtype=torch.bfloat16 on CPU, "
                         "or run on a CUDA device")
    return torch.autocast(device_type=device.type, dtype=d)


@contextlib.contextmanager
def eval_mode(*models: nn.Module):
    states = [m.training for m in models]
    try:
        for m in models:
            m.eval()
        yield
    finally:
        for m, s in zip(models, states):
            m.train(s)
