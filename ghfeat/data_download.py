"""Download MNIST and Fashion-MNIST: ``ghfeat download-data mnist|fashion-mnist --out DIR``.

The four standard gzipped IDX files of a data set are fetched with the weights' downloader
(:func:`ghfeat.download.download_file`: ``.part`` files resumed with HTTP ``Range`` requests, renamed
only when complete and matching), each checked against the sha256 pinned below (the standard
files, as ``torchvision`` and the data sets' authors publish them). A file already there with the
right sha256 is kept; one with another is downloaded again. The result is the layout
``data=mnist:DIR`` reads (``DIR/train-images-idx3-ubyte.gz`` ...), or with ``torchvision=True``
torchvision's (``DIR/MNIST/raw/...``, ``DIR/FashionMNIST/raw/...``), which ``data=mnist:DIR`` reads too.

Sources, tried in order until one has the file: ``mirror=`` / ``$GHFEAT_DATA_MIRROR`` (a base URL
holding the files by name), else the data set's public mirrors. Offline (``GHFEAT_OFFLINE=1``) or
without network it fails at once, with one line saying what to do.

    from ghfeat.data_download import download_dataset
    folder = download_dataset("mnist", "data/mnist")       # then make_dataset("mnist:data/mnist", 32)
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

__all__ = ["DATASETS", "CLASS_NAMES", "DataDownloadError", "download_dataset", "export_png", "download_data_main"]

MIRROR_ENV = "GHFEAT_DATA_MIRROR"

# name -> (torchvision folder, public mirrors, {file: sha256 of the .gz}); the sha256 are those of
# the standard files (also listed in the development data README).
DATASETS = {
    "mnist": ("MNIST", ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"), {
        "train-images-idx3-ubyte.gz": "0386cf35741b70eeb785dc2716a105ce85d0cbb7d2c35c4ec3cab59be0a4bd70",
        "train-labels-idx1-ubyte.gz": "c3e8fe2776791e1577867ed86d061564a679c43efef38b1f2887c15a45cd3313",
        "t10k-images-idx3-ubyte.gz": "0146992f0859dd707fd34547ce6b40e0a66245acd607de2b8ab3c5193b26abaa",
        "t10k-labels-idx1-ubyte.gz": "a9525d66d320a360eb21570619ce287e6181dfb1b53e17b86ae8230bb4d42954",
    }),
    "fashion-mnist": ("FashionMNIST", ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",), {
        "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    }),
}
LICENCES = {"mnist": "CC BY-SA 3.0 (Y. LeCun, C. Cortes, C.J.C. Burges)",
            "fashion-mnist": "MIT (Zalando SE)"}


# Folder names of the classes in a PNG export (the label first, so that sorting keeps the label order).
CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": ["0-tshirt-top", "1-trouser", "2-pullover", "3-dress", "4-coat", "5-sandal", "6-shirt",
                      "7-sneaker", "8-bag", "9-ankle-boot"],
}


class DataDownloadError(OSError):
    """A data set could not be downloaded (offline, unreachable, missing or corrupt file)."""


def _target(name: str, out: str | os.PathLike, torchvision: bool) -> Path:
    out = Path(out).expanduser()
    return out / DATASETS[name][0] / "raw" if torchvision else out


def download_dataset(name: str, out: str | os.PathLike, *, mirror: str | None = None,
                     torchvision: bool = False, progress: bool = True) -> Path:
    """Download data set ``name`` (``"mnist"`` or ``"fashion-mnist"``) into ``out``.

    Args:
        out: the folder (created); ``data=mnist:<out>`` then reads it.
        mirror: base URL holding the four files by name (default ``$GHFEAT_DATA_MIRROR``, else the
            public mirrors).
        torchvision: put the files in torchvision's layout, ``<out>/MNIST/raw`` (or
            ``FashionMNIST/raw``), where ``torchvision.datasets.MNIST(out)`` finds them as well.
    Returns:
        the folder holding the files.
    Raises:
        DataDownloadError: offline, unreachable, a file missing on every mirror, or a checksum
            mismatch (a corrupt file is deleted; an interrupted one is kept as ``.part`` and
            resumed by the next call).
    """
    from .download import download_file, offline
    from .pretrained import WeightsError, WeightsNotFoundError, sha256_file

    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; one of {', '.join(DATASETS)}")
    folder = _target(name, out, torchvision)
    _, public, files = DATASETS[name]
    mirror = mirror or os.environ.get(MIRROR_ENV)
    bases = [mirror] if mirror else list(public)
    advice = (f"No network here? Download the four files where there is network (`ghfeat download-data "
              f"{name} --out DIR`) and copy DIR here, or set {MIRROR_ENV} to a server that has them.")
    todo = []
    for file, sha in files.items():
        path = folder / file
        if path.is_file() and sha256_file(path) == sha:
            continue                                   # already there and intact
        path.unlink(missing_ok=True)
        todo.append(file)
    if todo and offline():
        raise DataDownloadError(f"{name}: {len(todo)} of its files are missing in {folder} and offline mode "
                                f"is on (GHFEAT_OFFLINE / HF_HUB_OFFLINE). {advice}")
    folder.mkdir(parents=True, exist_ok=True)
    for file in todo:
        errors = []
        for base in bases:
            url = base.rstrip("/") + "/" + file
            try:
                download_file(url, folder / file, sha256=files[file], progress=progress, space_factor=1.0,
                              offline_advice=advice)
                break
            except WeightsNotFoundError as exc:        # not on this mirror: try the next
                errors.append(str(exc))
            except WeightsError as exc:                # offline, interrupted, corrupt: say so now
                raise DataDownloadError(f"{name}: {exc}") from None
        else:
            raise DataDownloadError(f"{name}: no mirror has {file}: " + " / ".join(errors))
    return folder


def export_png(name: str, idx_root: str | os.PathLike, out: str | os.PathLike, *,
               limit: int | None = None, progress: bool = True) -> dict:
    """Write the IDX files of ``name`` under ``idx_root`` as a folder of PNGs: what one's own data
    looks like, ``<out>/{train,test}/<class>/<index>.png`` at the native 28x28, 8-bit gray.

    ``data=folder:<out>`` (or ``data=<out>``) then trains on ``<out>/train`` and evaluates on
    ``<out>/test``, with the labels taken from the class folder names (:mod:`ghfeat.data`).
    ``limit``: the first ``limit`` images of each split only (tests, smoke runs). Existing files are
    overwritten; each PNG is written to a temporary name and renamed (a killed export leaves no
    half-written PNG; no fsync per file: 70,000 of them would take minutes). Returns
    ``{split: number of images}``.
    """
    import io

    from PIL import Image
    from tqdm.auto import tqdm

    from .data import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, _find_idx, read_idx

    if name not in CLASS_NAMES:
        raise ValueError(f"unknown data set {name!r}; one of {', '.join(CLASS_NAMES)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive number of images per split, got {limit!r}")
    idx_root, out = Path(idx_root).expanduser(), Path(out).expanduser()
    counts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(_find_idx(idx_root, f"{prefix}-images-idx3-ubyte"), IDX_IMAGES_MAGIC)[:limit]
        labels = read_idx(_find_idx(idx_root, f"{prefix}-labels-idx1-ubyte"), IDX_LABELS_MAGIC)[:limit]
        if len(labels) != len(images) or (len(labels) and int(labels.max()) >= len(CLASS_NAMES[name])):
            raise ValueError(f"the {split} files of {idx_root} do not belong together (labels vs images)")
        for cls in CLASS_NAMES[name]:
            (out / split / cls).mkdir(parents=True, exist_ok=True)
        for i in tqdm(range(len(images)), desc=f"{name} {split} -> PNG", disable=not progress, unit="img"):
            path = out / split / CLASS_NAMES[name][int(labels[i])] / f"{i:05d}.png"
            buf = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(images[i]), "L").save(buf, format="PNG")
            tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            try:
                tmp.write_bytes(buf.getvalue())
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        counts[split] = len(images)
    return counts


def download_data_main(argv=None) -> int:
    """``ghfeat download-data NAME [--out DIR] [--torchvision] [--mirror URL]``."""
    from .cli import HelpFormatter

    p = argparse.ArgumentParser(
        prog="ghfeat download-data", formatter_class=HelpFormatter,
        description="Download MNIST or Fashion-MNIST (the four standard IDX .gz files, sha256-checked, "
                    "resumable) into a folder that data=mnist:DIR / data=fashion-mnist:DIR and the "
                    "examples' --data DIR read.")
    p.add_argument("name", choices=sorted(DATASETS), help="data set")
    p.add_argument("--out", default=None, help="folder to write (default: data/NAME)")
    p.add_argument("--torchvision", action="store_true",
                   help="torchvision's layout, OUT/MNIST/raw (or OUT/FashionMNIST/raw)")
    p.add_argument("--mirror", default=None, help=f"base URL holding the files by name (default ${MIRROR_ENV}, "
                   "else the public mirrors)")
    p.add_argument("--png", default=None, metavar="DIR",
                   help="also write the images as PNGs, DIR/{train,test}/<class>/<index>.png (28x28 gray): "
                        "a folder of images like one's own data, for data=folder:DIR (docs/own-data.md)")
    p.add_argument("--limit", type=int, default=None, help="with --png: the first N images of each split only")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = p.parse_args(argv)
    if args.limit is not None and args.png is None:
        p.error("--limit only applies with --png DIR")
    if args.limit is not None and args.limit < 1:
        p.error(f"--limit must be a positive number of images, got {args.limit}")
    out = args.out or f"data/{args.name}"
    what = ""
    try:
        folder = download_dataset(args.name, out, mirror=args.mirror, torchvision=args.torchvision,
                                  progress=sys.stderr.isatty())
        print(f"{args.name} ({LICENCES[args.name]}): 4 files in {folder}, sha256 checked; use "
              f"data={args.name}:{out} (training) or --data {out} (examples)")
        if args.png is not None:
            what = f"--png {args.png}: "
            counts = export_png(args.name, folder, args.png, limit=args.limit, progress=sys.stderr.isatty())
    except (OSError, ValueError) as exc:          # DataDownloadError is an OSError
        if args.debug:
            raise
        print(f"ghfeat download-data: error: {what}{exc}", file=sys.stderr)
        return 2
    if args.png is not None:
        print(f"PNGs: {counts['train']} train + {counts['test']} test images in {args.png}/{{train,test}}/<class>/; "
              f"use data=folder:{args.png}")
    return 0
