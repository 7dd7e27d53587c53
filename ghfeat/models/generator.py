"""StyleGAN v1 (style-based, AdaIN) generator, as in the official TensorFlow release.

Layers are indexed ``0..L-1`` from coarse (4x4) to fine; each resolution has two layers, so a
256x256 generator has L = 14 and a 32x32 one L = 8. Layer ``i`` runs at resolution
``4 * 2 ** (i // 2)`` with ``C_i`` channels and consumes a style code ``y_i = (y_s, y_b)`` of
``2 * C_i`` numbers, applied as ``x * (y_s + 1) + y_b`` after instance normalisation. Normally
``y_i = A_i(w_i)`` (the per-layer affine); GH-Feat feeds ``y`` directly.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..hub import HubMixin
from ._base import register_module_class, register_to_config
from .layers import (SQRT2, Blur, EqualizedConv2d, EqualizedLinear, NoiseInjection, instance_norm,
                     pixel_norm)

RESOLUTIONS = (8, 16, 32, 64, 128, 256, 512, 1024)


def num_features(stage: int, fmap_base: int, fmap_max: int, fmap_decay: float = 1.0) -> int:
    """Official channel rule ``nf(stage) = min(fmap_base / 2**(stage * decay), fmap_max)``;
    resolution ``2**r`` uses ``nf(r - 1)``."""
    n = min(int(fmap_base / (2.0 ** (stage * fmap_decay))), fmap_max)
    if n < 1:
        raise ValueError(f"fmap_base={fmap_base} leaves no channels at stage {stage}; raise fmap_base "
                         f"(at least 2**{stage})")
    return n


def check_resolution(resolution: int) -> int:
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be a power of two in {RESOLUTIONS}, got {resolution!r}")
    return int(math.log2(resolution))


def check_codes(x, name: str, expected: str, ndim: int, last_dims: Sequence[int],
                finite: bool = True) -> torch.Tensor:
    """Validate a latent/style tensor: type, dtype, rank, trailing dims and (``finite=True``; a
    device sync on GPU) finiteness."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {expected}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor of shape {expected}, got dtype {x.dtype}; "
                        "convert with .float()")
    if x.ndim != ndim or tuple(x.shape[1:]) != tuple(last_dims):
        raise ValueError(f"{name} must have shape {expected}, got {tuple(x.shape)}")
    if finite and x.numel() and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf values (set generator.validate_inputs = False "
                         "to skip this check)")
    return x


def pack_styles(styles: Sequence[torch.Tensor], style_dim_max: int) -> torch.Tensor:
    """Per-layer codes ``[N, 2C_i]`` -> packed ``[N, L, style_dim_max]``; narrower codes are tiled
    (repeated) to the widest width, as the official GH-Feat encoder outputs them."""
    out = []
    for y in styles:
        d = y.shape[1]
        if style_dim_max % d:
            raise ValueError(f"style width {d} does not divide the packed width {style_dim_max}")
        out.append(y.repeat(1, style_dim_max // d))
    return torch.stack(out, dim=1)


def unpack_styles(packed: torch.Tensor, style_dims: Sequence[int]) -> list[torch.Tensor]:
    """Packed ``[N, L, D]`` -> list of ``[N, 2C_i]`` (the first ``2C_i`` entries of each layer)."""
    return [packed[:, i, :d] for i, d in enumerate(style_dims)]


class MappingNetwork(nn.Module):
    """z -> w: pixel norm, then ``num_layers`` equalized dense layers with leaky ReLU 0.2 and a
    0.01 learning-rate multiplier. ``[N, z_dim] -> [N, w_dim]``."""

    def __init__(self, z_dim: int = 512, w_dim: int = 512, num_layers: int = 8, hidden_dim: int | None = None,
                 lr_mul: float = 0.01, normalize_z: bool = True):
        super().__init__()
        hidden_dim = hidden_dim or w_dim
        dims = [z_dim] + [hidden_dim] * (num_layers - 1) + [w_dim]
        self.layers = nn.ModuleList(EqualizedLinear(dims[i], dims[i + 1], gain=SQRT2, lr_mul=lr_mul)
                                    for i in range(num_layers))
        self.normalize_z = normalize_z
        self.act = nn.LeakyReLU(0.2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(z) if self.normalize_z else z
        for layer in self.layers:
            x = self.act(layer(x))
        return x


class SynthesisLayer(nn.Module):
    """One synthesis layer: (conv) -> (blur) -> noise -> bias -> lrelu -> instance norm -> style.

    Layer 0 has no conv (its input is the learned constant). ``style`` is the affine A_i that
    maps ``w [N, w_dim]`` to ``y [N, 2C]``.
    """

    def __init__(self, in_channels: int, out_channels: int, resolution: int, w_dim: int,
                 conv: str | None, blur: bool):
        super().__init__()
        if conv is None:
            self.conv = None
        else:  # "plain" | "nearest" | "fused"
            self.conv = EqualizedConv2d(in_channels, out_channels, 3, gain=SQRT2, bias=False,
                                        up=None if conv == "plain" else conv)
        self.blur = Blur() if (blur and conv in ("nearest", "fused")) else None
        self.noise = NoiseInjection(out_channels, resolution)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.act = nn.LeakyReLU(0.2)
        self.style = EqualizedLinear(w_dim, 2 * out_channels, gain=1.0)
        self.channels = out_channels

    def forward(self, x: torch.Tensor, y: torch.Tensor, randomize_noise: bool) -> torch.Tensor:
        if self.conv is not None:
            x = self.conv(x)
        if self.blur is not None:
            x = self.blur(x)
        x = self.noise(x, randomize_noise)
        x = self.act(x + self.bias.to(x.dtype).view(1, -1, 1, 1))
        x = instance_norm(x)
        c = self.channels
        return x * (y[:, :c, None, None] + 1) + y[:, c:, None, None]


class SynthesisNetwork(nn.Module):
    """Styles -> image. Input: ``w_plus [N, L, w_dim]`` or style codes ``y`` (packed
    ``[N, L, 2*C_max]`` or a list of ``[N, 2C_i]``). Output ``[N, C, R, R]``, about [-1, 1]
    (strictly inside it with ``final_tanh``).
    ``validate_inputs = False`` skips the NaN/Inf check of the codes (a GPU sync per call)."""

    validate_inputs = True

    def __init__(self, resolution: int, w_dim: int = 512, num_channels: int = 3, fmap_base: int = 8192,
                 fmap_max: int = 512, fmap_decay: float = 1.0, fused_scale: bool | str = "auto",
                 blur: bool = True, final_tanh: bool = False):
        super().__init__()
        log2 = check_resolution(resolution)
        self.final_tanh = bool(final_tanh)
        nf = lambda stage: num_features(stage, fmap_base, fmap_max, fmap_decay)  # noqa: E731
        self.resolution, self.w_dim = resolution, w_dim
        self.const = nn.Parameter(torch.ones(1, nf(1), 4, 4))
        layers = [SynthesisLayer(nf(1), nf(1), 4, w_dim, None, blur),
                  SynthesisLayer(nf(1), nf(1), 4, w_dim, "plain", blur)]
        for r in range(3, log2 + 1):
            res = 2 ** r
            fused = (res >= 128) if fused_scale == "auto" else bool(fused_scale)
            layers.append(SynthesisLayer(nf(r - 2), nf(r - 1), res, w_dim, "fused" if fused else "nearest", blur))
            layers.append(SynthesisLayer(nf(r - 1), nf(r - 1), res, w_dim, "plain", blur))
        self.layers = nn.ModuleList(layers)
        self.to_rgb = EqualizedConv2d(nf(log2 - 1), num_channels, 1, gain=1.0)
        self.style_dims = [2 * layer.channels for layer in layers]
        self.layer_resolutions = [4 * 2 ** (i // 2) for i in range(len(layers))]

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def styles_from_w(self, w_plus: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer affine: ``w_plus [N, L, w_dim]`` -> list of ``y_i [N, 2C_i]``."""
        return [layer.style(w_plus[:, i]) for i, layer in enumerate(self.layers)]

    def _as_style_list(self, styles, finite: bool = True) -> list[torch.Tensor]:
        L, dmax = self.num_layers, max(self.style_dims)
        if isinstance(styles, torch.Tensor):
            check_codes(styles, "styles", f"[N, {L}, {dmax}] (packed GH-Feat codes)", 3, (L, dmax), finite)
            return unpack_styles(styles, self.style_dims)
        if not isinstance(styles, (list, tuple)) or len(styles) != L:
            got = len(styles) if isinstance(styles, (list, tuple)) else type(styles).__name__
            raise ValueError(f"styles must be a packed [N, {L}, {dmax}] tensor or a list of {L} "
                             f"per-layer tensors [N, 2C_i] (2C_i = {self.style_dims}), got {got}")
        out = []
        for i, (y, d) in enumerate(zip(styles, self.style_dims)):
            out.append(check_codes(y, f"styles[{i}] (layer {i})", f"[N, {d}]", 2, (d,), finite))
        if len({y.shape[0] for y in out}) != 1:
            raise ValueError("all per-layer style codes must have the same batch size")
        return out

    def forward(self, w_plus: torch.Tensor | None = None, styles=None, randomize_noise: bool = False,
                validate: bool | None = None) -> torch.Tensor:
        """``validate``: check the codes for NaN/Inf (default ``self.validate_inputs``)."""
        if (w_plus is None) == (styles is None):
            raise ValueError("pass exactly one of w_plus [N, L, w_dim] or styles (GH-Feat codes)")
        finite = self.validate_inputs if validate is None else validate
        if w_plus is not None:
            check_codes(w_plus, "w_plus", f"[N, {self.num_layers}, {self.w_dim}]", 3, (self.num_layers, self.w_dim),
                        finite)
            ys = self.styles_from_w(w_plus)
        else:
            ys = self._as_style_list(styles, finite)
        if ys[0].device != self.const.device:
            raise ValueError(f"codes are on {ys[0].device} but the generator is on {self.const.device}; "
                             "move them with .to(generator.device)")
        x = self.const.to(ys[0].dtype).expand(ys[0].shape[0], -1, -1, -1)
        for layer, y in zip(self.layers, ys):
            x = layer(x, y, randomize_noise)
        x = self.to_rgb(x)
        return torch.tanh(x) if self.final_tanh else x


def _check_generator_args(**kw) -> None:
    """Every number a generator is built from: the right type, finite, in range (a NaN multiplier or a
    negative layer count would build a model that silently computes garbage)."""
    import math
    errors = []
    for name in ("z_dim", "w_dim", "mapping_layers", "fmap_base", "fmap_max", "num_channels"):
        v = kw[name]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            errors.append(f"{name} must be an integer >= 1, got {v!r}")
    v = kw["truncation_cutoff"]
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        errors.append(f"truncation_cutoff must be an integer >= 0 (layers truncated), got {v!r}")
    checks = {"mapping_lr_mul": (lambda x: x > 0, "> 0"), "fmap_decay": (lambda x: x >= 0, ">= 0"),
              "truncation_psi": (lambda x: True, ""), "w_avg_beta": (lambda x: 0 <= x <= 1, "in [0, 1]"),
              "style_mixing_prob": (lambda x: 0 <= x <= 1, "in [0, 1]")}
    for name, (ok, rule) in checks.items():
        v = kw[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not ok(v):
            errors.append(f"{name} must be a finite number{' ' + rule if rule else ''}, got {v!r}")
    if errors:
        raise ValueError("invalid StyleGANGenerator arguments: " + "; ".join(errors))


@register_module_class
class StyleGANGenerator(HubMixin, nn.Module):
    """StyleGAN v1 generator: mapping (z -> w), truncation, style mixing, synthesis.

    Args:
        resolution: output size, a power of two from 8 to 1024.
        z_dim, w_dim: latent sizes (512 official).
        mapping_layers: depth of the mapping network (8 official).
        mapping_lr_mul: its learning-rate multiplier (0.01).
        fmap_base, fmap_max, fmap_decay: channel rule ``min(fmap_base / 2**stage, fmap_max)``.
        num_channels: image channels (3 = RGB; 1 = grayscale, e.g. MNIST).
        truncation_psi, truncation_cutoff: the official sampling defaults (0.7 on the first 8
            layers), used by :meth:`sample`; ``forward`` truncates only when asked.
        w_avg_beta: decay of the tracked average ``w_avg`` (updated in training mode).
        style_mixing_prob: probability of mixing two latents per batch in training mode.
        fused_scale: "auto" (fused up-conv at >= 128 px, official), True or False.
        blur: [1, 2, 1] blur after every upsampling conv.
        final_tanh: ``tanh`` on the output (genforce's option; the official TF model has none).
    Output: images ``[N, num_channels, resolution, resolution]``, about [-1, 1] (no tanh unless
    ``final_tanh``).

    The codes a user passes (z, w, w+, styles) are checked for NaN/Inf at this edge only (not again
    inside); ``G.validate_inputs = False`` skips that check, which syncs the GPU on every call.
    """

    @register_to_config
    def __init__(self, resolution: int = 256, z_dim: int = 512, w_dim: int = 512, mapping_layers: int = 8,
                 mapping_lr_mul: float = 0.01, fmap_base: int = 8192, fmap_max: int = 512,
                 fmap_decay: float = 1.0, num_channels: int = 3, truncation_psi: float = 0.7,
                 truncation_cutoff: int = 8, w_avg_beta: float = 0.995, style_mixing_prob: float = 0.9,
                 fused_scale: bool | str = "auto", blur: bool = True, final_tanh: bool = False):
        super().__init__()
        _check_generator_args(z_dim=z_dim, w_dim=w_dim, mapping_layers=mapping_layers, fmap_base=fmap_base,
                              fmap_max=fmap_max, num_channels=num_channels, truncation_cutoff=truncation_cutoff,
                              mapping_lr_mul=mapping_lr_mul, fmap_decay=fmap_decay, truncation_psi=truncation_psi,
                              w_avg_beta=w_avg_beta, style_mixing_prob=style_mixing_prob)
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers, lr_mul=mapping_lr_mul)
        self.synthesis = SynthesisNetwork(resolution, w_dim, num_channels, fmap_base, fmap_max, fmap_decay,
                                          fused_scale, blur, final_tanh)
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.resolution, self.z_dim, self.w_dim, self.num_channels = resolution, z_dim, w_dim, num_channels
        self.truncation_psi, self.truncation_cutoff = truncation_psi, truncation_cutoff
        self.w_avg_beta, self.style_mixing_prob = w_avg_beta, style_mixing_prob

    @property
    def validate_inputs(self) -> bool:
        """Check the codes passed in for NaN/Inf (default True; False skips the GPU sync)."""
        return self.synthesis.validate_inputs

    @validate_inputs.setter
    def validate_inputs(self, value: bool) -> None:
        self.synthesis.validate_inputs = bool(value)

    # -- introspection -------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        """L: number of synthesis layers (= number of GH-Feat levels)."""
        return self.synthesis.num_layers

    @property
    def style_dims(self) -> list[int]:
        """Style-code width 2C_i of each layer, coarse (layer 0) to fine."""
        return list(self.synthesis.style_dims)

    @property
    def style_dim_max(self) -> int:
        return max(self.style_dims)

    @property
    def layer_resolutions(self) -> list[int]:
        return list(self.synthesis.layer_resolutions)

    @property
    def device(self) -> torch.device:
        return self.w_avg.device

    def style_affine(self, layer: int) -> EqualizedLinear:
        """The affine A_layer mapping ``w [N, w_dim]`` to ``y [N, 2C]`` (for editing)."""
        return self.synthesis.layers[layer].style

    def styles_from_w(self, w_plus: torch.Tensor) -> list[torch.Tensor]:
        """``w_plus [N, L, w_dim]`` -> list of style codes ``[N, 2C_i]``."""
        check_codes(w_plus, "w_plus", f"[N, {self.num_layers}, {self.w_dim}]", 3, (self.num_layers, self.w_dim),
                    self.validate_inputs)
        return self.synthesis.styles_from_w(w_plus)

    # -- latent handling -----------------------------------------------------------------------
    def truncate(self, w_plus: torch.Tensor, psi: float | None, cutoff: int | None = None) -> torch.Tensor:
        """``w_avg + psi * (w - w_avg)`` on layers ``< cutoff`` (default ``self.truncation_cutoff``);
        ``psi`` None or 1 returns ``w_plus`` unchanged."""
        if psi is None or psi == 1:
            return w_plus
        cutoff = self.truncation_cutoff if cutoff is None else cutoff
        coefs = torch.ones(self.num_layers, 1, device=w_plus.device, dtype=w_plus.dtype)
        coefs[:cutoff] = psi
        avg = self.w_avg.to(w_plus.dtype)
        return avg + (w_plus - avg) * coefs

    def mix(self, w_a: torch.Tensor, w_b: torch.Tensor, crossover: int) -> torch.Tensor:
        """w+ whose layers ``< crossover`` come from ``w_a`` and the rest from ``w_b`` (both ``[N, w_dim]``)."""
        L = self.num_layers
        out = w_a.unsqueeze(1).repeat(1, L, 1)
        out[:, crossover:] = w_b.unsqueeze(1)
        return out

    def forward(self, z: torch.Tensor, truncation_psi: float | None = None, truncation_cutoff: int | None = None,
                randomize_noise: bool = True, return_w: bool = False):
        """Sample images from ``z [N, z_dim]``.

        In training mode this tracks ``w_avg`` and applies style mixing (as the official code); in
        eval mode it is deterministic given z (except noise when ``randomize_noise``).
        Returns images ``[N, 3, R, R]`` (and ``w_plus [N, L, w_dim]`` with ``return_w``).
        """
        check_codes(z, "z", f"[N, {self.z_dim}]", 2, (self.z_dim,), self.validate_inputs)
        w = self.mapping(z)
        L = self.num_layers
        if self.training:
            with torch.no_grad():
                self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        w_plus = w.unsqueeze(1).repeat(1, L, 1)
        if self.training and self.style_mixing_prob > 0:
            # one crossover per batch (official), as tensors: no Python branch on a random draw,
            # so torch.compile traces one graph (the second latent is mapped either way)
            w2 = self.mapping(torch.randn_like(z))
            crossover = torch.randint(1, L, (), device=z.device)
            crossover = torch.where(torch.rand((), device=z.device) < self.style_mixing_prob, crossover, L)
            second = torch.arange(L, device=z.device).view(1, L, 1) >= crossover
            w_plus = torch.where(second, w2.unsqueeze(1), w_plus)
        w_plus = self.truncate(w_plus, truncation_psi, truncation_cutoff)
        img = self.synthesis(w_plus=w_plus, randomize_noise=randomize_noise, validate=False)
        return (img, w_plus) if return_w else img

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None, truncation_psi: float | None = None,
               randomize_noise: bool = True) -> torch.Tensor:
        """``n`` images with the official sampling truncation (``self.truncation_psi``) unless overridden."""
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        z = torch.randn(n, self.z_dim, generator=g).to(self.device)
        psi = self.truncation_psi if truncation_psi is None else truncation_psi
        return self(z, truncation_psi=psi, randomize_noise=randomize_noise)

    def generate(self, z: torch.Tensor | None = None, w: torch.Tensor | None = None,
                 w_plus: torch.Tensor | None = None, styles=None, truncation_psi: float | None = None,
                 truncation_cutoff: int | None = None, randomize_noise: bool = False) -> torch.Tensor:
        """Images from exactly one of: ``z [N, z_dim]``, ``w [N, w_dim]``, ``w_plus [N, L, w_dim]``,
        or GH-Feat ``styles`` (packed ``[N, L, 2*C_max]`` or list of ``[N, 2C_i]``). Style codes
        bypass mapping and truncation, and by default the stored noise is used (GH-Feat decoding)."""
        given = [k for k, v in dict(z=z, w=w, w_plus=w_plus, styles=styles).items() if v is not None]
        if len(given) != 1:
            raise ValueError(f"pass exactly one of z, w, w_plus, styles; got {given or 'none'}")
        if styles is not None:
            return self.synthesis(styles=styles, randomize_noise=randomize_noise)
        check = self.validate_inputs
        if z is not None:
            check_codes(z, "z", f"[N, {self.z_dim}]", 2, (self.z_dim,), check)
            w, check = self.mapping(z), False
        if w is not None:
            check_codes(w, "w", f"[N, {self.w_dim}]", 2, (self.w_dim,), check)
            w_plus, check = w.unsqueeze(1).repeat(1, self.num_layers, 1), False
        w_plus = self.truncate(w_plus, truncation_psi, truncation_cutoff)
        return self.synthesis(w_plus=w_plus, randomize_noise=randomize_noise, validate=check)
