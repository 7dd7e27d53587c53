"""Training throughput: images/s of full trainer steps, and where a step's time goes.

For each setting it runs real ``Trainer.train_step`` calls (synthetic in-memory batches, so data
loading is not measured) and, separately, forward+backward of each network on its own:

* ``E``   encoder forward + backward (parameter gradients);
* ``G``   frozen generator synthesis from styles, forward + backward to the styles (the learned loss);
* ``VGG`` VGG16 conv4_3 features, forward + backward to the input (the perceptual term);
* ``D``   discriminator on real (with R1, double backward) + fake, forward + backward.

Settings: CPU -> tiny 32 px models (``stylegan-tiny32`` / ``tiny32``) and the MNIST models
(``stylegan-mnist32`` / ``mnist32``); CUDA adds the official 256 px configuration
(``stylegan-256`` / ``resnet50-256``, VGG at 256) in fp32 (TF32) and bf16 + channels_last.

    python benchmarks/bench_train.py                  # CPU
    python benchmarks/bench_train.py --iters 20       # on a GPU
    python benchmarks/bench_train.py --json out.jsonl # also write one JSON line per setting
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ghfeat.train.config import TrainConfig
from ghfeat.train.trainer import Trainer
from _timing import timed  # noqa: E402  (benchmarks/ is on sys.path when run as a script)




def settings(device: torch.device, batch: int | None):
    cpu = dict(precision="fp32", channels_last=False)
    out = [
        ("tiny32", dict(generator="stylegan-tiny32", encoder="tiny32", batch_size=batch or 8, **cpu)),
        ("mnist32", dict(generator="stylegan-mnist32", encoder="mnist32", batch_size=batch or 8, **cpu)),
    ]
    if device.type == "cuda":
        out = [
            ("mnist32 fp32", dict(generator="stylegan-mnist32", encoder="mnist32", batch_size=batch or 64,
                                  precision="fp32")),
            ("mnist32 bf16+cl", dict(generator="stylegan-mnist32", encoder="mnist32", batch_size=batch or 64,
                                     precision="bf16", channels_last=True)),
            ("256 fp32", dict(generator="stylegan-256", encoder="resnet50-256", batch_size=batch or 12,
                              precision="fp32")),
            ("256 bf16+cl", dict(generator="stylegan-256", encoder="resnet50-256", batch_size=batch or 12,
                                 precision="bf16", channels_last=True)),
        ]
    return out


def bench_setting(name: str, overrides: dict, data: str, iters: int, vgg: str, gen_task: bool) -> dict:
    base = dict(task="encoder", data=data, allow_untrained=True, vgg_weights=vgg, num_workers=0,
                progress=False, log_every=10 ** 9, image_every=0, ckpt_every=0, sample_n=1)
    cfg = TrainConfig(**{**base, **overrides})
    with tempfile.TemporaryDirectory() as run_dir:
        tr = Trainer(cfg, run_dir)
        dev = tr.device
        R, B = tr.G.resolution, cfg.batch_size
        x = torch.rand(B, 3, R, R, device=dev) * 2 - 1
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        E, G, D, vggnet = tr.models["E"], tr.G, tr.D, tr.vgg
        ac = tr._autocast

        def e_fb():
            with ac():
                y = E(x)
            y.float().square().mean().backward()

        styles = E(x).detach()

        def g_fb():
            s = styles.clone().requires_grad_(True)
            with ac():
                img = G.synthesis(styles=s, randomize_noise=False)
            img.float().square().mean().backward()

        def vgg_fb():
            xi = x.clone().requires_grad_(True)
            with ac():
                f = vggnet(xi)
            f.float().square().mean().backward()

        def d_fb():
            with ac():
                loss, _ = tr.adv.d_loss(D, x, x.flip(3))
            loss.backward()

        parts = {"E": timed(e_fb, iters, dev), "G": timed(g_fb, iters, dev), "D": timed(d_fb, iters, dev)}
        if vggnet is not None:
            parts["VGG"] = timed(vgg_fb, iters, dev)
        step = timed(lambda: tr.train_step([x]), iters, dev)
        record = {"setting": name, "task": "encoder", "device": str(dev), "batch": B, "resolution": R,
                  "precision": cfg.precision, "channels_last": cfg.channels_last,
                  "step_s": step, "images_per_s": B / step,
                  **{f"{k}_fwd_bwd_s": v for k, v in parts.items()},
                  "params_M": {k: sum(p.numel() for p in m.parameters()) / 1e6 for k, m in tr.models.items()}}
        if dev.type == "cuda":
            record["peak_mem_gb"] = torch.cuda.max_memory_allocated(dev) / 2 ** 30
        tr.close()
        if gen_task:      # StyleGAN v1 generator training step (D step + G step + EMA)
            gcfg = TrainConfig(**{**base, **{k: v for k, v in overrides.items() if k != "encoder"},
                                  "task": "generator", "vgg_weights": None})
            gt = Trainer(gcfg, run_dir)
            record["generator_step_s"] = timed(lambda: gt.train_step([x]), iters, dev)
            record["generator_images_per_s"] = B / record["generator_step_s"]
            gt.close()
    return record


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--batch", type=int, default=None, help="per-step batch (default per setting)")
    ap.add_argument("--vgg", default="random", help="VGG weights: 'random' (timing only), 'imagenet' or a path")
    ap.add_argument("--only", nargs="*", help="setting names to run")
    ap.add_argument("--json", help="append one JSON line per setting to this file")
    args = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device: {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'} "
          f"({torch.get_num_threads()} threads), torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as data:
        for i in range(4):      # Trainer needs a data set; batches are synthetic
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(Path(data) / f"{i}.png")
        header = f"{'setting':<16} {'batch':>5} {'step ms':>8} {'img/s':>8} {'E':>7} {'G':>7} {'VGG':>7} {'D':>7} {'G-task img/s':>13}"
        print(header + "   (E/G/VGG/D: ms fwd+bwd each)")
        for name, overrides in settings(device, args.batch):
            if args.only and name not in args.only:
                continue
            r = bench_setting(name, overrides, data, args.iters, args.vgg, gen_task=True)
            ms = lambda k: f"{1e3 * r[k]:7.1f}" if k in r else f"{'-':>7}"  # noqa: E731
            print(f"{name:<16} {r['batch']:>5} {1e3 * r['step_s']:8.1f} {r['images_per_s']:8.1f} "
                  f"{ms('E_fwd_bwd_s')} {ms('G_fwd_bwd_s')} {ms('VGG_fwd_bwd_s')} {ms('D_fwd_bwd_s')} "
                  f"{r['generator_images_per_s']:13.1f}")
            if args.json:
                with open(args.json, "a") as f:
                    f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
