"""StyleGAN v1 discriminator (the official ``D_basic``, non-progressive)."""
from __future__ import annotations

import torch
from torch import nn

from ..hub import HubMixin
from ._base import register_module_class, register_to_config
from .generator import check_resolution, num_features
from .layers import SQRT2, Blur, EqualizedConv2d, EqualizedLinear, minibatch_stddev


class DiscriminatorBlock(nn.Module):
    """conv 3x3 -> lrelu -> (blur) -> conv 3x3 with 2x downsampling -> lrelu. ``[N,Ci,H,W] -> [N,Co,H/2,W/2]``."""

    def __init__(self, in_channels: int, out_channels: int, fused: bool, blur: bool):
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3, gain=SQRT2)
        self.blur = Blur() if blur else nn.Identity()
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, gain=SQRT2, down="fused" if fused else "avgpool")
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.conv0(x))
        return self.act(self.conv1(self.blur(x)))


def _check_discriminator_args(**kw) -> None:
    """Every number a discriminator is built from: the right type, finite, in range (a NaN decay or a
    negative group size would build a model that fails later, or computes garbage)."""
    import math
    errors = []
    for name in ("num_channels", "fmap_base", "fmap_max", "mbstd_group_size", "mbstd_num_features"):
        v, low = kw[name], 0 if name == "mbstd_group_size" else 1      # group size 0 or 1: no mbstd (official)
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            errors.append(f"{name} must be an integer >= {low}, got {v!r}"
                          + (" (0 or 1 turns the minibatch stddev off)" if name == "mbstd_group_size" else ""))
    v = kw["fmap_decay"]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        errors.append(f"fmap_decay must be a finite number >= 0, got {v!r}")
    if kw["fused_scale"] not in (True, False, "auto"):
        errors.append(f"fused_scale must be 'auto', true or false, got {kw['fused_scale']!r}")
    if not isinstance(kw["blur"], bool):
        errors.append(f"blur must be true or false, got {kw['blur']!r}")
    if errors:
        raise ValueError("invalid StyleGANDiscriminator arguments: " + "; ".join(errors))


@register_module_class
class StyleGANDiscriminator(HubMixin, nn.Module):
    """StyleGAN v1 discriminator: FromRGB, blocks with blur + 2x downsampling, minibatch stddev,
    a 3x3 conv and two dense layers.

    Args:
        resolution: input size, a power of two from 8 to 1024.
        num_channels, fmap_base, fmap_max, fmap_decay: as the generator.
        mbstd_group_size, mbstd_num_features: minibatch stddev (4, 1 official).
        fused_scale: "auto" (fused down-conv at >= 128 px), True or False.
    Input ``[N, 3, R, R]`` in [-1, 1]; output raw scores ``[N, 1]``.
    """

    @register_to_config
    def __init__(self, resolution: int = 256, num_channels: int = 3, fmap_base: int = 8192, fmap_max: int = 512,
                 fmap_decay: float = 1.0, mbstd_group_size: int = 4, mbstd_num_features: int = 1,
                 fused_scale: bool | str = "auto", blur: bool = True):
        super().__init__()
        _check_discriminator_args(num_channels=num_channels, fmap_base=fmap_base, fmap_max=fmap_max,
                                  fmap_decay=fmap_decay, mbstd_group_size=mbstd_group_size,
                                  mbstd_num_features=mbstd_num_features, fused_scale=fused_scale, blur=blur)
        log2 = check_resolution(resolution)
        nf = lambda stage: num_features(stage, fmap_base, fmap_max, fmap_decay)  # noqa: E731
        self.resolution, self.num_channels = resolution, num_channels
        self.from_rgb = EqualizedConv2d(num_channels, nf(log2 - 1), 1, gain=SQRT2)
        self.act = nn.LeakyReLU(0.2)
        self.blocks = nn.ModuleList()
        for r in range(log2, 2, -1):
            fused = (2 ** r >= 128) if fused_scale == "auto" else bool(fused_scale)
            self.blocks.append(DiscriminatorBlock(nf(r - 1), nf(r - 2), fused, blur))
        self.mbstd_group_size, self.mbstd_num_features = mbstd_group_size, mbstd_num_features
        extra = mbstd_num_features if mbstd_group_size > 1 else 0
        self.conv = EqualizedConv2d(nf(1) + extra, nf(1), 3, gain=SQRT2)
        self.dense0 = EqualizedLinear(nf(1) * 16, nf(0), gain=SQRT2)
        self.dense1 = EqualizedLinear(nf(0), 1, gain=1.0)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        R = self.resolution
        if not isinstance(img, torch.Tensor) or img.ndim != 4 or tuple(img.shape[1:]) != (self.num_channels, R, R):
            got = tuple(img.shape) if isinstance(img, torch.Tensor) else type(img).__name__
            raise ValueError(f"discriminator input must be [N, {self.num_channels}, {R}, {R}] in [-1, 1], got {got}")
        x = self.act(self.from_rgb(img))
        for block in self.blocks:
            x = block(x)
        if self.mbstd_group_size > 1:
            x = minibatch_stddev(x, self.mbstd_group_size, self.mbstd_num_features)
        x = self.act(self.conv(x))
        x = self.act(self.dense0(x.flatten(1)))
        return self.dense1(x)
