"""One compact trainer for the GH-Feat encoder and the StyleGAN v1 generator.

    from ghfeat.train import TrainConfig, train
    train(TrainConfig(task="encoder", data="mnist:/data/mnist", generator_checkpoint="runs/g/generator"),
          run_dir="runs/enc")

Iteration of ``task="encoder"`` (official GH-Feat): real batch ``x`` (random horizontal flip) ->
**E step** ``loss = mse(G(E(x)), x) + 5e-5 * vgg + 0.08 * adv.g_loss(D, G(E(x)))`` with G frozen
(a learned loss; its stored noise, no mapping) -> **D step** ``adv.d_loss(D, x, G(E(x)))`` on the
reconstructions of the E step (detached; the official code recomputes them with the updated E,
a difference of one step that saves a third of the compute).

Iteration of ``task="generator"`` (StyleGAN v1, non-progressive): **D step** on ``G(z)`` (style
mixing, ``w_avg`` tracking) vs real with the logistic loss + R1 -> **G step** (non-saturating) ->
``G_ema = lerp(G, G_ema, 0.5 ** (batch / (ema_kimg * 1000)))``.

Systems: CUDA autocast in bf16/fp16 (GradScaler for fp16), channels_last, optional torch.compile
(in place, ``nn.Module.compile``: E and the frozen synthesis for
the encoder task, mapping + synthesis for the generator task; never D, whose R1 penalty needs
double backward), gradient accumulation, multi-GPU through
``torchrun``. Data parallelism reduces gradients by hand (one flat all-reduce per optimizer step,
as NVIDIA's stylegan2-ada does) instead of wrapping modules in ``DistributedDataParallel``: the
R1 penalty's double backward, D being called twice per step and frozen-module switches then need
no special cases, and accumulation reduces once. Encoder BatchNorm is ``SyncBatchNorm`` on CUDA;
on CPU (gloo) each rank normalises its own batch and BN running statistics are averaged each step.

Run folder: ``config.json`` (resolved), ``metrics.jsonl``, ``images/<step>.png``,
``checkpoints/ckpt-<step>.pt`` (atomic; every ``ckpt_every`` steps, at the end, and on
SIGTERM/SIGINT), and at the end the trained modules as ``ghfeat.save_model`` folders
(``encoder/`` + ``discriminator/``, or ``generator/`` (= G_ema) + ``discriminator/``).
``resume=True`` continues exactly: models, EMA, optimizers, GradScaler, step, data position and
every RNG (per rank) are restored, so N + N steps equal 2N steps.
"""
from __future__ import annotations

import copy
import math
import os
import random
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .. import data as gdata
from .._io import build_from_config, load_state_dict_strict, model_config, read_safetensors, save_model
from . import checkpoint as ck
from . import distributed as gdist
from .config import RESUMABLE_CHANGES, TrainConfig
from .utils import JsonlLogger, Timer, ema_update, requires_grad, save_image_grid

CKPT_FORMAT = "ghfeat-train-v1"


# ------------------------------------------------------------------------------------------------
# model construction and weight loading
# ------------------------------------------------------------------------------------------------

class _running_stats_kept:
    """Within the block, BatchNorm layers of ``module`` normalise with batch statistics as usual,
    but their running statistics (mean, var, batch count) come out as they went in: momentum 0
    (the op's own in-place update then keeps them; restoring them afterwards instead would change
    tensors autograd saved), and the batch count put back."""

    def __init__(self, module: nn.Module):
        self.bns = [m for m in module.modules()
                    if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.training]

    def __enter__(self):
        self.saved = [(m.momentum, m.num_batches_tracked.clone()) for m in self.bns]
        for m in self.bns:
            m.momentum = 0.0
        return self

    def __exit__(self, *exc):
        with torch.no_grad():
            for m, (momentum, count) in zip(self.bns, self.saved):
                m.momentum = momentum
                m.num_batches_tracked.copy_(count)
        return False


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers ignore SIGTERM: a stop sent to the whole process group (``kill -- -PGID``,
    ``pkill -f``, a batch scheduler's preemption) must reach the trainer only, which then checkpoints
    and shuts its workers down. A worker killed by it would make PyTorch raise "DataLoader worker
    killed" in the trainer at an arbitrary point, e.g. while it verifies the checkpoint it just wrote
    (measured: the final checkpoint of a run was then set aside as unreadable)."""
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _load_module_weights(module: nn.Module, source: str, keys: tuple[str, ...]) -> None:
    """Load ``module`` strictly from a saved folder, a ``.safetensors`` file or a trainer
    checkpoint (``ckpt-*.pt``; the first of ``keys`` present in its ``models``)."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "model.safetensors").is_file():
            raise FileNotFoundError(f"{path} holds no model.safetensors (expected a folder written by "
                                    "ghfeat.save_model, e.g. <run>/generator)")
        state, what = read_safetensors(path / "model.safetensors"), str(path)
    elif path.suffix == ".safetensors":
        state, what = read_safetensors(path), str(path)
    elif path.suffix in (".pt", ".pth"):
        ckpt = ck.load_checkpoint(path)
        models = ckpt.get("models", {}) if ckpt.get("format") == CKPT_FORMAT else {}
        key = next((k for k in keys if k in models), None)
        if key is None:
            raise ValueError(f"{path} is not a ghfeat trainer checkpoint holding any of {list(keys)}; "
                             "use a saved folder or a .safetensors file (official/genforce weights: "
                             "convert them first with `ghfeat convert`)")
        state, what = models[key], f"{path}[{key}]"
    else:
        raise ValueError(f"cannot load weights from {path}: give a folder written by save_model, a "
                         ".safetensors file or a trainer checkpoint ckpt-*.pt")
    load_state_dict_strict(module, state, what)


def build_models(cfg: TrainConfig) -> dict[str, nn.Module]:
    """The modules of a run, on CPU, weights loaded: ``G, D`` + ``E`` (encoder) or ``G_ema`` (generator)."""
    from .._registry import create_discriminator, create_encoder, create_generator
    from ..models import encoder_zoo  # noqa: F401  (registers the encoders)

    d_name = cfg.discriminator or cfg.generator
    if cfg.task == "generator":
        G = create_generator(cfg.generator, **{"style_mixing_prob": cfg.style_mixing_prob,
                                               "w_avg_beta": cfg.w_avg_beta, **cfg.generator_kwargs})
        D = create_discriminator(d_name, **cfg.discriminator_kwargs)
        if D.num_channels != G.num_channels:
            raise ValueError(f"generator makes {G.num_channels}-channel images but the discriminator takes "
                             f"{D.num_channels}; set the same num_channels in generator_kwargs and "
                             "discriminator_kwargs")
        G.validate_inputs = False        # codes are made here, not by a user; the check syncs the GPU
        G_ema = copy.deepcopy(G).eval()
        requires_grad(G_ema, False)
        if cfg.generator_pretrained or cfg.generator_checkpoint:
            _continue_generator(cfg, G, G_ema, D, d_name)
        return {"G": G, "D": D, "G_ema": G_ema}

    G = create_generator(cfg.generator, pretrained=cfg.generator_pretrained, **cfg.generator_kwargs)
    if cfg.generator_checkpoint:
        _load_module_weights(G, cfg.generator_checkpoint, ("G_ema", "G"))
    D = create_discriminator(d_name, **cfg.discriminator_kwargs)
    d_source = cfg.discriminator_checkpoint
    if d_source is None and cfg.generator_checkpoint and Path(cfg.generator_checkpoint).suffix in (".pt", ".pth"):
        d_source = cfg.generator_checkpoint          # a generator run's checkpoint holds its D
    if d_source is None and cfg.generator_checkpoint and Path(cfg.generator_checkpoint).is_dir():
        sibling = Path(cfg.generator_checkpoint).parent / "discriminator"
        d_source = str(sibling) if (sibling / "model.safetensors").is_file() else None
    if d_source is not None:
        _load_module_weights(D, d_source, ("D",))
    elif cfg.generator_pretrained and _has_pretrained("discriminator", d_name):
        D = create_discriminator(d_name, pretrained=True, **cfg.discriminator_kwargs)
    elif not cfg.allow_untrained:
        warnings.warn("the discriminator starts from random weights; GH-Feat initialises it from the "
                      "pretrained StyleGAN D (set discriminator_checkpoint)", RuntimeWarning, stacklevel=2)
    G.eval()
    G.validate_inputs = False
    requires_grad(G, False)

    if cfg.encoder == "custom":
        from ..models.encoder import GHFeatEncoder
        kwargs = {"input_size": G.resolution, "in_channels": G.num_channels, "generator_name": cfg.generator,
                  **cfg.encoder_kwargs}
        E = GHFeatEncoder(style_dims=G.style_dims, **kwargs)
    else:
        E = create_encoder(cfg.encoder, pretrained=cfg.encoder_pretrained, **cfg.encoder_kwargs)
    if cfg.encoder_checkpoint:
        _load_module_weights(E, cfg.encoder_checkpoint, ("E",))
    if list(E.style_dims) != list(G.style_dims) or E.input_size != G.resolution:
        raise ValueError(f"encoder {cfg.encoder!r} (style dims {list(E.style_dims)}, input "
                         f"{E.input_size}) does not fit generator {cfg.generator!r} (style dims "
                         f"{list(G.style_dims)}, resolution {G.resolution}); pick the matching pair or "
                         "encoder='custom' to build one from the generator")
    if E.in_channels != G.num_channels or D.num_channels != G.num_channels:
        raise ValueError(f"channel counts disagree: generator {G.num_channels}, encoder {E.in_channels}, "
                         f"discriminator {D.num_channels}; build all three with the same num_channels / "
                         "in_channels (1 for grayscale data such as MNIST)")
    E.validate_inputs = False        # data are in range by construction; the check syncs the GPU
    if getattr(E, "generator_name", None) != cfg.generator and "generator_name" in getattr(E, "config", {}):
        E.generator_name = E.config["generator_name"] = cfg.generator    # the saved encoder names its real pair
    return {"G": G, "D": D, "E": E}


def _continue_generator(cfg: TrainConfig, G: nn.Module, G_ema: nn.Module, D: nn.Module, d_name: str) -> None:
    """Start a generator run from trained weights (training that continues across sessions).

    * ``generator_pretrained``: the registry entry's ``G_ema`` (its published generator), its raw
      ``G`` when the entry ships one (``pretrained.raw_generator_path``; else ``G = G_ema``) and its
      discriminator;
    * ``generator_checkpoint``: a generator run's ``ckpt-*.pt`` (its ``G``, ``G_ema`` and ``D``) or
      a saved generator folder / ``.safetensors`` (``G = G_ema`` = that file; ``D`` from
      ``discriminator_checkpoint`` or the folder's sibling ``discriminator/``).

    The optimizer state starts fresh. A discriminator is required: a trained G against a random D
    forgets what it learned while D catches up.
    """
    from .._registry import create_discriminator, create_generator
    from ..pretrained import raw_generator_path
    if cfg.generator_pretrained:
        trained = create_generator(cfg.generator, pretrained=True)
        G_ema.load_state_dict(trained.state_dict())
        raw = raw_generator_path(cfg.generator)
        if raw is not None:
            _load_module_weights(G, str(raw), ("G",))
        else:
            G.load_state_dict(trained.state_dict())
        d_source = cfg.discriminator_checkpoint
        if d_source is None:
            if not _has_pretrained("discriminator", d_name):
                raise ValueError(f"generator_pretrained: {d_name!r} has no pretrained discriminator to continue "
                                 "against; set discriminator_checkpoint=<folder|.safetensors|ckpt-*.pt>")
            D.load_state_dict(create_discriminator(d_name, pretrained=True).state_dict())
        else:
            _load_module_weights(D, d_source, ("D",))
        return
    source = Path(cfg.generator_checkpoint)
    _load_module_weights(G_ema, str(source), ("G_ema", "G"))
    _load_module_weights(G, str(source), ("G", "G_ema"))
    d_source = cfg.discriminator_checkpoint
    if d_source is None and source.suffix in (".pt", ".pth"):
        d_source = str(source)
    if d_source is None and source.is_dir() and (source.parent / "discriminator" / "model.safetensors").is_file():
        d_source = str(source.parent / "discriminator")
    if d_source is None:
        raise ValueError(f"generator_checkpoint={source}: no discriminator to continue against; set "
                         "discriminator_checkpoint=<folder|.safetensors|ckpt-*.pt>")
    _load_module_weights(D, d_source, ("D",))


def _has_pretrained(kind: str, name: str) -> bool:
    from .._registry import get_entry
    try:
        return get_entry(kind, name).has_pretrained
    except Exception:
        return False


def mode_seeking_loss(images: torch.Tensor, z: torch.Tensor, eps: float = 1e-5):
    """Mode-seeking regulariser (Mao et al., CVPR 2019, "MSGAN"): the batch is split in two halves
    ``a, b`` and ``ratio = mean|G(z_a) - G(z_b)| / mean|z_a - z_b|``; the loss ``1 / (ratio + eps)``
    grows as samples of different latents become alike. ``images [N, C, H, W]``, ``z [N, z_dim]``,
    N even. Returns ``(loss [], ratio [] detached)``."""
    h = images.shape[0] // 2
    if h == 0:
        raise ValueError("the mode-seeking term needs a batch of at least 2")
    ratio = (images[:h].float() - images[h:2 * h].float()).abs().mean() / (z[:h] - z[h:2 * h]).abs().mean()
    return 1.0 / (ratio + eps), ratio.detach()


# ------------------------------------------------------------------------------------------------
# distributed helpers (hand-made data parallelism)
# ------------------------------------------------------------------------------------------------

def _all_reduce_grads(params: list[nn.Parameter], world_size: int) -> None:
    """Average ``.grad`` over ranks with one flat all-reduce (no-op for one process)."""
    if world_size == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(world_size)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n


def _average_float_buffers(module: nn.Module, world_size: int) -> None:
    if world_size == 1:
        return
    bufs = [b for b in module.buffers() if b.is_floating_point()]
    if bufs:
        flat = torch.cat([b.reshape(-1).float() for b in bufs])
        dist.all_reduce(flat)
        flat.div_(world_size)
        offset = 0
        for b in bufs:
            b.copy_(flat[offset:offset + b.numel()].view_as(b))
            offset += b.numel()


def _broadcast_module(module: nn.Module) -> None:
    if gdist.is_dist():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def _checksum(module: nn.Module) -> float:
    return float(sum(p.detach().double().sum().item() for p in module.parameters()))


# ------------------------------------------------------------------------------------------------
# the trainer
# ------------------------------------------------------------------------------------------------

class Trainer:
    """Holds a run's state; :meth:`run` trains until ``total_steps``, ``max_steps`` or a signal.

    Args:
        cfg: the configuration (validated).
        run_dir: run folder (created).
        resume: False (a new run), True (the newest readable checkpoint of ``run_dir``; an error
            when there is none), "auto" (that checkpoint if any, else a new run) or a checkpoint path.
        max_steps: stop (with a checkpoint) once this absolute step is reached; None = total_steps.
    """

    def __init__(self, cfg: TrainConfig, run_dir: str | os.PathLike, resume: bool | str = False,
                 max_steps: int | None = None):
        cfg.validate()
        self.run_dir = Path(run_dir)
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise ValueError(f"run folder {self.run_dir} exists and is not a folder")
        from .._io import refuse_package_path
        refuse_package_path(self.run_dir, "run folder")
        if not cfg.data:
            raise ValueError("no training data: set data=<image folder | mnist:<root> | ...> (see ghfeat.data)")
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
            raise ValueError(f"max_steps (--max-steps) must be an integer >= 1 (the step to stop at), got {max_steps!r}")
        self._run_lock = None
        if gdist._env_int("RANK", 0) == 0:        # one trainer per run folder (rank 0 holds it)
            from .lock import RunLock
            self._run_lock = RunLock(self.run_dir).acquire(owner=self)   # released by close() or gc
            from .._io import remove_stale_temp_files        # of writers killed outright (SIGKILL)
            for folder in (self.run_dir, self.run_dir / "images"):
                remove_stale_temp_files(folder)
        try:
            self._setup(cfg, resume, max_steps)
        except BaseException:
            self._release_lock(failed=True)
            raise

    def _release_lock(self, failed: bool = False) -> None:
        if getattr(self, "_run_lock", None) is not None:
            self._run_lock.release(failed=failed)

    def _setup(self, cfg: TrainConfig, resume, max_steps) -> None:
        self.logger = None
        self.max_steps = max_steps
        self.dist = gdist.init_distributed(None if cfg.device == "auto" else cfg.device)
        self.device = self.dist.device
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        if cfg.precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision='fp16' needs CUDA; use 'bf16' or 'fp32' on CPU")
        ckpt = self._load_resume(resume)
        if ckpt is not None:
            cfg = self._check_resume_config(cfg, ckpt)
        self.cfg = cfg
        self.is_main = self.dist.is_main
        self.world = self.dist.world_size
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
            torch.backends.cudnn.allow_tf32 = cfg.tf32

        # models: identical init on every rank, then per-rank randomness
        self._seed_all(cfg.seed)
        self.models = build_models(cfg)
        for m in self.models.values():
            m.to(self.device)
            if cfg.channels_last:
                m.to(memory_format=torch.channels_last)
        self.task = cfg.task
        self.trained = ["E", "D"] if self.task == "encoder" else ["G", "D"]
        self.main_net = self.models[self.trained[0]]
        self.D = self.models["D"]
        self.G = self.models["G"]
        if self.task == "encoder" and cfg.sync_bn and self.world > 1 and self.device.type == "cuda":
            self.models["E"] = nn.SyncBatchNorm.convert_sync_batchnorm(self.models["E"])
            self.main_net = self.models["E"]
        self._sync_bn_buffers = self.task == "encoder" and not (cfg.sync_bn and self.device.type == "cuda")
        for m in self.models.values():
            _broadcast_module(m)

        self.adv, self.adv_reg = self._adversarial_losses(cfg)
        self.vgg = None
        if self.task == "encoder" and cfg.perceptual_weight > 0:
            from ..losses import VGG16Features
            self.vgg = VGG16Features(cfg.vgg_weights, input_size=cfg.vgg_input_size).to(self.device)
            if cfg.channels_last:
                self.vgg.to(memory_format=torch.channels_last)

        # D as called outside the R1/GP penalty; compiled double backward is unsupported, so the
        # lazy-regularisation steps call the eager self.D (same parameters)
        self.D_plain = self.D
        if cfg.compile:     # in place (nn.Module.compile): state_dict keys and EMA stay as they are
            for m in ([self.models["E"], self.G.synthesis] if self.task == "encoder"
                      else [self.G.mapping, self.G.synthesis]):
                m.compile()
            self.D_plain = torch.compile(self.D)

        self.opts = {name: torch.optim.Adam(self.models[name].parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
                     for name in self.trained}
        self.lr_mul = {name: (cfg.d_lr / cfg.lr if name == "D" and cfg.d_lr else 1.0) for name in self.trained}
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.precision == "fp16")
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)
        self.global_batch = cfg.batch_size * cfg.grad_accum * self.world
        self.ema_beta = cfg.ema_beta(self.global_batch)

        self.step = 0
        self.data_position = 0            # samples consumed, all ranks together
        if ckpt is not None:
            self._load_state(ckpt)
        else:
            self._seed_all(cfg.seed + 1_000_003 * (self.dist.rank + 1))

        self.dataset = gdata.make_dataset(cfg.data, self.G.resolution, channels=self.G.num_channels)
        if cfg.eval_every and self.is_main:
            self._check_evaluation()      # at start, not at the first evaluation hours later
        self._loader = None
        self._fixed = self._fixed_inputs()
        self.log_sums: dict[str, torch.Tensor] = {}
        self.log_key_counts: dict[str, int] = {}   # steps that logged each key (lazy R1: some only)
        self._keys_this_step: set[str] = set()
        self.log_count = 0
        self.timer = Timer(self.device)
        self.logger = None
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cfg.to_json(self.run_dir / "config.json")
            self.logger = JsonlLogger(self.run_dir / "metrics.jsonl")

    # -- setup helpers -----------------------------------------------------------------------------
    def _check_evaluation(self) -> None:
        """What :meth:`evaluate` needs, prepared before training (not at the first evaluation hours
        later): ``eval_n`` real images (the test split when the data has one, else the training
        images) with their random-feature statistics, and the classifier judge when there is one
        (``eval_classifier``; it takes 32x32 images and labelled data with a test split)."""
        from ..eval import quality as metrics
        from ..eval.classifier import load_classifier
        from ..eval.labelfree import random_stats
        cfg = self.cfg
        self._eval_heldout = gdata.has_test_split(cfg.data)
        real_ds = gdata.make_dataset(cfg.data, self.G.resolution, split="test" if self._eval_heldout else "train",
                                     channels=self.G.num_channels)
        pick = np.random.default_rng(123).choice(len(real_ds), min(cfg.eval_n, len(real_ds)), replace=False)
        self._eval_real = torch.stack([gdata.images_of(real_ds[int(i)]) for i in np.sort(pick)])
        if self._eval_real.shape[0] < 2:
            raise ValueError(f"eval_every > 0 needs at least 2 real images to compare with; data={cfg.data!r} "
                             f"has {len(real_ds)}")
        self._eval_ref = random_stats(self._eval_real)
        self._eval_clf = None
        judge = cfg.judge()
        if judge is None:
            return
        why = f"eval_classifier={cfg.eval_classifier!r} judges images with the {judge} classifier"
        if self.G.resolution != 32:
            raise ValueError(f"{why}, which takes 32x32 images; this generator makes {self.G.resolution}x"
                             f"{self.G.resolution}: set eval_classifier=none (the label-free figures remain)")
        try:
            self._eval_clf = load_classifier(judge)
            metrics.reference_stats(cfg.data, "test", self._eval_clf)
        except (ValueError, OSError) as exc:
            raise ValueError(f"{why} against the test split of data={cfg.data!r}, which cannot serve as the "
                             f"reference ({exc}); use labelled data with a test split (mnist:DIR, an image "
                             "folder with test/<class>/ subfolders) or set eval_classifier=none") from exc

    @staticmethod
    def _adversarial_losses(cfg: TrainConfig):
        """``(plain, regularised)`` losses. Lazy regularisation (StyleGAN2): the R1 / GP penalty
        is added to the D loss on every ``r1_every``-th step only, weighted ``x r1_every`` so that
        its average weight is unchanged. It is folded into that step's D update (one optimizer step
        per iteration), so Adam's lr and betas need no ``k / (k + 1)`` correction."""
        from ..losses import get_adversarial_loss
        k = cfg.r1_every
        if cfg.adv_loss == "logistic-r1":
            return (get_adversarial_loss("logistic-r1", r1_gamma=cfg.r1_gamma if k == 1 else 0.0),
                    get_adversarial_loss("logistic-r1", r1_gamma=cfg.r1_gamma * k))
        return (get_adversarial_loss("wgan-gp", gp_weight=cfg.gp_weight if k == 1 else 0.0),
                get_adversarial_loss("wgan-gp", gp_weight=cfg.gp_weight * k))

    def _d_loss_fn(self):
        """The D loss of the current step and the D to call: with the penalty (eager D) on every
        ``r1_every``-th step, else the plain loss (compiled D under ``compile``)."""
        if self.step % self.cfg.r1_every == 0:
            return self.adv_reg, self.D
        return self.adv, self.D_plain

    @staticmethod
    def _seed_all(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2 ** 32)
        torch.manual_seed(seed)

    def _load_resume(self, resume) -> dict | None:
        """The checkpoint to resume from.

        ``resume`` = False (a new run; refused if the run folder already holds checkpoints),
        True/"latest" (the newest readable checkpoint of the run folder; an error when there is
        none), "auto" (the newest readable one if any, else a new run) or a checkpoint path.
        Unreadable checkpoints met on the way are moved aside (``*.corrupt``), never deleted.
        """
        found = ck.list_checkpoints(self.run_dir)
        if not resume:
            if found:
                raise ValueError(f"run folder {self.run_dir} already holds checkpoints (newest: "
                                 f"{found[-1][1].name}); pass --resume (resume=True) to continue it, "
                                 "--resume auto, or use a new run folder")
            return None
        if resume is True or resume in ("latest", "auto"):
            unreadable = []
            for _, path in reversed(found):
                try:
                    ckpt = ck.load_checkpoint(path)
                except (ValueError, FileNotFoundError) as exc:   # e.g. a disk that lied about fsync
                    unreadable.append((path, exc))
                    continue
                self._move_aside(unreadable)
                return ckpt
            self._move_aside(unreadable)
            if resume == "auto":
                if self.dist.is_main:
                    print(f"[ghfeat] no readable checkpoint in {self.run_dir}; starting a new run")
                return None
            listing = "".join(f"\n  {p.name}: unreadable, moved aside ({type(e).__name__})" for p, e in unreadable)
            raise FileNotFoundError(
                f"--resume: no readable checkpoint in {self.run_dir / ck.CHECKPOINT_DIR} "
                f"(found {len(found)} checkpoint file(s)){listing}\nPass a checkpoint path, "
                "--resume auto (start a new run when there is nothing to resume), or no --resume")
        path = Path(resume)
        if not path.is_file():
            raise FileNotFoundError(f"resume checkpoint {path} does not exist")
        return ck.load_checkpoint(path)

    def _move_aside(self, unreadable: list) -> None:
        """Rename unreadable checkpoints to ``*.corrupt`` (rank 0), with a warning for each."""
        for path, exc in unreadable:
            if self.dist.is_main and path.is_file():
                moved = ck.move_aside(path)
                warnings.warn(f"checkpoint {path} is unreadable ({exc}); moved it aside to {moved.name}",
                              RuntimeWarning, stacklevel=4)

    @staticmethod
    def _check_resume_config(cfg: TrainConfig, ckpt: dict) -> TrainConfig:
        if ckpt.get("format") != CKPT_FORMAT:
            raise ValueError(f"not a ghfeat trainer checkpoint (format {ckpt.get('format')!r})")
        stored = TrainConfig.from_dict(ckpt["config"])
        bad = {k: v for k, v in stored.diff(cfg).items() if k not in RESUMABLE_CHANGES}
        if bad:
            lines = "\n".join(f"  {k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in sorted(bad.items()))
            raise ValueError("the config differs from the checkpoint's in fields that change the training "
                             f"itself:\n{lines}\nResume with the stored config (<run>/config.json) or start "
                             f"a new run folder. Changeable on resume: {sorted(RESUMABLE_CHANGES)}")
        return cfg

    def _fixed_inputs(self) -> torch.Tensor:
        """Inputs of the image grids, the same for the whole run (no global RNG used)."""
        n = self.cfg.sample_n
        if self.task == "generator":
            g = torch.Generator().manual_seed(self.cfg.seed + 12345)
            return torch.randn(max(n, 1), self.G.z_dim, generator=g).to(self.device)
        idx = np.random.default_rng(self.cfg.seed + 12345).choice(len(self.dataset), max(n, 1),
                                                                    replace=len(self.dataset) < n)
        return torch.stack([gdata.images_of(self.dataset[int(i)]) for i in idx]).to(self.device)

    def _data_iter(self):
        """Batches from the global stream position ``self.data_position`` on."""
        cfg = self.cfg
        sampler = gdata.InfiniteSampler(len(self.dataset), seed=cfg.seed, rank=self.dist.rank,
                                        world_size=self.world, start_index=self.data_position)
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
            pin_memory=self.device.type == "cuda", drop_last=True,
            persistent_workers=cfg.num_workers > 0, prefetch_factor=4 if cfg.num_workers > 0 else None,
            # its own generator: creating the iterator must not draw from the global RNG (resume)
            generator=torch.Generator().manual_seed(cfg.seed + self.dist.rank),
            worker_init_fn=_ignore_stop_signals if cfg.num_workers > 0 else None)
        for batch in loader:
            yield gdata.images_of(batch)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.cfg.flip:
            mask = torch.rand(x.shape[0], 1, 1, 1, device=self.device) < 0.5
            x = torch.where(mask, x.flip(3), x)
        return x

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # -- optimisation --------------------------------------------------------------------------------
    def _backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss / self.cfg.grad_accum).backward()

    def _opt_step(self, name: str) -> None:
        params = [p for p in self.models[name].parameters() if p.requires_grad]
        _all_reduce_grads(params, self.world)
        self.scaler.step(self.opts[name])

    def _accumulate_logs(self, logs: dict[str, torch.Tensor]) -> None:
        for k, v in logs.items():
            v = v.detach().float() / self.cfg.grad_accum
            self.log_sums[k] = self.log_sums[k] + v if k in self.log_sums else v
            self._keys_this_step.add(k)

    @torch.no_grad()
    def _generated_batch(self, n: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``n`` samples of the frozen G with their true codes: ``x = G.synthesis(y)`` (stored noise,
        no truncation; with probability ``style_mixing_prob`` a per-sample crossover of two latents,
        so mixed codes are seen too) and ``y`` = G's per-layer styles ``[n, 2C_i]``."""
        ys = self.G.synthesis.styles_from_w(self._sample_w_plus(n))
        x = self.G.synthesis(styles=ys, randomize_noise=False, validate=False)
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, ys

    def _sample_w_plus(self, n: int) -> torch.Tensor:
        """``[n, L, w_dim]``: each sample's w repeated over the layers, or with probability
        ``style_mixing_prob`` a second latent's w from a random crossover layer (1..L-1) on."""
        G, L = self.G, self.G.num_layers
        w = G.mapping(torch.randn(2 * n, G.z_dim, device=self.device)).view(2, n, 1, -1)
        crossover = torch.randint(1, L, (n, 1, 1), device=self.device)
        mix = torch.rand(n, 1, 1, device=self.device) < self.cfg.style_mixing_prob
        second = mix & (torch.arange(L, device=self.device).view(1, L, 1) >= crossover)
        return torch.where(second, w[1], w[0])

    def _code_scale(self) -> list[torch.Tensor]:
        """Per-dimension std of G's style codes (4,096 samples with a fixed seed, no global RNG):
        the code term is scale-free, each dimension weighted by 1 / its variance."""
        if getattr(self, "_code_std", None) is None:
            with torch.no_grad(), torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                torch.manual_seed(self.cfg.seed + 777)
                w = self.G.mapping(torch.randn(4096, self.G.z_dim, device=self.device))
                ys = self.G.synthesis.styles_from_w(w.unsqueeze(1).expand(-1, self.G.num_layers, -1))
                self._code_std = [y.float().std(0).clamp(min=1e-4) for y in ys]
        return self._code_std

    def _encoder_step(self, batches: list[torch.Tensor]) -> None:
        from ..losses import code_regression_loss, encoder_loss
        from ..models.generator import unpack_styles
        E, D, cfg = self.models["E"], self.D_plain, self.cfg
        use_adv = cfg.adv_weight > 0
        # E step: G frozen, D frozen, gradient flows through G and D into E
        requires_grad(E, True)
        if cfg.freeze_bn:
            for m in E.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        requires_grad(D, False)
        self.opts["E"].zero_grad(set_to_none=True)
        fakes = []
        with self.timer("E_step"):
            for x in batches:
                n = x.shape[0]
                if cfg.code_weight > 0:
                    x_gen, y_gen = self._generated_batch(cfg.code_batch or n)
                with self._autocast():
                    # frozen BN: one pass over real + generated. Batch statistics: a pass each (the
                    # statistics of a mixed batch make E depend on the mix, which eval mode lacks:
                    # reconstruction MSE 0.05 in training, 0.27 in eval, measured)
                    if cfg.code_weight > 0 and cfg.freeze_bn:
                        codes = E(torch.cat([x, x_gen]))
                    elif cfg.code_weight > 0:
                        # the generated pass must not move BN's running statistics: eval mode would
                        # then normalise real images with a real/generated mixture (measured on the
                        # Fashion run: held-out MSE 0.111 in eval mode, 0.052 with real-only statistics)
                        real_codes = E(x)
                        with _running_stats_kept(E):
                            codes = torch.cat([real_codes, E(x_gen)])
                    else:
                        codes = E(x)
                    x_rec = self.G.synthesis(styles=codes[:n], randomize_noise=False)
                    loss, logs = encoder_loss(x, x_rec, self.vgg, D if use_adv else None,
                                              perceptual_weight=cfg.perceptual_weight,
                                              adv_weight=cfg.adv_weight, adv=self.adv)
                    if cfg.code_weight > 0:
                        code = code_regression_loss(unpack_styles(codes[n:], self.G.style_dims), y_gen,
                                                    self._code_scale())
                        loss = loss + cfg.code_weight * code
                        logs["e/code"] = code.detach()
                        logs["e/loss"] = loss.detach()
                self._backward(loss)
                self._accumulate_logs(logs)
                fakes.append(x_rec.detach())
            self._opt_step("E")
        if self._sync_bn_buffers:
            _average_float_buffers(E, self.world)
        # D step: real vs the reconstructions above
        if use_adv:
            d_adv, D = self._d_loss_fn()
            requires_grad(D, True)
            self.opts["D"].zero_grad(set_to_none=True)
            with self.timer("D_step"):
                for x, fake in zip(batches, fakes):
                    with self._autocast():
                        d_loss, d_logs = d_adv.d_loss(D, x, fake)
                    self._backward(d_loss)
                    self._accumulate_logs(d_logs)
                self._opt_step("D")

    def _generator_step(self, batches: list[torch.Tensor]) -> None:
        G, cfg = self.G, self.cfg
        n = cfg.batch_size
        # D step
        d_adv, D = self._d_loss_fn()
        requires_grad(G, False)
        requires_grad(D, True)
        self.opts["D"].zero_grad(set_to_none=True)
        with self.timer("D_step"):
            for x in batches:
                z = torch.randn(n, G.z_dim, device=self.device)
                with self._autocast():
                    with torch.no_grad():
                        fake = G(z, randomize_noise=cfg.randomize_noise)
                    d_loss, d_logs = d_adv.d_loss(D, x, fake)
                self._backward(d_loss)
                self._accumulate_logs(d_logs)
            self._opt_step("D")
        # G step
        D = self.D_plain
        requires_grad(G, True)
        requires_grad(D, False)
        self.opts["G"].zero_grad(set_to_none=True)
        with self.timer("G_step"):
            for _ in batches:
                z = torch.randn(n, G.z_dim, device=self.device)
                with self._autocast():
                    fake = G(z, randomize_noise=cfg.randomize_noise)
                    g_loss, g_logs = self.adv.g_loss(D, fake)
                    if cfg.mode_seeking_weight > 0:
                        ms, ratio = mode_seeking_loss(fake, z)
                        g_loss = g_loss + cfg.mode_seeking_weight * ms
                        g_logs["g/ms_ratio"] = ratio
                self._backward(g_loss)
                self._accumulate_logs(g_logs)
            self._opt_step("G")
        _average_float_buffers(G, self.world)           # w_avg is tracked per rank
        with self.timer("ema"):
            ema_update(self.models["G_ema"], G, self.ema_beta)

    def train_step(self, batches: list[torch.Tensor]) -> None:
        """One optimizer step of every trained module on ``batches`` (``grad_accum`` micro-batches
        ``[B, 3, R, R]`` on the device, already flipped)."""
        lr = self.cfg.lr_at(self.step)
        for name, opt in self.opts.items():
            for group in opt.param_groups:
                group["lr"] = lr * self.lr_mul[name]
        if self.task == "encoder":
            self._encoder_step(batches)
        else:
            self._generator_step(batches)
        self.scaler.update()
        self.step += 1
        self.data_position += self.global_batch
        self.log_count += 1
        for k in self._keys_this_step:
            self.log_key_counts[k] = self.log_key_counts.get(k, 0) + 1
        self._keys_this_step.clear()

    # -- state ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The complete run state (collective: every rank must call it; RNG of every rank)."""
        rng = gdist.all_gather_object(ck.capture_rng_state())
        return {
            "format": CKPT_FORMAT, "task": self.task, "step": self.step,
            "data_position": self.data_position, "world_size": self.world,
            "config": self.cfg.to_dict(),
            "models": {k: {n: t.detach().cpu() for n, t in m.state_dict().items()} for k, m in self.models.items()},
            "optimizers": {k: o.state_dict() for k, o in self.opts.items()},
            "scaler": self.scaler.state_dict(),
            "rng": rng,
        }

    def _load_state(self, ckpt: dict) -> None:
        for k, m in self.models.items():
            load_state_dict_strict(m, ckpt["models"][k], f"checkpoint models[{k!r}]")
        for k, o in self.opts.items():
            o.load_state_dict(ckpt["optimizers"][k])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        self.data_position = int(ckpt["data_position"])
        rng = ckpt["rng"]
        if len(rng) == self.world:
            ck.restore_rng_state(rng[self.dist.rank])
        else:
            warnings.warn(f"checkpoint was written by {len(rng)} processes, now {self.world}: model, "
                          "optimizer and data order resume exactly, random streams are re-seeded",
                          RuntimeWarning, stacklevel=3)
            self._seed_all(self.cfg.seed + 1_000_003 * (self.dist.rank + 1) + self.step)

    def save(self) -> Path | None:
        """Write a checkpoint of the current step (rank 0 writes; collective call)."""
        if self.world > 1:
            sums = gdist.all_gather_object({k: _checksum(self.models[k]) for k in self.trained})
            for k in self.trained:
                vals = [s[k] for s in sums]
                if max(vals) - min(vals) > 1e-6 * max(1.0, max(abs(v) for v in vals)):
                    raise RuntimeError(f"replicas of {k} diverged across ranks ({vals}); this is a bug")
        self._check_finite()
        state = self.state_dict()
        path = None
        if self.is_main:
            path = ck.save_checkpoint(ck.checkpoint_path(self.run_dir, self.step), state)
            ck.prune_checkpoints(self.run_dir, self.cfg.keep_checkpoints)
        gdist.barrier()
        return path

    def _check_finite(self, logs: dict | None = None) -> None:
        """Stop the run (``FloatingPointError``) when a logged loss or a trained parameter is NaN/Inf,
        before anything is written over the last good checkpoint."""
        bad = sorted(k for k, v in (logs or {}).items() if isinstance(v, float) and not math.isfinite(v))
        for name in self.trained + (["G_ema"] if "G_ema" in self.models else []):
            params = [p.detach() for p in self.models[name].parameters()]
            if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
                bad.append(f"parameters of {name}")
        if bad:
            last = ck.list_checkpoints(self.run_dir)
            raise FloatingPointError(
                f"training diverged at step {self.step}: non-finite {', '.join(bad)}. Nothing was saved; the "
                f"last good checkpoint is {last[-1][1] if last else '(none)'}. Lower lr (now {self.cfg.lr}) "
                "or check the data, then resume from it")

    def export(self) -> dict[str, Path]:
        """Save the trained modules as ``ghfeat.save_model`` folders in the run folder (rank 0)."""
        if not self.is_main:
            return {}
        extra = {"trained_with": {"step": self.step, "task": self.task, "data": self.cfg.data}}
        out = {}
        if self.task == "encoder":
            E = self.models["E"]
            if any(isinstance(m, nn.SyncBatchNorm) for m in E.modules()):   # back to plain BatchNorm
                plain = build_from_config(model_config(E))
                plain.load_state_dict(E.state_dict())
                E = plain
            out["encoder"] = save_model(E, self.run_dir / "encoder", extra_config=extra)
        else:
            out["generator"] = save_model(self.models["G_ema"], self.run_dir / "generator", extra_config=extra)
        out["discriminator"] = save_model(self.D, self.run_dir / "discriminator", extra_config=extra)
        return out

    # -- images and logs -----------------------------------------------------------------------------
    @torch.no_grad()
    def save_images(self) -> Path | None:
        if not self.is_main or self.cfg.sample_n == 0:
            return None
        path = self.run_dir / "images" / f"{self.step:09d}.png"
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            if self.task == "encoder":
                E = self.models["E"]
                was_training = E.training
                E.eval()
                rec = self.G.synthesis(styles=E(self._fixed), randomize_noise=False)
                E.train(was_training)
                n = self._fixed.shape[0]
                pairs = torch.stack([self._fixed, rec.float()], 1).reshape(2 * n, *self._fixed.shape[1:])
                save_image_grid(pairs, path, nrow=min(2 * int(math.ceil(math.sqrt(n))), 2 * n))
            else:
                imgs = self.models["G_ema"](self._fixed, randomize_noise=False)
                save_image_grid(imgs, path, nrow=int(math.ceil(math.sqrt(imgs.shape[0]))))
        return path

    @torch.no_grad()
    def evaluate(self) -> dict | None:
        """Quality figures, logged as ``eval/*`` (:mod:`ghfeat.eval.labelfree`, for any data):

        * generator task: ``eval_n`` samples of ``G_ema``: ``rfd`` (random-feature Frechet distance
          to the real images) and ``spread`` (nearest-neighbour diversity, ~1 like the data, ~0 when
          it repeats itself); with a classifier judge also ``fd``, ``class_entropy``, ``confidence``
          and ``class_histogram``;
        * encoder task: ``G.synthesis(E(x))`` of the ``eval_n`` real images: ``rec_mse`` (per pixel,
          [-1, 1] units), ``rec_rfd``, and with a judge ``class_agreement``. ``heldout`` says whether
          those images are a held-out test split (1) or training images (0: the data has no test split).
        """
        if not self.is_main:
            return None
        from ..eval.labelfree import nn_spread, random_fd
        from ..eval.quality import classify, generate, quality, reference_stats
        record = {"step": self.step, "kimg": self.data_position / 1000.0}
        real = self._eval_real
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            if self.task == "generator":
                imgs = generate(self.models["G_ema"], real.shape[0], seed=123)
                record.update({"eval/rfd": random_fd(imgs, self._eval_ref), "eval/spread": nn_spread(imgs, real)})
                if self._eval_clf is not None:
                    res = quality(imgs, reference_stats(self.cfg.data, "test", self._eval_clf), self._eval_clf)
                    record.update({f"eval/{k}": v for k, v in res.items() if k != "n"})
            else:
                E = self.models["E"]
                was_training = E.training
                E.eval()
                rec = torch.cat([self.G.synthesis(styles=E(real[i:i + 250].to(self.device)),
                                                  randomize_noise=False).float().clamp(-1, 1).cpu()
                                 for i in range(0, real.shape[0], 250)])
                E.train(was_training)
                record.update({"eval/rec_mse": float((rec - real).square().mean()),
                               "eval/rec_rfd": random_fd(rec, self._eval_ref),
                               "eval/heldout": int(self._eval_heldout)})
                if self._eval_clf is not None:
                    _, pred_x, _ = classify(self._eval_clf, real)
                    _, pred_r, _ = classify(self._eval_clf, rec)
                    record["eval/class_agreement"] = float((pred_x == pred_r).mean())
        if self.logger is not None:
            self.logger.log(record)
        return record

    def _flush_logs(self, t_interval: float, n_steps: int) -> dict:
        record = {}
        if self.log_sums:
            keys = sorted(self.log_sums)
            counts = torch.tensor([float(self.log_key_counts.get(k, 0)) for k in keys], device=self.device)
            vals = gdist.all_reduce_mean(torch.stack([self.log_sums[k] for k in keys])) / counts.clamp(min=1)
            record = dict(zip(keys, vals.tolist()))
        record.update({
            "step": self.step, "kimg": self.data_position / 1000.0, "lr": self.cfg.lr_at(self.step - 1),
            "sec_per_step": t_interval / max(n_steps, 1),
            "images_per_sec": self.global_batch * n_steps / max(t_interval, 1e-9),
        })
        record.update({f"time/{k}": v for k, v in self.timer.means().items()})
        if self.device.type == "cuda":
            record["gpu_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2 ** 30
        if self.logger is not None:
            self.logger.log(record)
        self._check_finite({k: record[k] for k in keys} if self.log_sums else None)
        self.log_sums, self.log_key_counts, self.log_count = {}, {}, 0
        self.timer.reset()
        return record

    # -- loop ------------------------------------------------------------------------------------------
    def run(self) -> dict:
        """Train; returns ``{"step", "stopped_by": "done"|"max_steps"|"signal", "last_log"}``."""
        cfg = self.cfg
        end = cfg.total_steps if self.max_steps is None else min(cfg.total_steps, self.max_steps)
        stopped_by = "done" if self.step >= cfg.total_steps else ("max_steps" if self.step >= end else None)
        last_log: dict = {}
        bar = None
        if self.is_main and cfg.progress and stopped_by is None:
            from tqdm.auto import tqdm
            bar = tqdm(total=end, initial=self.step, unit="step", dynamic_ncols=True, desc=f"train {self.task}")
        data = self._data_iter() if stopped_by is None else None
        t_last, steps_since = time.perf_counter(), 0
        with ck.GracefulExit() as stop:
            while stopped_by is None:
                self.timer.enabled = (self.step + 1) % max(cfg.log_every, 1) == 0
                try:
                    with self.timer("data"):
                        batches = [self._to_device(next(data)) for _ in range(cfg.grad_accum)]
                except Exception:
                    if not stop.requested:       # e.g. DataLoader workers killed by the same signal
                        raise
                    stopped_by = "signal"
                    self.save()
                    break
                self.train_step(batches)
                steps_since += 1
                if bar is not None:
                    bar.update(1)
                if cfg.log_every and self.step % cfg.log_every == 0:
                    now = time.perf_counter()
                    last_log = self._flush_logs(now - t_last, steps_since)
                    t_last, steps_since = now, 0
                    if bar is not None:
                        bar.set_postfix({k: f"{v:.4g}" for k, v in last_log.items()
                                         if k in ("e/pixel", "d/loss", "g/adv", "images_per_sec")})
                if cfg.image_every and self.step % cfg.image_every == 0:
                    self.save_images()
                if cfg.eval_every and self.step % cfg.eval_every == 0:
                    self.evaluate()
                if self.step >= cfg.total_steps:
                    stopped_by = "done"
                elif self.step >= end:
                    stopped_by = "max_steps"
                elif self._stop_requested(stop):
                    stopped_by = "signal"
                if stopped_by is not None or (cfg.ckpt_every and self.step % cfg.ckpt_every == 0):
                    self.save()
        if bar is not None:
            bar.close()
        if self.log_count:                      # the partial last interval
            now = time.perf_counter()
            last_log = self._flush_logs(now - t_last, steps_since)
        if stopped_by == "done":
            if cfg.image_every:
                self.save_images()
            self.export()
        if self.logger is not None:
            self.logger.log({"event": "stop", "step": self.step, "stopped_by": stopped_by})
            self.logger.close()
        return {"step": self.step, "stopped_by": stopped_by, "last_log": last_log}

    def _stop_requested(self, stop: ck.GracefulExit) -> bool:
        if self.world == 1:
            return stop.requested
        if self.step % 10:                      # agree across ranks every 10 steps (one sync)
            return False
        flag = torch.tensor([1.0 if stop.requested else 0.0], device=self.device)
        return bool(gdist.all_reduce_max(flag).item() > 0)

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()
        self._release_lock()


def train(cfg: TrainConfig, run_dir: str | os.PathLike, resume: bool | str = False,
          max_steps: int | None = None) -> dict:
    """Build a :class:`Trainer` and run it (see the module docstring)."""
    trainer = Trainer(cfg, run_dir, resume=resume, max_steps=max_steps)
    try:
        return trainer.run()
    finally:
        trainer.close()
