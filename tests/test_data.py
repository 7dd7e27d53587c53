"""Datasets (IDX, image folders, specs) and the resumable sampler; all inputs made in tmp."""
import gzip
import itertools
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from ghfeat.data import (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, IDXDataset, ImageFolderDataset,
                         InfiniteSampler, make_dataset, mnist_dataset, read_idx)


def idx_bytes(arr: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


@pytest.fixture
def digits():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    return images, labels


def write_mnist(root, images, labels, gz=True, prefix="train"):
    root.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    opener = gzip.open if gz else open
    with opener(root / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as f:
        f.write(idx_bytes(images, IDX_IMAGES_MAGIC))
    with opener(root / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as f:
        f.write(idx_bytes(labels, IDX_LABELS_MAGIC))


@pytest.mark.parametrize("gz", [True, False])
def test_idx_roundtrip_and_pad_to_32(tmp_path, digits, gz):
    images, labels = digits
    write_mnist(tmp_path, images, labels, gz=gz)
    ds = mnist_dataset(tmp_path, "train", resolution=32)
    assert len(ds) == 5
    img, lab = ds[2]
    assert img.shape == (3, 32, 32) and img.dtype == torch.float32 and lab.item() == 4
    # 2 px of background (-1) on every side, original pixels in the middle, channels equal
    assert torch.all(img[:, :2] == -1) and torch.all(img[:, -2:] == -1)
    assert torch.all(img[:, :, :2] == -1) and torch.all(img[:, :, -2:] == -1)
    expected = torch.from_numpy(images[2].astype(np.float32)) / 127.5 - 1
    assert torch.allclose(img[0, 2:30, 2:30], expected, atol=1e-6)
    assert img[0, 2 + 7, 2 + 11] == pytest.approx(images[2, 7, 11] / 127.5 - 1, abs=1e-6)
    assert torch.equal(img[0], img[1]) and torch.equal(img[0], img[2])


def test_idx_resize_and_no_labels(tmp_path, digits):
    images, _ = digits
    path = tmp_path / "imgs.idx"
    path.write_bytes(idx_bytes(images, IDX_IMAGES_MAGIC))
    ds = IDXDataset(path, resolution=64)
    x = ds[0]
    assert isinstance(x, torch.Tensor) and x.shape == (3, 64, 64)
    assert x.min() >= -1 and x.max() <= 1
    assert make_dataset(f"idx:{path}", 16)[1].shape == (3, 16, 16)


def test_idx_errors(tmp_path, digits):
    images, labels = digits
    good = idx_bytes(images, IDX_IMAGES_MAGIC)
    wrong = tmp_path / "wrong"
    wrong.write_bytes(idx_bytes(labels, IDX_LABELS_MAGIC))
    with pytest.raises(ValueError, match="magic number 0x00000801"):
        IDXDataset(wrong)
    cut = tmp_path / "cut"
    cut.write_bytes(good[:-100])
    with pytest.raises(ValueError, match="truncated"):
        IDXDataset(cut)
    short_header = tmp_path / "hdr"
    short_header.write_bytes(good[:10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(short_header)
    cut_gz = tmp_path / "cut.gz"
    cut_gz.write_bytes(gzip.compress(good)[:-30])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        IDXDataset(cut_gz)
    # labels that do not belong to the images
    (tmp_path / "m").mkdir()
    write_mnist(tmp_path / "m", images, labels[:3])
    with pytest.raises(ValueError, match="do not belong together"):
        mnist_dataset(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="t10k-images"):
        mnist_dataset(tmp_path / "m", "test")
    with pytest.raises(ValueError, match="split"):
        mnist_dataset(tmp_path / "m", "val")


def test_mnist_torchvision_layout_and_spec(tmp_path, digits):
    images, labels = digits
    write_mnist(tmp_path / "MNIST" / "raw", images, labels, gz=False, prefix="t10k")
    ds = make_dataset(f"fashion-mnist:{tmp_path}", 32, split="test", labels=True)
    assert len(ds) == 5 and ds[4][1].item() == 5
    with pytest.raises(ValueError, match="unknown data set kind"):
        make_dataset("imagenet:/x", 32)


def save(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path)


def test_image_folder(tmp_path):
    root = tmp_path / "imgs"
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, 10:30] = (255, 0, 0)                      # red centre square, black sides
    save(root / "a.png", rgb)
    save(root / "sub" / "b.jpg", np.full((16, 16), 128, np.uint8))     # grayscale, nested
    rgba = np.zeros((8, 8, 4), np.uint8)             # fully transparent -> background
    save(root / "c.webp", rgba)
    (root / "notes.txt").write_text("not an image")
    ds = ImageFolderDataset(root, 8)
    assert [p.name for p in ds.files] == ["a.png", "c.webp", "b.jpg"]
    a, c, b = ds[0], ds[1], ds[2]
    assert a.shape == b.shape == c.shape == (3, 8, 8)
    assert torch.allclose(a[0], torch.ones(8, 8), atol=0.02) and torch.allclose(a[1], -torch.ones(8, 8), atol=0.02)
    assert torch.allclose(b, torch.full_like(b, 128 / 127.5 - 1), atol=0.02)
    assert torch.allclose(c, torch.ones_like(c))     # composited onto white
    padded = ImageFolderDataset(root, 40, fit="pad", background=(0, 0, 255))[0]   # 20x40 -> 40x40
    assert torch.equal(padded[:, :10], torch.tensor([-1.0, -1.0, 1.0])[:, None, None].expand(3, 10, 40))
    assert torch.equal(padded[:, 10:30], torch.from_numpy(rgb).permute(2, 0, 1) / 127.5 - 1)


def test_image_folder_corrupt_and_empty(tmp_path):
    root = tmp_path / "imgs"
    save(root / "0.png", np.full((4, 4, 3), 255, np.uint8))
    (root / "1.png").write_bytes(b"\x89PNG\r\n garbage")
    save(root / "2.png", np.zeros((4, 4, 3), np.uint8))
    ds = ImageFolderDataset(root, 4)
    with pytest.warns(RuntimeWarning, match="1.png"):
        x = ds[1]
    assert torch.equal(x, ds[2])                     # replaced by the next readable file
    with warnings.catch_warnings():
        warnings.simplefilter("error")               # warned once only
        assert torch.equal(ds[1], ds[2])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        ImageFolderDataset(tmp_path / "empty", 8)
    with pytest.raises(FileNotFoundError):
        make_dataset(tmp_path / "missing", 8)


def take(sampler, n):
    return list(itertools.islice(iter(sampler), n))


def test_sampler_deterministic_epochs_and_resume():
    a = take(InfiniteSampler(7, seed=3), 21)
    assert a == take(InfiniteSampler(7, seed=3), 21)
    assert a != take(InfiniteSampler(7, seed=4), 21)
    for e in range(3):                              # each epoch is a permutation
        assert sorted(a[7 * e: 7 * e + 7]) == list(range(7))
    assert a[:7] != a[7:14]
    # resume at any position continues the exact stream
    for start in (0, 5, 7, 13):
        assert take(InfiniteSampler(7, seed=3, start_index=start), 21 - start) == a[start:]
    assert take(InfiniteSampler(5, shuffle=False), 7) == [0, 1, 2, 3, 4, 0, 1]


def test_sampler_ranks_partition_global_stream():
    stream = take(InfiniteSampler(10, seed=1), 40)
    r0 = take(InfiniteSampler(10, seed=1, rank=0, world_size=2, start_index=4), 18)
    r1 = take(InfiniteSampler(10, seed=1, rank=1, world_size=2, start_index=4), 18)
    assert r0 == stream[4::2] and r1 == stream[5::2]
    with pytest.raises(ValueError):
        InfiniteSampler(0)
    with pytest.raises(ValueError):
        InfiniteSampler(3, rank=2, world_size=2)


def test_grayscale_channels_idx_and_folder(tmp_path, digits):
    images, labels = digits
    write_mnist(tmp_path / "m", images, labels)
    gray, _ = make_dataset(f"mnist:{tmp_path / 'm'}", 32, labels=True, channels=1)[2]
    rgb, _ = make_dataset(f"mnist:{tmp_path / 'm'}", 32, labels=True)[2]
    assert gray.shape == (1, 32, 32) and torch.equal(gray[0], rgb[0])
    # a folder of RGB files read as 1 channel: PIL's luminance (ITU-R 601), to 8-bit rounding
    Image.fromarray(np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [10, 20, 30]]], np.uint8)).save(tmp_path / "c.png")
    x = ImageFolderDataset(tmp_path, 2, channels=1)[0]
    expected = np.array([[0.299 * 255, 0.587 * 255], [0.114 * 255, 0.299 * 10 + 0.587 * 20 + 0.114 * 30]])
    np.testing.assert_allclose((x[0].numpy() + 1) * 127.5, expected, atol=0.6)
    with pytest.raises(ValueError, match="channels must be 1"):
        make_dataset(str(tmp_path), 2, channels=4)
