"""Export the encoder and the generator's synthesis to ONNX, TorchScript or a torch.export program.

    ghfeat export mnist32 --format onnx --out enc.onnx                    # encoder: image -> codes
    ghfeat export stylegan-mnist32 --format onnx --out syn.onnx           # synthesis: codes -> image
    ghfeat export tiny32 --format torchscript --out enc.pt --random-weights

    from ghfeat.export import export, exported_max_abs_diff
    path = export(enc, "onnx", "enc.onnx")        # the module passed decides: encoder or synthesis
    exported_max_abs_diff(enc, path, "onnx")      # run the file on a fresh batch vs eager PyTorch

What is exported (both with a dynamic batch dimension, float32, eval mode, stored noise):
* an encoder: ``image [N, C, R, R]`` in [-1, 1] -> ``codes [N, L, 2*C_max]`` (packed, as ``E(x)``);
* a generator: its synthesis only, ``codes [N, L, 2*C_max]`` -> ``image [N, C, R, R]``
  (``G.synthesis(styles=codes, randomize_noise=False)``: no mapping, no truncation, GH-Feat decoding).
The data-dependent input checks (value range, NaN/Inf) are switched off in the exported graph: a
graph cannot raise a Python error; check inputs before calling it.

Formats: ``onnx`` (``torch.onnx.export(..., dynamo=True)``, needs ``pip install ghfeat[onnx]``,
opset 18 by default), ``torchscript`` (``torch.jit.trace``), ``exported-program``
(``torch.export.export`` + ``torch.export.save``, a ``.pt2`` file).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

import torch
from torch import nn

FORMATS = ("onnx", "torchscript", "exported-program")
DEFAULT_OPSET = 18


class _Synthesis(nn.Module):
    """``codes [N, L, 2*C_max] -> image [N, C, R, R]`` with the stored noise (GH-Feat decoding)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.synthesis = generator.synthesis
        self.training = False            # the wrapper's own flag; the synthesis keeps its state

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.synthesis(styles=codes, randomize_noise=False, validate=False)


def _is_generator(model: nn.Module) -> bool:
    return hasattr(model, "synthesis")


def example_input(model: nn.Module, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A random input of the right shape: images in [-1, 1] for an encoder, N(0, 0.5) codes for a
    generator (about the spread of trained GH-Feat codes)."""
    g = torch.Generator().manual_seed(seed)
    if _is_generator(model):
        return torch.randn(batch, model.num_layers, max(model.style_dims), generator=g) * 0.5
    size, ch = int(model.input_size), int(getattr(model, "in_channels", 3))
    return torch.rand(batch, ch, size, size, generator=g) * 2 - 1


def _exportable(model: nn.Module) -> nn.Module:
    if not isinstance(model, nn.Module) or not (_is_generator(model) or hasattr(model, "forward_layers")):
        raise TypeError(f"export takes a GH-Feat encoder or a StyleGAN generator, got {type(model).__name__}")
    return _Synthesis(model) if _is_generator(model) else model


@contextlib.contextmanager
def _graph_mode(model: nn.Module):
    """Eval mode, no data-dependent checks (restored afterwards)."""
    target = model.synthesis if _is_generator(model) else model
    state, checks = model.training, target.validate_inputs
    try:
        model.eval()
        target.validate_inputs = False
        yield
    finally:
        model.train(state)
        target.validate_inputs = checks


def export(model: nn.Module, format: str, out, *, opset: int = DEFAULT_OPSET, batch: int = 2) -> Path:
    """Write ``model`` (an encoder, or a generator's synthesis) to ``out`` in ``format``.

    Args:
        model: a ``GHFeatEncoder`` or a ``StyleGANGenerator`` (its synthesis is exported), on the CPU.
        format: ``"onnx"``, ``"torchscript"`` or ``"exported-program"``.
        out: the file to write (parent folders are created).
        opset: ONNX opset version (``onnx`` only).
        batch: batch size of the example input used for tracing; the batch dimension stays dynamic.
    Returns:
        the path written. Input/output names in ONNX: ``images`` -> ``codes`` (encoder),
        ``codes`` -> ``images`` (synthesis).
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if batch < 2:
        raise ValueError("batch must be >= 2 (with 1, exporters may specialise the batch dimension to 1)")
    net = _exportable(model)
    x = example_input(model, batch)
    names = (["codes"], ["images"]) if _is_generator(model) else (["images"], ["codes"])
    arg = "codes" if _is_generator(model) else "x"
    out = Path(out)
    from ._io import atomic_output, atomic_write_bytes
    with _graph_mode(model), torch.no_grad():
        if format == "torchscript":
            # serialised in memory, then written by Python: a full disk is a clear error, never a
            # C++ abort with a half-written file (torch's file writer aborts on ENOSPC)
            buf = io.BytesIO()
            torch.jit.save(torch.jit.trace(net, (x,), check_trace=False), buf)
            atomic_write_bytes(out, buf.getvalue(), what="export")
        elif format == "exported-program":
            dyn = {arg: {0: torch.export.Dim("batch", min=1, max=4096)}}
            buf = io.BytesIO()
            torch.export.save(torch.export.export(net, (x,), dynamic_shapes=dyn), buf)
            atomic_write_bytes(out, buf.getvalue(), what="export")
        else:
            try:
                import onnxscript  # noqa: F401  (the dynamo ONNX exporter needs it)
            except ImportError:
                raise ImportError("ONNX export needs the onnx extra: pip install 'ghfeat[onnx]' "
                                  "(onnx, onnxscript, onnxruntime)") from None
            dyn = {arg: {0: torch.export.Dim("batch", min=1, max=4096)}}
            # optimize=False: onnxscript's rewriter (0.7.2) has a no-op rule "x + 0 -> x" whose constant
            # matches with abs_tol 1e-8, so it deletes instance norm's "+ 1e-8" and a constant feature map
            # (e.g. a fresh generator's all-ones const) gives 0 * inf = NaN. ORT optimises the graph anyway.
            prog = torch.onnx.export(net, (x,), dynamo=True, opset_version=opset, input_names=names[0],
                                     output_names=names[1], dynamic_shapes=dyn, optimize=False, verbose=False)
            with atomic_output(out, what="export") as tmp:
                prog.save(str(tmp))
    return out


def load_exported(path, format: str):
    """A callable ``f(x: torch.Tensor) -> torch.Tensor`` running the exported file (ONNX through
    onnxruntime on the CPU)."""
    path = str(path)
    if format == "torchscript":
        return torch.jit.load(path)
    if format == "exported-program":
        return torch.export.load(path).module()
    if format != "onnx":
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError("running the ONNX file needs onnxruntime: pip install 'ghfeat[onnx]'") from None
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: torch.from_numpy(sess.run(None, {name: x.detach().cpu().numpy()})[0])


def exported_max_abs_diff(model: nn.Module, path, format: str, *, batch: int = 3, seed: int = 1) -> float:
    """Max |exported(x) - eager(x)| on a fresh random batch of ``batch`` (not the traced size)."""
    x = example_input(model, batch, seed)
    with _graph_mode(model), torch.no_grad():
        ref = _exportable(model)(x)
        got = load_exported(path, format)(x)
    if tuple(got.shape) != tuple(ref.shape):
        raise RuntimeError(f"exported output has shape {tuple(got.shape)}, eager {tuple(ref.shape)}")
    return float((got.float() - ref.float()).abs().max())


# ------------------------------------------------------------------------------------------------
# CLI: ghfeat export
# ------------------------------------------------------------------------------------------------

def _build(name: str, checkpoint, random_weights: bool) -> nn.Module:
    from ._registry import create_encoder, create_generator, get_entry
    from .models import encoder_zoo  # noqa: F401  (registers the encoders)

    kinds = []
    for kind in ("encoder", "generator"):
        with contextlib.suppress(ValueError):
            kinds.append(get_entry(kind, name).kind)
    if not kinds:
        raise ValueError(f"{name!r} is neither an encoder nor a generator registry name (see `ghfeat list`); "
                         "export takes an encoder (e.g. mnist32) or a generator (e.g. stylegan-mnist32)")
    build = create_encoder if kinds[0] == "encoder" else create_generator
    if random_weights:
        print(f"!! --random-weights: the exported {kinds[0]} is RANDOMLY INITIALISED (pipeline check only)",
              file=sys.stderr, flush=True)
        return build(name)
    return build(name, checkpoint_path=checkpoint) if checkpoint else build(name, pretrained=True)


def export_main(argv=None) -> int:
    from .cli import HelpFormatter
    ap = argparse.ArgumentParser(prog="ghfeat export", formatter_class=HelpFormatter,
                                 description="Export an encoder (image -> codes) or a "
                                 "generator's synthesis (codes -> image) with a dynamic batch dimension.")
    ap.add_argument("name", help="encoder or generator registry name (e.g. mnist32, stylegan-mnist32)")
    ap.add_argument("--format", choices=FORMATS, required=True)
    ap.add_argument("--out", required=True, help="output file (.onnx, .pt, .pt2)")
    ap.add_argument("--checkpoint", default=None, help="weights (.safetensors or a saved folder)")
    ap.add_argument("--random-weights", action="store_true", help="random weights (pipeline check only)")
    ap.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset version")
    ap.add_argument("--no-check", action="store_true", help="skip running the file against eager PyTorch")
    ap.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = ap.parse_args(argv)
    if args.random_weights and args.checkpoint:
        raise ValueError("give --checkpoint or --random-weights, not both")
    from ._io import check_writable
    check_writable(args.out, folder=False, what="--out")
    model = _build(args.name, args.checkpoint, args.random_weights)
    path = export(model, args.format, args.out, opset=args.opset)
    what = "synthesis (codes -> images)" if _is_generator(model) else "encoder (images -> codes)"
    msg = f"wrote {path}: {args.name} {what}, {args.format}"
    if not args.no_check:
        msg += f"; max |exported - eager| on a batch of 3 = {exported_max_abs_diff(model, path, args.format):.2e}"
    print(msg)
    return 0
