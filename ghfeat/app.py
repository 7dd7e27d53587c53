"""``ghfeat app``: a local web page to see GH-Feat's hierarchy (reconstruct, mix levels, edit).

    pip install "ghfeat[app]"            # Gradio, the only extra dependency
    ghfeat app                           # the shipped mnist32 model, http://127.0.0.1:7860
    ghfeat app --model ffhq256 --port 8000
    ghfeat app --model runs/e/encoder --generator runs/g/generator    # saved folders

Two layers, so that the model side is testable without a browser:

* :class:`Explorer` holds an encoder and its generator and does the work of every view on PIL /
  numpy images: convert an upload to the model's input (or say in one sentence why it cannot),
  reconstruct, mix levels, edit along SeFa or supervised directions, per-level magnitudes and
  spatial features. Results are ``uint8`` arrays at the model's resolution. It does not import
  Gradio.
* :func:`build_app` lays out the page with Gradio (imported only here, on first use) and
  :func:`app_main` is the command line. The server binds 127.0.0.1 unless ``--host`` says
  otherwise.

Levels follow the paper: level 1 is the finest generator layer, level L the most abstract
(level k = generator layer L - k).
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import tempfile
import threading
import time
import traceback
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

EXTRA_HINT = 'ghfeat app needs the optional extra: pip install "ghfeat[app]" (it installs Gradio)'
from .editing import PIXEL_ATTRIBUTES as ATTRIBUTES, measure_attribute as measure  # noqa: E402


class UploadError(ValueError):
    """An image the app cannot use, with a one-sentence reason and fix (shown in the page)."""


class BadUpload:
    """What the upload box hands over when the file is not an image at all."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """``[C, H, W]`` in [-1, 1] -> ``uint8`` ``[H, W]`` (C = 1) or ``[H, W, 3]``, clamped and rounded."""
    a = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return a[0].numpy() if a.shape[0] == 1 else a.permute(1, 2, 0).numpy()


# ------------------------------------------------------------------------------------------------
# The model side
# ------------------------------------------------------------------------------------------------

class Explorer:
    """Every view of the app as plain functions of images (PIL, numpy, paths or tensors).

    Args:
        encoder, generator: a GH-Feat encoder and the generator it was trained with (modules).
        fit_samples: generator samples a supervised direction is fitted on.
    """

    def __init__(self, encoder, generator, *, fit_samples: int = 512):
        from ._models import resolve_generator
        self.enc = encoder.eval()
        self.gen = resolve_generator(generator, encoder, False, None).eval()   # checks that they fit
        self.L = int(encoder.num_layers)
        self.R = int(self.gen.resolution)
        self.channels = int(getattr(encoder, "in_channels", 3))
        self.fit_samples = fit_samples
        self._codes: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._directions: dict = {}
        self._sefa: dict = {}

    # -- input ------------------------------------------------------------------------------------
    def to_tensor(self, image, *, resize: bool = False) -> torch.Tensor:
        """An upload -> ``[1, C, R, R]`` in [-1, 1]; :class:`UploadError` says why not."""
        from PIL import Image

        from .api import load_images
        if image is None:
            raise UploadError("No image yet: upload one, draw one or click a bundled example.")
        if isinstance(image, BadUpload):
            raise UploadError(f"'{image.name}' is not an image this app can read ({image.reason}); "
                              "upload a PNG or JPEG file.")
        if isinstance(image, (str, os.PathLike)):
            try:
                with Image.open(image) as im:
                    im.load()
                    image = im.copy()
            except Exception as exc:
                raise UploadError(f"'{Path(image).name}' is not an image this app can read ({exc}); "
                                  "upload a PNG or JPEG file.") from None
        if isinstance(image, dict) and "composite" in image:          # a drawing from the sketch pad
            image, resize = image["composite"], True
            if image is None:
                raise UploadError("The drawing is empty: draw a digit first.")
        if isinstance(image, Image.Image):
            w, h = image.size
        elif isinstance(image, np.ndarray) and image.ndim in (2, 3):
            h, w = image.shape[:2]
        else:
            raise UploadError(f"Expected an image, got {type(image).__name__}.")
        if (h, w) != (self.R, self.R) and not resize:
            raise UploadError(f"This image is {w}x{h} pixels; the model takes {self.R}x{self.R}. Tick "
                              f"'Resize uploads to {self.R}x{self.R}' (shorter side scaled, centre crop) "
                              f"or upload a {self.R}x{self.R} image.")
        try:
            return load_images(image, size=self.R, resize=resize, channels=self.channels)
        except (ValueError, TypeError) as exc:
            raise UploadError(f"This image cannot be used: {exc}") from None

    def _named(self, image, name: str, resize: bool) -> torch.Tensor:
        try:
            return self.to_tensor(image, resize=resize)
        except UploadError as exc:
            raise UploadError(f"{name}: {exc}") from None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Packed codes ``[1, L, D]`` of an input tensor (the last 32 are cached: sliders re-use them)."""
        from .api import encode
        key = hashlib.sha1(x.numpy().tobytes()).hexdigest()
        if key not in self._codes:
            self._codes[key] = encode(x, self.enc, progress=False, input_range="[-1,1]")
            if len(self._codes) > 32:
                self._codes.popitem(last=False)
        self._codes.move_to_end(key)
        return self._codes[key]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Images ``[N, C, R, R]`` in [-1, 1], one code at a time: a mix with no level from B, or an
        edit of strength 0, is then bit for bit the reconstruction (a batch may round differently)."""
        from .api import decode
        return torch.cat([decode(c[None], self.gen, progress=False) for c in codes]).clamp(-1, 1)

    # -- views ------------------------------------------------------------------------------------
    def reconstruct(self, image, *, resize: bool = False):
        """-> ``(input, reconstruction, |error| map, {"mse", "psnr"})``; images ``uint8`` at R x R.
        The error map is ``|rec - x|`` with 0 black and 1 (half the [-1, 1] range) or more white."""
        x = self.to_tensor(image, resize=resize)
        rec = self.decode(self.encode(x))
        rec = rec.mean(1, keepdim=True) if rec.shape[1] != x.shape[1] else rec
        err = (rec - x).abs()
        mse = float(err.pow(2).mean())
        psnr = float(10 * np.log10(4.0 / max(mse, 1e-12)))                       # peak-to-peak range 2
        return to_uint8(x[0]), to_uint8(rec[0]), to_uint8(err[0].clamp(0, 1) * 2 - 1), {"mse": mse, "psnr": psnr}

    def mix(self, image_a, image_b, levels_from_b, *, resize: bool = False):
        """Style mixing: A's codes with ``levels_from_b`` taken from B. -> ``(rec A, rec B, mix)``."""
        from ._codes import mix_codes, parse_levels
        lv = parse_levels(sorted(int(k) for k in levels_from_b or []), self.L, allow_empty=True)
        ca = self.encode(self._named(image_a, "Image A", resize))
        cb = self.encode(self._named(image_b, "Image B", resize))
        imgs = self.decode(torch.cat([ca, cb, mix_codes(ca, cb, lv, self.L)]))
        return tuple(to_uint8(t) for t in imgs)

    def sefa(self, level: int) -> torch.Tensor:
        """The SeFa directions of ``level``: ``[C, 2C]`` (row j = the j-th strongest)."""
        if level not in self._sefa:
            from .editing import sefa_directions
            self._sefa[level] = sefa_directions(self.gen, level)[0]
        return self._sefa[level]

    def supervised(self, attribute: str, levels) -> dict[int, torch.Tensor]:
        """A supervised direction for ``attribute`` over ``levels``, fitted once (then cached) on the
        generator's own samples: ``fit_samples`` images ``G(z)`` are measured (:func:`measure`),
        encoded by the encoder, split at the median, and a logistic classifier's unit normal is taken
        (:func:`ghfeat.editing.supervised_direction`)."""
        key = (attribute, tuple(levels))
        if key not in self._directions:
            from .api import encode
            from .editing import sample_codes, supervised_direction
            from .api import decode
            imgs = decode(sample_codes(self.gen, self.fit_samples, seed=0, truncation_psi=None), self.gen,
                          progress=False).clamp(-1, 1)
            values = measure(imgs, attribute)
            codes = encode(imgs if self.channels == imgs.shape[1] else imgs.mean(1, keepdim=True), self.enc,
                           progress=False, input_range="[-1,1]")
            upper = torch.zeros(len(values), dtype=torch.bool)
            upper[values.argsort()[len(values) // 2:]] = True
            feats = {k: codes[:, self.L - k, :self.gen.style_dims[self.L - k]] for k in levels}
            self._directions[key] = supervised_direction(feats, upper)
        return self._directions[key]

    def direction(self, name: str, levels) -> dict[int, torch.Tensor]:
        """``"sefa:J"`` (each level's J-th SeFa direction) or an attribute name (:data:`ATTRIBUTES`)."""
        levels = sorted(int(k) for k in levels)
        if name.startswith("sefa:"):
            j = int(name.split(":")[1])
            return {k: self.sefa(k)[j] for k in levels}
        if name in ATTRIBUTES:
            return self.supervised(name, levels)
        raise ValueError(f"unknown direction {name!r}; expected sefa:J or one of {ATTRIBUTES}")

    def edit(self, image, direction: str, levels, strength: float, *, resize: bool = False):
        """Move the image's codes at ``levels`` by ``strength`` along ``direction`` -> ``(rec, edited)``."""
        from ._codes import parse_levels
        from .editing import edit_codes
        if not levels:
            raise UploadError("Pick at least one level to edit.")
        parse_levels(sorted(int(k) for k in levels), self.L)
        codes = self.encode(self.to_tensor(image, resize=resize))
        d = self.direction(direction, levels)
        moved = edit_codes(codes, d, [0.0, float(strength)], style_dims=self.gen.style_dims)[:, 0]
        imgs = self.decode(moved)
        return to_uint8(imgs[0]), to_uint8(imgs[1])

    def magnitudes(self, image, *, resize: bool = False) -> dict[int, float]:
        """Per level ``k``: the RMS of its code ``y_k = (y_s, y_b)``, ``sqrt(mean(y_k ** 2))``."""
        codes = self.encode(self.to_tensor(image, resize=resize))[0]
        dims = self.gen.style_dims
        return {k: float(codes[self.L - k, :dims[self.L - k]].pow(2).mean().sqrt()) for k in range(1, self.L + 1)}

    def spatial(self, image, level: int, *, resize: bool = False, n: int = 16):
        """The ``n`` most varying channels of level ``level``'s feature map (``ghfeat.extract_spatial``),
        each scaled to its own min..max, tiled in a square grid (1 px gaps) -> ``(uint8 grid, info)``."""
        from .api import extract_spatial
        x = self.to_tensor(image, resize=resize)
        fmap = extract_spatial(x, levels=[int(level)], model=self.enc, generator=self.gen, progress=False,
                               input_range="[-1,1]")[int(level)][0]                      # [C, R, R]
        c = fmap.shape[0]
        order = fmap.flatten(1).std(1).argsort(descending=True)[:min(n, c)]
        sel = fmap[order]
        lo, hi = sel.amin((1, 2), keepdim=True), sel.amax((1, 2), keepdim=True)
        sel = (sel - lo) / (hi - lo).clamp_min(1e-8)
        side = int(np.ceil(np.sqrt(len(sel))))
        grid = np.full((side * (self.R + 1) - 1, side * (self.R + 1) - 1), 64, np.uint8)
        for i, m in enumerate(sel):
            r, q = divmod(i, side)
            grid[r * (self.R + 1):r * (self.R + 1) + self.R, q * (self.R + 1):q * (self.R + 1) + self.R] = \
                (m * 255).round().byte().numpy()
        layer = self.L - int(level)
        native = self.gen.layer_resolutions[layer] if hasattr(self.gen, "layer_resolutions") else None
        return grid, {"channels": c, "shown": len(sel), "layer": layer, "resolution": native}

    def examples(self, folder) -> list[str]:
        """The ten bundled MNIST test digits as PNG files in ``folder`` (for 32x32 models)."""
        from PIL import Image
        strip = Path(__file__).parent / "assets" / "mnist_test_digits.png"
        if not strip.is_file():
            return []
        a = np.asarray(Image.open(strip).convert("L"))
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for i in range(a.shape[1] // a.shape[0]):
            p = folder / f"digit_{i}.png"
            Image.fromarray(a[:, i * a.shape[0]:(i + 1) * a.shape[0]]).save(p)
            out.append(str(p))
        return out


# ------------------------------------------------------------------------------------------------
# The page
# ------------------------------------------------------------------------------------------------

CSS = """
.pixels img { image-rendering: pixelated; width: 100% !important; height: 100% !important; object-fit: contain; }
.msg p { margin: 0; }
footer { display: none !important; }
"""


def _import_gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError:
        raise ImportError(EXTRA_HINT) from None
    return gr


def _png_writer(folder: Path):
    """``uint8`` array -> path of a PNG named by its content, written atomically (tmp + rename).

    Handing Gradio finished files instead of arrays matters: Gradio rewrites an array's cache file in
    place each time the same picture comes back (a mix with no level from B *is* the reconstruction),
    and a browser fetching it meanwhile gets a truncated PNG."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)

    def png(a):
        if a is None:
            return None
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        data = buf.getvalue()
        path = folder / f"{hashlib.sha1(data).hexdigest()}.png"
        if not path.exists():
            tmp = path.with_suffix(f".{os.getpid()}.{time.monotonic_ns()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return str(path)
    return png


def build_app(explorer: Explorer, *, title: str = "", examples_dir=None):
    """The Gradio page for ``explorer`` (a ``gr.Blocks``; call ``.launch()`` or use :func:`serve`).
    ``examples_dir``: a folder for the bundled example digits and the result PNGs (it must be in
    ``launch(allowed_paths=...)``); default a new temporary folder."""
    gr = _import_gradio()
    import pandas as pd

    examples_dir = Path(examples_dir or tempfile.mkdtemp(prefix="ghfeat-app-"))
    png = _png_writer(examples_dir / "out")

    ex = explorer
    L, R = ex.L, ex.R
    levels = list(range(1, L + 1))
    level_choices = [(f"{k}" + (" (finest)" if k == 1 else " (most abstract)" if k == L else ""), k) for k in levels]

    def Upload(**kw):
        """A gr.Image whose non-image files arrive as :class:`BadUpload` (a message in the page instead
        of Gradio's generic error). The instance's ``preprocess`` is wrapped; a subclass would make
        Gradio write a ``.pyi`` stub next to this module."""
        component = gr.Image(**kw)
        plain = component.preprocess

        def preprocess(payload):
            try:
                return plain(payload)
            except Exception as exc:                      # PIL could not read it
                return BadUpload(getattr(payload, "orig_name", None) or "the file", type(exc).__name__)
        component.preprocess = preprocess
        return component

    lock = threading.Lock()          # one computation at a time: the caches and 2 CPU cores are shared

    def locked(fn):
        def run(*args):
            with lock:
                return fn(*args)
        run.__name__ = fn.__name__
        return run

    def ok(msg=""):
        return msg

    def fail(exc):
        if isinstance(exc, UploadError):
            return f"⚠️ {exc}"
        traceback.print_exception(exc, file=sys.stderr)            # the server log, never the page
        return f"⚠️ Something went wrong ({type(exc).__name__}: {exc}). The server log has the details."

    def img(**kw):
        return gr.Image(interactive=False, format="png", height=170, elem_classes=["pixels"],
                        buttons=["download"], **kw)

    @locked
    def on_reconstruct(a, resize):
        try:
            x, rec, err, m = ex.reconstruct(a, resize=resize)
            mags = ex.magnitudes(a, resize=resize)
            df = pd.DataFrame({"level": [str(k) for k in mags], "RMS of y": list(mags.values())})
            return (png(x), png(rec), png(err), ok(f"Reconstruction error: **MSE {m['mse']:.4f}** (images in [-1, 1]), "
                                    f"**PSNR {m['psnr']:.1f} dB**."), df)
        except Exception as exc:
            return None, None, None, fail(exc), None

    @locked
    def on_mix(a, b, from_b, resize):
        try:
            ra, rb, mixed = ex.mix(a, b, from_b, resize=resize)
            lv = sorted(int(k) for k in from_b or [])
            what = (f"levels {', '.join(map(str, lv))} from B, the rest from A" if lv and len(lv) < L else
                    "every level from B (= B's reconstruction)" if lv else "no level from B (= A's reconstruction)")
            return png(ra), png(rb), png(mixed), ok(f"Mix: {what}.")
        except Exception as exc:
            return None, None, None, fail(exc)

    @locked
    def on_edit(a, direction, lv, strength, resize):
        try:
            rec, edited = ex.edit(a, direction, lv, strength, resize=resize)
            return png(rec), png(edited), ok(f"{direction_label(direction)} at levels {', '.join(map(str, sorted(lv)))}, "
                                   f"strength {strength:+.1f}.")
        except Exception as exc:
            return None, None, fail(exc)

    @locked
    def on_spatial(a, level, resize):
        try:
            grid, info = ex.spatial(a, int(level), resize=resize)
            res = f"{info['resolution']}x{info['resolution']} px" if info["resolution"] else "its own size"
            return png(grid), ok(f"Level {int(level)} = generator layer {info['layer']}: {info['channels']} channels at "
                            f"{res}, upsampled to {R}x{R}; the {info['shown']} channels that vary most, each "
                            "scaled to its own range.")
        except Exception as exc:
            return None, fail(exc)

    directions = ([(f"SeFa #{j} (closed form, per level)", f"sefa:{j}") for j in range(4)]
                  + [(f"supervised: {a}", a) for a in ATTRIBUTES])

    def direction_label(name):
        return next(lbl for lbl, v in directions if v == name)

    examples = ex.examples(examples_dir) if R == 32 else []
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    with gr.Blocks(title="ghfeat app", analytics_enabled=False) as demo:
        demo.ghfeat_launch_kwargs = dict(theme=theme, css=CSS)
        gr.Markdown(f"## GH-Feat explorer: {title}\n"
                    f"GH-Feat encodes an image into one style code per generator layer. **Levels** number them "
                    f"as in the paper: level 1 is the finest layer (texture, stroke detail), level {L} the most "
                    f"abstract (layout, identity). Upload a {R}x{R} image or click an example, then open a tab.")
        with gr.Row():
            with gr.Column(scale=1, min_width=220):
                a = Upload(value=examples[3] if examples else None, label="Image A", type="pil",
                           image_mode=None, sources=["upload", "clipboard"], format="png", height=200, elem_id="image_a", elem_classes=["pixels"])
            with gr.Column(scale=2):
                if examples:
                    gr.Examples(examples, inputs=[a], label="Bundled MNIST test digits (click one)",
                                examples_per_page=10)
                resize = gr.Checkbox(value=False, label=f"Resize uploads to {R}x{R} (shorter side scaled, centre crop)",
                                     elem_id="resize")
                with gr.Accordion("Draw an image instead", open=False):
                    from PIL import Image as _PIL
                    sketch = gr.Sketchpad(value={"background": _PIL.new("RGB", (224, 224), "black"), "layers": [],
                                                 "composite": None},
                                          canvas_size=(224, 224), type="pil", image_mode="RGB", height=300,
                                          brush=gr.Brush(colors=["#ffffff", "#808080"], default_size=12,
                                                         color_mode="fixed"), label="draw (white on black, "
                                          "like MNIST)", elem_id="sketch")
                    use_sketch = gr.Button(f"Use the drawing as image A (scaled to {R}x{R})", size="sm")
                draw_msg = gr.Markdown(elem_classes=["msg"])
        with gr.Tabs():
            with gr.Tab("Reconstruct", id="reconstruct", elem_id="tab_reconstruct"):
                with gr.Row():
                    in_img = img(label="input (as the model sees it)", elem_id="rec_input")
                    rec_img = img(label="reconstruction G(E(x))", elem_id="rec_output")
                    err_img = img(label="|error| (white = 1 or more)", elem_id="rec_error")
                rec_msg = gr.Markdown(elem_id="rec_msg", elem_classes=["msg"])
            with gr.Tab("Style mixing", id="mix", elem_id="tab_mix"):
                gr.Markdown("The mix decodes A's codes with the **ticked levels taken from B**. Coarse levels "
                            f"(high numbers, up to {L}) carry shape and identity, fine levels (low numbers) "
                            "stroke and texture. The result updates as you tick.")
                with gr.Row():
                    with gr.Column(scale=1, min_width=220):
                        b = Upload(value=examples[7] if examples else None, label="Image B", type="pil",
                                   image_mode=None, sources=["upload", "clipboard"], format="png", height=200, elem_id="image_b", elem_classes=["pixels"])
                    with gr.Column(scale=2):
                        if examples:
                            gr.Examples(examples, inputs=[b], label="Examples for B", examples_per_page=10)
                        from_b = gr.CheckboxGroup(level_choices, value=[], label="Levels taken from B",
                                                  elem_id="levels_from_b")
                        with gr.Row():
                            presets = {"none": [], f"coarse ({L // 2 + 1}-{L})": list(range(L // 2 + 1, L + 1)),
                                       f"fine (1-{L // 2})": list(range(1, L // 2 + 1)), "all": levels}
                            buttons = {name: gr.Button(name, size="sm") for name in presets}
                with gr.Row():
                    mix_a = img(label="A (reconstruction)", elem_id="mix_a")
                    mix_out = img(label="mix", elem_id="mix_output")
                    mix_b = img(label="B (reconstruction)", elem_id="mix_b")
                mix_msg = gr.Markdown(elem_id="mix_msg", elem_classes=["msg"])
            with gr.Tab("Edit", id="edit", elem_id="tab_edit"):
                gr.Markdown("Move A's codes along a direction at the chosen levels. **SeFa** directions come from "
                            "the generator's weights (no labels); **supervised** ones are fitted on the "
                            "generator's own samples, labelled by a pixel measure (fitted on first use, a few "
                            "seconds). On MNIST, stroke thickness lives in the fine levels 1-4, slant in 1-6.")
                with gr.Row():
                    direction = gr.Dropdown(directions, value="sefa:0", label="direction", elem_id="direction")
                    edit_levels = gr.CheckboxGroup(level_choices, value=[L // 2 + 1], label="levels to edit",
                                                   elem_id="edit_levels")
                strength = gr.Slider(-10, 10, value=4, step=0.5, label="strength", elem_id="strength")
                with gr.Row():
                    edit_rec = img(label="A (reconstruction, strength 0)", elem_id="edit_rec")
                    edit_out = img(label="edited", elem_id="edit_output")
                edit_msg = gr.Markdown(elem_id="edit_msg", elem_classes=["msg"])
            with gr.Tab("Features", id="features", elem_id="tab_features"):
                with gr.Row():
                    with gr.Column():
                        plot = gr.BarPlot(x="level", y="RMS of y", sort=[str(k) for k in levels],
                                          title="Per-level feature magnitude of A", x_title="level (1 = finest)",
                                          y_title="RMS of the style code", height=260, elem_id="magnitudes")
                    with gr.Column():
                        sp_level = gr.Slider(1, L, value=L // 2, step=1, label="level of the spatial features",
                                             elem_id="spatial_level")
                        sp_img = img(label="spatial features (ghfeat.extract_spatial)", elem_id="spatial")
                sp_msg = gr.Markdown(elem_id="spatial_msg", elem_classes=["msg"])

        live = dict(show_progress="hidden", trigger_mode="always_last")
        rec_io = ([a, resize], [in_img, rec_img, err_img, rec_msg, plot])
        mix_io = ([a, b, from_b, resize], [mix_a, mix_b, mix_out, mix_msg])
        edit_io = ([a, direction, edit_levels, strength, resize], [edit_rec, edit_out, edit_msg])
        sp_io = ([a, sp_level, resize], [sp_img, sp_msg])
        for trigger in (demo.load, a.change, resize.change):
            trigger(on_reconstruct, *rec_io, **live)
            trigger(on_mix, *mix_io, **live)
            trigger(on_edit, *edit_io, **live)
            trigger(on_spatial, *sp_io, **live)
        for trigger in (b.change, from_b.change):
            trigger(on_mix, *mix_io, **live)
        for trigger in (direction.change, edit_levels.change, strength.change):
            trigger(on_edit, *edit_io, **live)
        sp_level.change(on_spatial, *sp_io, **live)

        @locked
        def on_use_drawing(drawing):
            try:
                return png(to_uint8(ex.to_tensor(drawing)[0])), ok()
            except Exception as exc:
                return gr.update(), fail(exc)

        use_sketch.click(on_use_drawing, [sketch], [a, draw_msg], show_progress="hidden")
        for name, btn in buttons.items():
            btn.click(lambda v=presets[name]: v, None, from_b, show_progress="hidden")
    return demo


def load_models(model: str, generator: str | None = None):
    """Encoder + generator from registry names (pretrained weights: shipped, cached or downloaded),
    saved folders or trainer checkpoints; the generator defaults to the encoder's paired one."""
    from .metrics import load_network
    enc = load_network(model, "encoder")
    gname = generator or getattr(enc, "generator_name", None)
    if not gname:
        raise ValueError(f"the encoder {model!r} does not name its generator; pass --generator NAME_OR_FOLDER")
    return enc, load_network(gname, "generator"), gname


@contextlib.contextmanager
def _patient_startup_check(seconds: float = 120.0):
    """Gradio's launch asks its own server once (5 tries, 3 s each) and gives up with "localhost is not
    accessible" when no answer comes: on a busy 2-core machine the answer can take longer. Keep asking
    for up to ``seconds``."""
    from gradio import networking
    quick = getattr(networking, "url_ok", None)
    if quick is None:
        yield
        return

    def patient(url):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if quick(url):
                return True
            time.sleep(0.5)
        return False
    networking.url_ok = patient
    try:
        yield
    finally:
        networking.url_ok = quick


@contextlib.contextmanager
def _close_on_error(demo):
    """A launch that fails after starting the server thread would otherwise keep the process alive."""
    try:
        yield
    except BaseException:
        demo.close()
        raise


def serve(explorer: Explorer, *, host: str = "127.0.0.1", port: int | None = None, title: str = "",
          block: bool = True):
    """Build and launch the page; returns ``(demo, url)`` (with ``block=False`` the server runs in a
    background thread until ``demo.close()``)."""
    folder = Path(tempfile.mkdtemp(prefix="ghfeat-app-"))
    demo = build_app(explorer, title=title, examples_dir=folder)
    with _patient_startup_check(), _close_on_error(demo):
        _, url, _ = demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, share=False,
                                show_error=False, ssr_mode=False, quiet=True, allowed_paths=[str(folder)],
                                footer_links=[], **demo.ghfeat_launch_kwargs)
    if block:
        print(f"ghfeat app: serving on {url} (Ctrl+C stops it)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            demo.close()
    return demo, url


def page_title(model: str, generator: str, explorer: Explorer) -> str:
    return f"encoder `{model}` + generator `{generator}`, {explorer.R}x{explorer.R}, {explorer.L} levels"


def app_main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="ghfeat app", description="A local web page to explore a GH-Feat model: "
                                 "reconstruction, style mixing by level, editing, per-level features. Needs "
                                 'the extra: pip install "ghfeat[app]".')
    ap.add_argument("--model", default="mnist32", help="encoder: registry name, saved folder or trainer checkpoint "
                    "(default: the shipped mnist32)")
    ap.add_argument("--generator", default=None, help="generator (default: the encoder's paired one)")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=None, help="port (default: the first free one from 7860)")
    ap.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = ap.parse_args(argv)
    if args.port is not None and not 0 < args.port < 65536:
        raise ValueError(f"--port must be in 1..65535, got {args.port}")
    _import_gradio()                                            # fail early, before loading models
    enc, gen, gname = load_models(args.model, args.generator)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"!! --host {args.host}: the app is reachable from other machines on that network", file=sys.stderr)
    ex = Explorer(enc, gen)
    serve(ex, host=args.host, port=args.port, title=page_title(args.model, gname, ex))
    return 0
