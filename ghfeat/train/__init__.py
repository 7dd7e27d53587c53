"""Training: one compact trainer for the GH-Feat encoder and the StyleGAN v1 generator.

    from ghfeat.train import TrainConfig, train
    cfg = TrainConfig(task="encoder", data="mnist:/data/mnist", generator="stylegan-mnist32")
    train(cfg, run_dir="runs/enc")

Command line: ``ghfeat train encoder|generator --config cfg.json --run-dir D [--resume] k=v ...``;
multi-GPU: ``torchrun --nproc-per-node 8 -m ghfeat train encoder ...``.

Submodules: ``config`` (TrainConfig, the official recipe as defaults), ``trainer`` (the loop),
``checkpoint`` (atomic save, exact resume, RNG, SIGTERM), ``distributed`` (torchrun helpers),
``utils`` (EMA, grids, JSONL, timers), ``cli``.
"""
from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "TrainConfig": ".config", "train": ".trainer", "Trainer": ".trainer",
    "train_main": ".cli",
    "save_checkpoint": ".checkpoint", "load_checkpoint": ".checkpoint",
    "find_latest_checkpoint": ".checkpoint", "capture_rng_state": ".checkpoint",
    "restore_rng_state": ".checkpoint", "GracefulExit": ".checkpoint",
    "init_distributed": ".distributed",
    "requires_grad": ".utils", "ema_update": ".utils", "save_image_grid": ".utils",
    "JsonlLogger": ".utils", "Timer": ".utils",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS)
