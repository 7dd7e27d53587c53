"""Eager PyTorch vs ONNX Runtime on the CPU: the encoder and the generator's synthesis.

    python benchmarks/bench_export.py                          # mnist32 pair, batch 64, 5 timed iterations
    python benchmarks/bench_export.py --encoder tiny32 --batch 16 --iters 3 --threads 2

Both run the same random-weight models (throughput does not depend on the weights) with the same
number of threads (``--threads``, default ``torch.get_num_threads()``): eager under
``torch.inference_mode`` in eval mode with the input checks on (as ``ghfeat.extract`` runs it), ONNX
Runtime with the file from ``ghfeat.export.export`` (opset 18) and its default graph optimisations.
Needs ``pip install 'ghfeat[onnx]'``.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from _timing import timed


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--encoder", default="mnist32", help="encoder registry name (its paired generator too)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)

    import onnxruntime as ort

    import ghfeat
    from ghfeat.export import _exportable, example_input, export, exported_max_abs_diff

    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    enc = ghfeat.create_encoder(args.encoder).eval()
    gen = ghfeat.create_generator(enc.generator_name).eval()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    cpu = torch.device("cpu")
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {threads} threads, batch {args.batch}")
    print(f"{'model':<32}{'eager img/s':>13}{'ORT img/s':>12}{'ORT/eager':>11}{'max|diff|':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for model, what in ((enc, f"{args.encoder} encoder"), (gen, f"{enc.generator_name} synthesis")):
            path = export(model, "onnx", Path(tmp) / "m.onnx")
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            x = example_input(model, args.batch)
            name, xn = sess.get_inputs()[0].name, x.numpy()
            net = _exportable(model)
            with torch.inference_mode():
                t_eager = timed(lambda: net(x), args.iters, cpu)
            t_ort = timed(lambda: sess.run(None, {name: xn}), args.iters, cpu)
            diff = exported_max_abs_diff(model, path, "onnx")
            print(f"{what:<32}{args.batch / t_eager:>13.1f}{args.batch / t_ort:>12.1f}{t_eager / t_ort:>10.2f}x"
                  f"{diff:>11.1e}")


if __name__ == "__main__":
    main()
