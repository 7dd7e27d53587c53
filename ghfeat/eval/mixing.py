"""Does the hierarchy survive encoding? Style mixing of real test digits in GH-Feat code space,
next to the generator's own w-space mixing (its ceiling). The protocol is the one measured for
issue 16 (28% / 28% for the shipped v1 encoder, 85% for its generator's w-space mixing)."""
from __future__ import annotations

import numpy as np
import torch

from .classifier import MNISTClassifier, classify, load_classifier
from .quality import check_count, dataset_images, dataset_labels

# split name -> (levels taken from B, the source whose class the mixed image should show)
MIXING_SPLITS = {"5-8": ((5, 6, 7, 8), "B"), "1-4": ((1, 2, 3, 4), "A"), "7-8": ((7, 8), "B")}


def _pairs(labels: np.ndarray, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs`` index pairs ``(a, b)`` whose labels differ (seeded, without the global RNG)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, len(labels), 4 * n_pairs)
    b = rng.integers(0, len(labels), 4 * n_pairs)
    keep = labels[a] != labels[b]
    a, b = a[keep][:n_pairs], b[keep][:n_pairs]
    if len(a) < n_pairs:
        raise ValueError(f"could not draw {n_pairs} pairs of different classes from {len(labels)} images")
    return a, b


def _mix_table(decode_mixed, label_a: np.ndarray, label_b: np.ndarray, clf) -> dict:
    """For each split: the fraction of mixed images read as the expected source's class, as A, as
    B, and the mean confidence. ``decode_mixed(levels)`` -> images ``[P, C, 32, 32]``."""
    out = {}
    for name, (levels, expect) in MIXING_SPLITS.items():
        _, pred, conf = classify(clf, decode_mixed(levels).clamp(-1, 1))
        as_a, as_b = float((pred == label_a).mean()), float((pred == label_b).mean())
        out[name] = {"levels_from_B": list(levels), "expected": expect,
                     "expected_rate": as_b if expect == "B" else as_a,
                     "reads_as_A": as_a, "reads_as_B": as_b, "confidence": float(conf.mean())}
    return out


@torch.inference_mode()
def style_mixing_quality(encoder, generator, data: str, n_pairs: int = 2000, seed: int = 0,
                         clf: MNISTClassifier | None = None, w_space: bool = True,
                         test_codes: torch.Tensor | None = None) -> dict:
    """Style mixing of real test digits in GH-Feat code space.

    ``n_pairs`` pairs ``(A, B)`` of test digits with different labels; codes ``E(A)``, ``E(B)``;
    for each split of :data:`MIXING_SPLITS` the levels listed come from B, the rest from A, and the
    generator decodes. Expected: B's coarse levels (``5-8``, ``7-8``) carry B's class; B's fine
    levels (``1-4``) keep A's. Returned per split: ``expected_rate`` (fraction read by the
    classifier as the expected class), ``reads_as_A``, ``reads_as_B``, ``confidence``; plus
    ``real_confidence`` (the classifier on the real digits) as the yardstick.

    With ``w_space`` the same is measured for the generator alone (its ceiling): pairs of samples
    of G (classes judged by the classifier, different), the levels of B taken from B's ``w``.

    ``test_codes``: packed codes of the whole test split when already computed (the same numbers
    as encoding the pairs' digits here, up to float rounding: on several CPU threads the encoder's
    rounding depends on the batch it sees, so mean confidences can differ in the 7th digit).
    """
    from .._codes import mix_codes
    from ..api import decode, encode
    n_pairs = check_count(n_pairs, "--pairs", 1)
    clf = clf or load_classifier()
    x = dataset_images(data, "test")
    labels = dataset_labels(data, "test")
    a, b = _pairs(labels, n_pairs, seed)
    idx = np.unique(np.concatenate([a, b]))
    if test_codes is not None:
        if len(test_codes) != len(x):
            raise ValueError(f"test_codes holds {len(test_codes)} codes for {len(x)} test digits")
        ca, cb = test_codes[a], test_codes[b]
    else:
        pos = {int(i): k for k, i in enumerate(idx)}
        codes = encode(x[idx], encoder=encoder, batch_size=250, progress=False)
        ca, cb = codes[[pos[int(i)] for i in a]], codes[[pos[int(i)] for i in b]]
    real_conf = float(classify(clf, x[idx])[2].mean())
    res = {"n_pairs": int(n_pairs), "real_confidence": real_conf,
           "encoded": _mix_table(lambda lv: decode(mix_codes(ca, cb, list(lv)), generator, batch_size=250),
                                 labels[a], labels[b], clf)}
    if w_space:
        res.update(w_space_mixing(generator, n_pairs, seed=seed, clf=clf))
    return res


@torch.inference_mode()
def w_space_mixing(generator, n_pairs: int = 2000, seed: int = 0, clf: MNISTClassifier | None = None) -> dict:
    """The generator's own style mixing, no encoder involved: ``4 * n_pairs`` samples of G
    (``psi = 1``), classes by the classifier; ``n_pairs`` pairs of different predicted classes;
    for each split of :data:`MIXING_SPLITS` the layers of B's levels take B's ``w``, the rest A's.
    Returns ``{"n_pairs", "w_space": {split: table}, "sample_confidence": mean confidence on the samples}``:
    how hierarchical G is, the ceiling of any encoder's y-space mixing (``seed + 1`` draws the
    latents, ``seed + 2`` the pairs, as in :func:`style_mixing_quality`)."""
    from .._codes import level_to_layer
    n_pairs = check_count(n_pairs, "--pairs", 1)
    clf = clf or load_classifier()
    G = generator
    was = G.training
    G.eval()
    try:
        g = torch.Generator().manual_seed(seed + 1)
        dev = next(G.parameters()).device
        z = torch.randn(4 * n_pairs, G.z_dim, generator=g).to(dev)
        w = torch.cat([G.mapping(z[i:i + 500]) for i in range(0, len(z), 500)])
        imgs = torch.cat([G.generate(w=w[i:i + 500]) for i in range(0, len(w), 500)]).float().cpu()
        _, pred, conf = classify(clf, imgs.clamp(-1, 1))
        ga, gb = _pairs(pred, n_pairs, seed + 2)
        L = G.num_layers

        def mixed_w(levels):
            w_plus = w[ga].unsqueeze(1).repeat(1, L, 1)
            rows = [level_to_layer(k, L) for k in levels]
            w_plus[:, rows] = w[gb].unsqueeze(1)
            return torch.cat([G.generate(w_plus=w_plus[i:i + 500]) for i in range(0, n_pairs, 500)]).float().cpu()

        return {"n_pairs": n_pairs, "w_space": _mix_table(mixed_w, pred[ga], pred[gb], clf),
                "sample_confidence": float(conf.mean())}
    finally:
        G.train(was)
