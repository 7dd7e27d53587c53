"""The evaluation suite (ghfeat.eval, ``ghfeat eval ...``): the probe's solver and 1-NN against
independent computations, the per-class histogram on hand-built predictions, the card end to end
on tiny fake MNIST files, and the command's error cases (one line, exit 2, nothing written)."""
from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ghfeat
from ghfeat.cli import main
from ghfeat.eval import classifier, probe, quality, stats

from _helpers import one_line_error, write_fake_mnist as _write_fake_mnist

ROOT = Path(__file__).resolve().parents[1]




def write_fake_mnist(root: Path, n_train: int = 60, n_test: int = 40, seed: int = 0) -> str:
    return f"mnist:{_write_fake_mnist(root, n_train, seed, n_test)}"


# -- statistics -------------------------------------------------------------------------------------

def test_class_histogram_on_hand_built_predictions():
    pred = np.array([0, 0, 1, 3, 3, 3, 9, 9, 9, 9])
    assert stats.class_histogram(pred) == pytest.approx([0.2, 0.1, 0, 0.3, 0, 0, 0, 0, 0, 0.4])
    assert stats.class_histogram(np.full(7, 4), num_classes=5) == [0, 0, 0, 0, 1.0]
    for bad in (np.array([]), np.array([0, 10]), np.array([-1, 2]), np.array([0.5, 1.0]), np.zeros((2, 2), int)):
        with pytest.raises(ValueError):
            stats.class_histogram(bad)


# -- the probe's solver ---------------------------------------------------------------------------

def _symmetric_optimum(l2: float) -> float:
    """Two classes at x = -1 (class 0) and x = +1 (class 1): by symmetry W = [-a, a], b0 = b1, and
    the objective is log(1 + exp(-2a)) + l2 a^2, stationary where sigmoid(-2a) = l2 a. Bisection."""
    lo, hi = 0.0, 1.0 / l2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 1 / (1 + np.exp(2 * mid)) > l2 * mid else (lo, mid)
    return (lo + hi) / 2


@pytest.mark.parametrize("l2", [0.3, 0.01])
def test_logistic_regression_hits_the_known_optimum(l2):
    x = torch.tensor([[-1.0], [1.0]]).repeat(5, 1)
    y = torch.tensor([0, 1]).repeat(5)
    m = probe.fit_logistic_regression(x, y, l2, tol=1e-8)
    a = _symmetric_optimum(l2)
    assert m["W"][0].numpy() == pytest.approx([-a, a], abs=1e-7)
    assert float(m["b"][0] - m["b"][1]) == pytest.approx(0, abs=1e-8)
    assert m["converged"] and m["grad_max"] <= 1e-8
    assert m["loss"] == pytest.approx(np.log1p(np.exp(-2 * a)) + l2 * a * a, rel=1e-10)


def test_closed_form_gradient_equals_autograd():
    """The solver's gradient (closed form, laid out for speed) against autograd of the objective."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (37,), generator=g)
    W = torch.randn(6, 4, generator=g, dtype=torch.float64).requires_grad_()
    b = torch.randn(4, generator=g, dtype=torch.float64).requires_grad_()
    ref = torch.nn.functional.cross_entropy(x @ W + b, y) + 0.5 * 0.3 * W.square().sum()
    gW, gb = torch.autograd.grad(ref, [W, b])
    loss, cW, cb = probe._objective_and_grad(x, y, W.detach(), b.detach(), 0.3)
    assert float(loss) == pytest.approx(float(ref), rel=1e-12)
    assert torch.allclose(cW, gW, rtol=1e-10, atol=1e-14) and torch.allclose(cb, gb, rtol=1e-10, atol=1e-14)


def _numpy_objective(theta, x, y, l2, K):
    """Objective and gradient written out by hand in numpy (no autograd)."""
    D = x.shape[1]
    W, b = theta[:D * K].reshape(D, K), theta[D * K:]
    z = x @ W + b
    z -= z.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(K)[y]
    loss = -np.log(p[np.arange(len(y)), y]).mean() + 0.5 * l2 * (W ** 2).sum()
    gW = x.T @ (p - onehot) / len(y) + l2 * W
    gb = (p - onehot).mean(0)
    return loss, np.concatenate([gW.ravel(), gb])


def test_logistic_regression_matches_scipy_on_overlapping_classes():
    optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(0)
    K, D, n = 4, 6, 300
    centers = rng.normal(size=(K, D))
    y = rng.integers(0, K, n)
    x = centers[y] + 1.5 * rng.normal(size=(n, D))            # overlapping: the optimum is finite
    l2 = 1e-3
    m = probe.fit_logistic_regression(torch.from_numpy(x), torch.from_numpy(y), l2, tol=1e-8)
    theta = np.concatenate([m["W"].numpy().ravel(), m["b"].numpy()])
    loss, grad = _numpy_objective(theta, x, y, l2, K)
    assert m["converged"] and np.abs(grad).max() < 2e-8       # stationary by the hand-written gradient
    ref = optimize.minimize(_numpy_objective, np.zeros(D * K + K), args=(x, y, l2, K), jac=True,
                            method="L-BFGS-B", options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 10_000})
    assert loss == pytest.approx(ref.fun, rel=1e-9)
    W_ref = ref.x[:D * K].reshape(D, K)
    assert m["W"].numpy() == pytest.approx(W_ref, abs=1e-4)   # strictly convex: one optimum


def test_linear_probe_reports_its_convergence():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(300) % 3
    x = torch.randn(300, 5, generator=g) + 3 * torch.eye(3, 5)[y]
    r = probe.linear_probe(x[:240], y[:240], x[240:], y[240:], grid=(1e-1, 1e-2, 1e-3), holdout=40)
    assert r["l2"] in (1e-1, 1e-2, 1e-3) and set(r["l2_search"]) == {"0.1", "0.01", "0.001"}
    assert r["converged"] and r["grad_max"] <= r["tol"] and r["iterations"] > 0
    assert r["top1"] == r["top1_more_iters"] and r["grad_max_more_iters"] <= r["tol"] / 100
    assert 0.9 < r["top1"] <= 1 and r["n_train"] == 240 and r["n_holdout"] == 40
    # the same fit done by hand: standardize with the train statistics, fit at the chosen l2
    mean, std = x[:240].double().mean(0), x[:240].double().std(0)
    m = probe.fit_logistic_regression((x[:240] - mean) / std, y[:240], r["l2"], tol=1e-9)
    pred = (((x[240:] - mean) / std).double() @ m["W"] + m["b"]).argmax(1)
    assert float((pred == y[240:]).double().mean()) == r["top1"]
    with pytest.raises(ValueError, match="holdout"):
        probe.linear_probe(x[:5], y[:5], x[5:], y[5:], holdout=5)


# -- 1-NN --------------------------------------------------------------------------------------------

def test_nearest_neighbor_against_brute_force():
    rng = np.random.default_rng(1)
    train, query = rng.normal(size=(300, 7)), rng.normal(size=(57, 7))
    brute = ((query[:, None, :] - train[None, :, :]) ** 2).sum(-1).argmin(1)
    got = probe.nearest_neighbor(torch.from_numpy(train), torch.from_numpy(query), batch_size=10)
    assert got.tolist() == brute.tolist()
    y_train, y_test = rng.integers(0, 3, 300), rng.integers(0, 3, 57)
    mean, std = train.mean(0), train.std(0, ddof=1)
    zt, zq = (train - mean) / std, (query - mean) / std
    expect = (y_train[((zq[:, None] - zt[None]) ** 2).sum(-1).argmin(1)] == y_test).mean()
    r = probe.knn_eval(torch.from_numpy(train), torch.from_numpy(y_train), torch.from_numpy(query),
                       torch.from_numpy(y_test))
    assert r["top1"] == pytest.approx(expect) and r["standardized"]


def test_codes_to_features_equal_extract():
    torch.manual_seed(0)
    enc = ghfeat.create_encoder("mnist32").eval()
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    codes = ghfeat.encode(x, encoder=enc)
    from ghfeat._models import style_dims_of
    dims = style_dims_of(enc)
    assert torch.allclose(probe.codes_to_features(codes, dims), ghfeat.extract(x, model=enc, flatten=True), atol=1e-6)
    assert torch.allclose(probe.codes_to_features(codes, dims, [2, 7]),
                          ghfeat.extract(x, levels=[2, 7], model=enc, flatten=True), atol=1e-6)


# -- end to end on fake files ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def fake_mnist(tmp_path_factory):
    return write_fake_mnist(tmp_path_factory.mktemp("mnist"))


def test_card_end_to_end(fake_mnist, tmp_path, capsys):
    out = tmp_path / "card.json"
    assert main(["eval", "card", "mnist32", "--data", fake_mnist, "--out", str(out), "-n", "16",
                 "--pairs", "8"]) == 0
    printed = capsys.readouterr().out
    for needle in ("per-class %", "linear probe, all levels", "1-NN", "B's levels 5-8", "wrote"):
        assert needle in printed
    card = json.loads(out.read_text())
    assert card["encoder_model"] == "mnist32" and card["generator_model"] == "stylegan-mnist32"
    g = card["generator"]
    assert g["n"] == 16 and len(g["class_histogram"]) == 10 and sum(g["class_histogram"]) == pytest.approx(1)
    assert g["class_entropy"] == pytest.approx(-sum(p * np.log(p) for p in g["class_histogram"] if p > 0))
    assert card["encoder"]["n"] == 40 and 0 <= card["encoder"]["class_agreement"] <= 1
    p = card["probe"]["all"]
    assert p["n_train"] == 60 and p["n_test"] == 40 and p["dim"] == 448 and "top1_more_iters" in p
    assert set(card["knn"]) == {"features", "pixels"} and card["knn"]["pixels"]["dim"] == 1024
    assert card["knn"]["pixels"]["top1"] == 1.0          # the fake classes are squares at their own places
    m = card["mixing"]
    assert m["n_pairs"] == 8 and set(m["encoded"]) == set(m["w_space"]) == {"5-8", "1-4", "7-8"}
    assert set(card["pretrained_cfg_metrics"]) == {"generator", "encoder"}
    # the keys of a registry entry's metrics, so the figures paste into ghfeat/pretrained.py as they are
    from ghfeat.pretrained import _MNIST_METRICS
    for kind in ("generator", "encoder"):
        assert set(card["pretrained_cfg_metrics"][kind]) == set(_MNIST_METRICS[kind]), kind
    assert set(card["seconds"]) == {"features", "generator", "labelfree", "encoder", "probe", "knn", "mixing"}
    lf = card["labelfree"]
    assert lf["n"] == 16 and lf["generator_rfd"] > 0 and lf["floor_rfd"] >= 0 and "reconstruction_rfd" in lf


def test_codes_reuse_gives_the_same_figures(fake_mnist):
    """The card decodes / mixes codes computed once; the same figures as encoding again."""
    from ghfeat.eval.mixing import style_mixing_quality
    torch.manual_seed(0)
    E, G = ghfeat.create_encoder("mnist32").eval(), ghfeat.create_generator("stylegan-mnist32").eval()
    codes, labels = probe.split_codes(E, fake_mnist, "test")
    assert codes.shape == (40, 8, 64) and labels.tolist() == [i % 10 for i in range(40)]
    a = quality.reconstruction_quality(E, G, fake_mnist, n=None)
    b = quality.reconstruction_quality(E, G, fake_mnist, n=None, codes=codes)
    assert a == pytest.approx(b, rel=1e-4)
    a = style_mixing_quality(E, G, fake_mnist, n_pairs=6, w_space=False)
    b = style_mixing_quality(E, G, fake_mnist, n_pairs=6, w_space=False, test_codes=codes)
    # Without test_codes only the pairs' digits are encoded (a batch of 10 here, not the 40 of the
    # split). With several CPU threads the encoder's convolutions split a batch of 10 differently
    # from one of 40, so the codes differ in the last float32 bits (about 3e-8; identical with
    # torch.set_num_threads(1)) and the mean confidences in the 7th digit. Everything else (pairs,
    # classes read, rates) must be the same; the confidences to 1e-6.
    conf = lambda r: {k: v.pop("confidence") for k, v in r["encoded"].items()}  # noqa: E731
    assert conf(a) == pytest.approx(conf(b), abs=1e-6, rel=0)
    assert a == b


def test_generator_and_probe_subcommands_print_json(fake_mnist, capsys):
    assert main(["eval", "generator", "stylegan-mnist32", "--data", fake_mnist, "-n", "12", "--floor",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(res["generator"]["class_histogram"]) == 10 and res["real_floor"]["n"] == 12
    assert main(["eval", "probe", "mnist32", "--data", fake_mnist, "--limit", "30", "--per-level", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(res["probe"]) == {"all", *(f"level_{k}" for k in range(1, 9))}
    assert res["probe"]["all"]["n_train"] == 30 and res["probe"]["all"]["dim"] == 448
    assert res["probe"]["level_1"]["dim"] == 32 and res["probe"]["level_8"]["dim"] == 64   # finest / coarsest


class _ToyG(torch.nn.Module):
    """A hand-built "generator" with 8 layers (levels 8..1 = layers 0..7): w in R^10 is its own
    code (identity mapping), and the image shows the class argmax(w) of one chosen layer's w as a
    bright pixel at row 0, column class."""

    z_dim, num_layers = 10, 8

    def __init__(self, class_layer: int):
        super().__init__()
        self.class_layer = class_layer
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def mapping(self, z):
        return z

    def generate(self, w=None, w_plus=None):
        w = w if w_plus is None else w_plus[:, self.class_layer]
        img = -torch.ones(len(w), 1, 32, 32)
        img[torch.arange(len(w)), 0, 0, w.argmax(1)] = 1.0
        return img


class _ToyClassifier(torch.nn.Module):
    """Reads the class off row 0 of the toy images: logits = 20 * pixels 0..9."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Identity()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def features(self, x):
        return 20 * x[:, 0, 0, :10]


@pytest.mark.parametrize("class_layer, expected", [
    (0, {"5-8": 1.0, "1-4": 1.0, "7-8": 1.0}),   # class set by the coarsest layer (level 8): hierarchical
    (7, {"5-8": 0.0, "1-4": 0.0, "7-8": 0.0}),   # by the finest (level 1): every split goes the wrong way
    (3, {"5-8": 1.0, "1-4": 1.0, "7-8": 0.0}),   # by level 5: B's 5-8 carry it, B's 7-8 do not
])
def test_w_space_mixing_on_a_hand_built_generator(class_layer, expected):
    from ghfeat.eval.mixing import w_space_mixing
    res = w_space_mixing(_ToyG(class_layer), n_pairs=50, seed=3, clf=_ToyClassifier())
    assert res["sample_confidence"] == pytest.approx(1.0)
    for split, rate in expected.items():
        r = res["w_space"][split]
        assert r["expected_rate"] == rate, split
        assert r["reads_as_A"] + r["reads_as_B"] == pytest.approx(1.0)   # the class is A's or B's, never a third


def test_generator_mixing_option(fake_mnist, capsys):
    assert main(["eval", "generator", "stylegan-mnist32", "--data", fake_mnist, "-n", "12", "--mixing", "6"]) == 0
    out = capsys.readouterr().out
    assert "w-space style mixing (6 pairs" in out and "B's levels 5-8" in out
    assert main(["eval", "generator", "stylegan-mnist32", "--data", fake_mnist, "-n", "12", "--mixing", "0"]) == 2
    one_line_error(capsys, "--mixing must be a whole number >= 1")


# -- errors ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, needle", [
    (["generator", "stylegan-mnist32", "-n", "0"], "-n must be a whole number >= 2"),
    (["generator", "stylegan-mnist32", "-n", "1"], "-n must be a whole number >= 2"),
    (["generator", "stylegan-mnist32", "--truncation-psi", "nan"], "--truncation-psi must be a number in [0, 1]"),
    (["generator", "stylegan-mnist32", "--truncation-psi", "inf"], "--truncation-psi must be a number in [0, 1]"),
    (["generator", "mnist32"], "'mnist32' is an encoder, not a generator"),
    (["encoder", "stylegan-mnist32"], "'stylegan-mnist32' is a generator, not an encoder"),
    (["encoder", "mnist32", "--generator", "mnist32"], "'mnist32' is an encoder, not a generator"),
    (["card", "stylegan-mnist32"], "not an encoder"),
    (["probe", "mnist32", "--l2", "nan"], "--l2 must be a finite number >= 0"),
    (["mixing", "mnist32", "--pairs", "0"], "--pairs must be a whole number >= 1"),
    (["encoder", "mnist32", "-n", "-3"], "-n must be a whole number >= 2"),
])
def test_bad_values_are_one_line_errors(argv, needle, fake_mnist, capsys):
    assert main(["eval", *argv, "--data", fake_mnist]) == 2
    one_line_error(capsys, needle)


def test_saved_network_of_the_wrong_kind_is_refused(fake_mnist, tmp_path, capsys):
    ghfeat.save_model(ghfeat.create_generator("stylegan-tiny32"), tmp_path / "G")
    assert main(["eval", "probe", str(tmp_path / "G"), "--data", fake_mnist]) == 2
    one_line_error(capsys, "holds a generator, not an encoder")
    ghfeat.save_model(ghfeat.create_encoder("tiny32"), tmp_path / "E")
    assert main(["eval", "generator", str(tmp_path / "E"), "--data", fake_mnist]) == 2
    one_line_error(capsys, "holds an encoder, not a generator")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_train_classifier_never_writes_the_package(tmp_path, monkeypatch, capsys):
    data = write_fake_mnist(tmp_path / "mnist", n_train=130, n_test=20)
    before = _sha(classifier.ASSET)
    assert main(["eval", "train-classifier", "--data", data, "--epochs", "0"]) == 2
    one_line_error(capsys, "--epochs must be a whole number >= 1")
    for target in (classifier.ASSET, classifier.PACKAGE_DIR / "assets" / "new.safetensors"):
        assert main(["eval", "train-classifier", "--data", data, "--out", str(target)]) == 2
        one_line_error(capsys, "inside the installed ghfeat package")
    monkeypatch.chdir(tmp_path)                        # no --out: a file in the current folder
    assert main(["eval", "train-classifier", "--data", data, "--epochs", "1"]) == 0
    assert "wrote mnist_classifier.safetensors" in capsys.readouterr().out
    assert _sha(classifier.ASSET) == before and not (classifier.PACKAGE_DIR / "assets" / "new.safetensors").exists()
    clf = classifier.load_classifier(tmp_path / "mnist_classifier.safetensors")
    assert isinstance(clf, classifier.MNISTClassifier)
    with pytest.raises(ValueError, match="fewer than one batch"):
        classifier.train_classifier(write_fake_mnist(tmp_path / "small", n_train=20, n_test=10), progress=False)


# -- structure ---------------------------------------------------------------------------------------

def _imports(path: Path) -> set[str]:
    """Modules a file imports (relative imports resolved inside ghfeat), at any depth."""
    pkg = path.relative_to(ROOT).with_suffix("").parts[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(pkg[:len(pkg) - node.level + 1]) if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def test_no_import_circle_between_eval_and_train():
    """Only ghfeat/eval/cli.py (loading run checkpoints) may import ghfeat.train; the trainer uses
    ghfeat.eval.quality. ghfeat.metrics only re-exports ghfeat.eval."""
    for path in sorted((ROOT / "ghfeat" / "eval").glob("*.py")) + [ROOT / "ghfeat" / "metrics.py"]:
        if path.name == "cli.py":
            continue
        assert not any(m.startswith("ghfeat.train") for m in _imports(path)), path
    for path in sorted((ROOT / "ghfeat" / "train").glob("*.py")):
        bad = {m for m in _imports(path) if m.startswith("ghfeat.eval.cli") or m.startswith("ghfeat.metrics")}
        assert not bad, (path, bad)


def test_old_metrics_names_are_the_eval_ones():
    from ghfeat import eval as ev
    from ghfeat import metrics
    for name in ("generator_quality", "reconstruction_quality", "style_mixing_quality", "load_network",
                 "classify", "load_classifier", "frechet_distance", "class_entropy", "MNISTClassifier"):
        assert getattr(metrics, name) is getattr(ev, name), name


def test_debug_shows_the_exception(fake_mnist):
    for argv in (["eval", "generator", "stylegan-mnist32", "--data", fake_mnist, "-n", "0", "--debug"],
                 ["eval", "--debug", "generator", "stylegan-mnist32", "--data", fake_mnist, "-n", "0"]):
        with pytest.raises(ValueError, match="-n must be"):
            main(argv)
