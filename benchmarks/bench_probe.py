"""The linear probe's objective + gradient, as the L-BFGS solver calls it: autograd vs the closed form.

    python benchmarks/bench_probe.py                          # 60,000 x 1,024 float64 (raw 32x32 pixels), 1 thread
    python benchmarks/bench_probe.py --n 60000 --dim 448      # GH-Feat's all-level features of mnist32

One evaluation is what each L-BFGS step costs (a fit takes hundreds). ``autograd`` is the
objective ``CE(x W + b, y) + l2/2 |W|^2`` differentiated by ``loss.backward()`` (the solver before
2026-12-02); ``closed form`` is ``ghfeat.eval.probe._objective_and_grad``. Both run in the same
process on the same random data; the gradients are compared, then the seconds per call.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from _timing import timed


def main(argv=None) -> None:
    from ghfeat.eval.probe import _objective_and_grad
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=60_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, args.dim, generator=g, dtype=torch.float64)
    y = torch.randint(0, args.classes, (args.n,), generator=g)
    W = 0.01 * torch.randn(args.dim, args.classes, generator=g, dtype=torch.float64)
    b = torch.zeros(args.classes, dtype=torch.float64)
    l2 = 1e-3

    Wa, ba = W.clone().requires_grad_(), b.clone().requires_grad_()

    def autograd():
        Wa.grad = ba.grad = None
        loss = F.cross_entropy(x @ Wa + ba, y) + 0.5 * l2 * Wa.square().sum()
        loss.backward()
        return loss

    def closed():
        return _objective_and_grad(x, y, W, b, l2)

    autograd()
    _, gW, gb = closed()
    diff = max(float((gW - Wa.grad).abs().max()), float((gb - ba.grad).abs().max()))
    cpu = torch.device("cpu")
    t_auto = timed(autograd, args.iters, cpu)
    t_closed = timed(closed, args.iters, cpu)
    print(f"probe objective + gradient, {args.n} x {args.dim} float64, {args.classes} classes, "
          f"{args.threads} thread(s); max |gradient difference| {diff:.1e}")
    print(f"{'autograd (before)':<20}{t_auto:8.3f} s/call   1.00x")
    print(f"{'closed form':<20}{t_closed:8.3f} s/call   {t_auto / t_closed:.2f}x")


if __name__ == "__main__":
    main()
