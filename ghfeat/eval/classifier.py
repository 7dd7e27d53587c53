"""The judge: a small MNIST classifier (> 99% test top-1) whose weights ship in the package.

Every figure of :mod:`ghfeat.eval` that reads a digit's class (class entropy, confidence, class
agreement, style mixing) or compares image distributions (the Frechet distance of its 128-d
penultimate features) uses it. ``ghfeat eval train-classifier --data mnist:DIR --out FILE`` trains
another one (3 epochs, 2 minutes on a CPU); ``--classifier FILE`` uses it.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PACKAGE_DIR = Path(__file__).resolve().parents[1]
ASSET = PACKAGE_DIR / "assets" / "mnist_classifier.safetensors"
# The judges shipped in the package, by name (``--classifier NAME``); any other value is a file.
SHIPPED = {"mnist": ASSET, "fashion-mnist": PACKAGE_DIR / "assets" / "fashion_classifier.safetensors"}
FEATURE_DIM = 128


def default_classifier(data: str | None) -> str:
    """The shipped judge for a data spec: ``"fashion-mnist"`` for ``fashion-mnist:DIR``, else
    ``"mnist"``. An image folder of other images needs ``--classifier`` (or label-free figures)."""
    return "fashion-mnist" if str(data or "").startswith("fashion-mnist:") else "mnist"


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
    """A shipped classifier by name (``"mnist"``, the default, or ``"fashion-mnist"``) or one saved
    by :func:`save_classifier` (a file), in eval mode."""
    from .._io import load_state_dict_strict, read_safetensors
    if path is None or str(path) in SHIPPED:
        path = SHIPPED[str(path or "mnist")]
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"classifier weights {path} not found; train them with "
                                "`ghfeat eval train-classifier --data mnist:<root> --out <file>`")
    model = MNISTClassifier()
    load_state_dict_strict(model, read_safetensors(path), str(path))
    return model.eval()


@torch.inference_mode()
def classify(clf: MNISTClassifier, images: torch.Tensor, batch_size: int = 500):
    """Features ``[N, 128]`` (float64 numpy), predictions ``[N]`` and top probabilities ``[N]``
    of ``images [N, 1|3, 32, 32]`` in [-1, 1]."""
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
    if not feats:
        raise ValueError("classify() got no images")
    return torch.cat(feats).numpy(), torch.cat(preds).numpy(), torch.cat(confs).numpy()


def _labelled_split(data: str, split: str):
    from .quality import dataset_images, dataset_labels
    return dataset_images(data, split), torch.from_numpy(dataset_labels(data, split))


def train_classifier(data: str | list[str], epochs: int = 3, batch_size: int = 128, lr: float = 2e-3,
                     seed: int = 0, progress: bool = True) -> tuple[MNISTClassifier, float]:
    """Train :class:`MNISTClassifier` on the train split of ``data`` (a labelled spec: ``mnist:DIR``,
    ``fashion-mnist:DIR``, an image folder with class subfolders; or a list of them, trained on
    together, e.g. one data set under two preprocessings); returns it and the test top-1 on the
    first spec (:func:`accuracy` for the others).

    Augmentation: random shifts of up to 2 pixels (so slightly off-centre samples are still read).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"--epochs must be a whole number >= 1, got {epochs!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
    if not (isinstance(lr, (int, float)) and np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    datas = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if not datas:
        raise ValueError("train_classifier needs at least one data set")
    parts = []
    for d in datas:
        try:
            parts.append(_labelled_split(str(d), "train"))
        except ValueError as exc:
            raise ValueError(f"{d}: the classifier needs a labelled data set (mnist:DIR, fashion-mnist:DIR "
                             f"or an image folder with class subfolders): {exc}") from None
    x_train, y_train = torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])
    if len(x_train) < batch_size:
        raise ValueError(f"{data} has {len(x_train)} training images, fewer than one batch of {batch_size}")
    n_classes = int(y_train.max()) + 1
    if n_classes > 10:
        raise ValueError(f"{data} has {n_classes} classes; the classifier has 10 outputs")
    torch.manual_seed(seed)
    model = MNISTClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * (len(x_train) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    from tqdm.auto import tqdm
    bar = tqdm(total=steps, desc="classifier", unit="step", disable=not progress)
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
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    return model, accuracy(model, str(datas[0]))


@torch.inference_mode()
def accuracy(model: MNISTClassifier, data: str, split: str = "test") -> float:
    """Top-1 of ``model`` on a labelled split of ``data``."""
    x, y = _labelled_split(data, split)
    _, pred, _ = classify(model, x, batch_size=1000)
    return float((torch.from_numpy(pred) == y).float().mean())


def check_outside_package(path: str | os.PathLike, what: str = "--out") -> Path:
    """Refuse an output path inside the installed ghfeat package (its files are never written by a
    command: they are what the sha256 pins and the tests check). Returns ``Path(path)``."""
    path = Path(path).expanduser()
    resolved = path.resolve()
    if resolved == PACKAGE_DIR or PACKAGE_DIR in resolved.parents:
        raise ValueError(f"{what} {path} is inside the installed ghfeat package ({PACKAGE_DIR}); package "
                         "files are never overwritten: write to a path of your own, e.g. "
                         "--out mnist_classifier.safetensors, and pass it as --classifier")
    return path


def save_classifier(model: MNISTClassifier, path: str | os.PathLike) -> Path:
    """Write the weights as fp16 safetensors (temporary file, then rename); never into the package."""
    from safetensors.torch import save_file
    path = check_outside_package(path, "classifier path")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file({k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}, str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
