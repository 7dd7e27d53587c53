"""Converters for official weights (no TensorFlow, no pickled code executed).

- :func:`convert` (``ghfeat convert``): official file -> installed / Hub-ready ghfeat modules.
- :mod:`~ghfeat.convert.tfpickle`: restricted reader for the official TF pickles.
- :mod:`~ghfeat.convert.stylegan_tf`: TF StyleGAN v1 variables -> generator / discriminator.
- :mod:`~ghfeat.convert.genforce`: genforce PyTorch ``.pth`` -> generator / discriminator.
- :mod:`~ghfeat.convert.tf_encoder`: TF GH-Feat encoder variables -> ``GHFeatEncoder``.

See ``docs/convert.md``.
"""
from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "convert": ".api", "detect_format": ".api",
    "read_tf_pickle": ".tfpickle", "loads_tf_pickle": ".tfpickle", "UnsafePickleError": ".tfpickle",
    "Converted": ".stylegan_tf", "convert_tf_generator": ".stylegan_tf", "convert_tf_discriminator": ".stylegan_tf",
    "read_genforce_checkpoint": ".genforce", "convert_genforce_generator": ".genforce",
    "convert_genforce_discriminator": ".genforce",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)

