"""Levels and packed codes: the small algebra shared by ``api.py`` and ``editing.py``.

Level numbering (``shared/DESIGN.md``): levels ``1..L``, level 1 is the finest generator layer;
level ``k`` is generator layer (row of the packed codes) ``L - k``. Packed codes are
``[N, L, 2*C_max]``, layer 0 (coarse) first.
"""
from __future__ import annotations

import operator
from typing import Iterable

import numpy as np
import torch


def level_to_layer(level: int, num_layers: int) -> int:
    """Paper level ``1..L`` (1 = finest) -> generator layer index ``L - level`` (0 = coarse 4x4)."""
    return num_layers - parse_levels(level, num_layers)[0]


def layer_to_level(layer: int, num_layers: int) -> int:
    """Generator layer index ``0..L-1`` -> paper level ``L - layer``."""
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < num_layers:
        raise ValueError(f"layer must be an int in 0..{num_layers - 1}, got {layer!r}")
    return num_layers - layer


def parse_levels(levels, num_layers: int, *, allow_empty: bool = False) -> list[int]:
    """Validate levels and return them as a list of ints, in the order given.

    Args:
        levels: ``None`` (all levels ``1..L``, ascending), one int, or a sequence of ints
            (e.g. ``[5, 9]`` means levels 5 and 9, not the range).
        num_layers: L.
    Raises:
        ValueError: a level outside ``1..L``, a duplicate, a non-integer (bools too), or an
            empty list (unless ``allow_empty``, used by code mixing where ``[]`` = no change).
            Invalid levels are never dropped silently.
    """
    valid = f"levels are ints in 1..{num_layers} (1 = finest, {num_layers} = most abstract)"
    if levels is None:
        return list(range(1, num_layers + 1))
    if isinstance(levels, (str, bytes)):
        raise ValueError(f"{valid}; got the string {levels!r}")
    if isinstance(levels, torch.Tensor):
        seq = levels.tolist() if levels.ndim else [levels.item()]
    elif isinstance(levels, Iterable):
        seq = list(levels)
    else:
        seq = [levels]
    if not seq and not allow_empty:
        raise ValueError(f"empty list of levels; {valid}, or None for all")
    out = []
    for lv in seq:
        if isinstance(lv, (bool, np.bool_)):
            raise ValueError(f"{valid}; got the bool {lv!r}")
        try:
            v = operator.index(lv)
        except TypeError:
            raise ValueError(f"{valid}; got {lv!r} ({type(lv).__name__})") from None
        if not 1 <= v <= num_layers:
            raise ValueError(f"level {v} is out of range: {valid}")
        if v in out:
            raise ValueError(f"level {v} is given twice in {seq}; {valid}")
        out.append(v)
    return out


def check_packed(codes, name: str, num_layers: int | None = None) -> torch.Tensor:
    """``codes`` must be packed GH-Feat codes ``[N, L, D]`` (float; ``L = num_layers`` when given)."""
    if not isinstance(codes, torch.Tensor) or codes.ndim != 3 or not codes.is_floating_point():
        got = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
        raise ValueError(f"{name} must be packed GH-Feat codes [N, L, 2*C_max] (float), got {got}")
    if num_layers is not None and codes.shape[1] != num_layers:
        raise ValueError(f"{name} has {codes.shape[1]} layers, expected {num_layers}")
    return codes


def mix_codes(content: torch.Tensor, style: torch.Tensor, levels, num_layers: int | None = None) -> torch.Tensor:
    """Style mixing on codes: ``content`` with the rows of ``levels`` taken from ``style``.

    Args:
        content: ``[N, L, D]`` packed codes.
        style: ``[N, L, D]`` or ``[1, L, D]`` (broadcast over N).
        levels: paper levels (None = all, ``[]`` = none); level ``k`` replaces row ``L - k``.
    Returns:
        a new ``[N, L, D]`` tensor (inputs are not modified).
    """
    check_packed(content, "content", num_layers)
    check_packed(style, "style", content.shape[1])
    if style.shape[2] != content.shape[2] or style.shape[0] not in (1, content.shape[0]):
        raise ValueError(f"style codes {tuple(style.shape)} do not match content codes {tuple(content.shape)} "
                         "(style batch must be N or 1)")
    L = content.shape[1]
    rows = [L - k for k in parse_levels(levels, L, allow_empty=True)]
    out = content.clone()
    out[:, rows] = style[:, rows].to(out.dtype).expand(content.shape[0], -1, -1)
    return out
