"""Former home of the MNIST evaluation code; it now lives in :mod:`ghfeat.eval`.

Every public name that was here still imports from here (``from ghfeat.metrics import
generator_quality``) and is the same object as in :mod:`ghfeat.eval`; new code should import from
:mod:`ghfeat.eval`. Nothing is imported until a name is used.
"""
from __future__ import annotations

import importlib

_MOVED = {
    "ASSET": "classifier", "FEATURE_DIM": "classifier", "MNISTClassifier": "classifier",
    "to_luminance": "classifier", "load_classifier": "classifier", "classify": "classifier",
    "train_classifier": "classifier", "save_classifier": "classifier",
    "gaussian_stats": "stats", "frechet_distance": "stats", "class_entropy": "stats", "class_histogram": "stats",
    "quality": "quality", "reference_stats": "quality", "generate": "quality", "generator_quality": "quality",
    "real_floor": "quality", "reconstruction_quality": "quality", "mean_image_gap": "quality",
    "batch_statistic_check": "quality",
    "MIXING_SPLITS": "mixing", "style_mixing_quality": "mixing",
    "load_network": "cli", "load_generator": "cli", "eval_main": "cli",
}

__all__ = sorted(_MOVED)


def __getattr__(name):
    if name in _MOVED:
        value = getattr(importlib.import_module(f"ghfeat.eval.{_MOVED[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ghfeat.metrics' has no attribute {name!r} (the evaluation code is in ghfeat.eval)")


def __dir__():
    return __all__
