"""Datasets for training and evaluation, and a resumable sampler.

Every dataset returns images as ``[C, R, R]`` float32 tensors in ``[-1, 1]``, the convention used
everywhere in ghfeat: ``channels=3`` RGB (default; gray repeated to R = G = B) or ``channels=1``
grayscale (RGB reduced to luminance, ITU-R 601 weights as PIL's ``L``). A dataset built with
labels returns ``(image, label)``.

Data set specs accepted by :func:`make_dataset` (and ``ghfeat train ... data=SPEC``):

==============================  ================================================================
``/path/to/folder``             image folder, searched recursively (png/jpg/jpeg/webp/bmp)
``folder:/path/to/folder``      the same, explicit
``mnist:/root``                 MNIST IDX files under ``/root``, ``/root/raw`` or torchvision's
                                ``/root/MNIST/raw`` (gz or raw; ``ghfeat download-data mnist``)
``fashion-mnist:/root``         Fashion-MNIST IDX files (same file names as MNIST)
``idx:/path/images-idx3-ubyte`` one IDX image file (optionally ``.gz``), no labels
==============================  ================================================================

The split of ``mnist:`` / ``fashion-mnist:`` is chosen with ``split="train"|"test"``. An image
folder with ``train/`` and ``test/`` subfolders has the same two splits (``DIR/train``, ``DIR/test``);
one without them is a single split, used for both. Labels of an image folder come from its class
subfolders, torchvision's ``ImageFolder`` convention: ``DIR[/train]/<class>/...``, classes sorted by
name (so ``0-tshirt-top``, ``1-trouser``, ... keep their numeric order).
28x28 IDX images are padded with 2 background pixels on each side to 32x32 (the convention of
the GH-Feat MNIST model, which keeps the digit at its original scale); any other target size is
reached by resizing.

:class:`InfiniteSampler` gives an endless, deterministic, shuffled index stream whose whole state
is one integer (the number of samples consumed, over all ranks), so a resumed run continues with
exactly the samples the interrupted run would have seen.
"""
from __future__ import annotations

import gzip
import os
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

# IDX data type codes (third byte of the magic number) -> numpy big-endian dtype.
_IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
IDX_IMAGES_MAGIC = 0x00000803   # uint8, 3 dims: [N, H, W]
IDX_LABELS_MAGIC = 0x00000801   # uint8, 1 dim:  [N]


# ------------------------------------------------------------------------------------------------
# IDX (MNIST / Fashion-MNIST)
# ------------------------------------------------------------------------------------------------

def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as exc:  # gzip raises BadGzipFile (OSError) / EOFError when cut
        raise ValueError(f"{path} could not be read as {'gzip' if opener is gzip.open else 'raw'} "
                         f"IDX data ({exc}); the file is corrupt or truncated: download it again.") from exc


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Parse an IDX file (gzipped when its name ends in ``.gz``) into a numpy array.

    The header is a big-endian magic number ``0x0000TTDD`` (``TT`` the dtype code, ``DD`` the
    number of dimensions) followed by ``DD`` big-endian uint32 sizes, then the data.

    Args:
        path: the file.
        expected_magic: e.g. :data:`IDX_IMAGES_MAGIC` (``0x00000803``); a different magic raises.
    Returns:
        array of the file's shape and dtype (native byte order).
    Raises:
        ValueError: wrong magic, unknown dtype, or a file shorter/longer than its header says.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path} is too short ({len(raw)} bytes) to be an IDX file")
    magic = int.from_bytes(raw[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        kind = {IDX_IMAGES_MAGIC: "an IDX image file", IDX_LABELS_MAGIC: "an IDX label file"}.get(
            expected_magic, f"an IDX file with magic 0x{expected_magic:08x}")
        raise ValueError(f"{path} is not {kind}: magic number 0x{magic:08x}, expected "
                         f"0x{expected_magic:08x}. Did you swap the image and label files, or pass "
                         "a gzipped file without the .gz suffix?")
    if magic >> 16 != 0 or (magic >> 8) & 0xFF not in _IDX_DTYPES or magic & 0xFF == 0:
        raise ValueError(f"{path} has an invalid IDX magic number 0x{magic:08x}")
    dtype = _IDX_DTYPES[(magic >> 8) & 0xFF]
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path} is truncated: its IDX header needs {header} bytes, file has {len(raw)}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "longer than its header says"
        raise ValueError(f"{path} is {state}: header says shape {dims} ({expected} bytes in all), "
                         f"file has {len(raw)} bytes. Download it again.")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def _fit_gray(images: torch.Tensor, resolution: int, fit: str) -> torch.Tensor:
    """``[N, H, W]`` float in [0, 1] -> ``[N, R, R]`` by padding (centred) or resizing."""
    _, h, w = images.shape
    if fit == "auto":
        fit = "pad" if (h, w) == (28, 28) and resolution == 32 else "resize"
    if fit == "pad":
        ph, pw = resolution - h, resolution - w
        if ph < 0 or pw < 0:
            raise ValueError(f"cannot pad {h}x{w} images to {resolution}x{resolution}; use fit='resize'")
        return torch.nn.functional.pad(images, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=0.0)
    if fit != "resize":
        raise ValueError(f"fit must be 'auto', 'pad' or 'resize', got {fit!r}")
    if (h, w) == (resolution, resolution):
        return images
    out = torch.nn.functional.interpolate(images[:, None], size=(resolution, resolution),
                                          mode="bilinear", align_corners=False,
                                          antialias=resolution < max(h, w))
    return out[:, 0].clamp_(0.0, 1.0)


class IDXDataset(Dataset):
    """Images (and labels) from IDX files, as used by MNIST and Fashion-MNIST.

    Args:
        images_path: IDX image file (magic ``0x00000803``, uint8 ``[N, H, W]``), raw or ``.gz``.
        labels_path: optional IDX label file (magic ``0x00000801``, uint8 ``[N]``).
        resolution: output size R.
        fit: ``"auto"`` (28 -> 32 by padding 2 background pixels per side, resize otherwise),
            ``"pad"`` or ``"resize"``.
        channels: 1 (grayscale) or 3 (the gray value repeated in R, G, B).
    Items:
        ``[channels, R, R]`` float32 in [-1, 1] (background -1),
        or ``(image, label)`` with an int64 label when ``labels_path`` is given.

    The whole file is decoded once into memory (60k MNIST images at 32x32 take 61 MB as uint8).
    """

    def __init__(self, images_path: str | os.PathLike, labels_path: str | os.PathLike | None = None,
                 resolution: int = 32, fit: str = "auto", channels: int = 3):
        self.channels = _check_channels(channels)
        images = read_idx(images_path, IDX_IMAGES_MAGIC)
        self.labels = None
        if labels_path is not None:
            labels = read_idx(labels_path, IDX_LABELS_MAGIC)
            if len(labels) != len(images):
                raise ValueError(f"{labels_path} holds {len(labels)} labels but {images_path} holds "
                                 f"{len(images)} images; the files do not belong together")
            self.labels = torch.from_numpy(labels.astype(np.int64))
        if len(images) == 0:
            raise ValueError(f"{images_path} holds no images")
        gray = torch.from_numpy(images.astype(np.float32) / 255.0)
        # stored as uint8 at the target resolution: small, and the float conversion is per item
        self.images = (_fit_gray(gray, resolution, fit) * 255.0).round_().to(torch.uint8)
        self.resolution = resolution
        self.images_path = Path(images_path)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int):
        img = self.images[index].to(torch.float32).div_(127.5).sub_(1.0)
        img = img.unsqueeze(0).expand(self.channels, -1, -1).contiguous()
        if self.labels is None:
            return img
        return img, self.labels[index]

    def __repr__(self) -> str:
        return (f"IDXDataset({str(self.images_path)!r}, n={len(self)}, resolution={self.resolution}, "
                f"labels={self.labels is not None})")


class DataNotFoundError(FileNotFoundError):
    """A data set's files are not where they were said to be (the message says how to get them)."""


def _get_it(root: Path) -> str:
    return (f"download MNIST with `ghfeat download-data mnist --out {root}` (Fashion-MNIST: "
            f"`ghfeat download-data fashion-mnist --out {root}`), or give the folder that holds the files")


def _find_idx(root: Path, stem: str) -> Path:
    """``<stem>`` in the usual places and spellings (``train-images-idx3-ubyte[.gz]``, ...)."""
    candidates = []
    for folder in (root, root / "raw", root / "MNIST" / "raw", root / "FashionMNIST" / "raw"):
        for name in (stem, stem.replace("-idx", ".idx")):
            candidates += [folder / name, folder / (name + ".gz")]
    for c in candidates:
        if c.is_file():
            return c
    raise DataNotFoundError(f"no {stem}[.gz] found under {root} (looked in {root}, {root}/raw, "
                            f"{root}/MNIST/raw, {root}/FashionMNIST/raw): {_get_it(root)}")


def mnist_dataset(root: str | os.PathLike, split: str = "train", resolution: int = 32,
                  labels: bool = True, fit: str = "auto", channels: int = 3) -> IDXDataset:
    """MNIST or Fashion-MNIST (same file names) from the standard IDX files under ``root``.

    ``split``: ``"train"`` (60k) or ``"test"`` (10k). Returns an :class:`IDXDataset` yielding
    ``(image, label)`` (or images only with ``labels=False``).
    """
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataNotFoundError(f"MNIST root {root} is not a folder: {_get_it(root)}")
    images = _find_idx(root, f"{prefix}-images-idx3-ubyte")
    label_file = _find_idx(root, f"{prefix}-labels-idx1-ubyte") if labels else None
    return IDXDataset(images, label_file, resolution=resolution, fit=fit, channels=channels)


# ------------------------------------------------------------------------------------------------
# Image folders
# ------------------------------------------------------------------------------------------------

def list_image_files(root: str | os.PathLike) -> list[Path]:
    """All image files under ``root`` (recursive, sorted, hidden files skipped)."""
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder (give a folder of images, or "
                                 "'mnist:<root>' for IDX files)")

    def fail(err: OSError):
        raise PermissionError(f"cannot read folder {err.filename}: {err.strerror}") from err

    files, seen_dirs = [], set()
    for dirpath, dirnames, filenames in os.walk(root, onerror=fail, followlinks=True):
        # linked folders are followed, but each real folder once: a loop (sub -> .) or two links
        # to one folder would list the same images again and again
        real = os.path.realpath(dirpath)
        if real in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files += [Path(dirpath) / f for f in filenames
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(files)


def _to_rgb(img, background: tuple[int, int, int]):
    """PIL image of any mode -> RGB; transparency is composited onto ``background``."""
    from PIL import Image

    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):     # 16/32-bit gray: scale to 8 bit
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    return img.convert("RGB")   # L, 1, CMYK, YCbCr, RGB


def _square(img, resolution: int, fit: str, background: tuple[int, int, int]):
    from PIL import Image

    w, h = img.size
    if fit == "center-crop":
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        img = img.crop((left, top, left + s, top + s))
    elif fit == "pad":
        s = max(w, h)
        canvas = Image.new("RGB", (s, s), tuple(background))
        canvas.paste(img, ((s - w) // 2, (s - h) // 2))
        img = canvas
    else:
        raise ValueError(f"fit must be 'center-crop' or 'pad', got {fit!r}")
    if img.size != (resolution, resolution):
        img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
    return img


class ImageFolderDataset(Dataset):
    """All images under a folder (recursive), as ``[channels, R, R]`` float32 in [-1, 1].

    Args:
        root: folder; files with extensions png/jpg/jpeg/webp/bmp are used (hidden files skipped).
        resolution: output size R.
        fit: ``"center-crop"`` (largest centred square, then resize) or ``"pad"`` (pad to a
            square with ``background``, then resize). Resizing uses Lanczos.
        background: RGB used for padding and behind transparent pixels (RGBA/LA/P images).
        channels: 3 (RGB) or 1 (luminance).
        labels: items ``(image, label)`` from the class subfolders (``"auto"``: when every image
            lies in one of two or more class subfolders).
    Unreadable images: the first time a file fails to decode, a warning names it and it is
    skipped from then on; its index is served by the next readable file (``index + 1``, ...),
    so the data order stays deterministic.
    """

    def __init__(self, root: str | os.PathLike, resolution: int, fit: str = "center-crop",
                 background: Sequence[int] = (255, 255, 255), channels: int = 3, labels: bool | str = False):
        self.channels = _check_channels(channels)
        if fit not in ("center-crop", "pad"):
            raise ValueError(f"fit must be 'center-crop' or 'pad', got {fit!r}")
        self.root = Path(root).expanduser()
        self.files = list_image_files(self.root)
        if not self.files:
            raise ValueError(f"image folder {self.root} holds no images (looked recursively for "
                             f"{', '.join(IMAGE_EXTENSIONS)})")
        self.classes: list[str] | None = None
        self.labels: torch.Tensor | None = None
        if labels == "auto":                  # labels when the folder has class subfolders
            labels = _in_class_folders(self.root, self.files)
        if labels:
            self.classes, self.labels = _folder_labels(self.root, self.files)
        self.resolution = int(resolution)
        self.fit = fit
        self.background = tuple(int(c) for c in background)
        self._bad: set[int] = set()   # per process (each DataLoader worker learns on its own)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, index: int) -> torch.Tensor:
        """Decode file ``index`` (raises on a corrupt file)."""
        from PIL import Image

        with Image.open(self.files[index]) as img:
            img.load()
            img = _square(_to_rgb(img, self.background), self.resolution, self.fit, self.background)
            if self.channels == 1:
                img = img.convert("L")
        arr = np.asarray(img, dtype=np.uint8).reshape(self.resolution, self.resolution, self.channels)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).to(torch.float32).div_(127.5).sub_(1.0)

    def __getitem__(self, index: int):
        n = len(self.files)
        for k in range(n):
            i = (index + k) % n
            if i in self._bad:
                continue
            try:
                img = self.load(i)
                return img if self.labels is None else (img, self.labels[i])
            except Exception as exc:  # PIL raises UnidentifiedImageError, OSError, SyntaxError...
                self._bad.add(i)
                warnings.warn(f"skipping unreadable image {self.files[i]} ({type(exc).__name__}: "
                              f"{exc})", RuntimeWarning, stacklevel=2)
        raise RuntimeError(f"none of the {n} images under {self.root} could be read")

    def __repr__(self) -> str:
        classes = "" if self.classes is None else f", classes={len(self.classes)}"
        return f"ImageFolderDataset({str(self.root)!r}, n={len(self)}, resolution={self.resolution}{classes})"


def _folder_labels(root: Path, files: list[Path]) -> tuple[list[str], torch.Tensor]:
    """Class names (the sorted first-level subfolders holding images) and each file's label."""
    tops = [f.relative_to(root).parts for f in files]
    loose = [f for f, parts in zip(files, tops) if len(parts) < 2]
    if loose:
        raise ValueError(f"labels of an image folder come from its class subfolders ({root}/<class>/...), but "
                         f"{len(loose)} image(s) lie directly in {root} (e.g. {loose[0].name}); move each image "
                         "into the folder of its class")
    classes = sorted({parts[0] for parts in tops})
    index = {c: i for i, c in enumerate(classes)}
    return classes, torch.tensor([index[parts[0]] for parts in tops], dtype=torch.int64)


def has_class_folders(root: str | os.PathLike) -> bool:
    """Whether every image under ``root`` lies in a first-level subfolder, and there are at least
    two of them (a folder that can give labels)."""
    root = Path(root).expanduser()
    return _in_class_folders(root, list_image_files(root))


def _in_class_folders(root: Path, files: list[Path]) -> bool:
    parts = [f.relative_to(root).parts for f in files]
    return bool(files) and all(len(p) >= 2 for p in parts) and len({p[0] for p in parts}) >= 2


def folder_split(root: str | os.PathLike, split: str = "train") -> Path:
    """The folder of ``split`` in an image folder: ``root/train`` / ``root/test`` when ``root`` has
    either subfolder (then both must exist to ask for them), else ``root`` itself for any split."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root).expanduser()
    if (root / "train").is_dir() or (root / "test").is_dir():
        sub = root / split
        if not sub.is_dir():
            raise FileNotFoundError(f"image folder {root} has a {'test' if split == 'train' else 'train'}/ "
                                    f"subfolder but no {split}/ one; put the {split} images in {sub}")
        return sub
    return root


# ------------------------------------------------------------------------------------------------
# Specs
# ------------------------------------------------------------------------------------------------

def _check_channels(channels) -> int:
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    return int(channels)


def make_dataset(spec: str | os.PathLike, resolution: int, split: str = "train",
                 labels: bool | str = False, channels: int = 3) -> Dataset:
    """Build a dataset from a spec string (see the module docstring for the accepted forms).

    ``labels``: return ``(image, label)`` (IDX label files; an image folder's class subfolders);
    ``"auto"``: whenever the data have labels.
    An image folder with ``train/`` and ``test/`` subfolders serves ``split`` from them.
    """
    spec = os.fspath(spec)
    kind, sep, rest = spec.partition(":")
    if sep and kind in ("mnist", "fashion-mnist"):
        return mnist_dataset(rest, split=split, resolution=resolution, labels=labels, channels=channels)
    if sep and kind == "idx":
        return IDXDataset(rest, None, resolution=resolution, channels=channels)
    if sep and kind == "folder":
        return ImageFolderDataset(folder_split(rest, split), resolution, channels=channels, labels=labels)
    if sep and len(kind) > 1 and not Path(spec).exists():   # 'C:\\...' is a path, 'foo:bar' is not
        raise ValueError(f"unknown data set kind {kind!r} in {spec!r}; use a folder path, "
                         "'folder:<path>', 'mnist:<root>', 'fashion-mnist:<root>' or 'idx:<file>'")
    return ImageFolderDataset(folder_split(spec, split), resolution, channels=channels, labels=labels)


def has_test_split(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` has a held-out test split: ``mnist:`` / ``fashion-mnist:`` (their t10k files),
    an image folder with a ``test/`` subfolder; not an ``idx:`` file or a plain folder."""
    spec = os.fspath(spec)
    kind, sep, rest = spec.partition(":")
    if sep and kind in ("mnist", "fashion-mnist"):
        return True
    if sep and kind == "idx":
        return False
    root = Path(rest if sep and kind == "folder" else spec).expanduser()
    return (root / "test").is_dir()


def images_of(batch) -> torch.Tensor:
    """The image tensor of a batch that may be ``images`` or ``(images, labels)``."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


# ------------------------------------------------------------------------------------------------
# Resumable sampler
# ------------------------------------------------------------------------------------------------

class InfiniteSampler(Sampler[int]):
    """Endless deterministic index stream, epoch after epoch, sharded over ranks.

    The *global* stream is ``perm(0) ++ perm(1) ++ ...`` where ``perm(e)`` is a permutation of
    ``range(size)`` seeded by ``(seed, e)`` (identity when ``shuffle=False``). Global position
    ``p`` goes to rank ``p % world_size``. Rank ``r`` yields the positions
    ``start_index + r, start_index + r + world_size, ...``.

    The state is one integer: ``start_index`` = samples consumed so far *over all ranks*
    (``steps * batch_per_rank * world_size``). Building a sampler with that number continues the
    exact order of the interrupted run, independently of how many DataLoader workers prefetched.
    """

    def __init__(self, size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 start_index: int = 0, shuffle: bool = True):
        if size <= 0:
            raise ValueError(f"cannot sample from an empty data set (size={size})")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world size {world_size}")
        if start_index < 0:
            raise ValueError(f"start_index must be >= 0, got {start_index}")
        self.size, self.seed, self.rank, self.world_size = int(size), int(seed), int(rank), int(world_size)
        self.start_index, self.shuffle = int(start_index), bool(shuffle)

    def permutation(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def index_at(self, position: int) -> int:
        """The data index at global stream position ``position``."""
        return int(self.permutation(position // self.size)[position % self.size])

    def __iter__(self) -> Iterator[int]:
        pos = self.start_index + self.rank
        epoch, perm = -1, None
        while True:
            e = pos // self.size
            if e != epoch:
                epoch, perm = e, self.permutation(e)
            yield int(perm[pos % self.size])
            pos += self.world_size
