"""ghfeat: GH-Feat (Generative Hierarchical Features, CVPR 2021) in PyTorch.

    import ghfeat
    enc = ghfeat.create_encoder("mnist32", pretrained=True)
    feats = ghfeat.extract(images, levels=[5, 9], model=enc)   # {5: [N, d5], 9: [N, d9]}

Importing ghfeat is cheap: submodules load on first use, and nothing touches the network.
"""
from __future__ import annotations

from ._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> submodule that defines it
_EXPORTS = {
    "register_model": "._registry", "list_models": "._registry", "get_entry": "._registry",
    "create_generator": "._registry", "create_discriminator": "._registry",
    "create_encoder": "._registry",
    "save_model": "._io", "load_model": "._io",
    "StyleGANGenerator": ".models", "StyleGANDiscriminator": ".models",
    "MappingNetwork": ".models", "SynthesisNetwork": ".models",
    "GHFeatEncoder": ".models",
    "PretrainedCfg": ".pretrained", "WeightsError": ".pretrained",
    "extract": ".api", "extract_spatial": ".api", "reconstruct": ".api", "style_mix": ".api", "load_images": ".api",
    "level_dims": ".api", "encode": ".api", "decode": ".api", "save_grid": ".api",
    "parse_levels": ".api", "sample_digits": ".api", "save_sample_digits": ".api",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, extra=("__version__",))
