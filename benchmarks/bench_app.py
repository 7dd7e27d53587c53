"""Model-side cost of each ``ghfeat app`` interaction (``ghfeat.app.Explorer``, no browser, no Gradio).

    OMP_NUM_THREADS=1 python -m benchmarks.bench_app [--model mnist32] [--repeats 20]   # from the repo root

For each kind of interaction it reports the median wall time and the mean CPU time (this process,
all threads) per call. CPU time does not grow when other programs share the machine, so it is the
number to compare with the 300 ms goal on a busy machine; the wall time is what a user waits for
the model on this machine as it is now. What the page adds on top (Gradio's queue, the PNG, the
browser) is measured end to end by ``tests/test_app_browser.py -s``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from PIL import Image


def timed(fn, args_list):
    walls, cpu0 = [], time.process_time()
    for args in args_list:
        t = time.perf_counter()
        fn(*args)
        walls.append(time.perf_counter() - t)
    return 1000 * statistics.median(walls), 1000 * (time.process_time() - cpu0) / len(args_list)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mnist32")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    import torch

    from ghfeat.app import Explorer, load_models
    from ghfeat.cli import _bundled_digits

    enc, gen, gname = load_models(args.model)
    ex = Explorer(enc, gen)
    digits = [Image.fromarray(((x[0] + 1) * 127.5).round().byte().numpy()) for x in _bundled_digits()]
    if ex.R != 32:
        digits = [d.resize((ex.R, ex.R)) for d in digits]
    n = args.repeats
    ex.reconstruct(digits[0])                                  # warm-up
    ex.edit(digits[0], "sefa:0", [5], 1.0)
    rows = []
    rows.append(("new image: reconstruct + magnitudes", *timed(
        lambda i: (ex.reconstruct(digits[i % 10]), ex.magnitudes(digits[i % 10]), ex._codes.clear()),
        [(i,) for i in range(n)])))
    rows.append(("edit: strength slider (SeFa)", *timed(
        lambda s: ex.edit(digits[3], "sefa:0", [5], s), [(s,) for s in np.linspace(-8, 8, n)])))
    ex.edit(digits[3], "thickness", [5, 6], 1.0)               # fit once (reported below)
    rows.append(("edit: strength slider (supervised)", *timed(
        lambda s: ex.edit(digits[3], "thickness", [5, 6], s), [(s,) for s in np.linspace(-8, 8, n)])))
    rows.append(("mix: tick a level", *timed(
        lambda k: ex.mix(digits[3], digits[7], list(range(k, ex.L + 1))), [(1 + i % ex.L,) for i in range(n)])))
    rows.append(("features: spatial level", *timed(
        lambda k: ex.spatial(digits[3], k), [(1 + i % ex.L,) for i in range(n)])))
    ex._directions.clear()
    t, c = time.perf_counter(), time.process_time()
    ex.direction("slant", [7, 8])
    rows.append(("supervised direction: first fit", 1000 * (time.perf_counter() - t), 1000 * (time.process_time() - c)))
    print(f"ghfeat app interactions, encoder {args.model!r} + generator {gname!r} ({ex.R}x{ex.R}, {ex.L} levels), "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {n} calls each")
    print(f"{'interaction':<38} {'wall ms (median)':>17} {'CPU ms (mean)':>14}")
    for name, wall, cpu in rows:
        print(f"{name:<38} {wall:>17.1f} {cpu:>14.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
