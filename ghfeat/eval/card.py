"""One evaluation of an encoder + its generator on MNIST: every figure of :mod:`ghfeat.eval`.

    from ghfeat.eval import model_card
    card = model_card(E, G, "mnist:../shared/data/mnist")      # dict, JSON-ready
    print(format_card(card))

The encoder sees the 70,000 digits once (train and test codes); the probe, 1-NN, reconstructions
and the style mixing all reuse those codes. ``card["pretrained_cfg_metrics"]`` holds the figures
in the form of a registry entry's ``PretrainedCfg.metrics``.
"""
from __future__ import annotations

import math
import time

import torch

from .classifier import MNISTClassifier, load_classifier
from .quality import (check_count, dataset_split, generate, quality, real_floor, reconstruction_quality,
                      reference_stats)


def probe_figures(encoder, data: str, *, codes=None, per_level: bool = False, l2: float | None = None,
                  limit: int | None = None, progress: bool = False) -> dict:
    """``{"all": linear_probe(...), "level_k": ... (with per_level)}`` on all levels of the frozen
    encoder, train split -> test split. ``codes``: ``{"train": (codes, labels), "test": ...}``
    when already computed."""
    from .._models import style_dims_of
    from .probe import codes_to_features, linear_probe, split_codes
    codes = codes or {s: split_codes(encoder, data, s, n=limit, progress=progress) for s in ("train", "test")}
    (c_tr, y_tr), (c_te, y_te) = codes["train"], codes["test"]
    _check_labels(data, y_tr)
    dims = style_dims_of(encoder)
    out = {"all": linear_probe(codes_to_features(c_tr, dims), y_tr, codes_to_features(c_te, dims), y_te,
                               l2=l2, progress=progress)}
    if per_level:
        for k in range(1, len(dims) + 1):
            out[f"level_{k}"] = linear_probe(codes_to_features(c_tr, dims, [k]), y_tr,
                                             codes_to_features(c_te, dims, [k]), y_te, l2=l2, check=False)
    return out


def knn_figures(encoder, data: str, *, codes=None, limit: int | None = None, progress: bool = False) -> dict:
    """1-NN top-1 on the standardized all-level features, and on raw pixels (the baseline)."""
    from .._models import style_dims_of
    from .probe import codes_to_features, knn_eval, split_codes
    codes = codes or {s: split_codes(encoder, data, s, n=limit, progress=progress) for s in ("train", "test")}
    (c_tr, y_tr), (c_te, y_te) = codes["train"], codes["test"]
    _check_labels(data, y_tr)
    dims = style_dims_of(encoder)
    x_tr, x_te = dataset_split(data, "train")[0][:len(c_tr)], dataset_split(data, "test")[0][:len(c_te)]
    return {"features": knn_eval(codes_to_features(c_tr, dims), y_tr, codes_to_features(c_te, dims), y_te,
                                 progress=progress),
            "pixels": knn_eval(x_tr.float(), y_tr, x_te.float(), y_te, standardized=False, progress=progress)}


def random_twin(encoder):
    """The same encoder architecture at random weights (seed 0): the baseline that says how much of
    a probe's accuracy the training put there."""
    from .._io import build_from_config, model_config
    with torch.random.fork_rng():
        torch.manual_seed(0)
        twin = build_from_config(model_config(encoder), "the encoder's config")
    return twin.eval()


def baseline_figures(encoder, data: str, *, limit: int | None = None, progress: bool = False,
                     knn: bool = False) -> dict:
    """Linear probe (or 1-NN with ``knn``) of the two baselines, by the same code: ``pixels`` (the
    raw test images, flattened) and ``random_encoder`` (:func:`random_twin`'s all-level features)."""
    from .probe import knn_eval, linear_probe
    x_tr, y_tr = dataset_split(data, "train")
    x_te, y_te = dataset_split(data, "test")
    _check_labels(data, y_tr)
    x_tr, y_tr, x_te, y_te = x_tr[:limit], y_tr[:limit], x_te[:limit], y_te[:limit]
    pix_tr, pix_te = x_tr.float().flatten(1), x_te.float().flatten(1)
    if knn:
        out = {"pixels": knn_eval(pix_tr, y_tr, pix_te, y_te, standardized=False, progress=progress)}
        out["random_encoder"] = knn_figures(random_twin(encoder), data, limit=limit, progress=progress)["features"]
        return out
    out = {"pixels": linear_probe(pix_tr, y_tr, pix_te, y_te, progress=progress)}
    out["random_encoder"] = probe_figures(random_twin(encoder), data, limit=limit, progress=progress)["all"]
    return out


def labelfree_figures(generator, data: str, *, n: int = 5000, seed: int = 0, test_codes=None,
                      samples: torch.Tensor | None = None) -> dict:
    """The label-free figures (:mod:`.labelfree`) on ``n`` images: the generator's random-feature FD
    and nearest-neighbour spread against the test split, the same FD for the reconstructions of the
    test images (``test_codes``: their packed codes, when known) and for real training images (the
    floor). Everything a folder without labels can be judged by. ``samples``: the generator's
    samples when already drawn (at least ``n``)."""
    from ..api import decode
    from .labelfree import nn_spread, random_fd, random_stats
    from .quality import dataset_images, generate
    real = dataset_images(data, "test")
    pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))[:n]
    real = real[pick]
    ref = random_stats(real)
    train = dataset_images(data, "train")
    train = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(seed + 1))[:len(real)]]
    fake = samples[:len(real)] if samples is not None else generate(generator, len(real), seed=seed)
    out = {"n": int(len(real)), "generator_rfd": random_fd(fake, ref), "generator_spread": nn_spread(fake, real),
           "floor_rfd": random_fd(train, ref), "floor_spread": nn_spread(train, real)}
    if test_codes is not None:
        rec = decode(test_codes[pick], generator, progress=False)[:, :1].clamp(-1, 1)
        out["reconstruction_rfd"] = random_fd(rec, ref)
    return out


def _check_labels(data, labels):
    if labels is None:
        raise ValueError(f"{data} has no labels; the probe and 1-NN need a labelled data set (mnist:DIR, "
                         "fashion-mnist:DIR, or an image folder with train/<class>/ and test/<class>/ subfolders)")


def model_card(encoder, generator, data: str, *, n: int = 10_000, pairs: int = 2000, seed: int = 0,
               per_level: bool = False, clf: MNISTClassifier | None = None, progress: bool = False,
               codes: dict | None = None) -> dict:
    """Every figure for ``encoder`` + ``generator`` on ``data`` (``mnist:DIR``): ``generator``
    (``n`` samples) with the ``real_floor``, ``encoder`` (all test digits), ``probe``, ``knn``,
    ``mixing`` (``pairs`` pairs), ``seconds`` per part and ``pretrained_cfg_metrics``.

    ``codes``: ``{"train": (codes, labels), "test": (codes, labels)}`` from :func:`.probe.split_codes`
    when already computed (then ``seconds["features"]`` is about 0)."""
    from .mixing import style_mixing_quality
    from .probe import split_codes
    n, pairs = check_count(n), check_count(pairs, "--pairs", 1)
    clf = clf or load_classifier()
    card: dict = {"data": data, "seconds": {}}
    t = time.perf_counter()

    def lap(name):
        nonlocal t
        card["seconds"][name] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()

    codes = codes or {s: split_codes(encoder, data, s, progress=progress) for s in ("test", "train")}
    _check_labels(data, codes["train"][1])
    lap("features")
    samples = generate(generator, n, seed=seed, progress=progress)      # drawn once, for both sections
    card["generator"] = quality(samples, reference_stats(data, "test", clf), clf)
    card["real_floor"] = real_floor(data, n=min(n, len(codes["train"][0])), clf=clf)
    lap("generator")
    card["labelfree"] = labelfree_figures(generator, data, n=min(n, 5000, len(codes["test"][0])), seed=seed,
                                          test_codes=codes["test"][0], samples=samples)
    lap("labelfree")
    card["encoder"] = reconstruction_quality(encoder, generator, data, n=None, clf=clf, progress=progress,
                                             codes=codes["test"][0])
    lap("encoder")
    card["probe"] = probe_figures(encoder, data, codes=codes, per_level=per_level, progress=progress)
    lap("probe")
    card["knn"] = knn_figures(encoder, data, codes=codes, progress=progress)
    lap("knn")
    card["mixing"] = style_mixing_quality(encoder, generator, data, n_pairs=pairs, seed=seed, clf=clf,
                                          test_codes=codes["test"][0])
    lap("mixing")
    g, e, p, k, m = card["generator"], card["encoder"], card["probe"]["all"], card["knn"], card["mixing"]
    card["pretrained_cfg_metrics"] = {
        "generator": {"classifier_fd": round(g["fd"], 2), "class_entropy": round(g["class_entropy"], 3),
                      "confidence": round(g["confidence"], 3),
                      "min_class_fraction": round(min(g["class_histogram"]), 3)},
        "encoder": {"mse": round(e["mse"], 4), "class_agreement": round(e["class_agreement"], 4),
                    "linear_probe_top1": round(100 * p["top1"], 2), "knn_top1": round(100 * k["features"]["top1"], 2),
                    **{f"mixing_{s}": round(r["expected_rate"], 3) for s, r in m["encoded"].items()}},
    }
    return card


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def format_histogram(hist) -> str:
    return "  ".join(f"{k}:{100 * v:4.1f}" for k, v in enumerate(hist))


def format_sections(card: dict) -> list[str]:
    """Table lines for whichever sections ``card`` holds (a full card or one subcommand's result)."""
    lines = []
    if "classifier" in card:
        lines.append(f"(images judged by the {card['classifier']} classifier)")
    if "generator" in card:
        lines.append(f"{'generator':<28}{'FD':>9}{'entropy':>9}{'confidence':>12}   (entropy of uniform "
                     f"= {math.log(10):.3f})")
        for key in ("generator", "real_floor"):
            if key in card:
                r = card[key]
                lines.append(f"  {key + ' (' + str(r['n']) + ')':<26}{r['fd']:>9.3f}{r['class_entropy']:>9.3f}"
                             f"{r['confidence']:>12.3f}")
                lines.append(f"    per-class %   {format_histogram(r['class_histogram'])}")
    if "labelfree" in card:
        r = card["labelfree"]
        line = (f"label-free ({r['n']} images)      random-feature FD: generator {r['generator_rfd']:.2f}, "
                f"real floor {r['floor_rfd']:.2f}")
        if "reconstruction_rfd" in r:
            line += f", reconstructions {r['reconstruction_rfd']:.2f}"
        lines.append(line + f"; spread: generator {r['generator_spread']:.3f}, real {r['floor_spread']:.3f}")
    if "encoder" in card:
        r = card["encoder"]
        lines.append(f"encoder ({r['n']} digits)       reconstruction MSE {r['mse']:.4f} (mean-digit "
                     f"baseline {r['mse_mean_image']:.4f}), class agreement {_pct(r['class_agreement'])}, "
                     f"FD {r['fd']:.3f}")
    if "probe" in card:
        for key, r in card["probe"].items():
            name = "linear probe, all levels" if key == "all" else f"  {key.replace('_', ' ')}"
            line = f"{name:<28}top-1 {_pct(r['top1'])}  ({r['dim']}-d, l2 {r['l2']:g}, {r['iterations']} " \
                   f"L-BFGS iterations, max |grad| {r['grad_max']:.1e}"
            if "top1_more_iters" in r:
                line += f"; stricter tolerance: {_pct(r['top1_more_iters'])}"
            lines.append(line + ")")
    for key, what in (("probe_baselines", "linear probe"), ("knn_baselines", "1-NN")):
        for name, r in card.get(key, {}).items():
            lines.append(f"{what + ', ' + name.replace('_', ' '):<28}top-1 {_pct(r['top1'])}  (baseline, same code)")
    if "knn" in card:
        k = card["knn"]
        lines.append(f"{'1-NN':<28}features {_pct(k['features']['top1'])}, raw pixels {_pct(k['pixels']['top1'])}")
    if "mixing" in card:
        m = card["mixing"]
        if "encoded" not in m:  # the generator alone (ghfeat eval generator --mixing)
            lines.append(f"w-space style mixing ({m['n_pairs']} pairs of samples; expected class, confidence; "
                         f"samples {m['sample_confidence']:.3f})")
            lines += [f"  B's levels {s} -> {r['expected']:<10}{_pct(r['expected_rate']):>7} {r['confidence']:.3f}"
                      for s, r in m["w_space"].items()]
        else:
            lines.append(f"style mixing ({m['n_pairs']} pairs; expected class, confidence; real digits "
                         f"{m['real_confidence']:.3f})")
            for s, r in m["encoded"].items():
                line = (f"  B's levels {s} -> {r['expected']:<10}y-space {_pct(r['expected_rate']):>7} "
                        f"{r['confidence']:.3f}")
                if "w_space" in m:
                    w = m["w_space"][s]
                    line += f"   w-space (ceiling) {_pct(w['expected_rate']):>7} {w['confidence']:.3f}"
                lines.append(line)
    return lines
