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
* :func:`sefa_directions` - closed-form editing directions in y space from the generator's weights
  (the SeFa idea applied to the style codes), per level, no training or labels.
* :func:`supervised_direction` - a linear classifier's unit normal on labelled codes (InterFaceGAN).
* :func:`edit_codes`, :func:`edit` - move codes along a direction at some levels, decode a grid
  (rows = images, columns = strengths; strength 0 = the plain reconstruction).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._codes import check_packed, mix_codes, parse_levels
from ._models import eval_mode, get_model, model_device, resolve_encoder, resolve_generator, style_dims_of
from .api import decode, encode, load_images, save_grid

__all__ = ["mix_codes", "sample_codes", "global_edit", "local_edit", "local_edit_codes", "harmonize",
           "paste_patch", "interpolate", "consumer_weight", "sefa_directions", "supervised_direction", "edit_codes", "edit"]


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
                pretrained: bool = True, allow_mismatch: bool = False) -> torch.Tensor:
    """Global editing (paper Fig. 4): each image's codes at ``levels`` are replaced by randomly
    sampled ones (:func:`sample_codes`). Returns ``[N, 3, R, R]`` float32 in [-1, 1]."""
    enc = resolve_encoder(encoder, pretrained, None)
    gen = resolve_generator(generator, enc, pretrained, None, allow_mismatch)
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
               resize: bool = False, pretrained: bool = True, allow_mismatch: bool = False) -> torch.Tensor:
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
    gen = resolve_generator(generator, enc, pretrained, None, allow_mismatch)
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
              pretrained: bool = True, allow_mismatch: bool = False):
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
    gen = resolve_generator(generator, enc, pretrained, None, allow_mismatch)
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


# ------------------------------------------------------------------------------------------------
# Editing directions in y space
# ------------------------------------------------------------------------------------------------

def _as_generator(generator, pretrained: bool) -> nn.Module:
    if isinstance(generator, str):
        return get_model("generator", generator, pretrained)
    if not isinstance(generator, nn.Module) or not hasattr(generator, "synthesis"):
        raise TypeError(f"generator must be a registry name or a StyleGANGenerator, got {type(generator).__name__}")
    return generator


def consumer_weight(generator: nn.Module, level: int) -> torch.Tensor:
    """The weight that first mixes the channels of level ``level``'s modulated features.

    Layer ``i = L - level`` outputs ``h = norm(x) * (y_s + 1) + y_b``; the next thing that combines
    its channels is layer ``i + 1``'s 3x3 convolution (for the last layer, level 1: the 1x1 ToRGB
    conv). Returned as the effective (equalized-lr scaled) kernel ``[C_out, C_in, k, k]`` float64,
    ``C_in = C_i``. The upsampling of layer ``i + 1`` (nearest, or the fused transposed conv, which
    equals nearest then the flipped kernel) only repeats pixels, and blur / noise / bias come after
    the conv and act per output channel, so the raw kernel is the whole channel-mixing map.
    """
    syn = generator.synthesis
    L = syn.num_layers
    i = L - parse_levels(level, L)[0]
    conv = syn.to_rgb if i == L - 1 else syn.layers[i + 1].conv
    return conv.weight.detach().double().cpu() * conv.weight_gain


def sefa_directions(generator, level: int, *, part: str = "both", pretrained: bool = True):
    """Closed-form editing directions for one level (SeFa, Shen & Zhou 2021, applied to y codes).

    ``W`` is the level's :func:`consumer_weight` ``[C_out, C, k, k]``, read as the matrix
    ``[C_out * k * k, C]`` (each input channel's whole kernel is a column); the directions are the
    eigenvectors ``v`` (unit, in R^C) of ``M = W^T W = sum_taps W_tap^T W_tap``. Meaning: ``v^T M v``
    is the output energy of the conv for an input change ``v * g(p)`` (one spatially white pattern
    ``g`` in every channel), so the top ``v`` is the channel combination the next layer reacts to
    most, as SeFa's top direction is for the style affine. Both halves of ``y_i`` enter the
    modulated features as channel vectors (``y_s`` as ``norm(x) * v``, ``y_b`` as ``v``); ``part``
    says how ``v`` is lifted to the ``2C`` numbers of ``y_i = (y_s, y_b)``:
    ``"scale"`` -> ``(v, 0)``, ``"shift"`` -> ``(0, v)``, ``"both"`` (default) -> ``(v, v) / sqrt 2``.
    Exact for level 1 with ``"shift"`` (ToRGB is 1x1 and linear: the image changes by ``W v``);
    elsewhere the ranking is data-free, not exact (``norm(x)``'s channels are not one pattern; a
    constant shift meets a 3x3 conv as ``sum_taps W_tap``, then lrelu and instance norm).

    Returns:
        ``(directions [C, 2C] float32, eigenvalues [C] float64)``: row ``j`` is the ``j``-th direction
        (unit norm, rows orthonormal), sorted by eigenvalue, largest first; each eigenvector's sign is
        fixed so that its largest-magnitude entry is positive. For level 1 (ToRGB, ``C_out`` = 1 or 3)
        only the first ``C_out`` eigenvalues are non-zero: with ``part="shift"`` the other directions
        leave the image exactly unchanged.
    """
    if part not in ("both", "scale", "shift"):
        raise ValueError(f"part must be 'both', 'scale' (y_s) or 'shift' (y_b), got {part!r}")
    gen = _as_generator(generator, pretrained)
    w = consumer_weight(gen, level)
    c = w.shape[1]
    a = w.permute(0, 2, 3, 1).reshape(-1, c)            # [C_out * k * k, C]
    vals, vecs = torch.linalg.eigh(a.T @ a)             # ascending
    vals, vecs = vals.flip(0), vecs.flip(1).T           # rows = eigenvectors, largest first
    idx = vecs.abs().argmax(dim=1)
    vecs = vecs * torch.sign(vecs.gather(1, idx[:, None]))
    zeros = torch.zeros_like(vecs)
    dirs = {"scale": torch.cat([vecs, zeros], 1), "shift": torch.cat([zeros, vecs], 1),
            "both": torch.cat([vecs, vecs], 1) / 2 ** 0.5}[part]
    return dirs.float(), vals.clamp_min(0)


def supervised_direction(features, labels, *, method: str = "logistic", l2: float = 1e-3,
                         max_iter: int = 200):
    """A linear classifier's unit normal on labelled codes (InterFaceGAN style).

    Args:
        features: ``{level: [N, 2C_k]}`` as :func:`ghfeat.extract` returns (the direction spans all
            the levels given), or one ``[N, D]`` tensor.
        labels: ``[N]`` with exactly two distinct values (bool, 0/1, or e.g. two digit classes); the
            larger value is the positive side.
        method: ``"logistic"`` (L2-regularised logistic regression, L-BFGS, deterministic) or
            ``"lstsq"`` (ridge least squares on targets -1/+1, closed form). Codes are centred
            first; the normal is in raw code units (so ``codes + s * n`` moves the decision value).
        l2: ridge / weight-decay strength (per sample).
    Returns:
        same structure as ``features``: ``{level: [2C_k]}`` (jointly unit norm) or ``[D]``, float32,
        pointing towards the positive label.
    """
    if method not in ("logistic", "lstsq"):
        raise ValueError(f"method must be 'logistic' or 'lstsq', got {method!r}")
    is_dict = isinstance(features, dict)
    parts = list(features.values()) if is_dict else [features]
    if not parts or any(not isinstance(p, torch.Tensor) or p.ndim != 2 for p in parts):
        raise ValueError("features must be a [N, D] tensor or a {level: [N, 2C]} dict from ghfeat.extract")
    x = torch.cat([p.detach().double().cpu() for p in parts], 1)
    y = torch.as_tensor(labels).detach().cpu().reshape(-1)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"{x.shape[0]} codes but {y.shape[0]} labels")
    classes = torch.unique(y)
    if classes.numel() != 2:
        raise ValueError(f"labels must take exactly two values (a binary attribute or a class pair), got "
                         f"{classes.tolist()[:10]}; select two classes, e.g. labels == 3")
    t = (y == classes[1]).double() * 2 - 1              # +1 = the larger label
    x = x - x.mean(0)
    n, d = x.shape
    if method == "lstsq":
        w = torch.linalg.solve(x.T @ x + l2 * n * torch.eye(d, dtype=x.dtype), x.T @ t)
    else:
        w = torch.zeros(d, dtype=x.dtype, requires_grad=True)
        b = torch.zeros((), dtype=x.dtype, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.softplus(-t * (x @ w + b)).mean() + 0.5 * l2 * w.pow(2).sum()
            loss.backward()
            return loss
        with torch.enable_grad():
            opt.step(closure)
        w = w.detach()
    norm = w.norm()
    if not torch.isfinite(norm) or norm == 0:
        raise ValueError("the classifier found no direction (labels not separable from constant codes?)")
    w = (w / norm).float()
    if not is_dict:
        return w
    out, start = {}, 0
    for k, p in features.items():
        out[k] = w[start:start + p.shape[1]]
        start += p.shape[1]
    return out


def _direction_rows(direction, levels, dims: list[int]) -> dict[int, torch.Tensor]:
    """``direction`` ([2C] for every level in ``levels``, or ``{level: [2C_k]}``) -> ``{row: vector}``."""
    L = len(dims)
    if isinstance(direction, dict):
        lv = parse_levels(list(direction) if levels is None else levels, L)
        missing = [k for k in lv if k not in direction]
        if missing:
            raise ValueError(f"the direction has no vector for level(s) {missing} (it has {sorted(direction)})")
        vecs = {k: torch.as_tensor(direction[k]) for k in lv}
    else:
        if levels is None:
            raise ValueError("levels is required with a single direction vector (e.g. levels=[7, 8])")
        vecs = {k: torch.as_tensor(direction) for k in parse_levels(levels, L)}
    rows = {}
    for k, v in vecs.items():
        d = dims[L - k]
        if v.ndim != 1 or v.shape[0] != d or not v.is_floating_point():
            raise ValueError(f"level {k} codes have {d} numbers (y_s, y_b); the direction there has shape "
                             f"{tuple(v.shape)}: give a float vector of length {d}")
        if not torch.isfinite(v).all():
            raise ValueError(f"the direction at level {k} contains NaN or Inf")
        rows[L - k] = v
    return rows


def edit_codes(codes: torch.Tensor, direction, strengths, levels=None, *, style_dims=None) -> torch.Tensor:
    """Move packed codes along ``direction`` at ``levels``: ``y_k + s * d_k`` for each strength ``s``.

    Args:
        codes: packed ``[N, L, D]``.
        direction: ``[2C]`` (used at every level in ``levels``, which must all be that wide) or
            ``{level: [2C_k]}`` (``levels`` defaults to its keys).
        strengths: floats (a list or 1-D tensor), ``S`` of them.
        style_dims: ``2C`` per layer (coarse first); default ``D`` everywhere. Pass the generator's
            ``style_dims`` for models with narrower fine layers: the direction is tiled like the codes.
    Returns:
        ``[S, N, L, D]``; rows of levels not edited are exact copies of ``codes``; strength 0 gives
        ``codes`` exactly.
    """
    check_packed(codes, "codes")
    n, L, D = codes.shape
    dims = [D] * L if style_dims is None else [int(d) for d in style_dims]
    if len(dims) != L:
        raise ValueError(f"style_dims has {len(dims)} layers but the codes have {L}")
    s = torch.as_tensor(strengths, dtype=codes.dtype).reshape(-1)
    if s.numel() == 0 or not torch.isfinite(s).all():
        raise ValueError(f"strengths must be a non-empty list of finite numbers, got {strengths!r}")
    out = codes.unsqueeze(0).repeat(s.numel(), 1, 1, 1)
    for row, v in _direction_rows(direction, levels, dims).items():
        tiled = v.to(codes.device, codes.dtype).repeat(D // v.shape[0])
        out[:, :, row] = out[:, :, row] + s.to(codes.device).view(-1, 1, 1) * tiled
    return out


def edit(images, direction, strengths, levels=None, encoder="mnist32", generator=None, *, out=None,
         input_range=None, resize: bool = False, pretrained: bool = True, allow_mismatch: bool = False,
         originals: bool = False) -> torch.Tensor:
    """Edit images along a y-space direction and decode a grid.

    Args:
        images: N images (anything ``load_images`` accepts).
        direction: ``[2C]`` or ``{level: [2C_k]}`` (see :func:`edit_codes`); e.g. a row of
            :func:`sefa_directions` or the output of :func:`supervised_direction`.
        strengths: S numbers; 0 gives the plain reconstruction (bit for bit ``decode(encode(x))``).
        levels: paper levels to edit (default: the direction dict's keys).
        out: optional PNG path (rows = images, columns = strengths).
        originals: put two columns before the edits: the input image and its unedited
            reconstruction ``decode(encode(x))``, to compare the edits with (``ghfeat edit`` does).
    Returns:
        ``[N, S, C, R, R]`` float32 in [-1, 1] (clamped), on the CPU; ``[N, 2 + S, C, R, R]`` with
        ``originals=True``.
    """
    enc = resolve_encoder(encoder, pretrained, None)
    gen = resolve_generator(generator, enc, pretrained, None, allow_mismatch)
    codes = encode(images, enc, input_range=input_range, resize=resize, progress=False)
    edited = edit_codes(codes, direction, strengths, levels, style_dims=gen.style_dims)
    cols = [decode(c, gen, progress=False).clamp(-1, 1).cpu() for c in edited]    # one decode per strength
    if originals:
        x = load_images(images, size=getattr(enc, "input_spec", {}).get("size"), resize=resize,
                        input_range=input_range, channels=int(getattr(enc, "in_channels", 3)))
        cols = [x.cpu(), decode(codes, gen, progress=False).clamp(-1, 1).cpu()] + cols
    grid = torch.stack(cols, dim=1)
    if out is not None and grid.shape[0]:
        save_grid(grid, out, nrow=grid.shape[1])
    return grid


PIXEL_ATTRIBUTES = ("thickness", "slant", "brightness")


def measure_attribute(images: torch.Tensor, attribute: str) -> torch.Tensor:
    """An attribute of each image ``[N, C, R, R]`` in [-1, 1] -> ``[N]`` float.

    ``thickness``: ink area (pixels brighter than mid-gray) over half the ink's boundary (ink minus
    ink eroded by one pixel), a stroke-width proxy. ``slant``: shear of the ink, ``cov(x, y) /
    var(y)`` of ink pixel coordinates (positive = the top leans right). ``brightness``: mean value.
    """
    if attribute == "brightness":
        return images.mean((1, 2, 3))
    ink = (images.mean(1) > 0).float()                                     # [N, R, R]
    if attribute == "thickness":
        eroded = -torch.nn.functional.max_pool2d(-ink[:, None], 3, stride=1, padding=1)[:, 0]
        area, inner = ink.sum((1, 2)), eroded.sum((1, 2))
        return area / ((area - inner) / 2).clamp_min(1.0)
    if attribute == "slant":
        r = ink.shape[-1]
        ys, xs = torch.meshgrid(torch.arange(r, dtype=torch.float32), torch.arange(r, dtype=torch.float32),
                                indexing="ij")
        w = ink / ink.sum((1, 2), keepdim=True).clamp_min(1.0)
        my, mx = (w * ys).sum((1, 2), keepdim=True), (w * xs).sum((1, 2), keepdim=True)
        cov = (w * (xs - mx) * (ys - my)).sum((1, 2))
        var = (w * (ys - my) ** 2).sum((1, 2)).clamp_min(1e-6)
        return -cov / var                                                  # rows grow downwards
    raise ValueError(f"unknown attribute {attribute!r}; choose one of {PIXEL_ATTRIBUTES}")
