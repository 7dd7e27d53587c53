"""Registered generator and discriminator configurations (encoders: ``encoder_zoo.py``).

A configuration is data: a name, a one-line purpose and the constructor arguments. Pretrained
weights for an entry are described in ``ghfeat/pretrained.py``.
"""
from __future__ import annotations

from .._registry import register_model
from .discriminator import StyleGANDiscriminator
from .generator import StyleGANGenerator

# name -> (description, constructor arguments shared by G and D)
GAN_CONFIGS = {
    "stylegan-256": ("StyleGAN v1, official FFHQ/LSUN 256x256 config (14 layers, 512-d z/w); random init",
                     dict(resolution=256)),
    "stylegan-ffhq256": ("StyleGAN v1 trained on FFHQ faces at 256x256 (official weights, via `ghfeat convert`)",
                         dict(resolution=256)),
    "stylegan-tower256": ("StyleGAN v1 trained on LSUN church/tower at 256x256 (official weights)",
                          dict(resolution=256)),
    "stylegan-bedroom256": ("StyleGAN v1 trained on LSUN bedrooms at 256x256 (official weights)",
                            dict(resolution=256)),
    "stylegan-mnist32": ("StyleGAN v1 for 32x32 grayscale MNIST (8 layers, 32 channels, 128-d z/w, output "
                         "tanh); the shipped default, trained on a 2-core CPU (docs/mnist.md)",
                         dict(resolution=32, num_channels=1, fmap_base=256, fmap_max=32, z_dim=128, w_dim=128,
                              mapping_layers=4, fused_scale=True, final_tanh=True)),
    "stylegan-fashion32": ("StyleGAN v1 for 32x32 grayscale Fashion-MNIST (the stylegan-mnist32 architecture), "
                           "trained by ghfeat from a folder of PNGs on a 2-core CPU (docs/own-data.md)",
                           dict(resolution=32, num_channels=1, fmap_base=256, fmap_max=32, z_dim=128, w_dim=128,
                                mapping_layers=4, fused_scale=True, final_tanh=True)),
    "stylegan-tiny32": ("Tiny 32x32 StyleGAN v1 for tests and smoke runs (8 layers, 32 channels)",
                        dict(resolution=32, fmap_base=256, fmap_max=32, z_dim=32, w_dim=32, mapping_layers=2)),
}

_G_ONLY = {"z_dim", "w_dim", "mapping_layers", "mapping_lr_mul", "final_tanh"}


def _register(name: str, description: str, config: dict) -> None:
    @register_model("generator", name, description)
    def _g(**overrides):
        return StyleGANGenerator(**{**config, **overrides})

    @register_model("discriminator", name, description.replace("StyleGAN v1", "StyleGAN v1 discriminator", 1))
    def _d(**overrides):
        return StyleGANDiscriminator(**{**{k: v for k, v in config.items() if k not in _G_ONLY}, **overrides})


for _name, (_desc, _cfg) in GAN_CONFIGS.items():
    _register(_name, _desc, _cfg)
