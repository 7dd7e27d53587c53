"""Official StyleGAN v1 TensorFlow variables -> ghfeat ``StyleGANGenerator`` / ``StyleGANDiscriminator``.

Input: the network dicts of :mod:`ghfeat.convert.tfpickle` (``G``/``Gs`` = ``G_style`` with the
components ``mapping`` (``G_mapping``) and ``synthesis`` (``G_synthesis``); ``D`` = ``D_basic``).

Layout rules (TF -> PyTorch); values stay *raw* (before the equalized-lr scale), as ghfeat stores
them, so no scale is applied here:

=================================  =========================================  =================
TF variable                        ghfeat parameter                           transform
=================================  =========================================  =================
``dlatent_avg``                    ``w_avg``                                  -
``G_mapping/Dense{i}/weight|bias`` ``mapping.layers.{i}.weight|bias``         ``[in,out]`` -> T
``G_synthesis/noise{i}``           ``synthesis.layers.{i}.noise.noise``       -
``4x4/Const/const``                ``synthesis.const``                        -
``<layer>/weight``                 ``synthesis.layers.{i}.conv.weight``       permute(3,2,0,1)
``<layer>/bias``                   ``synthesis.layers.{i}.bias``              -
``<layer>/Noise/weight``           ``synthesis.layers.{i}.noise.weight``      -
``<layer>/StyleMod/weight|bias``   ``synthesis.layers.{i}.style.weight|bias`` ``[in,out]`` -> T
``ToRGB_lod0/weight|bias``         ``synthesis.to_rgb.weight|bias``           permute(3,2,0,1)
``FromRGB_lod0/weight|bias``       ``from_rgb.weight|bias``                   permute(3,2,0,1)
``{r}x{r}/Conv0|Conv1_down``       ``blocks.{log2(R)-log2(r)}.conv0|conv1``   permute(3,2,0,1)
``4x4/Conv``, ``4x4/Dense0|1``     ``conv``, ``dense0|1``                     permute / T
=================================  =========================================  =================

``<layer>`` of generator layer ``i`` is ``4x4/Const`` (0), ``4x4/Conv`` (1), ``{r}x{r}/Conv0_up``
(even ``i``) and ``{r}x{r}/Conv1`` (odd ``i``) with ``r = 4 * 2**(i // 2)``. The fused up/down
convolutions (>= 128 px) need no special treatment: the official code widens the same
``[3,3,in,out]`` kernel at run time, and so does ghfeat.

Only the progressive-growing leftovers are skipped (and reported): ``ToRGB_lod{k>0}``,
``FromRGB_lod{k>0}`` and ``lod`` (which must be 0, i.e. a fully grown network). Any other
unmatched variable, or any parameter left unfilled, is an error.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..models.generator import RESOLUTIONS, num_features

__all__ = ["Converted", "tf_layer_scope", "convert_tf_generator", "convert_tf_discriminator", "infer_fmap_config",
           "tf_conv_to_torch", "tf_dense_to_torch"]


@dataclass
class Converted:
    """A converted network: what to build and what to load into it.

    Attributes:
        kind: "generator" | "discriminator" | "encoder".
        config: constructor arguments of the ghfeat class.
        state_dict: tensors keyed like the ghfeat module's ``state_dict()`` (float32).
        ignored: source variables deliberately skipped (progressive-growing extras), for the report.
        source: which network of the file it came from (e.g. "Gs", "generator_smooth").
    """
    kind: str
    config: dict
    state_dict: dict
    ignored: list = field(default_factory=list)
    source: str = ""

    def build(self) -> nn.Module:
        """Build the ghfeat module from ``config`` and load ``state_dict`` strictly (eval mode)."""
        from .._io import load_state_dict_strict
        if self.kind == "generator":
            from ..models.generator import StyleGANGenerator as cls
        elif self.kind == "discriminator":
            from ..models.discriminator import StyleGANDiscriminator as cls
        else:
            raise ValueError(f"Converted.build() handles generators and discriminators, not {self.kind!r}")
        model = cls(**self.config)
        load_state_dict_strict(model, self.state_dict, f"converted {self.kind} ({self.source})")
        return model.eval()


def tf_conv_to_torch(w: np.ndarray) -> torch.Tensor:
    """TF conv kernel ``[kh, kw, in, out]`` -> PyTorch ``[out, in, kh, kw]``."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(w, np.float32).transpose(3, 2, 0, 1)))


def tf_dense_to_torch(w: np.ndarray) -> torch.Tensor:
    """TF dense weight ``[in, out]`` -> PyTorch ``[out, in]``."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(w, np.float32).T))


def tf_layer_scope(i: int) -> str:
    """TF variable scope of generator layer ``i`` (``4x4/Const``, ``4x4/Conv``, ``8x8/Conv0_up``, ...)."""
    r = 4 * 2 ** (i // 2)
    if r == 4:
        return "4x4/Const" if i == 0 else "4x4/Conv"
    return f"{r}x{r}/{'Conv0_up' if i % 2 == 0 else 'Conv1'}"


def _tensor(v: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(v, np.float32)))


class _Vars:
    """The variables of one network; records which ones were used."""

    def __init__(self, variables: dict, where: str):
        self.vars, self.where, self.used = dict(variables), where, set()

    def has(self, name: str) -> bool:
        return name in self.vars

    def take(self, name: str, ndim: int | None = None) -> np.ndarray:
        if name not in self.vars:
            raise ValueError(f"{self.where}: variable {name!r} is missing; this is not a complete official "
                             f"StyleGAN v1 network (variables present: {_head(sorted(self.vars))})")
        value = self.vars[name]
        if ndim is not None and value.ndim != ndim:
            raise ValueError(f"{self.where}: variable {name!r} has shape {tuple(value.shape)}, expected {ndim} dims")
        self.used.add(name)
        return value

    def skip(self, name: str, ignored: list) -> None:
        self.used.add(name)
        ignored.append(f"{self.where}/{name} {tuple(self.vars[name].shape)}")

    def check_lod(self, ignored: list) -> None:
        if "lod" in self.vars:
            lod = float(np.asarray(self.vars["lod"]).reshape(-1)[0])
            if lod != 0.0:
                raise ValueError(f"{self.where}: lod = {lod}; the network is in the middle of progressive "
                                 "growing. Convert a fully grown snapshot (lod 0).")
            self.skip("lod", ignored)

    def leftover(self) -> list[str]:
        return sorted(set(self.vars) - self.used)


def _head(items, n=6) -> str:
    items = list(items)
    return ", ".join(items[:n]) + (f", ... (+{len(items) - n})" if len(items) > n else "")


def _check_kwargs(kwargs: dict, supported: dict, what: str) -> None:
    """Refuse static kwargs that change the architecture in a way ghfeat does not implement."""
    bad = []
    for key, ok in supported.items():
        if key in kwargs and not ok(kwargs[key]):
            bad.append(f"{key}={kwargs[key]!r}")
    if bad:
        raise ValueError(f"{what} was built with {', '.join(bad)}, which ghfeat's StyleGAN v1 port does not "
                         "implement (it covers the official configuration: styles, const input, noise, "
                         "lrelu, equalized lr, instance norm, no labels).")


def _blur_flag(kwargs: dict, what: str) -> bool:
    f = kwargs.get("blur_filter", [1, 2, 1])
    if not f:
        return False
    if list(f) != [1, 2, 1]:
        raise ValueError(f"{what} uses blur_filter={f!r}; ghfeat implements [1, 2, 1] or no blur")
    return True


def _fused_flag(kwargs: dict, what: str):
    fs = kwargs.get("fused_scale", "auto")
    if fs not in (True, False, "auto"):
        raise ValueError(f"{what}: fused_scale={fs!r} is not True/False/'auto'")
    return fs


def infer_fmap_config(widths: dict[int, int], hint: dict, what: str) -> dict:
    """Find ``fmap_base, fmap_max, fmap_decay`` reproducing the channel count of every stage.

    Args:
        widths: ``{stage: channels}`` read from the weight shapes (resolution ``2**r`` uses stage r-1).
        hint: static kwargs of the network (tried first; official default 8192 / 512 / 1.0).
    """
    def fits(base, fmax, decay):
        try:
            return all(num_features(s, base, fmax, decay) == c for s, c in widths.items())
        except ValueError:            # the rule leaves < 1 channel somewhere
            return False

    base, fmax, decay = int(hint.get("fmap_base", 8192)), int(hint.get("fmap_max", 512)), float(hint.get("fmap_decay", 1.0))
    if fits(base, fmax, decay):
        return dict(fmap_base=base, fmap_max=fmax, fmap_decay=decay)
    fmax = max(widths.values())
    for d in sorted({decay, 1.0}):
        for s, c in sorted(widths.items()):
            cand = int(round(c * 2.0 ** (s * d)))
            if fits(cand, fmax, d):
                return dict(fmap_base=cand, fmap_max=fmax, fmap_decay=d)
    raise ValueError(f"{what}: the channel counts per stage {dict(sorted(widths.items()))} do not follow the "
                     "StyleGAN rule min(fmap_base / 2**(stage*fmap_decay), fmap_max)")


def _resolution_log2(names, what: str, static: dict) -> int:
    res = {int(m.group(1)) for n in names if (m := re.match(r"^(\d+)x\1/", n))}
    if not res:
        raise ValueError(f"{what}: no '{{r}}x{{r}}/...' layers found; not a StyleGAN v1 network")
    top = max(res)
    log2 = int(np.log2(top))
    if top not in RESOLUTIONS or {2 ** r for r in range(2, log2 + 1)} != res:
        raise ValueError(f"{what}: layer resolutions {sorted(res)} are not 4, 8, ..., R with R in {RESOLUTIONS}")
    if "resolution" in static and int(static["resolution"]) != top:
        raise ValueError(f"{what}: static_kwargs say resolution={static['resolution']} but the layers go up "
                         f"to {top}x{top}")
    return log2


def _finish(vars_list, ignored):
    leftover = [f"{v.where}/{n} {tuple(v.vars[n].shape)}" for v in vars_list for n in v.leftover()]
    if leftover:
        raise ValueError("variables that match no ghfeat parameter (refusing to drop them silently): "
                         + _head(leftover, 10))


def _check_filled(kind: str, config: dict, state: dict, sources: dict) -> None:
    """Compare the converted tensors with a freshly built model: every parameter filled, shapes equal."""
    if kind == "generator":
        from ..models.generator import StyleGANGenerator as cls
    else:
        from ..models.discriminator import StyleGANDiscriminator as cls
    with torch.device("meta"):
        own = cls(**config).state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise ValueError(f"{kind}: parameters not filled by any source variable: {_head(missing, 10)}")
    extra = sorted(set(state) - set(own))
    if extra:
        raise ValueError(f"{kind}: converted tensors the model does not have: {_head(extra, 10)}")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{kind}: {sources.get(k, k)} converts to {k} of shape {tuple(v.shape)}, but the "
                             f"inferred config needs {tuple(own[k].shape)}")


_G_SUPPORTED = {
    "label_size": lambda v: not v,
    "use_styles": lambda v: v is True,
    "const_input_layer": lambda v: v is True,
    "use_noise": lambda v: bool(v) and v in (True, 1),
    "nonlinearity": lambda v: v == "lrelu",
    "mapping_nonlinearity": lambda v: v == "lrelu",
    "use_wscale": lambda v: v is True,
    "use_pixel_norm": lambda v: not v,
    "use_instance_norm": lambda v: v is True,
    "normalize_latents": lambda v: v is True,
    "final_tanh": lambda v: isinstance(v, bool),     # genforce's option (passed via genforce_kwargs)
}


def convert_tf_generator(net: dict, source: str = "Gs") -> Converted:
    """Convert an official ``G_style`` network dict (``G`` or ``Gs``) to ghfeat ``StyleGANGenerator`` tensors."""
    what = f"{source} ({net.get('name')})"
    comps = net.get("components", {})
    if set(comps) != {"mapping", "synthesis"}:
        raise ValueError(f"{what} has components {sorted(comps)}; an official StyleGAN generator (G_style) has "
                         "exactly 'mapping' and 'synthesis'")
    m_net, s_net = comps["mapping"], comps["synthesis"]
    kw = {**s_net.get("static_kwargs", {}), **m_net.get("static_kwargs", {}), **net.get("static_kwargs", {})}
    _check_kwargs(kw, _G_SUPPORTED, what)
    top = _Vars(net["own_variables"], source)
    mp = _Vars(m_net["own_variables"], f"{source}/{m_net['name']}")
    sy = _Vars(s_net["own_variables"], f"{source}/{s_net['name']}")
    ignored: list[str] = []
    top.check_lod(ignored)
    sy.check_lod(ignored)
    state, sources = {}, {}

    def put(key, tensor, src):
        state[key], sources[key] = tensor, src

    # mapping
    n_map = sum(1 for n in mp.vars if re.fullmatch(r"Dense\d+/weight", n))
    if n_map == 0:
        raise ValueError(f"{what}: the mapping network has no Dense{{i}}/weight variables")
    dims = []
    for i in range(n_map):
        w = mp.take(f"Dense{i}/weight", 2)
        dims.append(w.shape)
        put(f"mapping.layers.{i}.weight", tf_dense_to_torch(w), f"{mp.where}/Dense{i}/weight")
        put(f"mapping.layers.{i}.bias", _tensor(mp.take(f"Dense{i}/bias", 1)), f"{mp.where}/Dense{i}/bias")
    z_dim, w_dim = int(dims[0][0]), int(dims[-1][1])
    hidden = {int(d[1]) for d in dims[:-1]}
    if hidden and hidden != {w_dim}:
        raise ValueError(f"{what}: mapping hidden width {sorted(hidden)} differs from w_dim {w_dim}; "
                         "ghfeat's StyleGANGenerator uses hidden width = w_dim (official 512/512)")
    put("w_avg", _tensor(top.take("dlatent_avg", 1)), f"{source}/dlatent_avg")

    # synthesis
    log2 = _resolution_log2(sy.vars, what, kw)
    L = 2 * log2 - 2
    widths = {}
    put("synthesis.const", _tensor(sy.take("4x4/Const/const", 4)), f"{sy.where}/4x4/Const/const")
    for i in range(L):
        r = 4 * 2 ** (i // 2)
        scope = tf_layer_scope(i)
        p = f"synthesis.layers.{i}"
        if i > 0:
            put(f"{p}.conv.weight", tf_conv_to_torch(sy.take(f"{scope}/weight", 4)), f"{sy.where}/{scope}/weight")
        bias = sy.take(f"{scope}/bias", 1)
        widths[int(np.log2(r)) - 1] = int(bias.shape[0])
        put(f"{p}.bias", _tensor(bias), f"{sy.where}/{scope}/bias")
        put(f"{p}.noise.weight", _tensor(sy.take(f"{scope}/Noise/weight", 1)), f"{sy.where}/{scope}/Noise/weight")
        put(f"{p}.noise.noise", _tensor(sy.take(f"noise{i}", 4)), f"{sy.where}/noise{i}")
        put(f"{p}.style.weight", tf_dense_to_torch(sy.take(f"{scope}/StyleMod/weight", 2)),
            f"{sy.where}/{scope}/StyleMod/weight")
        put(f"{p}.style.bias", _tensor(sy.take(f"{scope}/StyleMod/bias", 1)), f"{sy.where}/{scope}/StyleMod/bias")
    rgb_w = sy.take("ToRGB_lod0/weight", 4)
    put("synthesis.to_rgb.weight", tf_conv_to_torch(rgb_w), f"{sy.where}/ToRGB_lod0/weight")
    put("synthesis.to_rgb.bias", _tensor(sy.take("ToRGB_lod0/bias", 1)), f"{sy.where}/ToRGB_lod0/bias")
    for name in list(sy.vars):
        if re.fullmatch(r"ToRGB_lod[1-9]\d*/(weight|bias)", name):
            sy.skip(name, ignored)
    _finish([top, mp, sy], ignored)

    psi, cutoff = kw.get("truncation_psi", 0.7), kw.get("truncation_cutoff", 8)
    beta, mix = kw.get("dlatent_avg_beta", 0.995), kw.get("style_mixing_prob", 0.9)
    config = dict(resolution=2 ** log2, z_dim=z_dim, w_dim=w_dim, mapping_layers=n_map,
                  mapping_lr_mul=float(kw.get("mapping_lrmul", 0.01)),
                  **infer_fmap_config(widths, kw, what), num_channels=int(rgb_w.shape[3]),
                  truncation_psi=1.0 if psi is None else float(psi),
                  truncation_cutoff=L if cutoff is None else int(cutoff),
                  w_avg_beta=1.0 if beta is None else float(beta),
                  style_mixing_prob=0.0 if mix is None else float(mix),
                  fused_scale=_fused_flag(kw, what), blur=_blur_flag(kw, what))
    if kw.get("final_tanh"):
        config["final_tanh"] = True
    _check_filled("generator", config, state, sources)
    return Converted("generator", config, state, ignored, source)


_D_SUPPORTED = {
    "label_size": lambda v: not v,
    "nonlinearity": lambda v: v == "lrelu",
    "use_wscale": lambda v: v is True,
}


def convert_tf_discriminator(net: dict, source: str = "D") -> Converted:
    """Convert an official ``D_basic`` network dict to ghfeat ``StyleGANDiscriminator`` tensors."""
    what = f"{source} ({net.get('name')})"
    if net.get("components"):
        raise ValueError(f"{what} has components {sorted(net['components'])}; D_basic has none")
    kw = dict(net.get("static_kwargs", {}))
    _check_kwargs(kw, _D_SUPPORTED, what)
    d = _Vars(net["own_variables"], source)
    ignored: list[str] = []
    d.check_lod(ignored)
    state, sources = {}, {}

    def put(key, tensor, src):
        state[key], sources[key] = tensor, src

    log2 = _resolution_log2(d.vars, what, kw)
    widths = {}
    w = d.take("FromRGB_lod0/weight", 4)
    widths[log2 - 1] = int(w.shape[3])
    put("from_rgb.weight", tf_conv_to_torch(w), f"{source}/FromRGB_lod0/weight")
    put("from_rgb.bias", _tensor(d.take("FromRGB_lod0/bias", 1)), f"{source}/FromRGB_lod0/bias")
    for r in range(log2, 2, -1):
        j, res = log2 - r, 2 ** r
        for tf_name, ours in (("Conv0", "conv0"), ("Conv1_down", "conv1")):
            scope = f"{res}x{res}/{tf_name}"
            kernel = d.take(f"{scope}/weight", 4)
            if tf_name == "Conv1_down":
                widths[r - 2] = int(kernel.shape[3])
            put(f"blocks.{j}.{ours}.weight", tf_conv_to_torch(kernel), f"{source}/{scope}/weight")
            put(f"blocks.{j}.{ours}.bias", _tensor(d.take(f"{scope}/bias", 1)), f"{source}/{scope}/bias")
    conv = d.take("4x4/Conv/weight", 4)
    widths[1] = int(conv.shape[3])
    put("conv.weight", tf_conv_to_torch(conv), f"{source}/4x4/Conv/weight")
    put("conv.bias", _tensor(d.take("4x4/Conv/bias", 1)), f"{source}/4x4/Conv/bias")
    dense0 = d.take("4x4/Dense0/weight", 2)
    widths[0] = int(dense0.shape[1])
    for k in (0, 1):
        put(f"dense{k}.weight", tf_dense_to_torch(d.take(f"4x4/Dense{k}/weight", 2)), f"{source}/4x4/Dense{k}/weight")
        put(f"dense{k}.bias", _tensor(d.take(f"4x4/Dense{k}/bias", 1)), f"{source}/4x4/Dense{k}/bias")
    for name in list(d.vars):
        if re.fullmatch(r"FromRGB_lod[1-9]\d*/(weight|bias)", name):
            d.skip(name, ignored)
    _finish([d], ignored)

    group, nfeat = int(kw.get("mbstd_group_size", 4)), int(kw.get("mbstd_num_features", 1))
    extra = int(conv.shape[2]) - widths[1]
    if extra != (nfeat if group > 1 else 0):
        raise ValueError(f"{what}: 4x4/Conv takes {conv.shape[2]} channels = {widths[1]} + {extra}, which does not "
                         f"match mbstd_group_size={group}, mbstd_num_features={nfeat}")
    config = dict(resolution=2 ** log2, num_channels=int(w.shape[2]), **infer_fmap_config(widths, kw, what),
                  mbstd_group_size=group, mbstd_num_features=nfeat,
                  fused_scale=_fused_flag(kw, what), blur=_blur_flag(kw, what))
    _check_filled("discriminator", config, state, sources)
    return Converted("discriminator", config, state, ignored, source)
