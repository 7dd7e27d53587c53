"""Evaluation of a trained GH-Feat model, in one place (labelled figures on MNIST-like data or a
folder with class subfolders; label-free figures on any images).

    from ghfeat.eval import generator_quality, reconstruction_quality, linear_probe, model_card

Modules (none of them imports :mod:`ghfeat.train`; the trainer imports :mod:`.quality`, and only
the command line :mod:`.cli` loads networks from trainer checkpoints):

* :mod:`.classifier`: the small MNIST classifier that judges images (``MNISTClassifier``,
  ``load_classifier``, ``classify``, ``train_classifier``, ``save_classifier``);
* :mod:`.labelfree`: random-feature Frechet distance and nearest-neighbour spread (no labels);
* :mod:`.stats`: Frechet distance, class entropy, per-class histogram (numpy only);
* :mod:`.quality`: sample quality of a generator, reconstruction quality of an encoder;
* :mod:`.mixing`: style mixing of real digits in GH-Feat code space vs the generator's w space;
* :mod:`.probe`: features of a whole split, converged linear probe (L-BFGS), 1-NN;
* :mod:`.card`: all of the above for an encoder + its generator, as one table / JSON;
* :mod:`.cli`: ``ghfeat eval generator|encoder|probe|knn|mixing|card|train-classifier``.
"""
from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "MNISTClassifier": ".classifier", "load_classifier": ".classifier", "classify": ".classifier",
    "train_classifier": ".classifier", "save_classifier": ".classifier", "to_luminance": ".classifier",
    "gaussian_stats": ".stats", "frechet_distance": ".stats", "class_entropy": ".stats",
    "class_histogram": ".stats",
    "reference_stats": ".quality", "generate": ".quality",
    "generator_quality": ".quality", "real_floor": ".quality", "reconstruction_quality": ".quality",
    "mean_image_gap": ".quality", "batch_statistic_check": ".quality",
    "style_mixing_quality": ".mixing", "MIXING_SPLITS": ".mixing",
    "split_codes": ".probe", "codes_to_features": ".probe", "standardize": ".probe",
    "fit_logistic_regression": ".probe", "linear_probe": ".probe", "nearest_neighbor": ".probe",
    "knn_eval": ".probe",
    "model_card": ".card", "baseline_figures": ".card", "labelfree_figures": ".card",
    "random_fd": ".labelfree", "nn_spread": ".labelfree", "RandomFeatures": ".labelfree",
    "default_classifier": ".classifier",
    "load_network": ".cli", "eval_main": ".cli",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
