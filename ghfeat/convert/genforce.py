"""genforce PyTorch StyleGAN v1 checkpoints (``.pth``) -> ghfeat generator / discriminator.

genforce (github.com/genforce/genforce, also used by idinvert_pytorch, sefa, interfacegan) stores
``{'generator', 'discriminator', 'generator_smooth'}`` state dicts (training checkpoints put them
under ``'models'``). Their converter from the official TF pickles only permutes the layouts
(conv ``permute(3, 2, 0, 1)``, dense and StyleMod ``permute(1, 0)``); weights stay *raw* (the
equalized-lr ``wscale``, and ``lr_mul`` in the mapping network, are applied at run time), exactly as
in TF and in ghfeat. So a genforce state dict is the TF variables under other names:

===========================================  =====================================
genforce key                                 official TF variable
===========================================  =====================================
``mapping.dense{i}.weight|bias``             ``G_mapping/Dense{i}/weight|bias``
``truncation.w_avg``                         ``dlatent_avg``
``synthesis.lod``, ``lod`` (D)               ``lod`` (must be 0)
``synthesis.layer0.const``                   ``4x4/Const/const``
``synthesis.layer{i}.weight|bias``           ``<layer i>/weight|bias``
``synthesis.layer{i}.style.weight|bias``     ``<layer i>/StyleMod/weight|bias``
``synthesis.layer{i}.apply_noise.weight``    ``<layer i>/Noise/weight``
``synthesis.layer{i}.apply_noise.noise``     ``noise{i}``
``synthesis.layer{i}.blur.kernel``           (constant [1,2,1] filter; checked, skipped)
``synthesis.output{b}.weight|bias``          ``ToRGB_lod{log2(R)-2-b}/weight|bias``
``input{b}.weight|bias`` (D)                 ``FromRGB_lod{b}/weight|bias``
``layer{2b}``, ``layer{2b+1}`` (D, r > 4)    ``{r}x{r}/Conv0``, ``{r}x{r}/Conv1_down``
``layer{2b}|{2b+1}|{2b+2}`` (D, 4x4)         ``4x4/Conv``, ``4x4/Dense0``, ``4x4/Dense1``
===========================================  =====================================

The state dicts are mapped back to TF names/layouts and handed to
:mod:`ghfeat.convert.stylegan_tf`, so both paths share one set of checks.

A ``.pth`` carries no hyperparameters. Shapes give the resolution, latent sizes, mapping depth,
channel widths and image channels; the settings of :data:`GENFORCE_SETTINGS` change no tensor
shape and cannot be read from the file. Their genforce defaults are assumed unless given as
``genforce_kwargs`` (genforce's constructor argument names; ``convert(..., genforce_kwargs=)``,
``ghfeat convert --genforce-kwargs JSON``), and the conversion report lists what was assumed.
"""
from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from .stylegan_tf import Converted, convert_tf_discriminator, convert_tf_generator, tf_layer_scope

__all__ = ["read_genforce_checkpoint", "convert_genforce_generator", "convert_genforce_discriminator",
           "GENFORCE_KEYS"]

GENFORCE_KEYS = ("generator", "generator_smooth", "discriminator")

# genforce constructor arguments that a state dict cannot tell: name -> (default, applies to,
# official TF static kwarg). Values ghfeat does not implement are refused, not converted.
GENFORCE_SETTINGS = {
    "fused_scale": ("auto", "G, D", "fused_scale"),            # fused up/down conv: True, False, 'auto' (>= 128 px)
    "mapping_lr_mul": (0.01, "G", "mapping_lrmul"),            # learning-rate multiplier of the mapping network
    "use_wscale": (True, "G, D", "use_wscale"),                # equalized learning rate (ghfeat: True only)
    "final_tanh": (False, "G", "final_tanh"),                  # tanh on the output
    "truncation_psi": (0.7, "G", "truncation_psi"),            # sampling truncation (not used by GH-Feat decoding)
    "truncation_layers": (8, "G", "truncation_cutoff"),
    "minibatch_std_group_size": (4, "D", "mbstd_group_size"),
}
# genforce arguments read from the tensor shapes; given ones must agree with the file
_GENFORCE_INFERRED = {"resolution", "z_space_dim", "w_space_dim", "num_mapping_layers", "image_channels",
                      "fmaps_base", "fmaps_max", "label_size", "minibatch_std_channels", "repeat_w"}


def _check_genforce_values(given: dict) -> None:
    """Type and range of every given genforce setting, before the file is read (a NaN multiplier, a
    negative layer count or a zero divisor would otherwise be stored in the config)."""
    import math

    def num(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    def integer(v, low):
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    rules = {
        "mapping_lr_mul": (lambda v: num(v) and v > 0, "a finite number > 0"),
        "use_wscale": (lambda v: isinstance(v, bool), "true or false"),
        "final_tanh": (lambda v: isinstance(v, bool), "true or false"),
        "truncation_psi": (lambda v: v is None or num(v), "a finite number (or null: no truncation)"),
        "truncation_layers": (lambda v: v is None or integer(v, 0), "an integer >= 0 (or null: all layers)"),
        "minibatch_std_group_size": (lambda v: integer(v, 1), "an integer >= 1"),
        "minibatch_std_channels": (lambda v: integer(v, 1), "an integer >= 1"),
        "repeat_w": (lambda v: isinstance(v, bool), "true or false"),
        "label_size": (lambda v: integer(v, 0), "an integer >= 0"),
    }
    for key in ("resolution", "z_space_dim", "w_space_dim", "num_mapping_layers", "image_channels", "fmaps_base",
                "fmaps_max"):
        rules[key] = (lambda v: integer(v, 1), "an integer >= 1")
    bad = [f"{k}={json_repr(v)} (expected {rules[k][1]})" for k, v in given.items() if k in rules and not rules[k][0](v)]
    if bad:
        raise ValueError("invalid genforce setting(s): " + "; ".join(bad))


def json_repr(v) -> str:
    """``v`` as the user typed it in JSON (NaN / Infinity / true / null)."""
    import json
    try:
        return json.dumps(v)
    except (TypeError, ValueError):
        return repr(v)


def genforce_static_kwargs(genforce_kwargs: dict | None, net: str) -> tuple[dict, dict]:
    """genforce constructor arguments -> (official TF static kwargs for network ``net`` ("G" or
    "D"), ``{setting: value}`` of the :data:`GENFORCE_SETTINGS` that were *assumed* (not given))."""
    given = dict(genforce_kwargs or {})
    unknown = sorted(set(given) - set(GENFORCE_SETTINGS) - _GENFORCE_INFERRED)
    if unknown:
        raise ValueError(f"unknown genforce setting(s) {unknown}; settings a .pth cannot tell: "
                         f"{sorted(GENFORCE_SETTINGS)} (the others are read from the tensor shapes)")
    _check_genforce_values(given)
    if given.get("repeat_w", True) is not True or given.get("label_size", 0):
        raise ValueError("repeat_w=False and label_size > 0 (conditional) are not implemented by ghfeat's "
                         "StyleGAN v1 port")
    static, assumed = {}, {}
    for key, (default, nets, tf_key) in GENFORCE_SETTINGS.items():
        if net not in nets:
            continue
        if key not in given:
            assumed[key] = default
        if tf_key is not None:
            static[tf_key] = given.get(key, default)
    if "resolution" in given:
        static["resolution"] = given["resolution"]
    if net == "D" and "minibatch_std_channels" in given:
        static["mbstd_num_features"] = given["minibatch_std_channels"]
    return static, assumed
_BLUR = (torch.tensor([1.0, 2.0, 1.0])[:, None] * torch.tensor([1.0, 2.0, 1.0])[None, :] / 16.0)


def read_genforce_checkpoint(path: str | os.PathLike, others: dict | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """Load a genforce ``.pth`` with ``torch.load(weights_only=True)`` (no pickled code runs).

    Returns ``{key: state_dict}`` for the keys of :data:`GENFORCE_KEYS` present in the file. The
    other top-level entries (an ``encoder``, optimizer states, ...) are not read; pass a dict as
    ``others`` to get ``{key: short description}`` of them.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc) or "GLOBAL" in str(exc):
            raise pickle.UnpicklingError(
                f"{path} needs code to be unpickled (torch.load with weights_only=True refused it: "
                f"{str(exc).splitlines()[0]}). genforce checkpoints hold only tensors and dicts, so this "
                "is not one of them, or it was tampered with; ghfeat never runs code from a checkpoint.") from None
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({exc}); it may be truncated or "
                         "corrupt: download it again.") from exc
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError) as exc:
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); it may be truncated or corrupt: "
                         "download it again.") from exc
    if isinstance(ckpt, dict) and "models" in ckpt and isinstance(ckpt["models"], dict):
        ckpt = ckpt["models"]
    if not isinstance(ckpt, dict) or not any(k in ckpt for k in GENFORCE_KEYS):
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path} holds {keys}; a genforce StyleGAN checkpoint is a dict with "
                         f"{list(GENFORCE_KEYS)} state dicts")
    if others is not None:
        for key, v in ckpt.items():
            if key not in GENFORCE_KEYS:
                others[str(key)] = (f"state dict of {len(v)} tensors" if isinstance(v, dict) and v and
                                    all(isinstance(t, torch.Tensor) for t in v.values()) else type(v).__name__)
    out = {}
    for key in GENFORCE_KEYS:
        if key in ckpt:
            sd = ckpt[key]
            if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
                raise ValueError(f"{path}: {key!r} is not a state dict of tensors")
            out[key] = dict(sd)
    return out


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).cpu().numpy()


def _to_tf_conv(t: torch.Tensor) -> np.ndarray:
    """``[out, in, kh, kw]`` -> ``[kh, kw, in, out]``."""
    if t.ndim != 4:
        raise ValueError(f"expected a 4-d conv weight, got shape {tuple(t.shape)}")
    return np.ascontiguousarray(_np(t).transpose(2, 3, 1, 0))


def _to_tf_dense(t: torch.Tensor) -> np.ndarray:
    if t.ndim != 2:
        raise ValueError(f"expected a 2-d dense weight, got shape {tuple(t.shape)}")
    return np.ascontiguousarray(_np(t).T)


# genforce ``synthesis.layer{i}.<what>`` -> (official TF name, layout conversion)
_SYNTHESIS_LAYER_KEYS = {
    "weight": ("{scope}/weight", lambda t: _to_tf_conv(t)),
    "bias": ("{scope}/bias", lambda t: _np(t)),
    "style.weight": ("{scope}/StyleMod/weight", lambda t: _to_tf_dense(t)),
    "style.bias": ("{scope}/StyleMod/bias", lambda t: _np(t)),
    "apply_noise.weight": ("{scope}/Noise/weight", lambda t: _np(t)),
    "apply_noise.noise": ("noise{i}", lambda t: _np(t)),
}


def _check_blur(key: str, t: torch.Tensor, ignored: list, where: str) -> None:
    if t.ndim != 4 or tuple(t.shape[1:]) != (1, 3, 3) or not torch.allclose(t.float(), _BLUR.expand_as(t)):
        raise ValueError(f"{where}: {key} is not the [1, 2, 1] blur filter ghfeat implements")
    ignored.append(f"{where}/{key} {tuple(t.shape)}")


def _unknown(keys, where: str):
    if keys:
        raise ValueError(f"{where}: keys that match no StyleGAN v1 tensor (refusing to drop them silently): "
                         + ", ".join(sorted(keys)[:10]))


def convert_genforce_generator(sd: dict[str, torch.Tensor], source: str = "generator_smooth",
                               static_kwargs: dict | None = None) -> Converted:
    """A genforce ``StyleGANGenerator`` state dict -> :class:`Converted` (ghfeat generator)."""
    where = source
    ignored: list[str] = []
    top, mapping, syn = {}, {}, {}
    layers = [int(m.group(1)) for k in sd if (m := re.match(r"synthesis\.layer(\d+)\.", k))]
    if not layers:
        raise ValueError(f"{where}: no synthesis.layer{{i}} keys; not a genforce StyleGAN generator")
    log2 = (max(layers) + 1 + 2) // 2
    unknown = []
    for key, t in sd.items():
        if m := re.fullmatch(r"mapping\.dense(\d+)\.(weight|bias)", key):
            i, what = m.groups()
            mapping[f"Dense{i}/{what}"] = _to_tf_dense(t) if what == "weight" else _np(t)
        elif key == "truncation.w_avg":
            top["dlatent_avg"] = _np(t)
        elif key == "synthesis.lod":
            syn["lod"] = _np(t)
        elif key == "synthesis.layer0.const":
            syn["4x4/Const/const"] = _np(t)
        elif m := re.fullmatch(r"synthesis\.layer(\d+)\.(weight|bias|style\.weight|style\.bias|"
                               r"apply_noise\.weight|apply_noise\.noise|blur\.kernel)", key):
            i, what = int(m.group(1)), m.group(2)
            if what == "blur.kernel":
                _check_blur(key, t, ignored, where)
            else:
                name, convert = _SYNTHESIS_LAYER_KEYS[what]
                syn[name.format(scope=tf_layer_scope(i), i=i)] = convert(t)
        elif m := re.fullmatch(r"synthesis\.output(\d+)\.(weight|bias)", key):
            b, what = int(m.group(1)), m.group(2)
            syn[f"ToRGB_lod{log2 - 2 - b}/{what}"] = _to_tf_conv(t) if what == "weight" else _np(t)
        else:
            unknown.append(key)
    _unknown(unknown, where)
    static = dict(static_kwargs or {})
    net = {"name": source, "static_kwargs": static, "own_variables": top, "components": {
        "mapping": {"name": "mapping", "static_kwargs": static, "own_variables": mapping, "components": {}},
        "synthesis": {"name": "synthesis", "static_kwargs": static, "own_variables": syn, "components": {}}}}
    out = convert_tf_generator(net, source)
    out.ignored = ignored + out.ignored
    return out


def convert_genforce_discriminator(sd: dict[str, torch.Tensor], source: str = "discriminator",
                                   static_kwargs: dict | None = None) -> Converted:
    """A genforce ``StyleGANDiscriminator`` state dict -> :class:`Converted` (ghfeat discriminator)."""
    where = source
    ignored: list[str] = []
    inputs = [int(m.group(1)) for k in sd if (m := re.fullmatch(r"input(\d+)\.weight", k))]
    if not inputs:
        raise ValueError(f"{where}: no input{{b}}.weight keys; not a genforce StyleGAN discriminator")
    log2 = max(inputs) + 2
    last = log2 - 2                       # block index of the 4x4 block
    d, unknown = {}, []
    for key, t in sd.items():
        if key == "lod":
            d["lod"] = _np(t)
        elif m := re.fullmatch(r"input(\d+)\.(weight|bias)", key):
            b, what = int(m.group(1)), m.group(2)
            d[f"FromRGB_lod{b}/{what}"] = _to_tf_conv(t) if what == "weight" else _np(t)
        elif m := re.fullmatch(r"layer(\d+)\.(weight|bias|blur\.kernel)", key):
            k, what = int(m.group(1)), m.group(2)
            b = k // 2
            if what == "blur.kernel":
                _check_blur(key, t, ignored, where)
                continue
            if b < last:
                r = 2 ** (log2 - b)
                name = f"{r}x{r}/{'Conv0' if k % 2 == 0 else 'Conv1_down'}"
                dense = False
            elif k - 2 * last in (0, 1, 2):
                name = f"4x4/{('Conv', 'Dense0', 'Dense1')[k - 2 * last]}"
                dense = k > 2 * last
            else:
                unknown.append(key)
                continue
            if what == "weight":
                d[f"{name}/weight"] = _to_tf_dense(t) if dense else _to_tf_conv(t)
            else:
                d[f"{name}/bias"] = _np(t)
        else:
            unknown.append(key)
    _unknown(unknown, where)
    net = {"name": source, "static_kwargs": dict(static_kwargs or {}), "own_variables": d, "components": {}}
    out = convert_tf_discriminator(net, source)
    out.ignored = ignored + out.ignored
    return out
