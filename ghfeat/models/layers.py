"""StyleGAN v1 building blocks, in plain PyTorch (no custom CUDA ops).

Equalized learning rate: parameters are stored *before* the run-time scale (``weight_gain``), as
the official TensorFlow code stores them, so official weights load as they are.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)


class EqualizedLinear(nn.Module):
    """Dense layer with equalized learning rate.

    ``y = x @ (W * gain / sqrt(in) * lr_mul).T + b * lr_mul``; W is initialised N(0, 1/lr_mul).

    Args:
        in_features, out_features: sizes.
        gain: He gain (sqrt(2) before a leaky ReLU, 1 for linear outputs).
        lr_mul: learning-rate multiplier (0.01 in the mapping network).
        bias_init: initial value of the (scaled) bias.
    Shapes: ``[N, in_features] -> [N, out_features]``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, gain: float = 1.0,
                 lr_mul: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_mul)) if bias else None
        self.weight_gain = gain / math.sqrt(in_features) * lr_mul
        self.bias_gain = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        b = None if self.bias is None else self.bias * self.bias_gain
        return F.linear(x, w.to(x.dtype), None if b is None else b.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in={self.weight.shape[1]}, out={self.weight.shape[0]}, gain_total={self.weight_gain:.4g}"


class EqualizedConv2d(nn.Module):
    """Conv2d with equalized learning rate, 'same' padding, optional fused 2x up/down sampling.

    Args:
        in_channels, out_channels, kernel_size: as in ``nn.Conv2d`` (odd kernel, stride 1).
        gain: He gain.
        bias: add a bias after the conv (set False where the bias is applied later, as in the
            synthesis layers, where it comes after the noise).
        up: "fused" = transposed conv with the kernel widened to 4x4 (official, >= 128 px; as TF's
            ``conv2d_transpose`` this equals nearest upsampling then a conv with the *flipped*
            kernel); "nearest" = nearest 2x upsampling then the conv; None = no upsampling.
        down: "fused" = stride-2 conv with the widened, averaged kernel (official, >= 128 px);
            "avgpool" = conv then 2x2 average pooling; None = no downsampling.
    Shapes: ``[N, in, H, W] -> [N, out, H', W']`` with H' = 2H (up), H/2 (down) or H.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float = SQRT2,
                 bias: bool = True, up: str | None = None, down: str | None = None):
        super().__init__()
        if up not in (None, "fused", "nearest") or down not in (None, "fused", "avgpool"):
            raise ValueError(f"up must be None/'fused'/'nearest' and down None/'fused'/'avgpool', got {up!r}, {down!r}")
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.up, self.down, self.padding = up, down, kernel_size // 2

    @staticmethod
    def _widen(w: torch.Tensor) -> torch.Tensor:
        """k x k kernel -> (k+1) x (k+1): the sum of its four 1-pixel shifts (official trick)."""
        w = F.pad(w, (1, 1, 1, 1))
        return w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = (self.weight * self.weight_gain).to(x.dtype)
        if self.up == "fused":
            x = F.conv_transpose2d(x, self._widen(w).transpose(0, 1), stride=2, padding=1)
        elif self.down == "fused":
            x = F.conv2d(x, self._widen(w) * 0.25, stride=2, padding=1)
        else:
            if self.up == "nearest":
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = F.conv2d(x, w, padding=self.padding)
            if self.down == "avgpool":
                x = F.avg_pool2d(x, 2)
        if self.bias is not None:
            x = x + self.bias.to(x.dtype).view(1, -1, 1, 1)
        return x

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"{i}, {o}, kernel_size={k}, up={self.up}, down={self.down}"


class Blur(nn.Module):
    """Depthwise [1, 2, 1] x [1, 2, 1] / 16 low-pass filter, 'same' padding. ``[N,C,H,W] -> same``."""

    def __init__(self):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (k[:, None] * k[None, :] / 16.0)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        return F.conv2d(x, self.kernel.to(x.dtype).expand(c, 1, 3, 3), padding=1, groups=c)


class NoiseInjection(nn.Module):
    """``x + noise * weight[c]``: noise is a fixed per-layer buffer ``[1, 1, R, R]`` (GH-Feat
    decoding uses it) or fresh N(0, 1) per sample when ``randomize`` is True. Weight starts at 0."""

    def __init__(self, channels: int, resolution: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels))
        self.register_buffer("noise", torch.randn(1, 1, resolution, resolution))

    def forward(self, x: torch.Tensor, randomize: bool) -> torch.Tensor:
        if randomize:
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        else:
            noise = self.noise.to(x.dtype)
        return x + noise * self.weight.to(x.dtype).view(1, -1, 1, 1)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise each sample's vector (dim 1) to unit RMS."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def instance_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-sample, per-channel zero mean and unit RMS over H, W (no affine), eps 1e-8 as official."""
    x = x - x.mean(dim=(2, 3), keepdim=True)
    return x * torch.rsqrt(x.pow(2).mean(dim=(2, 3), keepdim=True) + eps)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4, num_features: int = 1) -> torch.Tensor:
    """Append the minibatch standard deviation as extra channels (official StyleGAN layout:
    sample i is grouped with samples i % M, M = N / group). ``[N,C,H,W] -> [N,C+F,H,W]``."""
    n, c, h, w = x.shape
    if n == 0:
        return torch.cat([x, x.new_zeros(0, num_features, h, w)], dim=1)
    g = min(group_size, n)
    if n % g:
        raise ValueError(f"batch size {n} must be divisible by the minibatch-stddev group size {g}")
    # at least fp32 (half precision is upcast for the statistics); fp64 stays fp64
    y = x.to(torch.promote_types(x.dtype, torch.float32)).reshape(g, -1, num_features, c // num_features, h, w)
    y = y - y.mean(dim=0)
    y = (y.pow(2).mean(dim=0) + 1e-8).sqrt()          # [M, F, c, H, W]
    y = y.mean(dim=(2, 3, 4))                            # [M, F]
    y = y.reshape(-1, num_features, 1, 1).repeat(g, 1, h, w).to(x.dtype)
    return torch.cat([x, y], dim=1)
