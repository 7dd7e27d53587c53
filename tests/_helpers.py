"""Helpers shared by the tests: fake MNIST-style IDX data sets and the one-line CLI error check."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 0x803, 0x801


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    """``arr`` (uint8) as an IDX file: images (``[N, H, W]``, magic 0x803) or labels (``[N]``, 0x801)."""
    if magic is None:
        magic = IDX_IMAGES_MAGIC if arr.ndim == 3 else IDX_LABELS_MAGIC
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def square_digits(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` fake 28x28 digits, labels ``0..9`` in turn: class k is a bright 7x7 square at a position
    of its own on noise in [0, 60), so a linear classifier separates them and a judge can be trained."""
    labels = (np.arange(n) % 10).astype(np.uint8)
    images = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
    for i, k in enumerate(labels):
        r, c = 2 + 8 * (k // 3), 2 + 8 * (k % 3)
        images[i, r:r + 7, c:c + 7] = 255
    return images, labels


def fake_mnist_files(n: int = 64, seed: int = 0, n_test: int | None = None, gz: bool = False) -> dict[str, bytes]:
    """The four files of a fake MNIST under their standard names (``train-images-idx3-ubyte`` ...,
    ``.gz`` and byte-reproducible when ``gz``): ``n`` training and ``n_test`` (default ``n``) test
    digits from :func:`square_digits`."""
    rng = np.random.default_rng(seed)
    files = {}
    for split, count in (("train", n), ("t10k", n if n_test is None else n_test)):
        images, labels = square_digits(rng, count)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            blob = idx_bytes(arr)
            files[f"{split}-{kind}-ubyte" + (".gz" if gz else "")] = gzip.compress(blob, mtime=0) if gz else blob
    return files


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name, blob in files.items():
        (root / name).write_bytes(blob)
    return root


def write_fake_mnist(root: Path, n: int = 64, seed: int = 0, n_test: int | None = None, gz: bool = False) -> Path:
    """:func:`fake_mnist_files` written into ``root`` (made if missing); returns ``root``."""
    return write_files(root, fake_mnist_files(n, seed, n_test, gz))


def one_line_error(capsys, *needles, ignore: str | None = None) -> str:
    """The captured stderr is one line (lines starting with ``ignore`` aside), no traceback, and
    contains every needle; returns it."""
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not (ignore and line.startswith(ignore))]
    assert "Traceback" not in err and len(lines) == 1, err
    for n in needles:
        assert n in err, err
    return err
