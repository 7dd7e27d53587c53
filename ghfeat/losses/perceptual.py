"""VGG16 perceptual loss: ``mean((F(x) - F(y))^2)`` with F = VGG16 conv4_3 after ReLU.

GH-Feat's official code used Keras' Caffe-converted VGG16 with Caffe preprocessing
(``(x + 1) / 2 * 255``, RGB -> BGR, minus the BGR mean [103.939, 116.779, 123.68]) and resized
both images to 256 x 256 (nearest neighbour) first. Which preprocessing is right depends on where
the weights come from, so it is an explicit argument whose default follows the weight source:

=========================================  ===========================  =====================
``weights=``                               what is loaded               default ``preprocess``
=========================================  ===========================  =====================
``"imagenet"``                             torchvision IMAGENET1K_V1    ``"torchvision"``
a ``.safetensors`` / ``.pt`` / ``.pth``    that file (strict)           ``"caffe"``, or what
path                                                                    the file's metadata
                                                                        declares (see below)
``"random"``                               random init, *tests only*    ``"caffe"``
=========================================  ===========================  =====================

A safetensors file may declare its preprocessing in its metadata entry ``preprocess`` as
``"caffe BGR 0-255 minus mean [b,g,r]"`` (the HED stand-in ``vgg16_features_hed.safetensors``
does); ghfeat reads it when ``preprocess`` is not given. ``weights=None`` is refused: a random
VGG gives a meaningless loss, so random weights must be asked for by name.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "VGGPreprocess", "PREPROCESS_PRESETS", "VGG16Features", "VGGPerceptualLoss",
    "load_vgg16_conv_state_dict",
]

# torchvision.models.vgg16().features: config "D"; features[:23] ends with conv4_3's ReLU.
_VGG16_CONV4_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512)
_NUM_MODULES = 23                  # len(vgg16().features[:23])
_LATER_CONV_IDS = (24, 26, 28)     # conv5_1..conv5_3: present in full-feature files, not used
TORCHVISION_VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"


@dataclass(frozen=True)
class VGGPreprocess:
    """How a ``[-1, 1]`` RGB image becomes VGG input: ``(((x + 1) / 2) * scale - mean) / std``.

    ``mean`` and ``std`` are in the channel order the network sees (BGR when ``bgr``).
    """
    name: str
    bgr: bool
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


PREPROCESS_PRESETS: dict[str, VGGPreprocess] = {
    # Keras / Caffe ImageNet VGG16 (what the official GH-Feat code used).
    "caffe": VGGPreprocess("caffe", bgr=True, scale=255.0, mean=(103.939, 116.779, 123.68)),
    # The HED edge detector's VGG16 (the offline stand-in weights).
    "caffe-hed": VGGPreprocess("caffe-hed", bgr=True, scale=255.0,
                               mean=(104.00699, 116.66877, 122.67892)),
    # torchvision ImageNet weights.
    "torchvision": VGGPreprocess("torchvision", bgr=False, scale=1.0, mean=(0.485, 0.456, 0.406),
                                 std=(0.229, 0.224, 0.225)),
}

_META_CAFFE = re.compile(r"caffe\s+BGR\s+0-255\s+minus\s+mean\s*\[([^\]]+)\]", re.IGNORECASE)


def _preprocess_from_metadata(text: str | None) -> VGGPreprocess | None:
    if not text:
        return None
    match = _META_CAFFE.search(text)
    if match is None:
        return None
    try:
        mean = tuple(float(v) for v in match.group(1).split(","))
    except ValueError:
        return None
    if len(mean) != 3:
        return None
    for preset in PREPROCESS_PRESETS.values():
        if preset.bgr and preset.scale == 255.0 and preset.mean == mean:
            return preset
    return VGGPreprocess("caffe-file", bgr=True, scale=255.0, mean=mean)


def _resolve_preprocess(preprocess: str | VGGPreprocess) -> VGGPreprocess:
    if isinstance(preprocess, VGGPreprocess):
        return preprocess
    if preprocess not in PREPROCESS_PRESETS:
        raise ValueError(f"unknown preprocess {preprocess!r}; choose one of "
                         f"{sorted(PREPROCESS_PRESETS)} or pass a VGGPreprocess(...)")
    return PREPROCESS_PRESETS[preprocess]


def _make_conv4_stack(device: str | torch.device | None = None) -> nn.Sequential:
    """``vgg16().features[:23]``; on ``device="meta"`` it costs nothing (no init, no memory)."""
    with torch.device(device or "cpu"):
        return _build_conv4_stack()


def _build_conv4_stack() -> nn.Sequential:
    layers: list[nn.Module] = []
    in_ch = 3
    for item in _VGG16_CONV4_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_ch = item
    assert len(layers) == _NUM_MODULES
    return nn.Sequential(*layers)


def _read_weight_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors or ``torch.save`` file; returns (tensors, safetensors metadata)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"VGG16 weight file {path} does not exist; pass weights='imagenet' (torchvision) or "
            "the path of a .safetensors/.pt file holding torchvision.models.vgg16().features "
            "tensors")
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                meta = dict(f.metadata() or {})
                state = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # SafetensorError, OSError, ...: header or data unreadable
            raise ValueError(f"{path} is not a valid safetensors file ({exc}); it may be truncated "
                             "or corrupt: copy or download it again") from exc
        return state, meta
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"could not read {path} with torch.load(weights_only=True) ({exc}); the "
                         "file is truncated/corrupt or holds more than tensors. Save a plain "
                         "state dict, ideally as .safetensors") from exc
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a flat state dict of tensors "
                         f"(got {type(obj).__name__})")
    return dict(obj), {}


def _select_conv4_tensors(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Map a VGG16 state dict onto ``vgg16().features[:23]`` keys, strictly.

    Accepted layouts: ``features`` keys (``"0.weight"`` ...), optionally with conv5 tensors
    (``24/26/28``) which are dropped; or a whole torchvision ``vgg16()`` state dict
    (``"features.0.weight"`` ..., ``"classifier.*"``), whose classifier is dropped.
    """
    if any(k.startswith("features.") for k in state):
        state = {k[len("features."):] if k.startswith("features.") else k: v
                 for k, v in state.items() if not k.startswith("classifier.")}
    expected = _make_conv4_stack("meta").state_dict()
    ignorable = {f"{i}.{p}" for i in _LATER_CONV_IDS for p in ("weight", "bias")}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected) - ignorable)
    mismatched = [f"{k}: file {tuple(state[k].shape)} vs VGG16 {tuple(v.shape)}"
                  for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or mismatched:
        lines = [f"{source} is not a VGG16 conv stack in the layout of "
                 "torchvision.models.vgg16().features:"]
        for label, items in (("missing", missing), ("unexpected", unexpected),
                             ("shape mismatch", mismatched)):
            if items:
                more = f" (+{len(items) - 6} more)" if len(items) > 6 else ""
                lines.append(f"  {label}: {', '.join(items[:6])}{more}")
        raise ValueError("\n".join(lines))
    return {k: state[k].float() for k in expected}


def _torchvision_imagenet_state(download: bool) -> dict[str, torch.Tensor]:
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(TORCHVISION_VGG16_URL)
    how_to_fix = (f"pass weights=<path to a .safetensors/.pt file with vgg16().features tensors>, "
                  f"or place torchvision's file at {cached}")
    if cached.is_file():
        state, _ = _read_weight_file(cached)
        return state
    if not download:
        raise FileNotFoundError(f"torchvision's ImageNet VGG16 is not in the torch hub cache and "
                                f"download=False: {how_to_fix}")
    try:
        return torch.hub.load_state_dict_from_url(TORCHVISION_VGG16_URL, map_location="cpu",
                                                  progress=True, weights_only=True)
    except Exception as exc:  # URLError, HTTPError, hash / read errors, ...
        raise RuntimeError(f"could not download torchvision's ImageNet VGG16 from "
                           f"{TORCHVISION_VGG16_URL} ({type(exc).__name__}: {exc}): "
                           f"{how_to_fix}") from exc


def load_vgg16_conv_state_dict(weights: str | os.PathLike, download: bool = True
                               ) -> tuple[dict[str, torch.Tensor], VGGPreprocess | None]:
    """The ``vgg16().features[:23]`` tensors of ``weights`` and the preprocessing it declares.

    Args:
        weights: ``"imagenet"`` (torchvision IMAGENET1K_V1, from the torch hub cache or
            downloaded when ``download``) or a path to a ``.safetensors`` / ``.pt`` file.
        download: allow torchvision to download the ImageNet file when it is not cached.
    Returns:
        ``(state_dict, preprocess)``; ``preprocess`` is ``PREPROCESS_PRESETS["torchvision"]``
        for ImageNet, the one named in a safetensors file's metadata, or ``None``.
    """
    if isinstance(weights, str) and weights == "imagenet":
        state = _torchvision_imagenet_state(download)
        return _select_conv4_tensors(state, "torchvision IMAGENET1K_V1"), \
            PREPROCESS_PRESETS["torchvision"]
    path = Path(weights)
    state, meta = _read_weight_file(path)
    declared = _preprocess_from_metadata(meta.get("preprocess"))
    return _select_conv4_tensors(state, str(path)), declared


class VGG16Features(nn.Module):
    """Frozen VGG16 up to conv4_3 after ReLU (``torchvision.models.vgg16().features[:23]``).

    Args:
        weights: ``"imagenet"``, a weight-file path, or ``"random"`` (tests only). ``None`` is
            refused so that a random network is never used by accident.
        preprocess: ``"caffe"``, ``"caffe-hed"``, ``"torchvision"`` or a :class:`VGGPreprocess`;
            ``None`` picks the default for the weight source (module docstring).
        input_size: resize inputs to ``input_size`` x ``input_size`` (nearest neighbour, like the
            official code's 256) before the network; ``None`` keeps the input size.
        download: allow downloading torchvision's ImageNet file when it is not cached.

    ``forward(x)``: ``x`` ``[N, 3, H, W]`` (or ``[N, 1, H, W]``, repeated to RGB) in ``[-1, 1]``
    -> ``[N, 512, H/8, W/8]`` float features (``input_size`` replaces H, W when given).
    """

    def __init__(self, weights: str | os.PathLike | None = "imagenet",
                 preprocess: str | VGGPreprocess | None = None, input_size: int | None = None,
                 download: bool = True):
        super().__init__()
        if weights is None:
            raise ValueError("weights=None is refused: a randomly initialised VGG16 gives a "
                             "meaningless perceptual loss. Pass weights='imagenet', a path to a "
                             ".safetensors/.pt file, or weights='random' (tests only).")
        if isinstance(weights, str) and weights == "random":
            self.features = _make_conv4_stack()
            declared = None
            self.weights_source = "random"
        elif isinstance(weights, (str, os.PathLike)):
            state, declared = load_vgg16_conv_state_dict(weights, download=download)
            self.features = _make_conv4_stack("meta")  # no wasted random init
            self.features.load_state_dict(state, strict=True, assign=True)
            self.weights_source = str(weights)
        else:
            raise TypeError(f"weights must be 'imagenet', 'random' or a path, "
                            f"not {type(weights).__name__}")
        if preprocess is None:
            preprocess = declared or PREPROCESS_PRESETS["caffe"]
        self.preprocess = _resolve_preprocess(preprocess)
        if input_size is not None and input_size < 8:
            raise ValueError(f"input_size must be >= 8 (three 2x poolings), got {input_size}")
        self.input_size = input_size
        self.register_buffer("_mean", torch.tensor(self.preprocess.mean).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("_std", torch.tensor(self.preprocess.std).view(1, 3, 1, 1),
                             persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGG16Features":
        """Always stays in eval mode (it is a fixed loss network)."""
        return super().train(False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``[-1, 1]`` RGB -> network input per ``self.preprocess`` (no resizing)."""
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected images [N, 3, H, W] (or [N, 1, H, W]) in [-1, 1], "
                             f"got shape {tuple(x.shape)}")
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        p = self.preprocess
        x = (x + 1) * 0.5
        if p.bgr:
            x = x.flip(1)
        return (x * p.scale - self._mean.to(x.dtype)) / self._std.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None and tuple(x.shape[-2:]) != (self.input_size,) * 2:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="nearest")
        return self.features(self.normalize(x))

    def extra_repr(self) -> str:
        return (f"weights={self.weights_source!r}, preprocess={self.preprocess.name!r}, "
                f"input_size={self.input_size}")


class VGGPerceptualLoss(nn.Module):
    """``mean((F(x) - F(y))^2)`` over all feature elements, F = :class:`VGG16Features`.

    Arguments are those of :class:`VGG16Features`. The difference is taken in float32 (safe
    under fp16 autocast, where Caffe-scale features are large). ``forward(x, y) -> []`` scalar.
    The GH-Feat objective weights this term by 5e-5, a value calibrated for Caffe-scale
    (0-255 input) features.
    """

    def __init__(self, weights: str | os.PathLike | None = "imagenet",
                 preprocess: str | VGGPreprocess | None = None, input_size: int | None = None,
                 download: bool = True):
        super().__init__()
        self.vgg = VGG16Features(weights, preprocess=preprocess, input_size=input_size,
                                 download=download)

    @property
    def preprocess(self) -> VGGPreprocess:
        return self.vgg.preprocess

    def train(self, mode: bool = True) -> "VGGPerceptualLoss":
        return super().train(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.vgg(x)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and "
                             f"{tuple(y.shape)}")
        return (self.vgg(x).float() - self.vgg(y).float()).square().mean()
