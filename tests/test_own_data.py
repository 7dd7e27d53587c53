"""One's own images (issue 19): an IDX data set exported as a folder of PNGs, folder splits and
class-folder labels, the label-free quality figures (random-feature FD, nearest-neighbour spread)
against independent computations, and the trainer's evaluation on an image folder."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ghfeat import data as gdata
from ghfeat.data_download import CLASS_NAMES, download_data_main, export_png
from ghfeat.eval import labelfree
from ghfeat.eval.quality import dataset_split
from _helpers import fake_mnist_files


@pytest.fixture(scope="module")
def idx_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("idx")
    for name, blob in fake_mnist_files(30, seed=3, gz=True).items():
        (root / name).write_bytes(blob)
    return root


@pytest.fixture(scope="module")
def png_root(idx_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("png")
    assert export_png("fashion-mnist", idx_root, out, progress=False) == {"train": 30, "test": 30}
    return out


def test_export_writes_the_idx_pixels_and_labels_as_class_folders(idx_root, png_root):
    raw = gdata.read_idx(idx_root / "train-images-idx3-ubyte.gz")
    labels = gdata.read_idx(idx_root / "train-labels-idx1-ubyte.gz")
    for i in (0, 7, 29):
        path = png_root / "train" / CLASS_NAMES["fashion-mnist"][labels[i]] / f"{i:05d}.png"
        with Image.open(path) as img:
            assert img.mode == "L" and img.size == (28, 28)
            np.testing.assert_array_equal(np.asarray(img), raw[i])      # lossless, byte for byte
    assert sorted(p.name for p in (png_root / "test").iterdir()) == CLASS_NAMES["fashion-mnist"]
    assert not list(png_root.rglob(".*tmp*"))                            # no temporary file left


def test_folder_labels_come_from_class_subfolders_in_label_order(idx_root, png_root):
    ds = gdata.make_dataset(f"folder:{png_root}", 32, split="train", labels=True, channels=1)
    assert ds.classes == CLASS_NAMES["fashion-mnist"]
    labels = gdata.read_idx(idx_root / "train-labels-idx1-ubyte.gz")
    # files are sorted by path (class folder, then index): map each back to its IDX index
    idx = [int(f.stem) for f in ds.files]
    np.testing.assert_array_equal(ds.labels.numpy(), labels[idx])
    img, label = ds[0]
    assert img.shape == (1, 32, 32) and -1.0 <= float(img.min()) and float(img.max()) <= 1.0
    assert int(label) == int(labels[idx[0]])


def test_evaluation_takes_a_uniform_sample_of_a_class_sorted_folder(tmp_path):
    """A folder lists its classes one after another; the figures that take the first n images of a
    split (the real-data floor, --limit) must not get the first classes only (the Fashion floor
    once came out at FD 459 from 10,000 T-shirts and trousers)."""
    from ghfeat.eval.quality import _SPLIT_CACHE, dataset_images, dataset_labels
    for split in ("train", "test"):
        for k, name in enumerate(["0-dark", "1-mid", "2-bright"]):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(20):
                Image.fromarray(np.full((32, 32), 100 * k + i, np.uint8)).save(tmp_path / split / name / f"{i:02d}.png")
    spec = f"folder:{tmp_path}"
    _SPLIT_CACHE.clear()
    x, y = dataset_split(spec, "train")
    assert x.shape == (60, 1, 32, 32) and sorted(y.tolist()) == [0] * 20 + [1] * 20 + [2] * 20
    level = ((x[:, 0, 0, 0] + 1) * 127.5).round().long()             # each image's grey value
    assert torch.equal(level // 100, y)                                # labels still belong to their images
    assert set(dataset_labels(spec, "train", 9).tolist()) == {0, 1, 2}  # the first 9: every class
    assert dataset_images(spec, "train", 9).shape == (9, 1, 32, 32)
    assert torch.equal(dataset_split(spec, "train")[0], x)            # a fixed order: the same every call
    _SPLIT_CACHE.clear()
    assert torch.equal(dataset_split(spec, "train")[0], x)            # ... and in every process


def test_folder_splits(png_root, tmp_path):
    assert gdata.folder_split(png_root, "train") == png_root / "train"
    assert gdata.folder_split(png_root, "test") == png_root / "test"
    assert gdata.has_test_split(f"folder:{png_root}") and gdata.has_test_split(str(png_root))
    assert not gdata.has_test_split(f"folder:{png_root / 'train'}")
    assert gdata.folder_split(png_root / "train", "test") == png_root / "train"     # one split: used for both
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match="no test/ one"):
        gdata.folder_split(tmp_path, "test")
    x, y = dataset_split(f"folder:{png_root}", "test")
    assert x.shape == (30, 1, 32, 32) and y is not None and len(y) == 30


def test_labels_refuse_loose_images(png_root, tmp_path):
    Image.new("L", (28, 28)).save(tmp_path / "loose.png")
    (tmp_path / "cat").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "cat" / "a.png")
    with pytest.raises(ValueError, match="lie directly in"):
        gdata.make_dataset(str(tmp_path), 32, labels=True)
    assert not gdata.has_class_folders(tmp_path)
    assert gdata.has_class_folders(png_root / "train")


def test_download_data_limit_needs_png():
    with pytest.raises(SystemExit):
        download_data_main(["fashion-mnist", "--out", "x", "--limit", "3"])


# -- label-free figures ---------------------------------------------------------------------------

def _blobs(n, seed):
    """Varied synthetic images: a Gaussian blob at a random place and size on a -1 background."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    c = torch.rand(n, 2, generator=g) * 20 + 6
    s = torch.rand(n, 1, 1, generator=g) * 4 + 2
    d2 = (yy - c[:, 0, None, None]) ** 2 + (xx - c[:, 1, None, None]) ** 2
    return (torch.exp(-d2 / (2 * s ** 2)) * 2 - 1)[:, None]


def test_random_features_match_an_explicit_computation():
    net = labelfree.RandomFeatures(1)
    x = _blobs(3, 0)
    # independent: the same network written with unfold + matmul and explicit pooling / moments
    g = torch.Generator().manual_seed(labelfree.SEED)
    h, feats, c = x, [], 1
    for width in labelfree.WIDTHS:
        w = torch.randn(width, c, 3, 3, generator=g) / (9 * c) ** 0.5
        n, _, hh, ww = h.shape
        cols = F.unfold(h, 3, padding=1)                                   # [n, c*9, hh*ww]
        h = (w.reshape(width, -1) @ cols).reshape(n, width, hh, ww)
        h = torch.where(h > 0, h, 0.2 * h)
        h = h.reshape(n, width, hh // 2, 2, ww // 2, 2).mean((3, 5))
        flat = h.flatten(2)
        feats += [flat.mean(2), flat.std(2)]
        c = width
    torch.testing.assert_close(net(x), torch.cat(feats, 1), rtol=1e-4, atol=1e-5)
    assert net(x).shape == (3, net.dim) == (3, 448)
    torch.testing.assert_close(labelfree.RandomFeatures(1)(x), net(x))      # fixed weights: same every time


def test_random_fd_is_the_frechet_distance_of_standardised_features():
    from scipy import linalg
    a, b = _blobs(300, 1), _blobs(400, 2)
    fa, fb = labelfree.random_features(a), labelfree.random_features(b)
    s = fb.std(0, ddof=1)
    fa, fb = fa / s, fb / s
    mu1, mu2 = fa.mean(0), fb.mean(0)
    c1, c2 = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    ref = float(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * linalg.sqrtm(c1 @ c2).real))
    assert labelfree.random_fd(a, b) == pytest.approx(ref, rel=1e-4, abs=1e-3)


def test_label_free_figures_tell_collapse_from_variety():
    real, other, ref = _blobs(300, 3), _blobs(300, 4), _blobs(300, 5)
    floor = labelfree.random_fd(other, ref)
    collapsed = real[:6].repeat(50, 1, 1, 1)                                # 6 images, each 50 times
    assert labelfree.random_fd(real[:1].expand(300, -1, -1, -1), ref) > 20 * floor
    assert labelfree.random_fd(collapsed, ref) > 3 * floor
    assert labelfree.nn_spread(collapsed, ref) == 0.0
    assert 0.7 < labelfree.nn_spread(other, ref) < 1.4
    # brute-force median nearest-neighbour distance, loop by loop
    x, r = other[:50].flatten(1), ref[:50].flatten(1)
    def med(z):
        return float(np.median([min(float((z[i] - z[j]).norm()) for j in range(len(z)) if j != i)
                                for i in range(len(z))]))
    assert labelfree.nn_spread(other[:50], ref[:50]) == pytest.approx(med(x) / med(r), rel=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        labelfree.random_fd(real[:1], ref)


# -- the trainer's evaluation on an image folder ----------------------------------------------------

def _run(tmp_path, task, **fields):
    from ghfeat.train import Trainer, TrainConfig
    cfg = TrainConfig(task=task, generator="stylegan-tiny32", batch_size=4, total_steps=2, eval_every=2,
                      eval_n=12, num_workers=0, image_every=0, ckpt_every=0, progress=False, log_every=1,
                      **fields)
    Trainer(cfg, run_dir=tmp_path / task).run()
    return [json.loads(line) for line in (tmp_path / task / "metrics.jsonl").read_text().splitlines()]


def test_trainer_evaluates_any_folder_without_labels(png_root, tmp_path):
    logs = _run(tmp_path, "generator", data=f"folder:{png_root / 'train'}")
    ev = [r for r in logs if "eval/rfd" in r]
    assert len(ev) == 1 and ev[0]["step"] == 2
    assert ev[0]["eval/rfd"] > 0 and ev[0]["eval/spread"] > 0
    assert "eval/fd" not in ev[0]                                 # a folder has no judge by default


def test_trainer_refuses_a_judge_it_cannot_use(png_root, tmp_path):
    from ghfeat.train import Trainer, TrainConfig
    cfg = TrainConfig(task="generator", generator="stylegan-256", data=f"folder:{png_root}", eval_every=1,
                      eval_n=4, eval_classifier="fashion-mnist", num_workers=0, progress=False, batch_size=2,
                      total_steps=1)
    with pytest.raises(ValueError, match="32x32"):
        Trainer(cfg, run_dir=tmp_path / "r")
    assert TrainConfig(task="generator", data="fashion-mnist:x").judge() == "fashion-mnist"
    assert TrainConfig(task="generator", data="folder:x").judge() is None
    assert TrainConfig(task="generator", data="folder:x", eval_classifier="mnist").judge() == "mnist"


def test_shipped_fashion_classifier_loads_by_name():
    from ghfeat.eval.classifier import default_classifier, load_classifier
    clf = load_classifier("fashion-mnist")
    assert default_classifier("fashion-mnist:x") == "fashion-mnist" and default_classifier("mnist:x") == "mnist"
    mnist = load_classifier()
    assert not torch.equal(clf.head.weight, mnist.head.weight)


@pytest.mark.slow     # two short training runs (~20 s on quiet cores)
def test_the_folder_workflow_end_to_end(png_root, tmp_path):
    """docs/own-data.md on 30 PNGs: a generator and an encoder trained from the folder, then the
    saved folders used by name-less paths in extract / reconstruct / style_mix, and evaluated."""
    import ghfeat
    from ghfeat.train import TrainConfig, Trainer
    common = dict(batch_size=4, total_steps=3, num_workers=0, image_every=3, ckpt_every=0, progress=False,
                  eval_every=3, eval_n=8, generator="stylegan-tiny32")
    Trainer(TrainConfig(task="generator", data=f"folder:{png_root}", **common), run_dir=tmp_path / "g").run()
    Trainer(TrainConfig(task="encoder", data=f"folder:{png_root}", encoder="tiny32",
                        generator_checkpoint=str(tmp_path / "g" / "generator"), perceptual_weight=0.0,
                        vgg_weights=None, adv_weight=0.0, code_weight=0.1, **common), run_dir=tmp_path / "e").run()
    assert (tmp_path / "g" / "images").is_dir() and (tmp_path / "e" / "images").is_dir()
    ev = [json.loads(line) for line in (tmp_path / "e" / "metrics.jsonl").read_text().splitlines()]
    ev = [r for r in ev if "eval/rec_mse" in r]
    assert len(ev) == 1 and ev[0]["eval/heldout"] == 1 and 0 < ev[0]["eval/rec_mse"] < 4    # [-1, 1] units
    enc, gen = str(tmp_path / "e" / "encoder"), str(tmp_path / "g" / "generator")
    pngs = sorted((png_root / "test").rglob("*.png"))[:3]
    feats = ghfeat.extract(pngs, levels=[1, 8], model=enc, resize=True)      # 28x28 PNGs
    assert set(feats) == {1, 8} and feats[1].shape == (3, 32) and feats[8].shape == (3, 64)
    rec = ghfeat.reconstruct(pngs, encoder=enc, generator=gen, resize=True)
    assert rec.shape == (3, 3, 32, 32) and torch.isfinite(rec).all()
    grid = ghfeat.style_mix(pngs[:2], pngs[2:], levels=[5, 6, 7, 8], encoder=enc, generator=gen,
                            out=tmp_path / "mix.png", resize=True)
    assert grid.shape == (2, 3, 3, 32, 32) and (tmp_path / "mix.png").is_file()
    with pytest.raises(ValueError, match="not a GHFeatEncoder"):
        ghfeat.extract(pngs, model=gen, resize=True)


def test_eval_on_a_labelled_folder_with_baselines(png_root, capsys):
    from ghfeat.cli import main
    from ghfeat.eval.probe import linear_probe
    data = f"folder:{png_root}"
    assert main(["eval", "probe", "mnist32", "--data", data, "--limit", "20", "--baselines", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["probe"]["all"]["n_train"] == 20 and res["probe"]["all"]["dim"] == 448
    base = res["probe_baselines"]
    assert base["pixels"]["dim"] == 32 * 32 and base["random_encoder"]["dim"] == 448
    # the pixel baseline is the probe on the folder's images, as loaded for training (independent path)
    tr = gdata.make_dataset(data, 32, split="train", labels=True, channels=1)
    te = gdata.make_dataset(data, 32, split="test", labels=True, channels=1)
    x_tr = torch.stack([tr[i][0] for i in range(20)]).flatten(1)
    x_te = torch.stack([te[i][0] for i in range(20)]).flatten(1)
    direct = linear_probe(x_tr, tr.labels[:20], x_te, te.labels[:20], check=False)
    assert base["pixels"]["top1"] == pytest.approx(direct["top1"])
    assert main(["eval", "knn", "mnist32", "--data", data, "--limit", "20", "--baselines", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(res["knn"]) == {"features", "pixels"} and 0 <= res["knn_baselines"]["random_encoder"]["top1"] <= 1
    assert main(["eval", "encoder", "mnist32", "--data", data, "-n", "8", "--classifier", "fashion-mnist",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["classifier"] == "fashion-mnist" and res["encoder"]["n"] == 8


@pytest.mark.parametrize("kw, needle", [
    (dict(mbstd_group_size=-1), "mbstd_group_size must be an integer >= 0"),
    (dict(fmap_decay=float("nan")), "fmap_decay must be a finite number >= 0"),
    (dict(num_channels=0), "num_channels must be an integer >= 1"),
    (dict(fused_scale="yes"), "fused_scale must be 'auto', true or false"),
    (dict(mbstd_num_features=1.5), "mbstd_num_features must be an integer >= 1"),
])
def test_discriminator_arguments_are_checked(kw, needle):    # issue 18: the generator's were, D's were not
    from ghfeat.models.discriminator import StyleGANDiscriminator
    with pytest.raises(ValueError, match=needle):
        StyleGANDiscriminator(resolution=32, fmap_base=256, fmap_max=32, **kw)


def test_generated_pass_leaves_bn_running_statistics_to_real_images(tmp_path):
    """With code regression and batch statistics (no freeze_bn), BatchNorm's running statistics
    after an encoder step are those of the real batch alone (independent: a copy of E run on the
    real batch only). Before the fix they mixed real and generated batches, and eval mode then
    reconstructed real images at twice the MSE (Fashion run: 0.111 vs 0.052)."""
    import copy
    from ghfeat.train import TrainConfig, Trainer
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    cfg = TrainConfig(task="encoder", data=str(tmp_path), generator="stylegan-tiny32", encoder="tiny32",
                      allow_untrained=True, vgg_weights=None, perceptual_weight=0.0, adv_weight=0.0,
                      code_weight=0.1, batch_size=4, num_workers=0, progress=False, total_steps=1)
    t = Trainer(cfg, run_dir=tmp_path / "run")
    E = t.models["E"]
    twin = copy.deepcopy(E).train()
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        twin(x)                                                # real batch only
    t._encoder_step([x])
    bns = [(a, b) for a, b in zip(E.modules(), twin.modules()) if isinstance(a, torch.nn.BatchNorm2d)]
    assert bns
    for a, b in bns:
        torch.testing.assert_close(a.running_mean, b.running_mean)
        torch.testing.assert_close(a.running_var, b.running_var)
        assert int(a.num_batches_tracked) == int(b.num_batches_tracked) == 1
    t.close()
