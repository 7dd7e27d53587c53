"""Shared timing helper for the benchmark scripts (run them as ``python benchmarks/NAME.py``)."""
from __future__ import annotations

import time

import torch


def timed(fn, iters: int, device: torch.device, warmup: int = 1) -> float:
    """Mean seconds per call of ``fn`` over ``iters`` calls, after ``warmup`` untimed calls
    (cudnn autotune, allocator); synchronizes CUDA around the timed region."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters
