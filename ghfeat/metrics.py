"""Sample quality of an MNIST-like generator, judged by a small MNIST classifier.

A GAN is judged by its samples, never by its losses. For ``n`` generated images this computes,
with the shipped classifier (:class:`MNISTClassifier`, > 99% test top-1; weights in
``ghfeat/assets/mnist_classifier.safetensors``, trained by ``ghfeat eval train-classifier``):

* ``fd``: the Frechet distance between Gaussians fitted to the classifier's penultimate features
  (128-d) of the samples and of the MNIST test set (the FID recipe with an MNIST network);
* ``class_entropy``: entropy of the histogram of predicted classes, in nats (``ln 10 = 2.303`` is
  uniform; a collapsed generator goes towards 0);
* ``confidence``: mean top-class probability (blobs that look like no digit score low).

    from ghfeat.metrics import generator_quality
    print(generator_quality(G, "mnist:../shared/data/mnist", n=10_000))

The figures for real data (test set against the train set) are the floor to compare with.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ASSET = Path(__file__).parent / "assets" / "mnist_classifier.safetensors"
FEATURE_DIM = 128


class MNISTClassifier(nn.Module):
    """Small CNN for ``[N, 1, 32, 32]`` images in ``[-1, 1]`` (MNIST padded to 32, background -1).

    conv3x3(32) - pool - conv3x3(64) - pool - conv3x3(128) - pool - fc(128) - fc(10); ReLU.
    :meth:`features` returns the 128-d penultimate activations ``[N, 128]``; ``forward`` logits
    ``[N, 10]``. RGB inputs ``[N, 3, 32, 32]`` are reduced to luminance.
    """

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(1, 32, 3, padding=1), nn.Conv2d(32, 64, 3, padding=1),
                                    nn.Conv2d(64, 128, 3, padding=1)])
        self.fc = nn.Linear(128 * 4 * 4, FEATURE_DIM)
        self.head = nn.Linear(FEATURE_DIM, 10)
        self.dropout = nn.Dropout(0.3)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3) or x.shape[2:] != (32, 32):
            raise ValueError(f"MNISTClassifier takes [N, 1 or 3, 32, 32] images in [-1, 1], got {tuple(x.shape)}")
        if x.shape[1] == 3:
            x = to_luminance(x)
        for conv in self.convs:
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return F.relu(self.fc(self.dropout(x.flatten(1))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


def to_luminance(x: torch.Tensor) -> torch.Tensor:
    """``[N, 3, H, W]`` RGB -> ``[N, 1, H, W]`` (ITU-R BT.601 luma weights, as PIL's ``L``)."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def load_classifier(path: str | os.PathLike | None = None) -> MNISTClassifier:
    """The shipped classifier (or one saved by :func:`train_classifier`), in eval mode."""
    from ._io import load_state_dict_strict, read_safetensors
    path = Path(path) if path is not None else ASSET
    if not path.is_file():
        raise FileNotFoundError(f"classifier weights {path} not found; train them with "
                                "`ghfeat eval train-classifier --data mnist:<root> --out <file>`")
    model = MNISTClassifier()
    load_state_dict_strict(model, read_safetensors(path), str(path))
    return model.eval()


# ------------------------------------------------------------------------------------------------
# statistics
# ------------------------------------------------------------------------------------------------

def gaussian_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` (float64) of features ``[N, D]``."""
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"need features [N >= 2, D], got shape {feats.shape}")
    return feats.mean(0), np.cov(feats, rowvar=False)


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """``|mu1 - mu2|^2 + tr(C1) + tr(C2) - 2 tr((C1^1/2 C2 C1^1/2)^1/2)`` for symmetric PSD
    covariances (computed with two symmetric eigendecompositions, float64)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    vals, vecs = np.linalg.eigh(cov1)
    root1 = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    inner = np.linalg.eigvalsh(root1 @ cov2 @ root1)
    tr_cross = np.sqrt(np.clip(inner, 0, None)).sum()
    return float(np.square(mu1 - mu2).sum() + np.trace(cov1) + np.trace(cov2) - 2.0 * tr_cross)


def class_entropy(pred: np.ndarray, num_classes: int = 10) -> float:
    """Entropy (nats) of the histogram of predicted labels ``[N]``; ``ln(num_classes)`` if uniform."""
    p = np.bincount(np.asarray(pred, np.int64), minlength=num_classes) / max(len(pred), 1)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


@torch.no_grad()
def classify(clf: MNISTClassifier, images: torch.Tensor, batch_size: int = 500):
    """Features ``[N, 128]`` (float64 numpy), predictions ``[N]`` and top probabilities ``[N]``."""
    feats, preds, confs = [], [], []
    dev = next(clf.parameters()).device
    for i in range(0, images.shape[0], batch_size):
        x = images[i:i + batch_size].to(dev, torch.float32)
        f = clf.features(x)
        p = clf.head(f).softmax(1)
        c, k = p.max(1)
        feats.append(f.double().cpu())
        preds.append(k.cpu())
        confs.append(c.cpu())
    return torch.cat(feats).numpy(), torch.cat(preds).numpy(), torch.cat(confs).numpy()


def quality(images: torch.Tensor, reference: tuple[np.ndarray, np.ndarray],
            clf: MNISTClassifier | None = None) -> dict[str, float]:
    """``{"fd", "class_entropy", "confidence", "n"}`` of ``images [N, 1|3, 32, 32]`` in [-1, 1]
    against ``reference = (mu, cov)`` of real features (:func:`reference_stats`)."""
    clf = clf or load_classifier()
    feats, pred, conf = classify(clf, images.clamp(-1, 1))
    mu, cov = gaussian_stats(feats)
    return {"fd": frechet_distance(mu, cov, *reference), "class_entropy": class_entropy(pred),
            "confidence": float(conf.mean()), "n": int(images.shape[0])}


def _dataset_images(spec: str, split: str, n: int | None = None) -> torch.Tensor:
    from .data import make_dataset, images_of
    ds = make_dataset(spec, 32, split=split)
    imgs = ds.images if hasattr(ds, "images") else None
    if imgs is not None and imgs.dtype == torch.uint8:       # IDX: [N, 32, 32] uint8, fast path
        x = imgs[:n].float().div(127.5).sub(1).unsqueeze(1)
    else:
        m = len(ds) if n is None else min(n, len(ds))
        x = torch.stack([images_of(ds[i]) for i in range(m)])
    return x


_REF_CACHE: dict = {}


def reference_stats(data: str, split: str = "test", clf: MNISTClassifier | None = None):
    """``(mu, cov)`` of the classifier features of a real split (cached per process)."""
    key = (data, split, id(clf))
    if key not in _REF_CACHE:
        feats, _, _ = classify(clf or load_classifier(), _dataset_images(data, split))
        _REF_CACHE[key] = gaussian_stats(feats)
    return _REF_CACHE[key]


@torch.no_grad()
def generate(G, n: int, seed: int = 0, batch_size: int = 250, truncation_psi: float | None = None,
             progress: bool = False, randomize_noise: bool = False) -> torch.Tensor:
    """``n`` samples ``[n, C, R, R]`` of a generator (eval mode, its stored noise and no truncation
    by default: the setting GH-Feat decodes with)."""
    was = G.training
    G.eval()
    g = torch.Generator().manual_seed(seed)
    out = []
    it = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc="sampling", unit="batch")
    dev = next(G.parameters()).device
    for i in it:
        z = torch.randn(min(batch_size, n - i), G.z_dim, generator=g).to(dev)
        out.append(G(z, truncation_psi=truncation_psi, randomize_noise=randomize_noise).float().cpu())
    G.train(was)
    return torch.cat(out)


def generator_quality(G, data: str, n: int = 10_000, seed: int = 0, truncation_psi: float | None = None,
                      clf: MNISTClassifier | None = None, progress: bool = False) -> dict[str, float]:
    """Sample quality of ``G`` against the test split of ``data`` (``"mnist:<root>"``)."""
    clf = clf or load_classifier()
    imgs = generate(G, n, seed=seed, truncation_psi=truncation_psi, progress=progress)
    return quality(imgs, reference_stats(data, "test", clf), clf)


def real_floor(data: str, n: int = 10_000, clf: MNISTClassifier | None = None) -> dict[str, float]:
    """The same figures for ``n`` real training images against the test set: the floor."""
    clf = clf or load_classifier()
    return quality(_dataset_images(data, "train", n), reference_stats(data, "test", clf), clf)


@torch.no_grad()
def reconstruction_quality(encoder, generator, data: str, n: int | None = 10_000, split: str = "test",
                           batch_size: int = 250, clf: MNISTClassifier | None = None,
                           progress: bool = False) -> dict[str, float]:
    """How well ``G.synthesis(E(x))`` reconstructs ``n`` real digits of ``split`` (the GH-Feat
    objective, measured): ``mse`` per pixel in [-1, 1] units (clamped reconstructions),
    ``class_agreement`` (the classifier gives the reconstruction the input's class), ``fd`` of the
    reconstructions against the test set, and ``mse_mean_image``, the MSE of always answering the
    mean digit (what a model that ignored its input would score)."""
    from .api import reconstruct
    clf = clf or load_classifier()
    x = _dataset_images(data, split, n)
    rec = reconstruct(x, encoder=encoder, generator=generator, batch_size=batch_size,
                      progress=progress)[:, :1].clamp(-1, 1)
    _, pred_x, _ = classify(clf, x)
    feats, pred_r, _ = classify(clf, rec)
    mu, cov = gaussian_stats(feats)
    return {"mse": float((rec - x).square().mean()),
            "mse_mean_image": float((x - x.mean(0, keepdim=True)).square().mean()),
            "class_agreement": float((pred_x == pred_r).mean()),
            "fd": frechet_distance(mu, cov, *reference_stats(data, "test", clf)), "n": int(x.shape[0])}


MIXING_SPLITS = {"5-8": ((5, 6, 7, 8), "B"), "1-4": ((1, 2, 3, 4), "A"), "7-8": ((7, 8), "B")}


def _dataset_labels(spec: str, split: str, n: int | None = None) -> np.ndarray:
    from .data import make_dataset
    ds = make_dataset(spec, 32, split=split, labels=True)
    labels = getattr(ds, "labels", None)
    if labels is None:
        raise ValueError(f"{spec} has no labels; the style-mixing figures need a labelled data set (mnist:DIR)")
    return labels[:n].numpy()


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


@torch.no_grad()
def style_mixing_quality(encoder, generator, data: str, n_pairs: int = 2000, seed: int = 0,
                         clf: MNISTClassifier | None = None, w_space: bool = True) -> dict:
    """Does the hierarchy survive encoding? Style mixing of real test digits in GH-Feat code space.

    ``n_pairs`` pairs ``(A, B)`` of test digits with different labels; codes ``E(A)``, ``E(B)``;
    for each split of :data:`MIXING_SPLITS` the levels listed come from B, the rest from A, and the
    generator decodes. Expected: B's coarse levels (``5-8``, ``7-8``) carry B's class; B's fine
    levels (``1-4``) keep A's. Returned per split: ``expected_rate`` (fraction read by the
    classifier as the expected class), ``reads_as_A``, ``reads_as_B``, ``confidence``; plus
    ``real_confidence`` (the classifier on the real digits) as the yardstick.

    With ``w_space`` the same is measured for the generator alone (its ceiling): pairs of samples
    of G (classes judged by the classifier, different), the levels of B taken from B's ``w``.
    """
    from ._codes import level_to_layer
    from .api import decode, encode
    clf = clf or load_classifier()
    x = _dataset_images(data, "test")
    labels = _dataset_labels(data, "test")
    a, b = _pairs(labels, n_pairs, seed)
    idx = np.unique(np.concatenate([a, b]))
    pos = {int(i): k for k, i in enumerate(idx)}
    codes = encode(x[idx], encoder=encoder, batch_size=250, progress=False)
    ca, cb = codes[[pos[int(i)] for i in a]], codes[[pos[int(i)] for i in b]]
    from ._codes import mix_codes
    real_conf = float(classify(clf, x[idx])[2].mean())
    res = {"n_pairs": int(n_pairs), "real_confidence": real_conf,
           "encoded": _mix_table(lambda lv: decode(mix_codes(ca, cb, list(lv)), generator, batch_size=250),
                                 labels[a], labels[b], clf)}
    if w_space:
        G = generator
        was = G.training
        G.eval()
        g = torch.Generator().manual_seed(seed + 1)
        dev = next(G.parameters()).device
        z = torch.randn(4 * n_pairs, G.z_dim, generator=g).to(dev)
        w = torch.cat([G.mapping(z[i:i + 500]) for i in range(0, len(z), 500)])
        imgs = torch.cat([G.generate(w=w[i:i + 500]) for i in range(0, len(w), 500)]).float().cpu()
        _, pred, _ = classify(clf, imgs.clamp(-1, 1))
        ga, gb = _pairs(pred, n_pairs, seed + 2)
        L = G.num_layers

        def mixed_w(levels):
            w_plus = w[ga].unsqueeze(1).repeat(1, L, 1)
            rows = [level_to_layer(k, L) for k in levels]
            w_plus[:, rows] = w[gb].unsqueeze(1)
            return torch.cat([G.generate(w_plus=w_plus[i:i + 500]) for i in range(0, n_pairs, 500)]).float().cpu()

        res["w_space"] = _mix_table(mixed_w, pred[ga], pred[gb], clf)
        res["sample_confidence"] = float(classify(clf, imgs.clamp(-1, 1))[2].mean())
        G.train(was)
    return res


@torch.no_grad()
def mean_image_gap(images: torch.Tensor, data: str) -> dict:
    """Where samples differ from the data on average: ``|mean(samples) - mean(test images)|`` per
    pixel (the place of a systematic artefact such as a blotch in a corner). Returns the largest gap,
    its ``(row, col)``, and the mean gap, all in [-1, 1] pixel units."""
    real = _dataset_images(data, "test")
    fake = images.float().clamp(-1, 1)
    gap = (fake.mean(0) - real.mean(0)).abs().mean(0)             # [H, W]
    k = int(gap.argmax())
    return {"max_gap": float(gap.max()), "at": (k // gap.shape[1], k % gap.shape[1]), "mean_gap": float(gap.mean())}


@torch.no_grad()
def batch_statistic_check(D, data: str, n: int = 32, seed: int = 0) -> dict:
    """Does ``D`` use its minibatch-stddev statistic? Mean score of a diverse batch of ``n`` real
    test images vs a batch of one real image repeated ``n`` times (zero batch variance). A D that
    uses the statistic scores the repeated batch clearly lower."""
    real = _dataset_images(data, "test")
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


# ------------------------------------------------------------------------------------------------
# training the classifier (once; its weights ship in the package)
# ------------------------------------------------------------------------------------------------

def train_classifier(data: str, epochs: int = 3, batch_size: int = 128, lr: float = 2e-3, seed: int = 0,
                     progress: bool = True) -> tuple[MNISTClassifier, float]:
    """Train :class:`MNISTClassifier` on the train split of ``data``; returns it and test top-1.

    Augmentation: random shifts of up to 2 pixels (so slightly off-centre samples are still read).
    """
    from .data import make_dataset
    torch.manual_seed(seed)
    train = make_dataset(data, 32, split="train", labels=True)
    test = make_dataset(data, 32, split="test", labels=True)
    x_train = train.images.float().div(127.5).sub(1).unsqueeze(1)
    y_train = train.labels
    model = MNISTClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * (len(x_train) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, desc="classifier", unit="step")
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x_train), generator=g)
        for i in range(len(x_train) // batch_size):
            idx = perm[i * batch_size:(i + 1) * batch_size]
            x = x_train[idx]
            dx, dy = torch.randint(-2, 3, (2,), generator=g).tolist()
            x = torch.roll(x, (dy, dx), (2, 3))
            loss = F.cross_entropy(model(x), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
    if bar is not None:
        bar.close()
    model.eval()
    x_test = test.images.float().div(127.5).sub(1).unsqueeze(1)
    with torch.no_grad():
        pred = torch.cat([model(x_test[i:i + 1000]).argmax(1) for i in range(0, len(x_test), 1000)])
    acc = float((pred == test.labels).float().mean())
    return model, acc


def save_classifier(model: MNISTClassifier, path: str | os.PathLike) -> Path:
    from safetensors.torch import save_file
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------------------------
# command line: ghfeat eval ...
# ------------------------------------------------------------------------------------------------

_CKPT_KEYS = {"generator": ("G_ema", "G"), "discriminator": ("D",), "encoder": ("E",)}


def load_network(spec: str, kind: str = "generator"):
    """A network in eval mode from a saved folder, a trainer checkpoint ``ckpt-*.pt`` (a generator
    run's ``G_ema``, its ``D``, an encoder run's ``E``) or a registry name (pretrained weights)."""
    path = Path(spec).expanduser()
    if path.is_dir() or path.suffix in (".pt", ".pth"):
        from .train.package import _load
        return _load(str(path), _CKPT_KEYS[kind]).eval()
    if path.exists():
        raise ValueError(f"cannot load the {kind} from {path}: give a saved folder, a ckpt-*.pt or a model name")
    from ._registry import create_discriminator, create_encoder, create_generator
    create = {"generator": create_generator, "discriminator": create_discriminator, "encoder": create_encoder}[kind]
    return create(spec, pretrained=True).eval()


def load_generator(spec: str):
    """:func:`load_network` for a generator."""
    return load_network(spec, "generator")


def eval_main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import sys

    ap = argparse.ArgumentParser(prog="ghfeat eval", description="Sample quality of an MNIST generator "
                                 "(classifier Frechet distance, class entropy, confidence) and "
                                 "reconstruction quality of an encoder.")
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("generator", help="score a generator against the MNIST test set")
    p.add_argument("generator", help="saved folder, trainer checkpoint ckpt-*.pt, or model name")
    p.add_argument("--data", required=True, help="mnist:<root> (the reference is its test split)")
    p.add_argument("-n", type=int, default=10_000, help="number of samples (10,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truncation-psi", type=float, default=None, help="default: none (psi = 1)")
    p.add_argument("--floor", action="store_true", help="also print real train images vs the test set")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--diagnose", action="store_true",
                   help="also: where samples differ from the data on average (artefact location)")
    p.add_argument("--discriminator", help="also check whether this D (folder, checkpoint or model name) uses its "
                   "minibatch-stddev statistic")
    p = sub.add_parser("encoder", help="reconstruction quality of an encoder + generator on real digits")
    p.add_argument("encoder", help="saved folder, trainer checkpoint ckpt-*.pt, or model name")
    p.add_argument("--generator", help="saved folder, checkpoint or model name (default: the encoder's pair)")
    p.add_argument("--data", required=True, help="mnist:<root>")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("-n", type=int, default=10_000, help="number of real digits (10,000)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p = sub.add_parser("train-classifier", help="train the MNIST classifier the metric uses")
    p.add_argument("--data", required=True, help="mnist:<root>")
    p.add_argument("--out", default=str(ASSET))
    p.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args(argv)
    try:
        if args.what == "train-classifier":
            model, acc = train_classifier(args.data, epochs=args.epochs)
            save_classifier(model, args.out)
            print(f"test top-1 {acc:.4f}; wrote {args.out}")
            return 0
        clf = load_classifier()
        if args.what == "encoder":
            E = load_network(args.encoder, "encoder")
            G = load_generator(args.generator or E.generator_name)
            r = reconstruction_quality(E, G, args.data, n=args.n, split=args.split, clf=clf, progress=True)
            print(json.dumps(r) if args.json else
                  f"{args.split} digits {r['n']}: reconstruction MSE {r['mse']:.4f} (mean-digit baseline "
                  f"{r['mse_mean_image']:.4f}), class agreement {r['class_agreement']:.4f}, FD {r['fd']:.3f}")
            return 0
        G = load_generator(args.generator)
        res = {"generator": generator_quality(G, args.data, n=args.n, seed=args.seed,
                                              truncation_psi=args.truncation_psi, clf=clf, progress=True)}
        if args.floor:
            res["real_floor"] = real_floor(args.data, n=args.n, clf=clf)
        extra = {}
        if args.diagnose:
            extra["mean_image_gap"] = mean_image_gap(generate(G, min(args.n, 5000), seed=args.seed), args.data)
        if args.discriminator:
            extra["discriminator_batch_check"] = batch_statistic_check(load_network(args.discriminator, "discriminator"),
                                                                       args.data)
    except (ValueError, FileNotFoundError) as exc:
        print(f"ghfeat eval: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**res, **extra}))
    else:
        print(f"{'':<12}{'FD':>10}{'entropy':>10}{'confidence':>12}   (entropy of uniform = {math.log(10):.3f})")
        for k, r in res.items():
            print(f"{k:<12}{r['fd']:>10.3f}{r['class_entropy']:>10.3f}{r['confidence']:>12.3f}")
        for k, r in extra.items():
            print(f"{k}: {r}")
    return 0
