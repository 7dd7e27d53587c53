"""Image input conversion at the API edge, and PNG grids.

Everything a user may pass as "images" ends up as ``[N, 3, H, W]`` float32 RGB in [-1, 1] (the
convention of ``shared/DESIGN.md``), or is refused with a message that says how to fix it.

Value-range policy
------------------
* ``uint8`` data (tensors, numpy arrays), PIL images and image files are read as [0, 255]
  (16-bit ones as [0, 65535]); ``input_range`` does not apply to them.
* Float tensors / arrays are read as [-1, 1] unless ``input_range`` says otherwise
  (``"[0,1]"``, ``"[0,255]"``, ``"[-1,1]"`` or a ``(lo, hi)`` pair). Values outside the range by
  more than ``RANGE_TOLERANCE`` raise (no silent clamping). Default-[-1, 1] float input with no
  negative value at all triggers a warning (it is probably [0, 1]); pass ``input_range``
  explicitly to silence it.
* Other integer dtypes need an explicit ``input_range``; bool and complex are refused.

Channels: 3 = RGB; 1 (grayscale) is repeated to R = G = B; 4 (RGBA) is alpha-composited onto a
**white** background (alpha uses the same range as the colour channels, 0 = transparent). Any
other channel count is refused. Tensors are channels-first (``[N, C, H, W]`` / ``[C, H, W]``),
numpy arrays channels-last like PIL (``[H, W]``, ``[H, W, C]``, ``[N, H, W, C]``).

Size: with ``resize=False`` a size other than ``size`` raises. With ``resize=True`` the shorter
side is resized to ``size`` (bilinear with antialiasing, aspect ratio kept) and the centre
``size x size`` square is cropped.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F

RANGE_TOLERANCE = 0.01          # allowed excursion outside the declared range (rounding noise)
MAX_IMAGE_PIXELS = 89_478_485   # larger image files are refused from their header (PIL's bomb limit)
_NAMED_RANGES = {"[-1,1]": (-1.0, 1.0), "[0,1]": (0.0, 1.0), "[0,255]": (0.0, 255.0)}
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")

# "kind" of an input, used to return reconstructions in the input's range
KIND_UINT8, KIND_UNIT, KIND_SIGNED = "uint8", "[0,1]", "[-1,1]"


def parse_range(input_range) -> tuple[float, float] | None:
    """``"[0,1]"`` / ``"[0, 255]"`` / ``(lo, hi)`` -> ``(lo, hi)``; None stays None."""
    if input_range is None:
        return None
    if isinstance(input_range, str):
        key = input_range.replace(" ", "")
        if key not in _NAMED_RANGES:
            raise ValueError(f"input_range must be one of {list(_NAMED_RANGES)} or a (lo, hi) pair, "
                             f"got {input_range!r}")
        return _NAMED_RANGES[key]
    try:
        lo, hi = (float(v) for v in input_range)
    except (TypeError, ValueError):
        raise ValueError(f"input_range must be one of {list(_NAMED_RANGES)} or a (lo, hi) pair, "
                         f"got {input_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"input_range (lo, hi) needs finite lo < hi, got {input_range!r}")
    return lo, hi


def _range_kind(rng: tuple[float, float]) -> str:
    return {(0.0, 1.0): KIND_UNIT, (0.0, 255.0): KIND_UINT8}.get(rng, KIND_SIGNED)


def _to_signed(x: torch.Tensor, rng: tuple[float, float], *, explicit: bool, what: str) -> torch.Tensor:
    """Float tensor in ``rng`` -> float32 in [-1, 1], after finiteness and range checks."""
    x = x.to(torch.float32)
    if x.numel() == 0:
        if x.ndim == 4 and x.shape[0] == 0 and all(x.shape[1:]):
            return x if rng == (-1.0, 1.0) else x.clone()       # an empty batch: nothing to check
        raise ValueError(f"{what} is empty (shape {tuple(x.shape)})")
    lo_v, hi_v = (float(v) for v in torch.aminmax(x))
    if not (math.isfinite(lo_v) and math.isfinite(hi_v)):
        raise ValueError(f"{what} contains NaN or Inf values")
    lo, hi = rng
    tol = RANGE_TOLERANCE * (hi - lo) / 2
    if lo_v < lo - tol or hi_v > hi + tol:
        hint = ("pass input_range='[0,1]' or '[0,255]' if that is what they are, "
                "or normalise them (x * 2 - 1 for [0, 1]; x.clamp(-1, 1) for generator outputs "
                "slightly outside [-1, 1])" if not explicit else
                "check input_range, or clamp/normalise the values first")
        raise ValueError(f"{what} has values in [{lo_v:.4g}, {hi_v:.4g}], outside the expected range "
                         f"[{lo:g}, {hi:g}]; {hint}")
    if not explicit and lo_v >= 0.0 and hi_v > 0.0:
        warnings.warn("float images with no negative value are read as [-1, 1] (the default). If these are "
                      "[0, 1] images pass input_range='[0,1]'; pass input_range='[-1,1]' to silence this warning.",
                      UserWarning, stacklevel=4)
    if (lo, hi) == (-1.0, 1.0):
        return x
    return (x - lo) * (2.0 / (hi - lo)) - 1.0


def _channels_to_rgb(x: torch.Tensor, what: str) -> torch.Tensor:
    """``[N, C, H, W]`` in [-1, 1] with C in {1, 3, 4} -> ``[N, 3, H, W]``."""
    c = x.shape[1]
    if c == 3:
        return x
    if c == 1:
        return x.expand(-1, 3, -1, -1)
    if c == 4:          # RGBA: composite onto white (+1); alpha mapped to [0, 1]
        alpha = (x[:, 3:4] + 1.0) * 0.5
        return x[:, :3] * alpha + (1.0 - alpha)
    raise ValueError(f"{what} has {c} channels; expected 3 (RGB), 1 (grayscale, repeated to RGB) "
                     "or 4 (RGBA, composited onto white)")


def _check_tensor_layout(x: torch.Tensor, what: str) -> torch.Tensor:
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4:
        hint = " (a single grayscale image [H, W]: use x[None] to make it [1, H, W])" if x.ndim == 2 else ""
        raise ValueError(f"{what} must be [N, C, H, W] or [C, H, W], got shape {tuple(x.shape)}{hint}")
    if x.shape[1] not in (1, 3, 4):
        hint = ("; it looks channels-last (NHWC): use x.permute(0, 3, 1, 2)"
                if x.shape[-1] in (1, 3, 4) else "")
        raise ValueError(f"{what} has {x.shape[1]} channels (shape {tuple(x.shape)}); expected 1, 3 or 4 "
                         f"in dim 1 (NCHW){hint}")
    return x


def _tensor_to_signed(x: torch.Tensor, rng, what: str) -> tuple[torch.Tensor, str]:
    """Any tensor (channels-first) -> (``[N, 3, H, W]`` in [-1, 1], kind)."""
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"{what} has dtype {x.dtype}; images must be uint8 ([0, 255]) or float")
    if x.device.type == "meta":
        raise ValueError(f"{what} is on the 'meta' device and holds no values")
    x = _check_tensor_layout(x, what)
    if x.dtype == torch.uint8:
        kind, y = KIND_UINT8, x.to(torch.float32) / 127.5 - 1.0
    elif x.is_floating_point():
        r = rng if rng is not None else (-1.0, 1.0)
        kind, y = _range_kind(r), _to_signed(x, r, explicit=rng is not None, what=what)
    else:
        if rng is None:
            raise TypeError(f"{what} has integer dtype {x.dtype}, whose range is ambiguous; pass "
                            "input_range='[0,255]' (or another range), or convert to uint8")
        kind, y = _range_kind(rng), _to_signed(x, rng, explicit=True, what=what)
    return _channels_to_rgb(y, what), kind


def _numpy_to_signed(a: np.ndarray, rng, what: str) -> tuple[torch.Tensor, str]:
    """numpy (channels-last, like PIL) -> (``[N, 3, H, W]`` in [-1, 1], kind)."""
    if a.dtype == np.bool_ or np.iscomplexobj(a) or a.dtype == object:
        raise TypeError(f"{what} has dtype {a.dtype}; images must be uint8 ([0, 255]) or float")
    if a.ndim == 2:
        a = a[None, :, :, None]
    elif a.ndim == 3:
        if a.shape[-1] not in (1, 3, 4):
            hint = ("; numpy images are read channels-last [H, W, C] (like PIL): transpose CHW with "
                    "a.transpose(1, 2, 0), or pass torch.from_numpy(a) (tensors are channels-first)"
                    if a.shape[0] in (1, 3, 4) else "")
            raise ValueError(f"{what} has shape {a.shape}; expected [H, W], [H, W, C] or [N, H, W, C] "
                             f"with C in (1, 3, 4){hint}")
        a = a[None]
    elif a.ndim == 4:
        if a.shape[-1] not in (1, 3, 4):
            raise ValueError(f"{what} has shape {a.shape}; numpy batches are read [N, H, W, C] with C in "
                             "(1, 3, 4); for [N, C, H, W] pass torch.from_numpy(a)")
    else:
        raise ValueError(f"{what} has shape {a.shape}; expected [H, W], [H, W, C] or [N, H, W, C]")
    t = torch.from_numpy(np.ascontiguousarray(a) if a.flags.writeable else np.array(a)).permute(0, 3, 1, 2)
    if a.dtype == np.uint16:
        return _tensor_to_signed(t.to(torch.float32), (0.0, 65535.0), what)[0], KIND_UINT8
    return _tensor_to_signed(t, rng, what)


def _pil_to_signed(img, what: str) -> tuple[torch.Tensor, str]:
    """PIL image -> (``[1, 3, H, W]`` in [-1, 1], "uint8")."""
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("LA", "PA", "La", "RGBa"):
        img = img.convert("RGBA")
    elif mode == "1":
        img = img.convert("L")
    elif mode.startswith("I;16"):
        arr = np.asarray(img).astype(np.uint16)
        return _numpy_to_signed(arr, None, what)[0], KIND_UINT8
    elif mode in ("I", "F"):
        raise ValueError(f"{what} is a PIL image in mode {mode!r} (32-bit), whose range is unknown; "
                         "convert it to 'L' or 'RGB' first, or pass a numpy array with input_range")
    elif mode not in ("RGB", "RGBA", "L"):
        img = img.convert("RGB")        # CMYK, YCbCr, LAB, HSV
    return _numpy_to_signed(np.asarray(img), None, what)


def _open_path(p: Path) -> tuple[torch.Tensor, str]:
    from PIL import Image, UnidentifiedImageError

    if not p.exists():
        raise FileNotFoundError(f"image file {str(p)!r} does not exist")
    if not p.is_file():                  # a named pipe or a device would block or never end
        raise ValueError(f"{str(p)!r} is not a regular file; only image files are read")
    limit = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():  # the size is checked below, against ghfeat's limit
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(p)
        with img:
            w, h = img.size              # from the header: refuse before decoding
            if limit and w * h > limit:
                raise ValueError(f"image file {str(p)!r} is {w}x{h} = {w * h:,} pixels, more than "
                                 f"ghfeat._images.MAX_IMAGE_PIXELS = {limit:,} (decoding it would take "
                                 f"~{w * h * 4 / 2 ** 30:.1f} GB); shrink it first, or raise that limit")
            img.load()
            return _pil_to_signed(img, f"image file {str(p)!r}")
    except UnidentifiedImageError:
        raise ValueError(f"cannot read {str(p)!r} as an image (not a format PIL recognises)") from None
    except Image.DecompressionBombError as exc:
        raise ValueError(f"image file {str(p)!r} is refused as too large: {exc}") from None
    except OSError as exc:
        raise ValueError(f"cannot read image file {str(p)!r}: {exc}") from None


def list_image_files(folder: str | os.PathLike) -> list[Path]:
    """Image files directly or recursively under ``folder``, sorted (hidden files skipped)."""
    root = Path(folder)
    files = sorted(p for p in root.rglob("*")
                   if p.is_file() and p.suffix.lower() in _IMAGE_EXTENSIONS
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise ValueError(f"folder {str(root)!r} holds no image files ({', '.join(_IMAGE_EXTENSIONS)})")
    return files


def _is_pil(x) -> bool:
    try:
        from PIL import Image
    except ImportError:          # pragma: no cover
        return False
    return isinstance(x, Image.Image)


def expand_inputs(images) -> Any:
    """A folder path -> its sorted list of image files; a tuple -> list; anything else unchanged."""
    if isinstance(images, (str, os.PathLike)) and Path(images).is_dir():
        return list_image_files(images)
    if isinstance(images, tuple):
        return list(images)
    return images


def num_images(images) -> int:
    """Number of images in an (expanded) input without converting it."""
    if isinstance(images, list):
        return len(images)
    if isinstance(images, torch.Tensor):
        return 1 if images.ndim == 3 else int(images.shape[0]) if images.ndim == 4 else 1
    if isinstance(images, np.ndarray):
        return int(images.shape[0]) if images.ndim == 4 else 1
    return 1


def split_inputs(images, batch_size: int) -> Iterable:
    """Chunks of at most ``batch_size`` images of an (expanded) input, not yet converted."""
    n = num_images(images)
    batched = isinstance(images, list) or (isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim == 4)
    if not batched or n == 0:           # an empty [0, C, H, W] batch is one (empty) chunk
        yield images
        return
    for i in range(0, n, batch_size):
        yield images[i:i + batch_size]


def _one(item, rng, what: str) -> tuple[torch.Tensor, str]:
    if isinstance(item, torch.Tensor):
        return _tensor_to_signed(item, rng, what)
    if isinstance(item, np.ndarray):
        return _numpy_to_signed(item, rng, what)
    if _is_pil(item):
        return _pil_to_signed(item, what)
    if isinstance(item, (str, os.PathLike)):
        p = Path(item).expanduser()
        if p.is_dir():
            raise ValueError(f"{what} is a folder ({str(p)!r}); folders are accepted only as the whole "
                             "`images` argument, not inside a list")
        return _open_path(p)
    raise TypeError(f"{what} has unsupported type {type(item).__name__}; pass a torch.Tensor, a numpy "
                    "array, a PIL image, a path, or a list of these")


def fit_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """``[N, C, h, w]`` -> ``[N, C, size, size]``: shorter side to ``size`` (bilinear, antialiased,
    aspect ratio kept), then the centre square."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[..., top:top + size, left:left + size]


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """``[N, 1|3, H, W]`` -> ``[N, channels, H, W]``: RGB to luminance (ITU-R 601 weights, as PIL's
    ``L``) for 1 channel, gray repeated for 3."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1:
        return x.expand(-1, 3, -1, -1).contiguous()
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def convert_images(images, *, size: int | None = None, resize: bool = False, input_range=None,
                   device=None, channels: int = 3) -> tuple[torch.Tensor, str]:
    """:func:`load_images` that also returns the input's range kind ("uint8", "[0,1]", "[-1,1]");
    a list whose items disagree counts as "[-1,1]"."""
    rng = parse_range(input_range)
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive int (square images), got {size!r}")
    if resize and size is None:
        raise ValueError("resize=True needs the target size: pass size=... (extract() and reconstruct() "
                         "take it from the model)")
    images = expand_inputs(images)
    if isinstance(images, list):
        if not images:
            raise ValueError("got an empty list of images")
        parts = [_one(item, rng, f"images[{i}]") for i, item in enumerate(images)]
    else:
        parts = [_one(images, rng, "images")]

    kinds = {k for _, k in parts}
    kind = kinds.pop() if len(kinds) == 1 else KIND_SIGNED
    tensors = [t for t, _ in parts]
    if resize:
        tensors = [fit_size(t, size) for t in tensors]
    elif size is not None:
        for i, t in enumerate(tensors):
            if tuple(t.shape[-2:]) != (size, size):
                which = f"images[{i}]" if len(tensors) > 1 else "images"
                raise ValueError(f"{which} is {t.shape[-2]}x{t.shape[-1]} but the model expects {size}x{size}; "
                                 f"pass resize=True (shorter side to {size}, then centre crop) or resize "
                                 "them yourself")
    sizes = {tuple(t.shape[-2:]) for t in tensors}
    if len(sizes) > 1:
        raise ValueError(f"images have different sizes {sorted(sizes)}; pass resize=True with size=... "
                         "or resize them to one size first")
    if device is None:
        device = next((t.device for t in tensors if t.device.type != "cpu"), torch.device("cpu"))
    out = torch.cat([t.to(device) for t in tensors]) if len(tensors) > 1 else tensors[0].to(device)
    return to_channels(out, channels).contiguous(), kind


def to_kind(x: torch.Tensor, kind: str) -> torch.Tensor:
    """``[-1, 1]`` images -> the range ``kind`` (clamped): uint8 [0, 255], float [0, 1] or [-1, 1]."""
    x = x.float().clamp(-1.0, 1.0)
    if kind == KIND_UINT8:
        return ((x + 1.0) * 127.5).round_().to(torch.uint8)
    if kind == KIND_UNIT:
        return (x + 1.0) * 0.5
    return x


# ------------------------------------------------------------------------------------------------
# Grids
# ------------------------------------------------------------------------------------------------

def make_grid(images: torch.Tensor, nrow: int | None = None, padding: int = 2,
              pad_value: float = 1.0) -> torch.Tensor:
    """Tile images into one image.

    Args:
        images: ``[N, C, H, W]`` (C in 1, 3) or ``[rows, cols, C, H, W]`` float in [-1, 1]
            (or uint8, read as [0, 255]).
        nrow: images per row (default: ``cols`` for 5-D input, else ``ceil(sqrt(N))``).
        padding: pixels between and around cells; ``pad_value`` their value in [-1, 1] (1 = white).
    Returns:
        ``[3, H', W']`` float in [-1, 1].
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"make_grid expects a tensor, got {type(images).__name__}")
    if images.ndim == 5:
        nrow = images.shape[1] if nrow is None else nrow
        images = images.flatten(0, 1)
    if images.ndim != 4 or images.shape[1] not in (1, 3) or images.shape[0] == 0:
        raise ValueError(f"make_grid expects [N, 1|3, H, W] or [rows, cols, 1|3, H, W], got {tuple(images.shape)}")
    x = images.detach().cpu()
    x = x.float() / 127.5 - 1.0 if x.dtype == torch.uint8 else x.float()
    x = x.clamp(-1, 1).expand(-1, 3, -1, -1)
    n, _, h, w = x.shape
    nrow = max(1, min(nrow or math.ceil(math.sqrt(n)), n))
    rows = math.ceil(n / nrow)
    grid = torch.full((3, rows * (h + padding) + padding, nrow * (w + padding) + padding), float(pad_value))
    for i in range(n):
        r, c = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        grid[:, top:top + h, left:left + w] = x[i]
    return grid


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None, padding: int = 2,
              pad_value: float = 1.0) -> Path:
    """Write :func:`make_grid` of ``images`` (``[N, C, H, W]`` or ``[rows, cols, C, H, W]``, [-1, 1])
    to a PNG (parent folders are created; 1-channel images give a grayscale PNG). Returns the path."""
    from PIL import Image

    grid = make_grid(images, nrow, padding, pad_value)
    if images.shape[-3] == 1:               # grayscale images: a grayscale PNG
        grid = grid[:1]
    arr = ((grid + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    arr = arr[..., 0] if arr.shape[-1] == 1 else arr
    from ._io import atomic_output

    path = Path(path)
    with atomic_output(path, what="image") as tmp:      # same suffix: PIL picks the format from it
        Image.fromarray(arr).save(tmp)
    return path
