"""Sample quality of a generator and reconstruction quality of an encoder, judged by the shipped
MNIST classifier (:mod:`.classifier`).

For ``n`` generated images :func:`generator_quality` computes

* ``fd``: the Frechet distance between Gaussians fitted to the classifier's penultimate features
  (128-d) of the samples and of the MNIST test set (the FID recipe with an MNIST network);
* ``class_entropy``: entropy of the histogram of predicted classes, in nats (``ln 10 = 2.303`` is
  uniform; a collapsed generator goes towards 0);
* ``class_histogram``: the fraction of samples read as each digit 0..9 (real MNIST: 9-11% each);
* ``confidence``: mean top-class probability (blobs that look like no digit score low).

    from ghfeat.eval import generator_quality
    print(generator_quality(G, "mnist:../shared/data/mnist", n=10_000))

The figures for real data (test set against the train set, :func:`real_floor`) are the floor.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .classifier import MNISTClassifier, classify, load_classifier, to_luminance
from .stats import class_entropy, class_histogram, frechet_distance, gaussian_stats


def check_count(n, what: str = "-n", minimum: int = 2) -> int:
    """``n`` as an int >= ``minimum``, or a clear error."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        why = " (the Frechet distance needs a covariance)" if minimum == 2 else ""
        raise ValueError(f"{what} must be a whole number >= {minimum}{why}, got {n!r}")
    return int(n)


def check_truncation_psi(psi) -> float | None:
    """``None`` (no truncation) or a finite psi in [0, 1]."""
    if psi is None:
        return None
    if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not math.isfinite(psi) or not 0 <= psi <= 1:
        raise ValueError(f"--truncation-psi must be a number in [0, 1] (1 = no truncation), got {psi!r}")
    return float(psi)


def quality(images: torch.Tensor, reference: tuple[np.ndarray, np.ndarray],
            clf: MNISTClassifier | None = None) -> dict:
    """``{"fd", "class_entropy", "class_histogram", "confidence", "n"}`` of ``images
    [N, 1|3, 32, 32]`` in [-1, 1] against ``reference = (mu, cov)`` of real features
    (:func:`reference_stats`)."""
    clf = clf or load_classifier()
    feats, pred, conf = classify(clf, images.clamp(-1, 1))
    mu, cov = gaussian_stats(feats)
    return {"fd": frechet_distance(mu, cov, *reference), "class_entropy": class_entropy(pred),
            "class_histogram": class_histogram(pred), "confidence": float(conf.mean()),
            "n": int(images.shape[0])}


_SPLIT_CACHE: dict = {}


def dataset_split(spec: str, split: str):
    """``(images [N, 1, 32, 32], labels int64 [N] or None)`` of a split of ``spec``: uint8 for
    ``mnist:DIR`` / ``fashion-mnist:DIR`` (read once per process, with their labels, in the files'
    order), float32 in [-1, 1] for image folders (labels from class subfolders, else None).

    An image folder lists its class subfolders one after another, so its images come in a fixed
    shuffled order (seed 0): the first ``n`` of a split, which :func:`real_floor`,
    :func:`reconstruction_quality` and ``--limit`` take, are then a uniform sample and not the
    first classes. (MNIST's files are already in a mixed order and keep it.)"""
    from ..data import images_of, make_dataset
    key = (str(spec), split)
    if key not in _SPLIT_CACHE:
        # IDX files have labels; an image folder has them when it has class subfolders ("auto")
        ds = make_dataset(spec, 32, split=split, labels="auto")
        imgs, labels = getattr(ds, "images", None), getattr(ds, "labels", None)
        if imgs is not None and imgs.dtype == torch.uint8:        # IDX: [N, 32, 32] uint8, fast path
            x = imgs.unsqueeze(1)
        else:
            order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
            x = torch.stack([images_of(ds[int(i)]) for i in order])
            x = to_luminance(x) if x.shape[1] == 3 else x
            labels = None if labels is None else labels[order]
        if len(_SPLIT_CACHE) >= 4:                                 # train + test of two data sets at most
            _SPLIT_CACHE.pop(next(iter(_SPLIT_CACHE)))
        _SPLIT_CACHE[key] = (x, labels)
    return _SPLIT_CACHE[key]


def dataset_images(spec: str, split: str, n: int | None = None) -> torch.Tensor:
    """The first ``n`` images of a split (in :func:`dataset_split`'s order) as ``[n, 1, 32, 32]``
    float32 in [-1, 1]."""
    x, _ = dataset_split(spec, split)
    x = x[:n]
    return x.float().div(127.5).sub(1) if x.dtype == torch.uint8 else x.float()


def dataset_labels(spec: str, split: str, n: int | None = None) -> np.ndarray:
    """The first ``n`` labels of a split ``[n]`` (int64 numpy); a clear error without labels."""
    _, y = dataset_split(spec, split)
    if y is None:
        raise ValueError(f"{spec} has no labels; this figure needs a labelled data set (mnist:DIR)")
    return y[:n].numpy()


_REF_CACHE: dict = {}


def reference_stats(data: str, split: str = "test", clf: MNISTClassifier | None = None):
    """``(mu, cov)`` of the classifier features of a real split (cached per process)."""
    key = (data, split, id(clf))
    if key not in _REF_CACHE:
        feats, _, _ = classify(clf or load_classifier(), dataset_images(data, split))
        _REF_CACHE[key] = gaussian_stats(feats)
    return _REF_CACHE[key]


@torch.inference_mode()
def generate(G, n: int, seed: int = 0, batch_size: int = 250, truncation_psi: float | None = None,
             progress: bool = False, randomize_noise: bool = False) -> torch.Tensor:
    """``n`` samples ``[n, C, R, R]`` of a generator (eval mode, its stored noise and no truncation
    by default: the setting GH-Feat decodes with)."""
    n = check_count(n, "n", 1)
    truncation_psi = check_truncation_psi(truncation_psi)
    was = G.training
    G.eval()
    g = torch.Generator().manual_seed(seed)
    out = []
    from tqdm.auto import tqdm
    dev = next(G.parameters()).device
    for i in tqdm(range(0, n, batch_size), desc="sampling", unit="batch", disable=not progress, leave=False):
        z = torch.randn(min(batch_size, n - i), G.z_dim, generator=g).to(dev)
        out.append(G(z, truncation_psi=truncation_psi, randomize_noise=randomize_noise).float().cpu())
    G.train(was)
    return torch.cat(out)


def generator_quality(G, data: str, n: int = 10_000, seed: int = 0, truncation_psi: float | None = None,
                      clf: MNISTClassifier | None = None, progress: bool = False) -> dict:
    """Sample quality of ``G`` against the test split of ``data`` (``"mnist:<root>"``)."""
    n = check_count(n)
    clf = clf or load_classifier()
    imgs = generate(G, n, seed=seed, truncation_psi=truncation_psi, progress=progress)
    return quality(imgs, reference_stats(data, "test", clf), clf)


def real_floor(data: str, n: int = 10_000, clf: MNISTClassifier | None = None) -> dict:
    """The same figures for ``n`` real training images against the test set: the floor."""
    n = check_count(n)
    clf = clf or load_classifier()
    return quality(dataset_images(data, "train", n), reference_stats(data, "test", clf), clf)


@torch.inference_mode()
def reconstruction_quality(encoder, generator, data: str, n: int | None = 10_000, split: str = "test",
                           batch_size: int = 250, clf: MNISTClassifier | None = None,
                           progress: bool = False, codes: torch.Tensor | None = None) -> dict:
    """How well ``G.synthesis(E(x))`` reconstructs the first ``n`` real digits of ``split`` (the
    GH-Feat objective, measured): ``mse`` per pixel in [-1, 1] units (clamped reconstructions),
    ``class_agreement`` (the classifier gives the reconstruction the input's class), ``fd`` of the
    reconstructions against the test set, and ``mse_mean_image``, the MSE of always answering the
    mean digit (what a model that ignored its input would score).

    ``codes``: the packed codes ``E(x)`` of that split when already computed (:func:`.probe.split_codes`);
    they are decoded instead of encoding again."""
    from ..api import decode, reconstruct
    if n is not None:
        n = check_count(n)
    clf = clf or load_classifier()
    x = dataset_images(data, split, n)
    if codes is not None:
        rec = decode(codes[:len(x)], generator, batch_size=batch_size, progress=progress)
    else:
        rec = reconstruct(x, encoder=encoder, generator=generator, batch_size=batch_size, progress=progress)
    rec = rec[:, :1].clamp(-1, 1)
    _, pred_x, _ = classify(clf, x)
    feats, pred_r, _ = classify(clf, rec)
    mu, cov = gaussian_stats(feats)
    return {"mse": float((rec - x).square().mean()),
            "mse_mean_image": float((x - x.mean(0, keepdim=True)).square().mean()),
            "class_agreement": float((pred_x == pred_r).mean()),
            "fd": frechet_distance(mu, cov, *reference_stats(data, "test", clf)), "n": int(x.shape[0])}


@torch.inference_mode()
def mean_image_gap(images: torch.Tensor, data: str) -> dict:
    """Where samples differ from the data on average: ``|mean(samples) - mean(test images)|`` per
    pixel (the place of a systematic artefact such as a blotch in a corner). Returns the largest gap,
    its ``(row, col)``, and the mean gap, all in [-1, 1] pixel units."""
    real = dataset_images(data, "test")
    fake = images.float().clamp(-1, 1)
    gap = (fake.mean(0) - real.mean(0)).abs().mean(0)             # [H, W]
    k = int(gap.argmax())
    return {"max_gap": float(gap.max()), "at": (k // gap.shape[1], k % gap.shape[1]), "mean_gap": float(gap.mean())}


@torch.inference_mode()
def batch_statistic_check(D, data: str, n: int = 32, seed: int = 0) -> dict:
    """Does ``D`` use its minibatch-stddev statistic? Mean score of a diverse batch of ``n`` real
    test images vs a batch of one real image repeated ``n`` times (zero batch variance). A D that
    uses the statistic scores the repeated batch clearly lower."""
    real = dataset_images(data, "test")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(real), generator=g)[:n]
    dev = next(D.parameters()).device
    x = real[idx].to(dev)
    if D.num_channels == 3:
        x = x.expand(-1, 3, -1, -1)
    was = D.training
    D.eval()
    diverse = float(D(x).mean())
    repeated = float(torch.stack([D(x[i:i + 1].expand(n, -1, -1, -1)).mean() for i in range(min(n, 8))]).mean())
    D.train(was)
    return {"diverse_real": diverse, "repeated_real": repeated}
