"""Label-free quality signals for any image folder: no classifier, no labels, no download.

For one's own data there is no MNIST classifier to read the samples. What is left, and what the
trainer logs with ``eval_every`` for any data (:meth:`ghfeat.train.Trainer.evaluate`):

* **random-feature Frechet distance** (``rfd``): the Frechet distance between the Gaussians of
  real and generated images in the features of a *fixed, randomly initialised* CNN
  (:class:`RandomFeatures`: three 3x3 conv stages, 32-64-128 channels, LeakyReLU, average
  pooling; features = the per-channel mean and standard deviation of each stage, 448-d,
  standardised by the real images' spread). Random
  convolutional features are a known label-free embedding for sample-quality statistics (Naeem et
  al., "Reliable Fidelity and Diversity Metrics for Generative Models", ICML 2020): they see
  local texture and contrast statistics and the spread of the set, so a collapsed generator (one
  image, or a few) and blurry or noisy samples score far above the real-data floor. They are not
  a semantic judge: compare a run with its own earlier evaluations and with the floor
  (:func:`random_fd_floor`: two disjoint sets of real images), not across data sets.
  The weights come from a fixed seed, so the figure is the same on every machine and needs no file.
* **nearest-neighbour spread** (``spread``, :func:`nn_spread`): how far each sample is from its
  closest sibling, relative to real images; it falls towards 0 when the generator repeats itself.
* **reconstruction MSE** of a held-out slice (the encoder task; :mod:`.quality`).
* sample grids (the trainer's ``image_every``).

    from ghfeat.eval.labelfree import random_fd
    rfd = random_fd(samples, real_images)          # [N, C, H, W] in [-1, 1] each
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .stats import frechet_distance, gaussian_stats

SEED = 20210601          # fixed: the weights of the judge are part of the metric's definition
WIDTHS = (32, 64, 128)


class RandomFeatures(nn.Module):
    """A fixed random CNN embedding images ``[N, C, H, W]`` in [-1, 1] (any C, H, W >= 8) into
    ``[N, 2 * (32 + 64 + 128)] = [N, 448]``: for each of three stages (3x3 conv with weights
    ``N(0, 1/fan_in)`` from a fixed seed, LeakyReLU 0.2, 2x2 average pooling), the per-channel
    spatial mean and standard deviation. No training, no parameters to load."""

    def __init__(self, in_channels: int = 1, seed: int = SEED):
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels!r}")
        g = torch.Generator().manual_seed(seed)
        self.in_channels = in_channels
        weights, c = [], in_channels
        for width in WIDTHS:
            weights.append(torch.randn(width, c, 3, 3, generator=g) / (9 * c) ** 0.5)
            c = width
        for i, w in enumerate(weights):
            self.register_buffer(f"w{i}", w)

    @property
    def dim(self) -> int:
        return 2 * sum(WIDTHS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels or min(x.shape[2:]) < 8:
            raise ValueError(f"RandomFeatures({self.in_channels} channels) takes [N, {self.in_channels}, H, W] "
                             f"images with H, W >= 8, got {tuple(x.shape)}")
        feats = []
        for i in range(len(WIDTHS)):
            x = F.avg_pool2d(F.leaky_relu(F.conv2d(x, getattr(self, f"w{i}"), padding=1), 0.2), 2)
            feats += [x.mean((2, 3)), x.std((2, 3))]
        return torch.cat(feats, 1)


@torch.inference_mode()
def random_features(images: torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """``[N, 448]`` float64 features of ``images [N, C, H, W]`` in [-1, 1] (values outside are
    clamped, as a saved image would be)."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images must be a [N, C, H, W] tensor, got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    if images.shape[0] < 2:
        raise ValueError(f"a Frechet distance needs at least 2 images, got {images.shape[0]}")
    net = RandomFeatures(images.shape[1]).to(images.device)
    out = [net(images[i:i + batch_size].float().clamp(-1, 1)).double().cpu()
           for i in range(0, images.shape[0], batch_size)]
    return torch.cat(out).numpy()


def random_fd(images: torch.Tensor, reference: torch.Tensor | tuple[np.ndarray, np.ndarray]) -> float:
    """Frechet distance between ``images`` and ``reference`` (real images ``[M, C, H, W]``, or their
    ``(mu, cov)`` from :func:`random_stats`) in :class:`RandomFeatures` space, each feature
    standardised by the reference's standard deviation (so that every feature counts, not the few
    with the largest scale: measured on Fashion-MNIST, this is what makes a generator that repeats
    10 images score 2.3x the floor instead of 3x a floor that is 0.1)."""
    mu_r, cov_r = reference if isinstance(reference, tuple) else random_stats(reference)
    mu, cov = random_stats(images)
    s = 1.0 / np.sqrt(np.clip(np.diag(cov_r), 1e-12, None))
    return frechet_distance(mu * s, cov * np.outer(s, s), mu_r * s, cov_r * np.outer(s, s))


def random_stats(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """``(mu [448], cov [448, 448])`` of the random features of ``images``."""
    return gaussian_stats(random_features(images))


@torch.inference_mode()
def nn_spread(images: torch.Tensor, real: torch.Tensor, max_n: int = 2000) -> float:
    """Diversity of a set, against real images: the median distance from each image to its nearest
    *other* image of the same set (pixels), divided by the same median of as many real images.
    About 1 for a generator as varied as the data; near 0 for one that repeats itself (mode
    collapse), which a Frechet distance of 2,000 samples barely sees when the repeats are many
    (measured: 100 images each repeated 20 times score at the FD floor)."""
    n = min(max_n, images.shape[0], real.shape[0])
    if n < 2:
        raise ValueError(f"nn_spread needs at least 2 images in each set, got {images.shape[0]} and {real.shape[0]}")

    def median_nn(x):
        x = x[:n].float().clamp(-1, 1).flatten(1)
        d = torch.cdist(x, x)
        d.fill_diagonal_(float("inf"))
        return float(d.min(1).values.double().quantile(0.5))      # the usual median (mean of the middle two)

    return median_nn(images) / max(median_nn(real), 1e-12)


def random_fd_floor(real: torch.Tensor) -> float:
    """The random-feature FD between the two halves of a set of real images: what a perfect
    generator scores with that many samples (the finite-sample floor)."""
    n = real.shape[0] // 2
    return random_fd(real[:n], real[n:2 * n])
