"""Package trained networks as fp16 weights shipped inside ghfeat (maintainers).

    python -m ghfeat.train.package --generator runs/g/checkpoints/ckpt-000020000.pt \\
        --encoder runs/e/encoder --tag mnist32

writes ``ghfeat/assets/<tag>/<kind>.safetensors`` for G (the run's ``G_ema``), D and E, and, from
a generator run's checkpoint, ``generator_raw.safetensors`` (its raw ``G``: what the next session's
``ghfeat train generator generator_pretrained=true`` continues from, with ``G_ema`` and ``D``);
checks that each loads strictly into its registry architecture, and prints the sha256 of every
file: paste them into ``ghfeat/pretrained.py`` (``_MNIST_SHA256``, ``_RAW_GENERATORS``).
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import torch

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load(source: str, keys: tuple[str, ...]):
    """A module from a saved folder, or entry ``keys[0]`` (else the next) of a trainer checkpoint."""
    from .._io import load_model
    from .trainer import CKPT_FORMAT, build_models
    from . import checkpoint as ck
    from .config import TrainConfig
    path = Path(source)
    if path.is_dir():
        return load_model(path)
    ckpt = ck.load_checkpoint(path)
    if ckpt.get("format") != CKPT_FORMAT:
        raise ValueError(f"{path} is not a ghfeat trainer checkpoint")
    key = next((k for k in keys if k in ckpt.get("models", {})), None)
    if key is None:
        raise ValueError(f"{path} holds none of {list(keys)} (it has {sorted(ckpt.get('models', {}))}); "
                         "give a checkpoint of the run that trained this network")
    cfg = TrainConfig.from_dict(ckpt["config"])
    # architecture only: the weights come from the checkpoint, not from the files the run started from
    arch_only = dict(generator_checkpoint=None, generator_pretrained=False, discriminator_checkpoint=None)
    if cfg.task == "encoder":
        arch_only.update(allow_untrained=True, encoder_checkpoint=None, encoder_pretrained=False)
    cfg = cfg.replace(**arch_only)
    models = build_models(cfg)
    models[key].load_state_dict(ckpt["models"][key])
    return models[key]


def package(out_dir: Path, generator: str | None, encoder: str | None, discriminator: str | None) -> dict:
    from safetensors.torch import save_file

    from .._io import atomic_output, state_dict_for_saving
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    if generator:
        jobs.append(("generator", _load(generator, ("G_ema", "G"))))
        if not Path(generator).is_dir():
            jobs.append(("generator_raw", _load(generator, ("G",))))
    if discriminator or (generator and not Path(generator).is_dir()):
        jobs.append(("discriminator", _load(discriminator or generator, ("D",))))
    if encoder:
        jobs.append(("encoder", _load(encoder, ("E",))))
    shas = {}
    for kind, model in jobs:
        path = out_dir / f"{kind}.safetensors"
        with atomic_output(path, what="packaged weights", allow_package=True) as tmp:   # maintainers only
            save_file(state_dict_for_saving(model.eval(), torch.float16), str(tmp), metadata={"format": "pt"})
        shas[kind] = (path, _sha256(path))
    return shas


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", help="generator run checkpoint (its G_ema and D) or saved folder")
    ap.add_argument("--discriminator", help="saved folder or checkpoint (default: the generator run's D)")
    ap.add_argument("--encoder", help="encoder run checkpoint or saved folder")
    ap.add_argument("--tag", default="mnist32", help="assets sub-folder")
    args = ap.parse_args(argv)
    shas = package(ASSETS / args.tag, args.generator, args.encoder, args.discriminator)
    for kind, (path, sha) in shas.items():
        size = path.stat().st_size / 2 ** 20
        print(f"{kind:<14} {path.relative_to(ASSETS.parent)}  {size:.2f} MiB  sha256 {sha}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
