"""The user-facing API: images in, GH-Feat features / reconstructions / style mixing out.

    import ghfeat
    files = ghfeat.save_sample_digits("digits/")                       # ten bundled MNIST test digits
    feats = ghfeat.extract("digits/", levels=[5, 8], model="mnist32")  # {5: [10, 64], 8: [10, 64]}
    rec = ghfeat.reconstruct("digits/")                                # uint8 [10, 1, 32, 32]
    grid = ghfeat.style_mix(files[:5], files[5:], levels=[7, 8], out="mix.png")

Level numbering (binding, ``shared/DESIGN.md``): levels ``1..L``, level 1 is the *finest*
generator layer and level L the most abstract; level ``k`` is generator layer ``L - k``
(layers ``0..L-1`` run coarse 4x4 -> fine). Level ``k``'s feature is the full style code
``(y_s, y_b)`` of that layer: ``2 * C`` numbers for a layer with ``C`` channels
(:func:`level_dims`).

Images may be tensors, numpy arrays, PIL images, paths, a folder, or lists of these; see
:func:`load_images` (and ``ghfeat/_images.py``) for the range, channel and size rules.

Empty batches: a ``[0, C, H, W]`` tensor (or ``[0, H, W, C]`` array, or ``[0, L, D]`` codes) is a
valid batch and gives empty results of the usual shapes, as torch/numpy do: ``extract`` ->
``{level: [0, 2C]}``, ``encode`` -> ``[0, L, D]``, ``decode`` / ``reconstruct`` -> ``[0, C, R, R]``,
``style_mix`` -> a grid with no content column / style row. An empty *list* or a folder without
images is refused (there is nothing to take a shape from, and it is usually a mistake).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._codes import layer_to_level, level_to_layer, mix_codes, parse_levels
from ._images import (KIND_SIGNED, convert_images, expand_inputs, make_grid, num_images, save_grid,
                      split_inputs, to_kind)
from ._models import (autocast, check_not_meta, clear_model_cache, eval_mode, get_model, model_device,
                      resolve_encoder, resolve_generator, style_dims_of)

__all__ = ["sample_digits", "save_sample_digits", "load_images", "level_to_layer", "layer_to_level", "parse_levels",
           "level_dims", "extract",
           "extract_spatial", "encode", "decode", "reconstruct", "style_mix", "make_grid", "save_grid",
           "clear_model_cache"]


# ------------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------------

def sample_digits() -> torch.Tensor:
    """The ten MNIST test digits bundled with the package (one per class, 0..9, in that order) as
    ``[10, 1, 32, 32]`` float32 in [-1, 1] (28x28 digits padded to 32x32, background -1)."""
    import numpy as np
    from PIL import Image

    from importlib.resources import files
    with (files("ghfeat") / "assets" / "mnist_test_digits.png").open("rb") as f:
        strip = np.asarray(Image.open(f).convert("L"))                                # [32, 320]
    x = torch.from_numpy(strip.copy()).float().div(127.5).sub(1.0)
    return x.view(32, 10, 32).permute(1, 0, 2)[:, None].contiguous()


def save_sample_digits(folder="digits") -> list:
    """Write the ten bundled MNIST test digits as 32x32 grayscale PNGs ``folder/digit_0.png`` ..
    ``digit_9.png`` (the folder is created) and return their paths, for trying the API and the
    command line on real files: ``ghfeat.extract(ghfeat.save_sample_digits("digits"), model=enc)``.
    (Command line: ``ghfeat sample-digits --out digits``.) CC BY-SA 3.0, as MNIST."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [save_grid(img[None], folder / f"digit_{i}.png", nrow=1, padding=0)
            for i, img in enumerate(sample_digits())]


def load_images(images, *, size: int | None = None, resize: bool = False, input_range=None,
                device=None, channels: int = 3) -> torch.Tensor:
    """Convert user images to the library convention: ``[N, C, H, W]`` float32 in [-1, 1]
    (``channels=3``: RGB, ``channels=1``: luminance).

    Args:
        images: one of, or a list of:
            * ``torch.Tensor`` ``[N, C, H, W]`` or ``[C, H, W]`` (channels first); uint8 = [0, 255];
            * ``numpy.ndarray`` ``[H, W]``, ``[H, W, C]`` or ``[N, H, W, C]`` (channels last, like
              PIL); uint8 = [0, 255], uint16 = [0, 65535];
            * ``PIL.Image.Image`` (any common mode);
            * a path (``str`` / ``Path``) to an image file; a folder path (as the whole argument)
              means all image files under it, sorted.
        size: the expected square size. Without ``resize`` a different size raises.
        resize: resize to ``size``: shorter side to ``size`` (bilinear, antialiased, aspect ratio
            kept), then centre crop.
        input_range: range of *float* (and non-uint8 integer) tensors/arrays: ``"[-1,1]"``
            (default for floats), ``"[0,1]"``, ``"[0,255]"`` or ``(lo, hi)``. uint8 data, PIL
            images and files are always [0, 255]. Float values outside the range (by more than
            1% of it) raise; default-range floats with no negative value warn (probably [0, 1]).
        device: where the result goes (default: the input tensor's device, else CPU).

    Channels: 1 (grayscale) is repeated to RGB; 4 (RGBA) is alpha-composited onto white; other
    counts raise. With ``channels=1`` the RGB result is then reduced to luminance (ITU-R 601
    weights, as PIL's ``L``), which is what a 1-channel model (e.g. ``mnist32``) takes. NaN/Inf, bool and complex dtypes, unreadable files, empty lists and mixed sizes
    without ``resize`` raise with a message saying how to fix the input.

    Returns:
        ``[N, channels, H, W]`` float32 in [-1, 1].
    """
    return convert_images(images, size=size, resize=resize, input_range=input_range, device=device,
                          channels=channels)[0]


# ------------------------------------------------------------------------------------------------
# Levels
# ------------------------------------------------------------------------------------------------

def level_dims(model) -> dict[int, int]:
    """Feature width of every level: ``{level: 2 * C}`` for levels ``1..L`` (ascending).

    ``model``: an encoder, a generator (anything with ``style_dims``, coarse layer 0 first) or an
    encoder registry name (built without weights). For the official 256x256 models:
    levels 1-2: 128, 3-4: 256, 5-6: 512, 7-14: 1024 (total 9984); for "mnist32": levels 1-2: 32, 3-8: 64 (total 448).
    """
    if isinstance(model, str):
        model = get_model("encoder", model, pretrained=False)
    dims = style_dims_of(model)
    L = len(dims)
    return {k: dims[L - k] for k in range(1, L + 1)}


# ------------------------------------------------------------------------------------------------
# Batches
# ------------------------------------------------------------------------------------------------

def _output_device(images) -> torch.device:
    """Results go back to where the input was (CPU for files, PIL and numpy)."""
    if isinstance(images, torch.Tensor):
        return images.device
    if isinstance(images, list) and images and isinstance(images[0], torch.Tensor):
        return images[0].device
    return torch.device("cpu")


def _in_channels(encoder: nn.Module) -> int:
    return int(getattr(encoder, "in_channels", 3))


def _input_size(encoder: nn.Module) -> int | None:
    spec = getattr(encoder, "input_spec", None) or {}
    size = spec.get("size", getattr(encoder, "input_size", None))
    return int(size) if size is not None else None


def _encode_layers(encoder: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Per-layer codes ``[N, 2C_i]``, layer 0 first, from ``forward_layers`` or the packed output."""
    if hasattr(encoder, "forward_layers"):
        layers = list(encoder.forward_layers(x))
    else:
        packed = encoder(x)
        layers = [packed[:, i, :d] for i, d in enumerate(style_dims_of(encoder))]
    dims = style_dims_of(encoder)
    if len(layers) != len(dims) or any(y.shape[1] != d for y, d in zip(layers, dims)):
        raise RuntimeError(f"encoder returned codes of widths {[y.shape[1] for y in layers]}, expected {dims}")
    return layers


def _pack(layers: Sequence[torch.Tensor], dmax: int) -> torch.Tensor:
    from .models.generator import pack_styles
    return pack_styles(layers, dmax)


def _map_batches(images, fn, *, device: torch.device, size, resize: bool, input_range, batch_size: int,
                 dtype, progress, desc: str, channels: int = 3):
    """Convert ``images`` batch by batch, run ``fn(x) -> tuple[Tensor]`` under inference mode and
    autocast, and concatenate the outputs (float32, on the input's device). Returns (outputs, kind)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    images = expand_inputs(images)
    if isinstance(images, list) and not images:
        raise ValueError("got an empty list of images")
    n = num_images(images)
    num_batches = max(1, math.ceil(n / batch_size))
    show = (num_batches > 1) if progress is None else bool(progress)
    out_device = _output_device(images)
    results: list[list[torch.Tensor]] = []
    kinds = set()
    from tqdm.auto import tqdm
    with torch.inference_mode(), autocast(dtype, device):
        for chunk in tqdm(split_inputs(images, batch_size), total=num_batches, disable=not show, desc=desc,
                          unit="batch", leave=False):
            x, kind = convert_images(chunk, size=size, resize=resize, input_range=input_range, device=device,
                                     channels=channels)
            kinds.add(kind)
            results.append([o.float().to(out_device) for o in fn(x)])
    outs = [torch.cat(parts) if len(parts) > 1 else parts[0] for parts in zip(*results)]
    return outs, (kinds.pop() if len(kinds) == 1 else KIND_SIGNED)


# ------------------------------------------------------------------------------------------------
# Features
# ------------------------------------------------------------------------------------------------

def extract(images, levels=None, model="mnist32", *, flatten: bool = False, batch_size: int = 64,
            input_range=None, resize: bool = False, dtype=None, device=None, progress=None,
            pretrained: bool = True):
    """GH-Feat features of ``images``.

    Args:
        images: anything :func:`load_images` accepts (tensors, numpy, PIL, paths, a folder, lists);
            converted batch by batch, so a large uint8 tensor is never converted whole.
        levels: paper levels (1 = finest, L = most abstract): None (all), an int or a list.
        model: an encoder module or a registry name (built once with ``pretrained`` weights and
            cached; see :func:`clear_model_cache`).
        flatten: return one ``[N, sum(dims)]`` tensor, levels concatenated **in the order given**.
        batch_size: images per forward pass; a tqdm bar shows when there is more than one batch
            (``progress=True/False`` forces it on/off).
        input_range, resize: see :func:`load_images` (the size comes from ``model.input_spec``).
        dtype: autocast dtype (None = float32; ``torch.bfloat16`` on CPU or CUDA; ``torch.float16``
            on CUDA only). Features are returned as float32 either way.
        device: run there (a registry-name model is moved there; a module must already be there).
            Default: the model's device.
    Returns:
        ``{level: [N, 2C] float32}`` in ascending level order, on the input tensor's device (CPU for
        files, PIL and numpy); level ``k`` holds the full style code ``(y_s, y_b)`` of generator
        layer ``L - k``. With ``flatten=True``: ``[N, sum of the dims]``.

    Runs in eval mode (restored afterwards) under ``torch.inference_mode``.
    """
    enc = resolve_encoder(model, pretrained, device)
    L = int(enc.num_layers)
    wanted = parse_levels(levels, L)
    ordered = sorted(wanted)
    dev = model_device(enc)

    def fn(x):
        layers = _encode_layers(enc, x)
        return tuple(layers[L - k] for k in ordered)

    with eval_mode(enc):
        outs, _ = _map_batches(images, fn, device=dev, size=_input_size(enc), resize=resize,
                               input_range=input_range, batch_size=batch_size, dtype=dtype, progress=progress,
                               desc="GH-Feat extract", channels=_in_channels(enc))
    feats = dict(zip(ordered, outs))
    if flatten:
        return torch.cat([feats[k] for k in wanted], dim=1)
    return feats


def extract_spatial(images, levels=None, model="mnist32", generator=None, *, batch_size: int = 64,
                    input_range=None, resize: bool = False, dtype=None, device=None, progress=None,
                    pretrained: bool = True, allow_mismatch: bool = False) -> dict[int, torch.Tensor]:
    """Spatial GH-Feat (TPAMI's spatial expansion): per level, the generator's feature map when it
    synthesises from the encoder's codes, upsampled to the image size, for per-pixel tasks.

    Level ``k``'s map is the output of generator layer ``L - k`` (after its style modulation,
    ``norm(x) * (y_s + 1) + y_b``, ``C_k`` channels at ``4 * 2 ** ((L - k) // 2)`` px), computed with
    the stored noise (as :func:`decode`), then upsampled bilinearly (``align_corners=False``) to the
    ``R x R`` image size (identity at full resolution). Synthesis stops after the finest layer asked.

    Args:
        images, levels, model, batch_size, input_range, resize, dtype, device, progress, pretrained:
            as in :func:`extract`.
        generator: generator module or registry name; None = the encoder's paired generator.
    Returns:
        ``{level: [N, C_k, R, R] float32}`` in ascending level order, on the input's device. Memory is
        ``N * C_k * R * R`` floats per level (e.g. 60k MNIST digits x 32 ch x 32 x 32 = 7.9 GB): call it
        on chunks for large sets.
    """
    enc = resolve_encoder(model, pretrained, device)
    gen = resolve_generator(generator, enc, pretrained, device, allow_mismatch)
    L = int(enc.num_layers)
    ordered = sorted(parse_levels(levels, L))
    rows = {L - k: k for k in ordered}
    syn, R, g_dev = gen.synthesis, gen.resolution, model_device(gen)

    def fn(x):
        ys = [y.to(g_dev, torch.float32) for y in _encode_layers(enc, x)]
        h = syn.const.expand(x.shape[0], -1, -1, -1)
        maps = {}
        for i, layer in enumerate(syn.layers[:max(rows) + 1]):
            h = layer(h, ys[i], False)
            if i in rows:
                maps[rows[i]] = h if h.shape[-1] == R else F.interpolate(h, size=(R, R), mode="bilinear",
                                                                           align_corners=False)
        return tuple(maps[k] for k in ordered)

    with eval_mode(enc, gen):
        outs, _ = _map_batches(images, fn, device=model_device(enc), size=_input_size(enc), resize=resize,
                               input_range=input_range, batch_size=batch_size, dtype=dtype, progress=progress,
                               desc="GH-Feat spatial", channels=_in_channels(enc))
    return dict(zip(ordered, outs))


def encode(images, encoder="mnist32", *, batch_size: int = 64, input_range=None, resize: bool = False,
           dtype=None, device=None, progress=None, pretrained: bool = True) -> torch.Tensor:
    """Packed GH-Feat codes ``[N, L, 2*C_max]`` float32 (layer 0 = coarse first; narrower codes tiled,
    as the official encoder outputs them), ready for ``G.synthesis(styles=...)``. Arguments as in
    :func:`extract`."""
    enc = resolve_encoder(encoder, pretrained, device)
    dmax = max(style_dims_of(enc))
    with eval_mode(enc):
        outs, _ = _map_batches(images, lambda x: (_pack(_encode_layers(enc, x), dmax),),
                               device=model_device(enc), size=_input_size(enc), resize=resize,
                               input_range=input_range, batch_size=batch_size, dtype=dtype, progress=progress,
                               desc="GH-Feat encode", channels=_in_channels(enc))
    return outs[0]


def decode(codes, generator, *, batch_size: int = 64, dtype=None, progress=None,
           pretrained: bool = True) -> torch.Tensor:
    """Images from GH-Feat codes: ``G.synthesis(styles=codes, randomize_noise=False)`` (stored noise).

    Args:
        codes: packed ``[N, L, 2*C_max]`` or a list of ``L`` tensors ``[N, 2C_i]`` (layer 0 first).
        generator: a StyleGAN generator or a registry name.
    Returns:
        ``[N, C, R, R]`` float32 (C = the generator's channels: 3, or 1 for ``stylegan-mnist32``),
        about [-1, 1] (not clamped), on the codes' device.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if isinstance(generator, str):
        generator = get_model("generator", generator, pretrained)
    elif not isinstance(generator, nn.Module) or not hasattr(generator, "synthesis"):
        raise TypeError(f"generator must be a registry name or a StyleGANGenerator, got {type(generator).__name__}")
    check_not_meta(generator, "generator")
    if isinstance(codes, (list, tuple)):
        codes = _pack(list(codes), max(style_dims_of(generator)))
    if not isinstance(codes, torch.Tensor) or codes.ndim != 3:
        raise ValueError("codes must be packed [N, L, 2*C_max] or a list of [N, 2C_i] tensors")
    if codes.device.type == "meta":
        raise ValueError("codes are on the 'meta' device and hold no values")
    dev, out_dev = model_device(generator), codes.device
    n = codes.shape[0]
    num_batches = max(1, math.ceil(n / batch_size))
    show = (num_batches > 1) if progress is None else bool(progress)
    from tqdm.auto import tqdm
    outs = []
    with eval_mode(generator), torch.inference_mode(), autocast(dtype, dev):
        for i in tqdm(range(0, max(n, 1), batch_size), total=num_batches, disable=not show, desc="GH-Feat decode",
                      unit="batch", leave=False):              # an empty batch runs once: [0, 3, R, R]
            y = codes[i:i + batch_size].to(dev, torch.float32)
            outs.append(generator.synthesis(styles=y, randomize_noise=False).float().to(out_dev))
    return torch.cat(outs) if outs else codes.new_zeros((0, generator.num_channels, generator.resolution,
                                                         generator.resolution))


# ------------------------------------------------------------------------------------------------
# Reconstruction and style mixing
# ------------------------------------------------------------------------------------------------

def reconstruct(images, encoder="mnist32", generator=None, *, return_codes: bool = False, batch_size: int = 64,
                input_range=None, resize: bool = False, dtype=None, device=None, progress=None,
                pretrained: bool = True, allow_mismatch: bool = False):
    """Reconstruct images through GH-Feat: ``G.synthesis(styles=E(x), randomize_noise=False)``.

    Args:
        images: anything :func:`load_images` accepts.
        encoder: encoder module or registry name.
        generator: generator module, registry name, or None for the encoder's paired generator
            (``encoder.generator_name``, built with pretrained weights and cached). Another
            generator than the pair is refused (a ``ValueError``) unless ``allow_mismatch=True``.
        return_codes: also return the packed codes ``[N, L, 2*C_max]`` float32.
        Other arguments as in :func:`extract`.
    Returns:
        ``[N, C, R, R]`` (C = the generator's channels) in the input's range, clamped: uint8 [0, 255]
        for uint8 / PIL / file input,
        float [0, 1] for ``input_range="[0,1]"``, otherwise float [-1, 1]. Mixed inputs give
        [-1, 1]. On the input tensor's device (CPU for files, PIL, numpy).
    """
    enc = resolve_encoder(encoder, pretrained, device)
    gen = resolve_generator(generator, enc, pretrained, device, allow_mismatch)
    dmax = max(style_dims_of(enc))
    g_dev = model_device(gen)

    def fn(x):
        codes = _pack(_encode_layers(enc, x), dmax)
        img = gen.synthesis(styles=codes.to(g_dev, torch.float32), randomize_noise=False)
        return (img, codes) if return_codes else (img,)

    with eval_mode(enc, gen):
        outs, kind = _map_batches(images, fn, device=model_device(enc), size=_input_size(enc), resize=resize,
                                  input_range=input_range, batch_size=batch_size, dtype=dtype, progress=progress,
                                  desc="GH-Feat reconstruct", channels=_in_channels(enc))
    rec = to_kind(outs[0], kind)
    return (rec, outs[1]) if return_codes else rec


def style_mix(content_images, style_images, levels, encoder="mnist32", generator=None, out=None, *,
              input_range=None, resize: bool = False, batch_size: int = 64, dtype=None, device=None,
              pretrained: bool = True, allow_mismatch: bool = False) -> torch.Tensor:
    """Style mixing (paper Sec. 4.3.1, Fig. 3): for every (content, style) pair, the content's codes
    at ``levels`` are replaced by the style image's, and the result is decoded.

    Args:
        content_images, style_images: anything :func:`load_images` accepts (C and S images).
        levels: the levels taken from the style image (e.g. high levels = pose/shape, low levels =
            colour); None means all levels (every cell is then the style's reconstruction), [] none
            (every cell is the content's reconstruction).
        encoder, generator: as in :func:`reconstruct`.
        out: optional PNG path; the grid is written there (white padding).
    Returns:
        ``[S + 1, C + 1, 3, R, R]`` float32 in [-1, 1] (clamped), laid out as the paper's Fig. 3:
        row 0 = ``[blank (white), content_1 .. content_C]``, column 0 = the style images, cell
        ``[1 + j, 1 + i]`` = content ``i`` with the levels of style ``j``. ``grid.flatten(0, 1)``
        with ``nrow = C + 1`` gives the picture (what ``out`` holds).
    """
    enc = resolve_encoder(encoder, pretrained, device)
    gen = resolve_generator(generator, enc, pretrained, device, allow_mismatch)
    size = _input_size(enc)
    ch = _in_channels(enc)
    content = load_images(content_images, size=size, resize=resize, input_range=input_range, channels=ch)
    style = load_images(style_images, size=size, resize=resize, input_range=input_range, channels=ch)
    lv = parse_levels(levels, int(enc.num_layers), allow_empty=True)
    kw = dict(batch_size=batch_size, dtype=dtype, progress=False, input_range="[-1,1]")   # already converted
    c_codes, s_codes = encode(content, enc, **kw), encode(style, enc, **kw)
    C, S = c_codes.shape[0], s_codes.shape[0]
    mixed = mix_codes(c_codes.repeat(S, 1, 1), s_codes.repeat_interleave(C, dim=0), lv, enc.num_layers)
    cells = decode(mixed, gen, batch_size=batch_size, dtype=dtype, progress=False).clamp(-1, 1)
    _, ch, h, w = content.shape
    grid = torch.ones(S + 1, C + 1, ch, h, w)
    grid[0, 1:] = content.cpu()
    grid[1:, 0] = style.cpu()
    grid[1:, 1:] = cells.cpu().view(S, C, ch, h, w)
    if out is not None:
        save_grid(grid, out, nrow=C + 1)
    return grid
