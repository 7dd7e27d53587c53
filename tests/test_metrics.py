"""Sample-quality metric: Frechet distance, class entropy, the shipped MNIST classifier."""
import math

import numpy as np
import pytest
import torch

from ghfeat.eval import classifier, quality, stats
from ghfeat.cli import _bundled_digits


def test_frechet_distance_diagonal_closed_form():
    # diagonal covariances: FD = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    a, b = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    expected = np.square(mu1 - mu2).sum() + np.square(np.sqrt(a) - np.sqrt(b)).sum()
    assert stats.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_matches_scipy_sqrtm():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    c1, c2 = A @ A.T + 0.1 * np.eye(6), B @ B.T
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    ref = np.square(mu1 - mu2).sum() + np.trace(c1) + np.trace(c2) - 2 * np.trace(linalg.sqrtm(c1 @ c2).real)
    assert stats.frechet_distance(mu1, c1, mu2, c2) == pytest.approx(ref, rel=1e-8)
    assert stats.frechet_distance(mu1, c1, mu1, c1) == pytest.approx(0.0, abs=1e-8)


def test_class_entropy_bounds():
    assert stats.class_entropy(np.arange(1000) % 10) == pytest.approx(math.log(10))
    assert stats.class_entropy(np.full(100, 3)) == 0.0
    assert stats.class_entropy(np.array([0, 1])) == pytest.approx(math.log(2))


def test_gaussian_stats_needs_two_samples():
    with pytest.raises(ValueError, match="N >= 2"):
        stats.gaussian_stats(np.zeros((1, 4)))


def test_shipped_classifier_reads_the_bundled_digits():
    clf = classifier.load_classifier()
    digits = _bundled_digits()                       # [10, 3, 32, 32], classes 0..9
    feats, pred, conf = classifier.classify(clf, digits)
    assert (pred == np.arange(10)).sum() >= 9         # the bundled "3" is an untidy one
    assert np.median(conf) > 0.95
    assert feats.shape == (10, classifier.FEATURE_DIM)
    # grayscale and RGB inputs give the same answer (luminance of a gray RGB image is the gray)
    _, pred1, _ = classifier.classify(clf, digits[:, :1])
    assert pred1.tolist() == pred.tolist()


def test_quality_separates_diverse_from_collapsed():
    clf = classifier.load_classifier()
    digits = _bundled_digits()[:, :1]
    digits = digits[[0, 1, 2, 4, 5, 6, 7, 8, 9, 0]]                 # classes the classifier reads
    x = digits.repeat(20, 1, 1, 1)                                   # 200 images
    x = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    ref = stats.gaussian_stats(classifier.classify(clf, x.clamp(-1, 1))[0])
    diverse = quality.quality(x, ref, clf)
    collapsed = quality.quality(digits[3:4].repeat(200, 1, 1, 1), ref, clf)
    assert diverse["class_entropy"] > 0.95 * math.log(9)
    assert collapsed["class_entropy"] == 0.0
    assert collapsed["fd"] > 10 * diverse["fd"]


def test_classifier_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\[N, 1 or 3, 32, 32\]"):
        classifier.MNISTClassifier()(torch.zeros(2, 1, 28, 28))
