"""The GH-Feat hierarchical encoder: timm ResNet + one extra stage, FPN + SAM neck, three FC heads.

Data flow for the official 256x256 ResNet-50 config (shapes NCHW)::

    x [N, 3, 256, 256] in [-1, 1]
      -> timm ResNet-50 trunk  R4 [N, 1024, 16, 16]   R5 [N, 2048, 8, 8]
      -> extra stage (1 block)                        R6 [N, 2048, 4, 4]
      -> FPNSAMNeck            F4, F5, F6 [N, 512, 4, 4]     (F4 += F6, F5 += F6)
      -> LevelHeads            F6 -> layers 0-3, F5 -> layers 4-7, F4 -> layers 8-13
      -> packed styles [N, 14, 1024]  (narrower codes tiled, as the official encoder outputs them)

Facts read from the official TF code (genforce/ghfeat ``training/networks_ghfeat.py``):

* stem: 7x7 s2 conv (no bias) -> BN -> **leaky ReLU 0.2** -> 3x3 s2 max-pool, TF 'SAME' padding;
* bottleneck: 1x1 conv -> BN -> ReLU -> 3x3 conv (the stride is here, as in timm) -> BN -> ReLU ->
  1x1 conv -> BN, + shortcut (1x1 conv with the stride, no bias, -> BN; on unit 1 of every stage),
  then ReLU. Every block conv carries a bias before its BN: exact to fold into BN's running mean;
* extra stage ``stage5``: one bottleneck, 2048 -> 2048, stride 2, projection shortcut;
* FPN on (R4, R5, R6): 3x3 lateral convs with bias (512), nearest 2x top-down sums, 3x3 output
  convs with bias, no activations; SAM: 2x2 average pooling until every map has R6's size, 3x3
  conv with bias, then ``F4 += F6``, ``F5 += F6``;
* heads: dense + bias -> BN (no activation) on the **NCHW**-flattened 4x4x512 map (the TF code
  runs in ``data_format='NCHW'``, so its flatten order is PyTorch's);
* BN: eps 1e-5, decay 0.9 (PyTorch momentum 0.1).

``official_tf=True`` reproduces that arithmetic exactly (TF 'SAME' padding through timm's
``Conv2dSame`` / ``MaxPool2dSame``, leaky-ReLU stem); ``official_tf=False`` is the plain timm ResNet
(symmetric padding, ReLU stem), the better choice for training new encoders.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..hub import HubMixin
from ._base import register_module_class, register_to_config
from .generator import pack_styles

# timm ResNet block type and units per stage (timm's own table for these depths).
BACKBONES = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}
STEMS = ("imagenet", "small")
# Style-code widths 2C of the official 256x256 StyleGAN v1 (14 layers, coarse -> fine).
OFFICIAL_256_STYLE_DIMS = [1024] * 8 + [512] * 2 + [256] * 2 + [128] * 2


def split_layers(num_layers: int) -> tuple[int, int, int]:
    """Number of generator layers predicted by each head: ``(R6 head, R5 head, R4 head)``.

    Rule. StyleGAN v1 has two layers per resolution, so the ``L`` layers form ``S = ceil(L / 2)``
    resolution stages (4x4, 8x8, ...). The coarse (R6) and middle (R5) heads each take
    ``k = min(2, (S - 1) // 2)`` stages, the fine (R4) head takes the remaining ``S - 2k``. For
    ``S >= 5`` (generators of 64 px and up) this is StyleGAN's coarse / middle / fine split:
    R6 <- 4-8 px, R5 <- 16-32 px, R4 <- 64 px and finer, which is the official 256 split
    (layers 0-3 / 4-7 / 8-13). Smaller generators shrink the first two groups so every head keeps
    at least one stage: 32 px (L = 8) -> 2 / 2 / 4 layers, 16 px (L = 6) -> 2 / 2 / 2.

    Examples: L=6 -> (2, 2, 2); L=8 -> (2, 2, 4); L=10 -> (4, 4, 2); L=12 -> (4, 4, 4);
    L=14 -> (4, 4, 6); L=16 -> (4, 4, 8); L=18 -> (4, 4, 10).
    """
    if num_layers < 5:
        raise ValueError(f"the hierarchical encoder needs a generator with at least 5 layers (three "
                         f"heads of >= 1 resolution stage each), got {num_layers}")
    stages = math.ceil(num_layers / 2)
    k = min(2, (stages - 1) // 2)
    coarse = middle = 2 * k
    return coarse, middle, num_layers - coarse - middle


def _halve(size: int, times: int) -> int:
    """Spatial size after ``times`` stride-2 layers (TF 'SAME' and timm's padding both give ceil)."""
    for _ in range(times):
        size = (size + 1) // 2
    return size


def _timm_parts():
    from timm.layers import Conv2dSame
    from timm.layers.pool2d_same import MaxPool2dSame
    from timm.models.resnet import BasicBlock, Bottleneck, ResNet, downsample_conv
    return Conv2dSame, MaxPool2dSame, BasicBlock, Bottleneck, ResNet, downsample_conv


class HierarchicalBackbone(nn.Module):
    """A timm ResNet trunk plus one extra stage; returns ``[R4, R5, R6]``.

    ``trunk`` is ``timm.models.resnet.ResNet`` itself (no classifier): its state-dict keys are
    timm's (``conv1``, ``bn1``, ``layer1.0.conv1``, ...). ``extra`` holds one timm block (bottleneck
    for ResNet-50/101, basic block for 18/34) with stride 2 and the width of the last stage.

    Args:
        backbone: "resnet18" | "resnet34" | "resnet50" | "resnet101".
        channels: base widths of the four timm stages (timm's ``channels``; (64, 128, 256, 512) is
            the standard ResNet; bottleneck stages output 4x these).
        stem: "imagenet" (7x7 s2 conv + 3x3 s2 max-pool, total stride 4) or "small" (3x3 s1 conv,
            no max-pool: the usual CIFAR/MNIST adaptation, total stride 1).
        in_channels: image channels.
        official_tf: TF 'SAME' padding at every stride-2 conv / pool and a leaky-ReLU 0.2 stem, as in
            the official GH-Feat TF encoder (bottleneck backbones with the "imagenet" stem only).
    """

    def __init__(self, backbone: str = "resnet50", channels: Sequence[int] = (64, 128, 256, 512),
                 stem: str = "imagenet", in_channels: int = 3, official_tf: bool = False):
        super().__init__()
        from .._compat import checked_import
        Conv2dSame, MaxPool2dSame, BasicBlock, Bottleneck, ResNet, downsample_conv = checked_import(_timm_parts)

        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {backbone!r}")
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        channels = tuple(int(c) for c in channels)
        if len(channels) != 4 or min(channels) < 1:
            raise ValueError(f"channels must be 4 positive stage widths, got {channels}")
        kind, layers = BACKBONES[backbone]
        if official_tf and (kind != "bottleneck" or stem != "imagenet"):
            raise ValueError("official_tf=True describes the official TF ResNet-50/101 bottleneck "
                             "encoder with the 7x7 ImageNet stem (its basic block differs from timm's); "
                             f"got backbone={backbone!r}, stem={stem!r}. Use official_tf=False.")
        block = Bottleneck if kind == "bottleneck" else BasicBlock
        stem_width = 64  # timm's ResNet stem is always 64 wide (its stem_width is for deep stems)

        self.trunk = ResNet(block=block, layers=layers, channels=channels, in_chans=in_channels, num_classes=0, global_pool="")
        if stem == "small":
            self.trunk.conv1 = nn.Conv2d(in_channels, stem_width, 3, stride=1, padding=1, bias=False)
            self.trunk.maxpool = nn.Identity()
        width = channels[3] * block.expansion
        self.extra = nn.Sequential(block(width, channels[3], stride=2,
                                         downsample=downsample_conv(width, width, 1, stride=2)))
        if official_tf:
            # Same modules and parameters as timm's; only the padding / stem activation differ.
            self.trunk.conv1 = Conv2dSame(in_channels, stem_width, 7, stride=2, bias=False)
            self.trunk.act1 = nn.LeakyReLU(0.2)
            self.trunk.maxpool = MaxPool2dSame(3, stride=2)
            for module in list(self.trunk.modules()) + list(self.extra.modules()):
                if isinstance(module, Bottleneck) and module.conv2.stride != (1, 1):
                    c = module.conv2
                    module.conv2 = Conv2dSame(c.in_channels, c.out_channels, c.kernel_size, c.stride,
                                              bias=False)
        self.block_type = kind
        self.stem_stride = 4 if stem == "imagenet" else 1
        self.out_channels = [channels[2] * block.expansion, width, width]  # R4, R5, R6

    def feature_sizes(self, input_size: int) -> list[int]:
        """Spatial sizes of ``[R4, R5, R6]`` for a square input of ``input_size``."""
        stem_halvings = 2 if self.stem_stride == 4 else 0
        r4 = _halve(input_size, stem_halvings + 2)
        return [r4, _halve(r4, 1), _halve(r4, 2)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x [N, C_in, H, W]`` -> ``[R4, R5, R6]`` (strides 16, 32, 64 with the ImageNet stem)."""
        t = self.trunk
        x = t.maxpool(t.act1(t.bn1(t.conv1(x))))
        x = t.layer2(t.layer1(x))
        r4 = t.layer3(x)
        r5 = t.layer4(r4)
        return [r4, r5, self.extra(r5)]


class FPNSAMNeck(nn.Module):
    """FPN + Spatial Alignment Module on ``[R4, R5, R6]`` (official GH-Feat wiring).

    FPN: ``L_i = lateral_i(R_i)`` (3x3 conv + bias), then top-down ``L5 += up(L6)``,
    ``L4 += up(L5)`` (nearest), then ``P_i = output_i(L_i)`` (3x3 conv + bias); no activations.
    SAM: ``P4``, ``P5`` are average-pooled to ``head_size`` (the official code halves them with 2x2
    average pooling until they match R6; adaptive pooling is the same for power-of-two sizes; a map
    smaller than ``head_size`` is nearest-upsampled), ``F_i = fuse_i(.)`` (3x3 conv + bias), then
    ``F4 += F6``, ``F5 += F6``.

    Args:
        in_channels: channels of ``[R4, R5, R6]``.
        channels: FPN / SAM width (512 official).
        head_size: spatial size of the outputs (official: R6's size, 4 for 256 px input).
    Input: list ``[R4, R5, R6]``. Output: list ``[F4, F5, F6]``, each ``[N, channels, s, s]``.
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 512, head_size: int = 4):
        super().__init__()
        if len(in_channels) != 3:
            raise ValueError(f"FPNSAMNeck takes exactly three inputs [R4, R5, R6], got {len(in_channels)}")
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 3, padding=1) for c in in_channels)
        self.output = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)
        self.fuse = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels)
        self.head_size = int(head_size)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        s = self.head_size
        if x.shape[-1] == s and x.shape[-2] == s:
            return x
        if x.shape[-1] >= s and x.shape[-2] >= s:
            return F.adaptive_avg_pool2d(x, s)
        return F.interpolate(x, size=(s, s), mode="nearest")

    def forward(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        lat = [conv(f) for conv, f in zip(self.lateral, feats)]
        for i in (2, 1):  # top-down: L5 += up(L6), then L4 += up(L5)
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[-2:], mode="nearest")
        outs = [conv(x) for conv, x in zip(self.output, lat)]
        fused = [conv(self._resize(x)) for conv, x in zip(self.fuse, outs)]
        return [fused[0] + fused[2], fused[1] + fused[2], fused[2]]


class LevelHead(nn.Module):
    """Flatten ``[N, C, s, s]`` (NCHW order) -> Linear (with bias) -> BatchNorm1d; no activation."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
        self.bn = nn.BatchNorm1d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc(x.flatten(1)))


class LevelHeads(nn.Module):
    """Three FC heads: ``high`` (F6 -> coarsest layers), ``mid`` (F5), ``low`` (F4 -> finest layers).

    Args:
        in_features: flattened neck output size (``channels * s * s``; 8192 official).
        style_dims: 2C of every generator layer, coarse -> fine.
        layers_per_head: ``(high, mid, low)`` layer counts summing to ``len(style_dims)``
            (default: :func:`split_layers`).
    Output of ``forward(F4, F5, F6)``: list of ``L`` tensors ``[N, 2C_i]``, coarse -> fine.
    """

    def __init__(self, in_features: int, style_dims: Sequence[int],
                 layers_per_head: Sequence[int] | None = None):
        super().__init__()
        style_dims = [int(d) for d in style_dims]
        counts = tuple(layers_per_head) if layers_per_head is not None else split_layers(len(style_dims))
        if len(counts) != 3 or min(counts) < 1 or sum(counts) != len(style_dims):
            raise ValueError(f"layers_per_head must be three positive counts summing to the number of "
                             f"generator layers ({len(style_dims)}), got {list(counts)}")
        a, b = counts[0], counts[0] + counts[1]
        self.groups = [style_dims[:a], style_dims[a:b], style_dims[b:]]  # high, mid, low
        self.layer_ranges = [range(0, a), range(a, b), range(b, len(style_dims))]
        self.high = LevelHead(in_features, sum(self.groups[0]))
        self.mid = LevelHead(in_features, sum(self.groups[1]))
        self.low = LevelHead(in_features, sum(self.groups[2]))

    def forward(self, f4: torch.Tensor, f5: torch.Tensor, f6: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for head, x, dims in ((self.high, f6, self.groups[0]), (self.mid, f5, self.groups[1]),
                              (self.low, f4, self.groups[2])):
            out.extend(torch.split(head(x), dims, dim=1))
        return out


@register_module_class
class GHFeatEncoder(HubMixin, nn.Module):
    """GH-Feat hierarchical encoder: image -> per-layer StyleGAN style codes (GH-Feat).

    Args:
        style_dims: 2C of every layer of the paired generator, coarse -> fine (``G.style_dims``);
            the official 256 generator has ``[1024]*8 + [512]*2 + [256]*2 + [128]*2``.
        backbone: "resnet18" | "resnet34" | "resnet50" (official) | "resnet101" (timm ResNets).
        input_size: square input size R the encoder is built for (256 official, 32 for MNIST).
        in_channels: image channels: 3 (RGB) or 1 (grayscale, e.g. ``mnist32``); the API edge
            converts user images to this count (gray repeated to RGB, RGB reduced to luminance).
        channels: base widths of the four ResNet stages (default: the standard (64, 128, 256, 512)).
        stem: "imagenet" (7x7 s2 + max-pool) or "small" (3x3 s1, no max-pool; for 32x32 inputs:
            R4 8x8, R5 4x4, R6 2x2).
        fpn_channels: FPN / SAM width (512 official).
        head_size: spatial size the SAM brings every map to before the FC heads; default R6's size
            (the official rule; 4 for 256 px with the ImageNet stem, 2 for 32 px with the small stem).
        layers_per_head: ``(R6, R5, R4)`` head layer counts; default :func:`split_layers`.
        official_tf: exact official TF arithmetic (TF 'SAME' padding, leaky-ReLU stem) so converted
            official weights reproduce the official outputs (ResNet-50/101, ImageNet stem only).
        generator_name: registry name of the paired generator (e.g. "stylegan-ffhq256").
        alignment: how inputs must be aligned/cropped (shown in ``input_spec``).

    ``forward(x)``: ``x [N, in_channels, R, R]`` float in [-1, 1] -> packed ``[N, L, 2*C_max]``
    (narrower codes tiled to the widest; only the first 2C_i entries of layer i are meaningful).
    ``forward_layers(x)``: list of ``L`` tensors ``[N, 2C_i]``, coarse (layer 0) -> fine.
    """

    validate_inputs = True  # set False (e.g. under torch.compile) to skip the data-dependent checks

    @register_to_config
    def __init__(self, style_dims: Sequence[int] = tuple(OFFICIAL_256_STYLE_DIMS), backbone: str = "resnet50",
                 input_size: int = 256, in_channels: int = 3, channels: Sequence[int] | None = None,
                 stem: str = "imagenet", fpn_channels: int = 512,
                 head_size: int | None = None, layers_per_head: Sequence[int] | None = None,
                 official_tf: bool = False, generator_name: str | None = None,
                 alignment: str | None = None):
        super().__init__()
        style_dims = [int(d) for d in style_dims]
        if not style_dims or min(style_dims) < 1:
            raise ValueError(f"style_dims must be a non-empty list of positive widths, got {style_dims}")
        self.backbone = HierarchicalBackbone(backbone, channels or (64, 128, 256, 512), stem, in_channels,
                                             official_tf)
        sizes = self.backbone.feature_sizes(int(input_size))
        if sizes[2] < 1 or input_size < 8:
            raise ValueError(f"input_size {input_size} is too small for stem {stem!r}")
        self.head_size = int(head_size or sizes[2])
        self.neck = FPNSAMNeck(self.backbone.out_channels, fpn_channels, self.head_size)
        self.heads = LevelHeads(fpn_channels * self.head_size ** 2, style_dims, layers_per_head)

        self.style_dims = style_dims
        self.num_layers = len(style_dims)
        self.style_dim_max = max(style_dims)
        self.input_size = int(input_size)
        self.in_channels = int(in_channels)
        self.generator_name = generator_name
        self.feature_sizes = sizes
        colour = {1: "grayscale", 3: "RGB"}.get(self.in_channels, f"{self.in_channels} channels")
        self.input_spec = {"size": self.input_size, "range": "[-1, 1]", "channels": self.in_channels,
                           "layout": f"NCHW, {colour}, float",
                           "alignment": alignment or "none (any image resized to the input size)"}

    # -- checks ---------------------------------------------------------------------------------
    def _check_input(self, x) -> torch.Tensor:
        R, C = self.input_size, self.in_channels
        expected = f"[N, {C}, {R}, {R}] float in [-1, 1]"
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"GHFeatEncoder expects a torch.Tensor {expected}, got {type(x).__name__}; "
                            "use ghfeat.load_images() / ghfeat.extract() for PIL images, paths or numpy")
        if not x.is_floating_point():
            raise TypeError(f"GHFeatEncoder expects a floating-point tensor {expected}, got dtype {x.dtype}; "
                            "for uint8 images in [0, 255] use x.float() / 127.5 - 1")
        if x.ndim != 4:
            raise ValueError(f"GHFeatEncoder expects a batch {expected}, got shape {tuple(x.shape)}"
                             + ("; add a batch dimension with x[None]" if x.ndim == 3 else ""))
        if x.shape[1] != C:
            hint = "; replicate grayscale with x.expand(-1, 3, -1, -1)" if x.shape[1] == 1 and C == 3 else ""
            raise ValueError(f"GHFeatEncoder expects {C} channels {expected}, got shape {tuple(x.shape)}"
                             f"{hint} (channels_first NCHW; permute NHWC with x.permute(0, 3, 1, 2))")
        if x.shape[2] != R or x.shape[3] != R:
            raise ValueError(f"this encoder was built for {R}x{R} inputs {expected}, got "
                             f"{x.shape[2]}x{x.shape[3]}; resize/crop first (alignment: "
                             f"{self.input_spec['alignment']})")
        if self.validate_inputs and x.numel():
            lo, hi = torch.aminmax(x.detach())
            lo, hi = float(lo), float(hi)
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError("GHFeatEncoder input contains NaN or Inf values")
            if lo < -2.0 or hi > 2.0:
                raise ValueError(f"GHFeatEncoder expects values in [-1, 1], got [{lo:.3g}, {hi:.3g}]; "
                                 "for images in [0, 255] use x / 127.5 - 1, in [0, 1] use x * 2 - 1 "
                                 "(set encoder.validate_inputs = False to skip this check)")
        return x

    # -- forward --------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Backbone feature maps ``[R4, R5, R6]`` (e.g. ``[N, 1024, 16, 16]``, ``[N, 2048, 8, 8]``,
        ``[N, 2048, 4, 4]`` for the official config)."""
        return self.backbone(self._check_input(x))

    def extract(self, images, levels=None, **kwargs):
        """GH-Feat of ``images`` at paper ``levels`` (see :func:`ghfeat.extract`)."""
        from ..api import extract
        return extract(images, levels, model=self, **kwargs)

    def forward_layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x [N, C, R, R]`` in [-1, 1] -> list of ``L`` style codes ``[N, 2C_i]``, layer 0 (coarse)
        first. Level ``k`` (paper numbering, 1 = finest) is element ``L - k``."""
        f4, f5, f6 = self.neck(self.forward_features(x))
        return self.heads(f4, f5, f6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [N, C, R, R]`` in [-1, 1] -> packed styles ``[N, L, style_dim_max]`` float."""
        return pack_styles(self.forward_layers(x), self.style_dim_max)

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, num_layers={self.num_layers}, "
                f"layers_per_head={[len(r) for r in self.heads.layer_ranges]}, "
                f"generator_name={self.generator_name!r}")
