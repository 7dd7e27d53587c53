"""Registered GH-Feat encoder configurations (generators / discriminators: ``zoo.py``).

Every encoder is built from its paired generator's ``style_dims`` (read off the registered generator
config, never hard-coded here) and knows that generator's registry name. Pretrained weights for an
entry are data in ``ghfeat/pretrained.py``.

    enc = ghfeat.create_encoder("ffhq256")                 # official architecture, random init
    enc = ghfeat.create_encoder("resnet50-256", backbone="resnet18")   # any timm ResNet
"""
from __future__ import annotations

import functools

import torch

from .._registry import register_model
from .encoder import GHFeatEncoder
from .generator import StyleGANGenerator
from .zoo import GAN_CONFIGS

FFHQ_ALIGNMENT = ("FFHQ alignment: faces cropped and rotated from 68 dlib landmarks as in the FFHQ "
                  "data set, resized to 256x256")
LSUN_ALIGNMENT = "LSUN: resize the short side to 256, then center-crop 256x256"
MNIST_ALIGNMENT = ("MNIST: 28x28 digits padded with 2 background pixels per side to 32x32, one "
                   "gray channel, background -1 (ghfeat.data.mnist_dataset(..., channels=1))")
FASHION_ALIGNMENT = ("Fashion-MNIST as a folder of 28x28 PNGs, resized to 32x32 (Lanczos, the image-folder "
                     "loader), one gray channel, background -1 (data=folder:DIR, channels=1)")


@functools.lru_cache(maxsize=None)
def generator_style_dims(generator_name: str) -> tuple[int, ...]:
    """``style_dims`` (2C per layer, coarse -> fine) of the registered generator config
    ``generator_name``, computed by building it on the meta device (no memory, no weights)."""
    if generator_name not in GAN_CONFIGS:
        raise ValueError(f"unknown generator config {generator_name!r}; known: {sorted(GAN_CONFIGS)}")
    with torch.device("meta"):
        return tuple(StyleGANGenerator(**GAN_CONFIGS[generator_name][1]).style_dims)


def _build(generator_name: str, overrides: dict, **config) -> GHFeatEncoder:
    config = {"style_dims": list(generator_style_dims(generator_name)), "generator_name": generator_name,
              **config, **overrides}
    return GHFeatEncoder(**config)


# -- the official released encoders (ResNet-50, FPN + SAM, exact TF arithmetic) -------------------
_OFFICIAL = dict(backbone="resnet50", input_size=256, fpn_channels=512, official_tf=True)
_OFFICIAL_ENTRIES = {
    "ffhq256": ("stylegan-ffhq256", FFHQ_ALIGNMENT, "FFHQ faces"),
    "tower256": ("stylegan-tower256", LSUN_ALIGNMENT, "LSUN church/tower"),
    "bedroom256": ("stylegan-bedroom256", LSUN_ALIGNMENT, "LSUN bedrooms"),
}


def _register_official(name: str, generator_name: str, alignment: str, data: str) -> None:
    @register_model("encoder", name,
                    f"GH-Feat ResNet-50 encoder for {data} at 256x256 (official architecture; load the "
                    f"released weights via `ghfeat convert`); pairs with {generator_name}",
                    tags=("official",))
    def _e(**overrides):
        return _build(generator_name, overrides, alignment=alignment, **_OFFICIAL)


for _name, _args in _OFFICIAL_ENTRIES.items():
    _register_official(_name, *_args)


# -- trainable 256 configs on any timm ResNet (plain timm padding, ReLU stem) ---------------------
def _register_resnet256(backbone: str) -> None:
    @register_model("encoder", f"{backbone}-256",
                    f"GH-Feat encoder on a timm {backbone} + extra stage for the 256x256 StyleGAN "
                    "(14 layers); random init, for training your own (pairs with stylegan-256)")
    def _e(**overrides):
        return _build("stylegan-256", overrides, backbone=backbone, input_size=256)


for _backbone in ("resnet18", "resnet34", "resnet50", "resnet101"):
    _register_resnet256(_backbone)


# -- small models --------------------------------------------------------------------------------
@register_model("encoder", "mnist32",
                "GH-Feat encoder for 32x32 grayscale MNIST (ResNet-18 with a CIFAR-style 3x3 s1 stem, "
                "reduced widths, ~2M params); pairs with stylegan-mnist32 (the paper's MNIST setting)")
def mnist32(**overrides):
    return _build("stylegan-mnist32", overrides, backbone="resnet18", input_size=32, stem="small",
                  in_channels=1, channels=[16, 32, 64, 128], fpn_channels=64, alignment=MNIST_ALIGNMENT)


@register_model("encoder", "fashion32",
                "GH-Feat encoder for 32x32 grayscale Fashion-MNIST (the mnist32 architecture); pairs with "
                "stylegan-fashion32 (docs/own-data.md)")
def fashion32(**overrides):
    return _build("stylegan-fashion32", overrides, backbone="resnet18", input_size=32, stem="small",
                  in_channels=1, channels=[16, 32, 64, 128], fpn_channels=64, alignment=FASHION_ALIGNMENT)


@register_model("encoder", "tiny32",
                "Tiny 32x32 GH-Feat encoder for tests and smoke runs (ResNet-18 layout, 8-16 channels); "
                "pairs with stylegan-tiny32")
def tiny32(**overrides):
    return _build("stylegan-tiny32", overrides, backbone="resnet18", input_size=32, stem="small",
                  channels=[8, 8, 16, 16], fpn_channels=16)
