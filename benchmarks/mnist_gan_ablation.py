"""Why the StyleGAN generator collapsed on MNIST: short GAN runs that swap one thing at a time.

The same loop (ghfeat's logistic + R1 loss, Adam (0, 0.99)) trains a generator/discriminator pair on
real MNIST for a few hundred steps and prints, every ``--eval-every`` steps, the class entropy and
mean confidence of 1,000 samples by the shipped MNIST classifier (``ln 10 = 2.30`` = all classes;
near 0 = one class) of the raw generator. ``--g dcgan`` / ``--d dcgan`` swap in a plain DCGAN-sized network, which
splits a bug of the loop from a property of the networks (docs/mnist.md has the table).

    python benchmarks/mnist_gan_ablation.py --data ../shared/data/mnist --g dcgan --d stylegan
    python benchmarks/mnist_gan_ablation.py --data ../shared/data/mnist --tanh --no-noise --ms 1
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from ghfeat.eval import classifier, stats
from ghfeat._registry import create_discriminator, create_generator
from ghfeat.data import mnist_dataset
from ghfeat.losses import get_adversarial_loss
from ghfeat.train.trainer import mode_seeking_loss
from ghfeat.train.utils import requires_grad, save_image_grid

SMALL = dict(resolution=32, num_channels=1, fmap_base=256, fmap_max=32, fused_scale=True)


class DCGANGenerator(nn.Module):
    """z -> 4x4x128 -> (upsample, conv, BN, ReLU) x 3 -> tanh; ``[N, 128] -> [N, 1, 32, 32]``."""

    def __init__(self, z_dim: int = 128):
        super().__init__()
        self.z_dim = z_dim
        self.fc = nn.Linear(z_dim, 128 * 16)
        layers, c = [nn.BatchNorm2d(128), nn.ReLU()], 128
        for out in (64, 32):
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(c, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            c = out
        self.net = nn.Sequential(*layers, nn.Upsample(scale_factor=2), nn.Conv2d(c, 1, 3, padding=1), nn.Tanh())

    def forward(self, z, **_):
        return self.net(self.fc(z).view(-1, 128, 4, 4))


def dcgan_discriminator() -> nn.Module:
    """Three stride-2 3x3 convs (32, 64, 128) with leaky ReLU and a linear score."""
    return nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(32, 64, 3, 2, 1), nn.LeakyReLU(0.2),
                         nn.Conv2d(64, 128, 3, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(2048, 1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="folder with the MNIST IDX files")
    ap.add_argument("--g", choices=["stylegan", "dcgan"], default="stylegan")
    ap.add_argument("--d", choices=["stylegan", "dcgan"], default="stylegan")
    ap.add_argument("--g-lr", type=float, default=2e-3)
    ap.add_argument("--d-lr", type=float, default=1e-3)
    ap.add_argument("--r1-gamma", type=float, default=0.01)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--eval-every", type=int, default=300)
    ap.add_argument("--tanh", action="store_true", help="StyleGAN G with an output tanh (final_tanh)")
    ap.add_argument("--no-noise", action="store_true", help="StyleGAN G with its stored noise maps")
    ap.add_argument("--ms", type=float, default=0.0, help="mode-seeking weight")
    ap.add_argument("--mbstd-group", type=int, default=4)
    ap.add_argument("--out", default=None, help="folder for sample grids")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)

    x_all = mnist_dataset(args.data, "train", channels=1, labels=False).images.float().div(127.5).sub(1).unsqueeze(1)
    if args.g == "dcgan":
        G = DCGANGenerator()
    else:
        G = create_generator("stylegan-tiny32", **SMALL, z_dim=128, w_dim=128, mapping_layers=4,
                             final_tanh=args.tanh)
    D = dcgan_discriminator() if args.d == "dcgan" else create_discriminator(
        "stylegan-tiny32", **SMALL, mbstd_group_size=args.mbstd_group)
    opt_g = torch.optim.Adam(G.parameters(), lr=args.g_lr, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=args.d_lr, betas=(0.0, 0.99))
    loss = get_adversarial_loss("logistic-r1", r1_gamma=args.r1_gamma)
    noise = {} if args.g == "dcgan" else {"randomize_noise": not args.no_noise}
    clf = classifier.load_classifier()
    z_eval = torch.randn(1000, G.z_dim, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()

    for step in range(args.steps + 1):
        if step % args.eval_every == 0:
            with torch.no_grad():
                G.eval()
                imgs = G(z_eval, **noise)
                G.train()
            _, pred, conf = classifier.classify(clf, imgs.clamp(-1, 1))
            print(json.dumps({"step": step, "class_entropy": round(stats.class_entropy(pred), 3),
                              "confidence": round(float(conf.mean()), 3),
                              "histogram": np.bincount(pred, minlength=10).tolist(),
                              "seconds": round(time.perf_counter() - t0)}), flush=True)
            if args.out:
                save_image_grid(imgs[:64], f"{args.out}/{step:06d}.png", nrow=8)
        if step == args.steps:
            break
        real = x_all[torch.randint(0, len(x_all), (args.batch,), generator=g)]
        requires_grad(D, True)
        requires_grad(G, False)
        with torch.no_grad():
            fake = G(torch.randn(args.batch, G.z_dim), **noise)
        d_loss, _ = loss.d_loss(D, real, fake)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        requires_grad(D, False)
        requires_grad(G, True)
        z = torch.randn(args.batch, G.z_dim)
        fake = G(z, **noise)
        g_loss, _ = loss.g_loss(D, fake)
        if args.ms > 0:
            g_loss = g_loss + args.ms * mode_seeking_loss(fake, z)[0]
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
