"""Small training helpers: grad switches, EMA, image grids, JSONL logs, step timers."""
from __future__ import annotations

import json
import math
import os
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside DDP / ``torch.compile`` wrappers."""
    while True:
        if hasattr(module, "module") and isinstance(module.module, nn.Module):   # DDP
            module = module.module
        elif hasattr(module, "_orig_mod"):                                      # torch.compile
            module = module._orig_mod
        else:
            return module


def requires_grad(module: nn.Module, flag: bool) -> None:
    """Switch ``requires_grad`` of every parameter of ``module``."""
    for p in module.parameters():
        p.requires_grad_(flag)


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """``ema = beta * ema + (1 - beta) * model`` for parameters; buffers are copied.

    ``beta = 0`` copies the model; ``beta = 1`` freezes the EMA. Both modules must have the same
    structure (``model`` may be wrapped in DDP / torch.compile).
    """
    model = unwrap(model)
    for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(ema.buffers(), model.buffers(), strict=True):
        b_ema.copy_(b)


def image_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = -1.0) -> np.ndarray:
    """``[N, C, H, W]`` in [-1, 1] -> ``[H', W', 3]`` uint8 grid (``nrow`` images per row)."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images [N, 1|3, H, W], got shape {tuple(images.shape)}")
    x = images.detach().float().cpu().clamp(-1, 1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    n, _, h, w = x.shape
    nrow = max(1, min(nrow, n))
    rows = math.ceil(n / nrow)
    grid = torch.full((3, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value)
    for i in range(n):
        r, c = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[:, top:top + h, left:left + w] = x[i]
    return ((grid + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def save_image_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int = 8) -> Path:
    """Save ``[N, C, H, W]`` images in [-1, 1] (clamped) as a PNG grid."""
    from PIL import Image

    from .._io import atomic_output

    path = Path(path)
    grid = image_grid(images, nrow)
    with atomic_output(path, what="image grid") as tmp:
        Image.fromarray(grid[..., 0] if images.shape[1] == 1 else grid).save(tmp)    # gray -> "L" PNG
    return path


class JsonlLogger:
    """Append one JSON object per line (flushed at once, so a killed run keeps its log). A line that
    cannot be written whole (disk full) is cut off again, so the log never holds a torn record, and
    the failure is a one-line :class:`ghfeat._io.WriteError`."""

    def __init__(self, path: str | os.PathLike):
        from .._io import refuse_package_path, write_error
        self.path = Path(path)
        refuse_package_path(self.path, "log")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a", encoding="utf-8")
        except OSError as exc:
            raise write_error(exc, self.path, "log") from exc

    def log(self, record: dict) -> None:
        def plain(v):
            if isinstance(v, torch.Tensor):
                return v.item() if v.numel() == 1 else v.tolist()
            if isinstance(v, (np.floating, np.integer)):
                return v.item()
            return v
        line = json.dumps({k: plain(v) for k, v in record.items()}) + "\n"
        start = self._f.tell()
        try:
            self._f.write(line)
            self._f.flush()
        except OSError as exc:
            from .._io import write_error
            for undo in (self._f.close,                             # (closes even if its flush fails)
                         lambda: os.truncate(self.path, start),     # drop the torn line; earlier records stay
                         lambda: setattr(self, "_f", open(self.path, "a", encoding="utf-8"))):
                try:
                    undo()
                except OSError:
                    pass
            raise write_error(exc, self.path, "log") from exc

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Records of a JSONL file (a torn last line from a killed writer is ignored)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class Timer:
    """Accumulates wall time per named section; synchronizes CUDA so GPU work is counted.

        timer = Timer(device)
        with timer("E"): ...
        with timer("D"): ...
        timer.means()   # {"E": seconds per call, "D": ...}; timer.reset()
    """

    def __init__(self, device: torch.device | str | None = None, enabled: bool = True):
        self.cuda = torch.device(device).type == "cuda" if device is not None else False
        self.enabled = enabled
        self.reset()

    def reset(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    @contextmanager
    def __call__(self, name: str):
        if not self.enabled:
            yield
            return
        self._sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.total[name] += time.perf_counter() - t0
            self.count[name] += 1

    def means(self) -> dict[str, float]:
        return {k: self.total[k] / max(self.count[k], 1) for k in self.total}
