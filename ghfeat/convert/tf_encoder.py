"""Official TF GH-Feat encoder variables -> :class:`ghfeat.models.encoder.GHFeatEncoder` state dict.

Input: the ``variables`` of the pickled ``E`` network as a dict ``{name: ndarray}`` with names
relative to the network (``"Conv0/weight"``, ``"stage2_unit1/Convb/bias"``, ``"HighLevel/weight"``);
reading the pickle itself is :mod:`ghfeat.convert.tfpickle`'s job. Pure NumPy -> torch, no TF.

Name map (official TF -> ghfeat)::

    Conv0/weight, Conv0/batch_norm/*            backbone.trunk.conv1, backbone.trunk.bn1
    stage{s}_unit{u}/Conv{a,b,c}/{weight,bias}  backbone.trunk.layer{s}.{u-1}.conv{1,2,3}
    stage{s}_unit{u}/Conv{a,b,c}/batch_norm/*   backbone.trunk.layer{s}.{u-1}.bn{1,2,3}
    stage{s}_unit1/Shortcut/weight, batch_norm  backbone.trunk.layer{s}.0.downsample.{0,1}
    stage5/...                                  backbone.extra.0.... (the extra stage, R6)
    fpn/lconv_{3,4,5}                           neck.lateral.{0,1,2}   (on R4, R5, R6)
    fpn/fconv_{0,1,2}                           neck.output.{0,1,2}
    fuse_conv_{0,1,2}                           neck.fuse.{0,1,2}
    {HighLevel,MidLevel,LowLevel}/weight, bias  heads.{high,mid,low}.fc
    {HighLevel,MidLevel,LowLevel}/batch_norm/*  heads.{high,mid,low}.bn

Transforms: conv kernels ``[kh, kw, in, out]`` -> ``permute(3, 2, 0, 1)``; dense ``[in, out]`` ->
transpose; BN ``gamma, beta, moving_mean, moving_variance`` -> ``weight, bias, running_mean,
running_var``; the bias of a block conv (timm's convs have none) is folded into the following BN:
``running_mean' = moving_mean - bias`` (exact in eval mode; in training mode BN removes any constant
anyway). The dense rows are in **NCHW** flatten order because the official graph runs in
``data_format='NCHW'`` (``dense_layout="NHWC"`` reorders them for an NHWC export).
"""
from __future__ import annotations

import re
from typing import Mapping

import numpy as np
import torch

from ..models.encoder import BACKBONES, OFFICIAL_256_STYLE_DIMS, GHFeatEncoder

_BN = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
_HEADS = {"HighLevel": "heads.high", "MidLevel": "heads.mid", "LowLevel": "heads.low"}
_BLOCK_CONVS = {"Conva": ("conv1", "bn1"), "Convb": ("conv2", "bn2"), "Convc": ("conv3", "bn3")}


def _tf_scopes(encoder: GHFeatEncoder) -> list[tuple[str, str, str, str]]:
    """``(tf_scope, torch_module_prefix, kind, bn_prefix)`` for every weighted op of ``encoder``.

    kind: "conv" (no bias in torch, BN follows), "conv_bias_fold" (TF bias folded into BN),
    "conv_bias" (bias kept), "dense" (Linear + BatchNorm1d).
    """
    if encoder.backbone.block_type != "bottleneck":
        raise ValueError("the official TF encoder is a bottleneck ResNet (50/101); this encoder has "
                         f"{encoder.backbone.block_type} blocks")
    out = [("Conv0", "backbone.trunk.conv1", "conv", "backbone.trunk.bn1")]

    def block(tf: str, pt: str, blk) -> None:
        for tf_conv, (conv, bn) in _BLOCK_CONVS.items():
            out.append((f"{tf}/{tf_conv}", f"{pt}.{conv}", "conv_bias_fold", f"{pt}.{bn}"))
        if blk.downsample is not None:
            out.append((f"{tf}/Shortcut", f"{pt}.downsample.0", "conv", f"{pt}.downsample.1"))

    trunk = encoder.backbone.trunk
    for s in range(1, 5):
        for u, blk in enumerate(getattr(trunk, f"layer{s}")):
            block(f"stage{s}_unit{u + 1}", f"backbone.trunk.layer{s}.{u}", blk)
    block("stage5", "backbone.extra.0", encoder.backbone.extra[0])
    for i in range(3):
        out.append((f"fpn/lconv_{i + 3}", f"neck.lateral.{i}", "conv_bias", ""))
        out.append((f"fpn/fconv_{i}", f"neck.output.{i}", "conv_bias", ""))
        out.append((f"fuse_conv_{i}", f"neck.fuse.{i}", "conv_bias", ""))
    for tf, pt in _HEADS.items():
        out.append((tf, f"{pt}.fc", "dense", f"{pt}.bn"))
    return out


def _dense_rows_to_nchw(w: np.ndarray, channels: int, size: int) -> np.ndarray:
    """Reorder the rows of a dense weight ``[s*s*C, out]`` from NHWC to NCHW flatten order."""
    return w.reshape(size, size, channels, -1).transpose(2, 0, 1, 3).reshape(w.shape[0], -1)


def convert_tf_encoder_variables(variables: Mapping[str, np.ndarray], encoder: GHFeatEncoder,
                                 dense_layout: str = "NCHW") -> tuple[dict[str, torch.Tensor], dict]:
    """Official TF variables -> (``state_dict`` for ``encoder``, report).

    Raises ``ValueError`` listing every unused TF variable, every unfilled tensor and every shape
    mismatch. The report holds counts and the names whose biases were folded into BN.
    """
    if dense_layout not in ("NCHW", "NHWC"):
        raise ValueError(f"dense_layout must be 'NCHW' (official) or 'NHWC', got {dense_layout!r}")
    own = encoder.state_dict()
    variables = {str(k): np.asarray(v) for k, v in variables.items()}
    used: set[str] = set()
    state: dict[str, torch.Tensor] = {}
    problems: list[str] = []

    def take(name: str) -> np.ndarray | None:
        if name not in variables:
            problems.append(f"missing TF variable {name!r}")
            return None
        used.add(name)
        return variables[name].astype(np.float32)

    def put(key: str, value: np.ndarray | None) -> None:
        if value is None:
            return
        if key not in own:
            problems.append(f"internal: no tensor {key!r} in the encoder")
            return
        if tuple(own[key].shape) != tuple(value.shape):
            problems.append(f"{key}: TF gives {tuple(value.shape)}, encoder wants {tuple(own[key].shape)}")
            return
        state[key] = torch.from_numpy(np.ascontiguousarray(value))

    folded = []
    for tf, pt, kind, bn in _tf_scopes(encoder):
        w = take(f"{tf}/weight")
        if kind == "dense":
            if w is not None:
                if dense_layout == "NHWC":
                    w = _dense_rows_to_nchw(w, encoder.neck.fuse[0].out_channels, encoder.head_size)
                w = w.T
            put(f"{pt}.weight", w)
            put(f"{pt}.bias", take(f"{tf}/bias"))
        else:
            put(f"{pt}.weight", None if w is None else w.transpose(3, 2, 0, 1))
            if kind == "conv_bias":
                put(f"{pt}.bias", take(f"{tf}/bias"))
        if bn:
            for tf_name, pt_name in _BN.items():
                value = take(f"{tf}/batch_norm/{tf_name}")
                if kind == "conv_bias_fold" and tf_name == "moving_mean" and value is not None:
                    bias = take(f"{tf}/bias")
                    value = None if bias is None else value - bias
                    folded.append(tf)
                put(f"{bn}.{pt_name}", value)
            state[f"{bn}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)

    unused = sorted(set(variables) - used)
    unfilled = sorted(set(own) - set(state))
    if unused:
        problems.append(f"{len(unused)} TF variables not used: {unused[:8]}{' ...' if len(unused) > 8 else ''}")
    if unfilled:
        problems.append(f"{len(unfilled)} encoder tensors not filled: {unfilled[:8]}"
                        f"{' ...' if len(unfilled) > 8 else ''}")
    if problems:
        raise ValueError("official TF encoder variables do not match the GHFeatEncoder config:\n  "
                         + "\n  ".join(problems))
    report = {"num_variables": len(variables), "num_tensors": len(state),
              "num_tf_parameters": int(sum(v.size for v in variables.values())),
              "folded_conv_biases": folded, "dense_layout": dense_layout}
    return state, report


def tf_encoder_state_dict(variables: Mapping[str, np.ndarray], encoder: GHFeatEncoder,
                          dense_layout: str = "NCHW") -> dict[str, torch.Tensor]:
    """The ``state_dict`` of ``encoder`` holding the official TF ``variables`` (strictly checked)."""
    return convert_tf_encoder_variables(variables, encoder, dense_layout)[0]


def infer_tf_encoder_config(variables: Mapping[str, np.ndarray]) -> dict:
    """GHFeatEncoder arguments read off the TF variable shapes (depth, widths, FPN width, head size).

    ``style_dims`` cannot be read off (only their per-head sums): the official 256 dims are used
    when the head sizes match them, otherwise they must be passed.
    """
    units = {}
    for name in variables:
        m = re.match(r"stage([1-4])_unit(\d+)/", name)
        if m:
            s, u = int(m.group(1)), int(m.group(2))
            units[s] = max(units.get(s, 0), u)
    layout = tuple(units.get(s, 0) for s in range(1, 5))
    matches = [name for name, (kind, layers) in BACKBONES.items() if kind == "bottleneck" and layers == layout]
    if not matches:
        raise ValueError(f"TF variables describe a ResNet with {layout} units per stage; "
                         "only ResNet-50 (3, 4, 6, 3) and ResNet-101 (3, 4, 23, 3) exist in the official code")
    channels = [int(np.shape(variables[f"stage{s}_unit1/Conva/weight"])[3]) for s in range(1, 5)]
    fpn = int(np.shape(variables["fpn/lconv_3/weight"])[3])
    head_in = int(np.shape(variables["HighLevel/weight"])[0])
    head_size = int(round((head_in / fpn) ** 0.5))
    sums = [int(np.shape(variables[f"{h}/weight"])[1]) for h in _HEADS]
    cfg = dict(backbone=matches[0], channels=channels, fpn_channels=fpn, input_size=head_size * 64, official_tf=True)
    d = OFFICIAL_256_STYLE_DIMS
    if sums == [sum(d[:4]), sum(d[4:8]), sum(d[8:])]:
        cfg["style_dims"] = list(d)
    return cfg


def convert_tf_encoder(variables: Mapping[str, np.ndarray], dense_layout: str = "NCHW",
                       **config) -> tuple[GHFeatEncoder, dict]:
    """Build a :class:`GHFeatEncoder` for the official TF ``variables`` and load them (strict).

    ``config`` overrides the inferred arguments (e.g. ``generator_name="stylegan-ffhq256"``,
    ``alignment=...``, or ``style_dims`` for a non-256 generator). Returns ``(encoder in eval mode,
    report)``; the report adds the config used.
    """
    cfg = {**infer_tf_encoder_config(variables), **config}
    if "style_dims" not in cfg:
        raise ValueError("the head sizes do not match the official 256 generator; pass style_dims=G.style_dims")
    encoder = GHFeatEncoder(**cfg)
    state, report = convert_tf_encoder_variables(variables, encoder, dense_layout)
    encoder.load_state_dict(state, strict=True)
    report["config"] = dict(encoder.config)
    return encoder.eval(), report
