"""Statistics of classifier outputs (no models): Frechet distance, class entropy, per-class
histogram. Inputs and outputs are numpy; the float64 linear algebra runs in torch, which keeps to
``torch.set_num_threads`` (a multithreaded BLAS beside a training run on the same cores was
measured 7x slower than one thread)."""
from __future__ import annotations

import numpy as np
import torch


def gaussian_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` (float64) of features ``[N, D]``."""
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"need features [N >= 2, D], got shape {feats.shape}")
    t = torch.from_numpy(feats)
    return feats.mean(0), torch.cov(t.T).numpy()


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """``|mu1 - mu2|^2 + tr(C1) + tr(C2) - 2 tr((C1^1/2 C2 C1^1/2)^1/2)`` for symmetric PSD
    covariances (computed with two symmetric eigendecompositions, float64)."""
    mu1, mu2, cov1, cov2 = (torch.as_tensor(np.asarray(a, np.float64)) for a in (mu1, mu2, cov1, cov2))
    vals, vecs = torch.linalg.eigh(cov1)
    root1 = (vecs * vals.clamp(min=0).sqrt()) @ vecs.T
    inner = torch.linalg.eigvalsh(root1 @ cov2 @ root1)
    tr_cross = inner.clamp(min=0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2.0 * tr_cross)


def class_histogram(pred, num_classes: int = 10) -> list[float]:
    """Fraction of the predictions ``[N]`` (ints in ``0..num_classes-1``) that fall in each class:
    ``[num_classes]`` floats summing to 1. A generator that never draws a digit shows a 0 there."""
    pred = np.asarray(pred)
    if pred.ndim != 1 or len(pred) == 0:
        raise ValueError(f"need a non-empty 1-D array of predicted classes, got shape {pred.shape}")
    if not np.issubdtype(pred.dtype, np.integer) or pred.min() < 0 or pred.max() >= num_classes:
        raise ValueError(f"predicted classes must be integers in 0..{num_classes - 1}")
    return (np.bincount(pred.astype(np.int64), minlength=num_classes) / len(pred)).tolist()


def class_entropy(pred: np.ndarray, num_classes: int = 10) -> float:
    """Entropy (nats) of the histogram of predicted labels ``[N]``; ``ln(num_classes)`` if uniform."""
    p = np.bincount(np.asarray(pred, np.int64), minlength=num_classes) / max(len(pred), 1)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())
