"""Training throughput against the machine's own limit: images/s, FLOP per image, achieved FLOP/s
and that as a fraction of a matmul measured in the same process.

For each (task, setting) it runs real ``Trainer.train_step`` calls on synthetic in-memory batches
(data loading is not measured) and reports:

* ``img/s`` (wall clock) and ``CPU ms/step/thread`` (process CPU time / threads: steadier than
  wall time on a shared machine);
* ``GFLOP/img``: every op of one full step (forward, backward, R1's double backward, EMA) counted
  by ``torch.utils.flop_counter``'s formulas (convolutions and matmuls);
* ``GFLOP/s`` achieved, and ``of mm``: that divided by a 1024x1024 fp32 matmul's rate measured
  in the same process just before (the practical peak of this machine for dense math).

    python benchmarks/bench_train.py                       # CPU: the mnist32-cpu recipe + variants
    python benchmarks/bench_train.py --iters 20 --only gen-recipe
    python benchmarks/bench_train.py --json out.jsonl      # one JSON line per setting
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from ghfeat.train.config import TrainConfig, recipe_fields
from ghfeat.train.trainer import Trainer
from _timing import timed  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

_FIXED = dict(num_workers=0, progress=False, log_every=10 ** 9, image_every=0, ckpt_every=0, sample_n=1,
              eval_every=0, num_threads=0)


def settings(device: torch.device) -> list[tuple[str, str, dict]]:
    """(name, task, config overrides on top of the mnist32-cpu recipe)."""
    out = [
        ("gen-recipe", "generator", {}),
        ("gen-recipe-bf16", "generator", dict(precision="bf16")),
        ("gen-r1-every-step", "generator", dict(r1_every=1)),
        ("gen-128ch", "generator", dict(generator="stylegan-mnist32",
                                        generator_kwargs=dict(fmap_base=2048, fmap_max=128),
                                        discriminator_kwargs=dict(fmap_base=2048, fmap_max=128))),
        ("gen-64ch-bf16", "generator", dict(precision="bf16", generator_kwargs=dict(fmap_base=512, fmap_max=64),
                                            discriminator_kwargs=dict(fmap_base=512, fmap_max=64))),
        ("gen-b128", "generator", dict(batch_size=128)),
        ("gen-b128-bf16", "generator", dict(batch_size=128, precision="bf16")),
        ("gen-b128-bf16-cl", "generator", dict(batch_size=128, precision="bf16", channels_last=True)),
        ("gen-b128-bf16-compile", "generator", dict(batch_size=128, precision="bf16", compile=True)),
        ("gen-b128-compile", "generator", dict(batch_size=128, compile=True)),
        ("enc-recipe", "encoder", {}),
        ("enc-recipe-bf16", "encoder", dict(precision="bf16")),
        ("enc-b128", "encoder", dict(batch_size=128)),
        ("enc-b128-bf16", "encoder", dict(batch_size=128, precision="bf16")),
        ("enc-b128-bf16-compile", "encoder", dict(batch_size=128, precision="bf16", compile=True)),
        ("enc-b128-compile", "encoder", dict(batch_size=128, compile=True)),
        ("enc-code-regression", "encoder", dict(code_weight=0.1, freeze_bn=True)),
        ("enc-code-bf16", "encoder", dict(code_weight=0.03, freeze_bn=True, precision="bf16")),
        ("enc-wide-code-bf16", "encoder", dict(code_weight=0.03, freeze_bn=True, precision="bf16",
                                               encoder_kwargs=dict(channels=[32, 64, 128, 256], fpn_channels=128))),
        ("enc-with-vgg", "encoder", dict(perceptual_weight=5e-5, vgg_weights="random")),
    ]
    if device.type == "cuda":
        out += [("gen-recipe-b256", "generator", dict(batch_size=256)),
                ("enc-recipe-b256", "encoder", dict(batch_size=256))]
    return out


class FlopCount(TorchDispatchMode):
    """FLOPs of every aten op run inside, by ``torch.utils.flop_counter``'s formulas.

    ``FlopCounterMode`` itself cannot be used here: its module tracker hooks the backward pass and
    torch refuses ``autograd.grad`` on a leaf (R1's gradient w.r.t. the real images) under them.
    """

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def matmul_gflops(device: torch.device, n: int = 1024, iters: int = 10) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    return 2 * n ** 3 / timed(lambda: a @ b, iters, device, warmup=2) / 1e9


def count_flops(cfg: TrainConfig) -> float:
    """FLOPs of one optimizer step of ``cfg`` (eager), averaged over one lazy-R1 cycle."""
    with tempfile.TemporaryDirectory() as run_dir:
        tr = Trainer(cfg, run_dir)
        B, R, C = cfg.batch_size, tr.G.resolution, tr.G.num_channels
        x = torch.rand(B, C, R, R, device=tr.device) * 2 - 1
        tr.train_step([x])                                        # warm-up (lazy init)
        with FlopCount() as counter:
            for _ in range(cfg.r1_every):                         # one full lazy-R1 cycle
                tr.train_step([x])
        tr.close()
    return counter.total / cfg.r1_every


def bench(name: str, task: str, overrides: dict, data: str, iters: int) -> dict:
    fields = {**recipe_fields("mnist32-cpu", task), **_FIXED, **overrides, "task": task, "data": data}
    if task == "encoder":
        fields.update(allow_untrained=True)
    cfg = TrainConfig(**fields)
    flops_per_step = count_flops(cfg.replace(compile=False))   # compiled kernels bypass the dispatcher
    with tempfile.TemporaryDirectory() as run_dir:
        tr = Trainer(cfg, run_dir)
        dev, B, R, C = tr.device, cfg.batch_size, tr.G.resolution, tr.G.num_channels
        x = torch.rand(B, C, R, R, device=dev) * 2 - 1
        step = lambda: tr.train_step([x])  # noqa: E731
        for _ in range(cfg.r1_every + 1 if cfg.compile else 1):  # warm-up (allocator, lazy init, compile)
            step()
        cpu0 = time.process_time()
        wall = timed(step, iters, dev, warmup=0)
        cpu = (time.process_time() - cpu0) / iters / torch.get_num_threads()
        tr.close()
    return {"setting": name, "task": task, "batch": B, "precision": cfg.precision, "step_s": wall,
            "images_per_s": B / wall, "cpu_s_per_step_per_thread": cpu,
            "gflop_per_image": flops_per_step / B / 1e9, "achieved_gflops": flops_per_step / wall / 1e9}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=16, help="timed steps per setting (one lazy-R1 cycle)")
    ap.add_argument("--only", nargs="*", help="setting names to run")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--json", help="append one JSON line per setting to this file")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'} "
          f"({torch.get_num_threads()} threads), torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as data:
        for i in range(4):      # Trainer needs a data set; batches are synthetic
            Image.fromarray(np.zeros((32, 32), np.uint8)).save(Path(data) / f"{i}.png")
        print(f"{'setting':<20} {'batch':>5} {'img/s':>8} {'CPU ms/step/thr':>16} {'GFLOP/img':>10} "
              f"{'GFLOP/s':>8} {'mm GFLOP/s':>11} {'of mm':>6}")
        for name, task, overrides in settings(device):
            if args.only and name not in args.only:
                continue
            ref = matmul_gflops(device)               # measured right before, in the same process
            r = bench(name, task, overrides, data, args.iters)
            r.update(matmul_gflops=ref, fraction_of_matmul=r["achieved_gflops"] / ref)
            print(f"{name:<20} {r['batch']:>5} {r['images_per_s']:8.1f} {1e3 * r['cpu_s_per_step_per_thread']:16.1f} "
                  f"{r['gflop_per_image']:10.3f} {r['achieved_gflops']:8.1f} {ref:11.1f} {r['fraction_of_matmul']:6.2f}")
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
