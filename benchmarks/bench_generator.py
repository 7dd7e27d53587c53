"""Generator forward throughput (images/s) at 32 and 256 px, with parameter counts.

Baseline in the same run: the bare synthesis network fed precomputed w+ (no mapping), so the
ratio shows what the mapping network + style bookkeeping cost. On CUDA it also runs bf16 autocast
and channels_last. Usage:

    python benchmarks/bench_generator.py            # CPU: batch 4, a few iterations
    python benchmarks/bench_generator.py --batch 32 --iters 50   # on a GPU
"""
from __future__ import annotations

import argparse

import torch

import ghfeat
from _timing import timed  # noqa: E402  (benchmarks/ is on sys.path when run as a script)




def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=["stylegan-mnist32", "stylegan-256"])
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_grad_enabled(False)
    modes = [("fp32", None, False)]
    if device.type == "cuda":
        modes += [("fp32+cl", None, True), ("bf16+cl", torch.bfloat16, True)]
    print(f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'} "
          f"({torch.get_num_threads()} threads), torch {torch.__version__}, batch {args.batch}")
    print(f"{'model':<18} {'params':>8} {'mode':<8} {'G(z) img/s':>11} {'synth(w+) img/s':>16} {'ratio':>6}")
    for name in args.models:
        G = ghfeat.create_generator(name).to(device).eval()
        params = sum(p.numel() for p in G.parameters())
        z = torch.randn(args.batch, G.z_dim, device=device)
        w_plus = G.mapping(z)[:, None].repeat(1, G.num_layers, 1)
        for mode, dtype, channels_last in modes:
            if channels_last:
                G = G.to(memory_format=torch.channels_last)
            ctx = (lambda: torch.autocast("cuda", dtype=dtype)) if dtype else torch.no_grad
            def full():
                with ctx():
                    G(z, randomize_noise=False)
            def synth():
                with ctx():
                    G.synthesis(w_plus=w_plus, randomize_noise=False)
            t_full, t_syn = timed(full, args.iters, device), timed(synth, args.iters, device)
            print(f"{name:<18} {params / 1e6:>7.2f}M {mode:<8} {args.batch / t_full:>11.1f} "
                  f"{args.batch / t_syn:>16.1f} {t_syn / t_full:>6.2f}")


if __name__ == "__main__":
    main()
