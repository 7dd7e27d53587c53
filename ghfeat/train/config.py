"""``TrainConfig``: every knob of a training run, with the official GH-Feat recipe as defaults.

Two tasks share one config:

* ``task="encoder"`` (GH-Feat): a pretrained generator G is frozen and used as a learned loss; the
  encoder E is trained so that ``G.synthesis(styles=E(x))`` reconstructs ``x``; a discriminator D,
  initialised from the pretrained StyleGAN D, is trained against the reconstructions. Per
  iteration: one E step, then one D step.
* ``task="generator"``: StyleGAN v1 (non-progressive) with the logistic loss + R1, style mixing,
  an EMA copy of G (``G_ema``, the one exported) and ``w_avg`` tracking.

Defaults by task (``None`` fields are resolved in ``__post_init__``; the resolved values are what
``to_json`` writes next to every run):

===================  ======================================  ==================================
field                encoder (official GH-Feat code)         generator (StyleGAN v1)
===================  ======================================  ==================================
``lr``               1e-4 (E and D)                          1e-3 (G and D)
``betas``            (0.9, 0.99), eps 1e-8                   (0.0, 0.99), eps 1e-8
``lr_decay_every``   18229: ``lr * 0.8 ** (it / 18229)``     0 (constant)
                     = ``0.8 ** (2 * it / 36458)``
``batch_size``       12 per GPU (x 8 GPUs official)          32 per GPU
``total_steps``      145,833 (14M images at 96 / step)      781,250 (25M images at 32 / step)
``adv_weight``       0.08 (paper: 0.1)                       -
``r1_gamma``         10, applied x 0.5                       10, applied x 0.5
===================  ======================================  ==================================

The paper's values (Adam beta1 = 0, adversarial weight 0.1, WGAN loss with a gradient penalty of
weight 5) are one call away: ``TrainConfig.from_recipe("paper", ...)`` (CLI ``--recipe paper``).
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

TASKS = ("encoder", "generator")
PRECISIONS = ("fp32", "bf16", "fp16")

# Task-dependent defaults for fields left at None.
_TASK_DEFAULTS = {
    "encoder": dict(lr=1e-4, betas=(0.9, 0.99), lr_decay_every=36458 / 2, batch_size=12,
                    total_steps=145_833, encoder="mnist32", flip=True),
    # StyleGAN's mirror_augment is off by default (a mirrored digit is not a digit)
    "generator": dict(lr=1e-3, betas=(0.0, 0.99), lr_decay_every=0.0, batch_size=32,
                      total_steps=781_250, encoder=None, flip=False),
}

# Named sets of overrides. "official" = the defaults above.
RECIPES = {
    "official": {},
    "paper": dict(betas=(0.0, 0.99), adv_weight=0.1, adv_loss="wgan-gp", gp_weight=5.0),
    # The shipped MNIST models, sized for a 2-core CPU (docs/mnist.md has the measurements).
    "mnist32-cpu": {
        "generator": dict(generator="stylegan-mnist32", batch_size=32, lr=2e-3, d_lr=1e-3, r1_gamma=0.01,
                          r1_every=16, mode_seeking_weight=1.0, randomize_noise=False, total_steps=20_000,
                          num_workers=1, num_threads=2, image_every=1000, ckpt_every=1000, eval_every=2000,
                          log_every=100),
        "encoder": dict(generator="stylegan-mnist32", encoder="mnist32", batch_size=32, lr=3e-4,
                        lr_decay_every=0.0, perceptual_weight=0.0, vgg_weights=None, flip=False,
                        r1_gamma=0.01, r1_every=16, adv_weight=0.0,
                        total_steps=8_000, num_workers=1, num_threads=2, image_every=1000, ckpt_every=1000,
                        log_every=100),
    },
}



def recipe_fields(name: str, task: str) -> dict:
    """The fields a recipe sets for ``task`` (recipes may hold one dict per task)."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    recipe = RECIPES[name]
    if set(recipe) & set(TASKS):
        if task not in recipe:
            raise ValueError(f"recipe {name!r} has no settings for task {task!r} (it has {sorted(recipe)})")
        recipe = recipe[task]
    return dict(recipe)


# Fields that may differ between a run and its resume (they do not change the training math).
RESUMABLE_CHANGES = frozenset({
    "total_steps", "log_every", "image_every", "ckpt_every", "keep_checkpoints", "num_workers",
    "device", "compile", "progress", "sample_n", "tf32", "num_threads", "eval_every", "eval_n", "eval_classifier",
})


def _finite_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass
class TrainConfig:
    # -- what to train -------------------------------------------------------------------------
    task: str = "encoder"                   # "encoder" (GH-Feat) | "generator" (StyleGAN v1)
    data: str = ""                          # data set spec: folder, "mnist:<root>", ... (ghfeat.data)
    generator: str = "stylegan-mnist32"     # registry name of G's architecture
    generator_checkpoint: str | None = None  # weights of G (encoder task): saved folder, .safetensors,
                                             # or a generator run's ckpt-*.pt (its G_ema)
    generator_pretrained: bool = False      # load G's registered pretrained weights instead
    discriminator: str | None = None        # registry name of D (default: same as ``generator``)
    discriminator_checkpoint: str | None = None  # D init (encoder task): folder/.safetensors/ckpt
    encoder: str | None = None              # encoder registry name; None + encoder task -> "mnist32";
                                            # "custom" = GHFeatEncoder(style_dims=G.style_dims, ...)
    generator_kwargs: dict = field(default_factory=dict)      # architecture overrides (registry)
    discriminator_kwargs: dict = field(default_factory=dict)
    encoder_kwargs: dict = field(default_factory=dict)
    encoder_checkpoint: str | None = None   # E init (encoder task; fine-tuning): saved folder,
                                            # .safetensors, or an encoder run's ckpt-*.pt (its E)
    encoder_pretrained: bool = False        # E init from the encoder's registered pretrained weights
    allow_untrained: bool = False           # encoder task with random G/D (tests and smoke runs only)

    # -- optimisation --------------------------------------------------------------------------
    batch_size: int | None = None           # per process (GPU), per micro-batch
    grad_accum: int = 1                     # micro-batches per optimizer step
    total_steps: int | None = None          # optimizer steps of the whole run
    lr: float | None = None                 # E/G learning rate (and D's unless d_lr is set)
    d_lr: float | None = None               # D learning rate (None = lr)
    betas: tuple[float, float] | None = None
    eps: float = 1e-8
    lr_decay_rate: float = 0.8
    lr_decay_every: float | None = None     # lr = lr * rate ** (step / every); 0 = constant
    adv_loss: str = "logistic-r1"           # "logistic-r1" (official) | "wgan-gp" (paper)
    r1_gamma: float = 10.0                  # logistic-r1: penalty r1_gamma / 2 * E||grad D(x)||^2
    r1_every: int = 1                       # lazy R1/GP: every k-th D step, weighted x k (StyleGAN2: 16)
    gp_weight: float = 5.0                  # wgan-gp: penalty gp_weight * E||grad D(x)||^2
    adv_weight: float = 0.08                # encoder: weight of the adversarial term (paper 0.1)
    perceptual_weight: float = 5e-5         # encoder: weight of the VGG16 conv4_3 term
    vgg_weights: str | None = "imagenet"    # "imagenet" | path | "random" (tests); None: no VGG term
    vgg_input_size: int | None = None       # resize before VGG (official 256 = its data size)
    flip: bool | None = None                # random horizontal flip of reals (encoder: on; generator: off)
    code_weight: float = 0.0                # encoder: code regression on G's own samples, x = G(w) ->
                                            # target y = G's styles of w (keeps codes on G's manifold)
    code_batch: int = 0                     # encoder: generated images per micro-batch (0 = batch_size)
    freeze_bn: bool = False                 # encoder: BatchNorm uses its running statistics in training
                                            # (fine-tuning; train == eval, no batch-composition effects)
    style_mixing_prob: float = 0.9          # generator: StyleGAN v1 style mixing
    mode_seeking_weight: float = 0.0        # generator: MSGAN regulariser against collapse (0 = official)
    randomize_noise: bool = True            # generator: fresh per-pixel noise (official); False = stored
    eval_every: int = 0                     # quality figures every N steps (Trainer.evaluate): label-free
                                            # (random-feature FD, spread; encoder: held-out rec. MSE) for
                                            # any data, + a classifier's (FD, class entropy) with a judge
    eval_n: int = 2000                      # images per evaluation
    eval_classifier: str | None = "auto"    # the judge: "auto" (mnist: -> "mnist", fashion-mnist: ->
                                            # "fashion-mnist", image folders -> none), "none", a shipped
                                            # name, or a classifier .safetensors file
    ema_kimg: float = 10.0                  # generator: G_ema half-life in thousands of images
    w_avg_beta: float = 0.995               # generator: decay of the tracked w_avg

    # -- systems -------------------------------------------------------------------------------
    seed: int = 0
    device: str = "auto"                    # "auto" | "cuda" | "cpu"
    precision: str = "fp32"                 # "fp32" | "bf16" | "fp16" (autocast; GradScaler for fp16)
    channels_last: bool = False
    compile: bool = False                   # torch.compile E/G in place (not D: R1 needs double backward)
    tf32: bool = True                       # allow TF32 matmuls/convs on Ampere+ GPUs (fp32 runs)
    sync_bn: bool = True                    # encoder BatchNorm synchronised across GPUs (CUDA only)
    num_workers: int = 2
    num_threads: int = 0                    # torch intra-op CPU threads (0 = torch's default)
    progress: bool = True                   # tqdm bar on rank 0

    # -- bookkeeping ---------------------------------------------------------------------------
    log_every: int = 50                     # JSONL metrics (means over the interval)
    image_every: int = 1000                 # image grid (0 = never)
    ckpt_every: int = 2000                  # checkpoint (0 = only at the end / on a signal)
    keep_checkpoints: int = 3               # newest K kept (0 = all)
    sample_n: int = 16                      # images in the grids

    def __post_init__(self):
        if isinstance(self.betas, (list, tuple)) and all(isinstance(b, (int, float)) for b in self.betas):
            self.betas = tuple(float(b) for b in self.betas)     # Adam refuses (0, 0.99): mixed types
        if self.task in _TASK_DEFAULTS:
            for key, value in _TASK_DEFAULTS[self.task].items():
                if getattr(self, key) is None:
                    setattr(self, key, value)
        self.validate()

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_recipe(cls, recipe: str = "official", **overrides) -> "TrainConfig":
        """A named recipe (``"official"`` = the defaults, ``"paper"``, ``"mnist32-cpu"``), then
        ``overrides``."""
        task = overrides.get("task", cls.task)
        return cls(**{**recipe_fields(recipe, task), **overrides})

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["betas"] = list(d["betas"])
        return d

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            from .._io import atomic_write_text
            atomic_write_text(path, text, what="config")
        return text

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        unknown = sorted(set(d) - set(cls.field_names()))
        if unknown:
            hints = []
            for k in unknown:
                close = difflib.get_close_matches(k, cls.field_names(), n=1)
                hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(f"unknown TrainConfig field(s): {', '.join(hints)}")
        return cls(**d)

    @classmethod
    def from_json(cls, path_or_text: str | os.PathLike) -> "TrainConfig":
        text = str(path_or_text)
        if not text.lstrip().startswith("{"):
            path = Path(path_or_text)
            if not path.is_file():
                raise FileNotFoundError(f"config file {path} does not exist")
            text = path.read_text()
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"config is not valid JSON: {exc}") from exc
        if not isinstance(d, dict):
            raise ValueError("a config JSON must be an object {\"field\": value, ...}")
        return cls.from_dict(d)

    @classmethod
    def parse_overrides(cls, pairs: list[str]) -> dict:
        """``["key=value", ...]`` -> dict (values parsed as JSON when possible, else strings)."""
        changes = {}
        for pair in pairs:
            key, sep, raw = pair.partition("=")
            if not sep:
                raise ValueError(f"override {pair!r} is not of the form key=value")
            key = key.strip().replace("-", "_")
            if key not in cls.field_names():
                close = difflib.get_close_matches(key, cls.field_names(), n=1)
                raise ValueError(f"unknown TrainConfig field {key!r}"
                                 + (f"; did you mean {close[0]!r}?" if close else ""))
            try:
                changes[key] = json.loads(raw)
            except json.JSONDecodeError:
                changes[key] = raw
        return changes

    def with_overrides(self, pairs: list[str]) -> "TrainConfig":
        """A copy with ``["key=value", ...]`` applied (see :meth:`parse_overrides`)."""
        return self.from_dict({**self.to_dict(), **self.parse_overrides(pairs)})

    # -- derived -------------------------------------------------------------------------------
    def judge(self) -> str | None:
        """The classifier that judges evaluations (``eval_classifier`` resolved): a shipped name,
        a file, or None (label-free figures only)."""
        v = self.eval_classifier
        if v in (None, "none"):
            return None
        if v == "auto":
            kind = str(self.data).partition(":")[0]
            return {"mnist": "mnist", "fashion-mnist": "fashion-mnist"}.get(kind)
        return v

    def lr_at(self, step: int) -> float:
        """Learning rate at optimizer step ``step`` (continuous exponential decay)."""
        if not self.lr_decay_every:
            return self.lr
        return self.lr * self.lr_decay_rate ** (step / self.lr_decay_every)

    def ema_beta(self, global_batch: int) -> float:
        """G_ema decay per step: half-life of ``ema_kimg`` thousand images (StyleGAN v1)."""
        return 0.5 ** (global_batch / (self.ema_kimg * 1000.0)) if self.ema_kimg > 0 else 0.0

    def diff(self, other: "TrainConfig") -> dict[str, tuple]:
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}

    # -- validation ----------------------------------------------------------------------------
    def validate(self) -> None:
        errors = []

        def need(cond, msg):
            if not cond:
                errors.append(msg)

        need(self.task in TASKS, f"task must be one of {TASKS}, got {self.task!r}")
        need(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        need(self.device in ("auto", "cuda", "cpu"), f"device must be 'auto', 'cuda' or 'cpu', got {self.device!r}")
        need(self.adv_loss in ("logistic-r1", "wgan-gp"),
             f"adv_loss must be 'logistic-r1' (official) or 'wgan-gp' (paper), got {self.adv_loss!r}")
        for name in ("batch_size", "grad_accum", "total_steps", "r1_every"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                 f"{name} must be an integer >= 1, got {v!r}")
        for name in ("log_every", "image_every", "ckpt_every", "keep_checkpoints", "num_workers", "sample_n", "seed",
                     "eval_every", "eval_n",
                     "num_threads", "code_batch"):
            v = getattr(self, name)
            need(isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                 f"{name} must be an integer >= 0, got {v!r}")
        need(self.eval_classifier is None or (isinstance(self.eval_classifier, str) and self.eval_classifier),
             f"eval_classifier must be 'auto', 'none', 'mnist', 'fashion-mnist' or a classifier file, "
             f"got {self.eval_classifier!r}")
        num = _finite_number          # a real, finite number (not a bool, string, list, NaN or inf)
        need(not (isinstance(self.eval_every, int) and self.eval_every > 0 and isinstance(self.eval_n, int)
                  and self.eval_n < 2),
             f"eval_n must be >= 2 when eval_every > 0 (a Frechet distance needs two samples), got {self.eval_n!r}")
        need(num(self.lr) and self.lr > 0, f"lr must be a finite number > 0, got {self.lr!r}")
        need(self.d_lr is None or (num(self.d_lr) and self.d_lr > 0),
             f"d_lr must be null (= lr) or a finite number > 0, got {self.d_lr!r}")
        need(isinstance(self.flip, bool), f"flip must be true or false, got {self.flip!r}")
        betas_ok = (isinstance(self.betas, tuple) and len(self.betas) == 2
                    and all(num(b) and 0 <= b < 1 for b in self.betas))
        need(betas_ok, f"betas must be two numbers in [0, 1), got {self.betas!r}")
        need(num(self.eps) and self.eps > 0, f"eps must be a finite number > 0, got {self.eps!r}")
        need(num(self.lr_decay_rate) and 0 < self.lr_decay_rate <= 1,
             f"lr_decay_rate must be a number in (0, 1], got {self.lr_decay_rate!r}")
        need(num(self.lr_decay_every) and self.lr_decay_every >= 0,
             f"lr_decay_every must be a finite number >= 0 (0 = constant lr), got {self.lr_decay_every!r}")
        for name in ("r1_gamma", "gp_weight", "adv_weight", "perceptual_weight", "ema_kimg", "mode_seeking_weight",
                     "code_weight"):
            v = getattr(self, name)
            need(num(v) and v >= 0, f"{name} must be a finite number >= 0, got {v!r}")
        need(num(self.style_mixing_prob) and 0 <= self.style_mixing_prob <= 1,
             f"style_mixing_prob must be a number in [0, 1], got {self.style_mixing_prob!r}")
        need(num(self.w_avg_beta) and 0 <= self.w_avg_beta <= 1,
             f"w_avg_beta must be a number in [0, 1], got {self.w_avg_beta!r}")
        need(self.vgg_input_size is None or (isinstance(self.vgg_input_size, int)
                                             and not isinstance(self.vgg_input_size, bool) and self.vgg_input_size >= 8),
             f"vgg_input_size must be an integer >= 8 or null, got {self.vgg_input_size!r}")
        for name in ("flip", "channels_last", "compile", "tf32", "sync_bn", "progress", "allow_untrained", "freeze_bn",
                     "generator_pretrained", "encoder_pretrained"):
            need(isinstance(getattr(self, name), bool), f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("data", "generator"):
            need(isinstance(getattr(self, name), str), f"{name} must be a string, got {getattr(self, name)!r}")
        for name in ("generator_kwargs", "discriminator_kwargs", "encoder_kwargs"):
            need(isinstance(getattr(self, name), dict), f"{name} must be a dict, got {getattr(self, name)!r}")
        if self.task == "encoder":
            need(bool(self.encoder), "encoder must name a registered encoder or 'custom'")
            need(self.perceptual_weight == 0 or self.vgg_weights is not None,
                 "perceptual_weight > 0 needs vgg_weights ('imagenet', a file, or 'random' for tests); "
                 "set perceptual_weight=0 to train without the VGG term")
            need(not (self.generator_checkpoint and self.generator_pretrained),
                 "give generator_checkpoint or generator_pretrained=true, not both")
            need(self.generator_checkpoint or self.generator_pretrained or self.allow_untrained,
                 "the encoder task needs a trained generator (it is the loss): set generator_checkpoint="
                 "<folder|.safetensors|ckpt-*.pt> or generator_pretrained=true (allow_untrained=true "
                 "runs with a random G, for tests only)")
            need(not (self.encoder_checkpoint and self.encoder_pretrained),
                 "give encoder_checkpoint or encoder_pretrained=true, not both")
            need(not (self.encoder_pretrained and self.encoder == "custom"),
                 "encoder_pretrained needs a registered encoder name, not 'custom' (use encoder_checkpoint)")
            need(self.encoder_checkpoint is None or isinstance(self.encoder_checkpoint, str),
                 f"encoder_checkpoint must be a path string, got {self.encoder_checkpoint!r}")
        if self.task == "generator":
            need(not (self.encoder_checkpoint or self.encoder_pretrained),
                 "encoder_checkpoint / encoder_pretrained are for task='encoder'")
            need(self.encoder is None, "encoder is not used by task='generator'; remove it")
        if errors:
            raise ValueError("invalid TrainConfig: " + (errors[0] if len(errors) == 1 else
                                                        "\n  - " + "\n  - ".join(errors)))
