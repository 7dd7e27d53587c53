"""Image editing with GH-Feat (paper Sec. 4.3): code mixing, global and local editing,
harmonization, interpolation.

Codes here are *packed* GH-Feat codes ``[N, L, 2*C_max]`` (layer 0 = coarse first; what
``ghfeat.api.encode`` and the encoder return). Levels follow the paper: level ``k`` (1 = finest)
is generator layer ``L - k``. Images are ``[N, 3, R, R]`` float in [-1, 1]; image arguments also
accept anything ``ghfeat.load_images`` does. Image-level functions return float32 in [-1, 1]
(clamped), on the input's device.

* :func:`mix_codes` - the content's codes with ``levels`` taken from a style (style mixing).
* :func:`sample_codes`, :func:`global_edit` - random codes from the generator's own prior
  (``z -> mapping -> w -> per-layer affine``), swapped in at some levels (paper Fig. 4).
* :func:`local_edit` - the paper's local editing (Fig. 5): "instead of directly swapping
  features, we exchange a certain region of the spatial feature map at some certain level". The
  generator runs twice, once with the content's codes and once with the reference's; at each
  selected level the content's feature map (output of layer ``L - k``) is replaced by the
  reference's inside a spatial mask, and synthesis continues with the content's codes.
* :func:`harmonize` - the paper's harmonization (Fig. 6): paste a patch onto a background, encode
  the stitched image and decode it; optionally keep some levels from the background's codes.
* :func:`interpolate` - linear interpolation between codes (all levels or some).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._codes import check_packed, mix_codes
from ._models import eval_mode, model_device, resolve_encoder, resolve_generator, style_dims_of
from .api import decode, encode, load_images, parse_levels

__all__ = ["mix_codes", "sample_codes", "global_edit", "local_edit", "local_edit_codes", "harmonize",
           "paste_patch", "interpolate"]


@torch.no_grad()
def sample_codes(generator: nn.Module, n: int, *, seed: int | None = None,
                 truncation_psi: float | None = 0.7) -> torch.Tensor:
    """Random GH-Feat codes from the generator's prior: ``z ~ N(0, I) -> w -> A_i(w)`` per layer.

    ``truncation_psi`` (default 0.7, the official sampling value; None = off) pulls w towards the
    tracked average on the generator's truncation layers. Returns packed ``[n, L, 2*C_max]``
    float32 on the generator's device.
    """
    from .models.generator import pack_styles

    g = torch.Generator().manual_seed(seed) if seed is not None else None
    dev = model_device(generator)
    with eval_mode(generator):
        z = torch.randn(n, generator.z_dim, generator=g).to(dev)
        w_plus = generator.mapping(z).unsqueeze(1).repeat(1, generator.num_layers, 1)
        if truncation_psi is not None and truncation_psi != 1:
            w_plus = generator.truncate(w_plus, truncation_psi, generator.truncation_cutoff)
        styles = generator.styles_from_w(w_plus)
    return pack_styles(styles, generator.style_dim_max).float()


def global_edit(images, levels, encoder="mnist32", generator=None, *, seed: int | None = None,
                truncation_psi: float | None = 0.7, input_range=None, resize: bool = False,
                pretrained: bool = True) -> torch.Tensor:
    """Global editing (paper Fig. 4): each image's codes at ``levels`` are replaced by randomly
    sampled ones (:func:`sample_codes`). Returns ``[N, 3, R, R]`` float32 in [-1, 1]."""
    enc = resolve_encoder(encoder, pretrained, None)
    gen = resolve_generator(generator, enc, pretrained, None)
    codes = encode(images, enc, input_range=input_range, resize=resize, progress=False)
    rand = sample_codes(gen, codes.shape[0], seed=seed, truncation_psi=truncation_psi).to(codes.device)
    return decode(mix_codes(codes, rand, levels), gen, progress=False).clamp(-1, 1)


# ------------------------------------------------------------------------------------------------
# Local editing
# ------------------------------------------------------------------------------------------------

def _prepare_mask(mask, n: int, resolution: int, device) -> torch.Tensor:
    """``[H, W]`` / ``[N or 1, H, W]`` / ``[N or 1, 1, H, W]`` in [0, 1] (bool ok) -> ``[N or 1, 1, H, W]``
    float32."""
    if not isinstance(mask, torch.Tensor):
        import numpy as np
        mask = torch.as_tensor(np.asarray(mask))
    if mask.is_complex():
        raise TypeError("mask must be real (bool or float in [0, 1])")
    m = mask.to(device=device, dtype=torch.float32)
    if m.ndim == 2:
        m = m[None, None]
    elif m.ndim == 3:          # [1, H, W] or [N, H, W]
        m = m[:, None]
    if m.ndim != 4 or m.shape[1] != 1 or m.shape[0] not in (1, n):
        raise ValueError(f"mask must be [H, W], [1, H, W] or [N, 1, H, W] (N = {n}), got {tuple(mask.shape)}")
    if not torch.isfinite(m).all() or m.min() < 0 or m.max() > 1:
        raise ValueError("mask values must lie in [0, 1] (1 = take the reference / patch)")
    if m.shape[-2:] != (resolution, resolution):
        raise ValueError(f"mask is {m.shape[-2]}x{m.shape[-1]} but the images are {resolution}x{resolution}")
    return m


def _mask_at(m: torch.Tensor, r: int) -> torch.Tensor:
    """Mask resized to a layer's ``r x r`` feature map (area average down, bilinear up)."""
    if m.shape[-1] == r:
        return m
    if m.shape[-1] > r:
        return F.adaptive_avg_pool2d(m, r)
    return F.interpolate(m, size=(r, r), mode="bilinear", align_corners=False)


def local_edit_codes(codes: torch.Tensor, ref_codes: torch.Tensor, mask, levels, generator: nn.Module, *,
                     mode: str = "feature") -> torch.Tensor:
    """Local editing on codes; see :func:`local_edit`. Returns ``[N, 3, R, R]`` float32, unclamped.

    ``codes``: ``[N, L, D]``; ``ref_codes``: ``[N, L, D]`` or ``[1, L, D]``; ``mask`` at image size R.
    """
    L = generator.num_layers
    check_packed(codes, "codes", L)
    check_packed(ref_codes, "ref_codes", L)
    if ref_codes.shape[0] not in (1, codes.shape[0]):
        raise ValueError(f"ref_codes batch {ref_codes.shape[0]} must be 1 or {codes.shape[0]}")
    if mode not in ("feature", "image"):
        raise ValueError(f"mode must be 'feature' (paper: swap a region of the feature map) or 'image' "
                         f"(mix codes, then paste pixels), got {mode!r}")
    lv = parse_levels(levels, L)
    n, R = codes.shape[0], generator.resolution
    dev, out_dev = model_device(generator), codes.device
    m = _prepare_mask(mask, n, R, dev)
    y = codes.to(dev, torch.float32)
    yr = ref_codes.to(dev, torch.float32).expand(n, -1, -1)
    if mode == "image":
        mixed = decode(mix_codes(y, yr, lv), generator, progress=False)
        base = decode(y, generator, progress=False)
        return (m * mixed + (1 - m) * base).to(out_dev)

    syn = generator.synthesis
    dims = style_dims_of(generator)
    swap = {L - k for k in lv}
    last = max(swap)
    with eval_mode(generator), torch.inference_mode():
        x = syn.const.expand(n, -1, -1, -1)
        xr = x
        for i, layer in enumerate(syn.layers):
            x = layer(x, y[:, i, :dims[i]], False)
            if i <= last:
                xr = layer(xr, yr[:, i, :dims[i]], False)
            if i in swap:
                mi = _mask_at(m, x.shape[-1])
                x = mi * xr + (1 - mi) * x
        img = syn.to_rgb(x)
    return img.float().to(out_dev)


def local_edit(images, reference, mask, levels, encoder="mnist32", generator=None, *, mode: str = "feature",
               seed: int | None = None, truncation_psi: float | None = 0.7, input_range=None,
               resize: bool = False, pretrained: bool = True) -> torch.Tensor:
    """Local editing (paper Sec. 4.3.2, Fig. 5): change only a region of the image.

    Args:
        images: the images to edit (N of them; anything ``load_images`` accepts).
        reference: images to take the region from (N, or 1 for all), or None to use randomly
            sampled codes (:func:`sample_codes` with ``seed`` / ``truncation_psi``), as in Fig. 5.
        mask: ``[R, R]``, ``[1, R, R]`` or ``[N, 1, R, R]`` in [0, 1] (bool ok) at the image size;
            1 = take the reference. It is averaged down to each selected layer's resolution.
        levels: the level(s) at which the feature map is swapped (one level is the paper's use).
        mode: ``"feature"`` (default, the paper): at each selected level the output feature map of
            layer ``L - k`` is replaced by the reference's inside the mask, then synthesis continues
            with the content's codes. ``"image"``: decode the content with the reference's codes at
            ``levels`` (style mixing) and paste it into the reconstruction with the mask in pixels.
    Returns:
        ``[N, 3, R, R]`` float32 in [-1, 1]. A zero mask gives exactly the reconstruction; a full
        mask at level 1 (the last layer) gives exactly the reference's reconstruction.
    """
    enc = resolve_encoder(encoder, pretrained, None)
    gen = resolve_generator(generator, enc, pretrained, None)
    codes = encode(images, enc, input_range=input_range, resize=resize, progress=False)
    if reference is None:
        ref = sample_codes(gen, codes.shape[0], seed=seed, truncation_psi=truncation_psi).to(codes.device)
    else:
        ref = encode(reference, enc, input_range=input_range, resize=resize, progress=False).to(codes.device)
    return local_edit_codes(codes, ref, mask, levels, gen, mode=mode).clamp(-1, 1)


# ------------------------------------------------------------------------------------------------
# Harmonization
# ------------------------------------------------------------------------------------------------

def paste_patch(background: torch.Tensor, patch: torch.Tensor, top: int, left: int):
    """Crop-and-paste: put ``patch [N or 1, 3, h, w]`` onto ``background [N, 3, R, R]`` at
    ``(top, left)``. Returns ``(composite [N, 3, R, R], mask [N, 1, R, R])`` (1 where pasted).
    Anything else :func:`ghfeat.load_images` accepts (paths, PIL, numpy) is converted to [-1, 1] first."""
    background = background if isinstance(background, torch.Tensor) else load_images(background)
    patch = patch if isinstance(patch, torch.Tensor) else load_images(patch)
    for name, v in (("top", top), ("left", left)):
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise TypeError(f"{name} must be an int, got {v!r}")
    if background.ndim != 4 or patch.ndim != 4:
        raise ValueError("background and patch must be [N, 3, H, W] tensors (use ghfeat.load_images first)")
    n, c, H, W = background.shape
    h, w = patch.shape[-2:]
    if not (0 <= top and 0 <= left and top + h <= H and left + w <= W):
        raise ValueError(f"a {h}x{w} patch at (top={top}, left={left}) does not fit in {H}x{W}")
    if patch.shape[0] not in (1, n):
        raise ValueError(f"patch batch {patch.shape[0]} must be 1 or {n}")
    comp = background.clone()
    comp[:, :, top:top + h, left:left + w] = patch.to(comp)
    mask = torch.zeros(n, 1, H, W, device=background.device)
    mask[:, :, top:top + h, left:left + w] = 1
    return comp, mask


def harmonize(background, patch, mask, encoder="mnist32", generator=None, *, background_levels=None,
              return_composite: bool = False, input_range=None, resize: bool = False,
              pretrained: bool = True):
    """Image harmonization (paper Sec. 4.3.3, Fig. 6): paste, encode the stitched image, decode.

    Args:
        background: the images ``[N, 3, R, R]`` (anything ``load_images`` accepts).
        patch: images of the same size whose masked region is pasted (``N`` or 1); for a smaller
            patch build the composite with :func:`paste_patch` and pass it as ``background`` with a
            zero ``mask``.
        mask: ``[R, R]`` / ``[1, R, R]`` / ``[N, 1, R, R]`` in [0, 1]: 1 = take the patch.
        background_levels: optional levels whose codes come from the *background's* encoding
            instead of the composite's (e.g. the lowest levels to keep its colour tone). None (the
            paper) = the composite's codes everywhere.
        return_composite: also return the composite ``[N, 3, R, R]`` in [-1, 1].
    Returns:
        harmonized ``[N, 3, R, R]`` float32 in [-1, 1] (and the composite).
    """
    enc = resolve_encoder(encoder, pretrained, None)
    gen = resolve_generator(generator, enc, pretrained, None)
    size = getattr(enc, "input_spec", {}).get("size")
    bg = load_images(background, size=size, resize=resize, input_range=input_range)
    pt = load_images(patch, size=size, resize=resize, input_range=input_range).to(bg.device)
    if pt.shape[0] not in (1, bg.shape[0]):
        raise ValueError(f"patch batch {pt.shape[0]} must be 1 or {bg.shape[0]}")
    m = _prepare_mask(mask, bg.shape[0], bg.shape[-1], bg.device)
    comp = m * pt + (1 - m) * bg
    codes = encode(comp, enc, progress=False, input_range="[-1,1]")       # already converted
    if background_levels is not None:
        codes = mix_codes(codes, encode(bg, enc, progress=False, input_range="[-1,1]"), background_levels)
    out = decode(codes, gen, progress=False).clamp(-1, 1)
    return (out, comp) if return_composite else out


# ------------------------------------------------------------------------------------------------
# Interpolation
# ------------------------------------------------------------------------------------------------

def interpolate(codes_a: torch.Tensor, codes_b: torch.Tensor, steps: int, levels=None) -> torch.Tensor:
    """Linear interpolation ``(1 - t) a + t b`` for ``t = linspace(0, 1, steps)``.

    Args:
        codes_a, codes_b: packed codes ``[N, L, D]`` (``codes_b`` may be ``[1, L, D]``).
        steps: number of points (>= 2), both ends included.
        levels: interpolate only these levels (others stay ``codes_a``); None = all.
    Returns:
        ``[steps, N, L, D]``; ``[0]`` equals ``codes_a`` and ``[-1]`` equals ``codes_b`` on ``levels``.
        Decode a step with ``ghfeat.api.decode(out[i], generator)``.
    """
    check_packed(codes_a, "codes_a")
    check_packed(codes_b, "codes_b", codes_a.shape[1])
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an int >= 2, got {steps!r}")
    L = codes_a.shape[1]
    b = mix_codes(codes_a, codes_b, levels, L)
    t = torch.linspace(0, 1, steps, device=codes_a.device, dtype=codes_a.dtype).view(-1, 1, 1, 1)
    out = (1 - t) * codes_a + t * b
    out[-1] = b          # exact end point
    return out
