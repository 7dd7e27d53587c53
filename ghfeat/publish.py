"""``ghfeat publish NAME REPO_ID``: push a converted official model to the Hub, with a model card.

The next user then gets safetensors from the Hub instead of the official pickle: write the printed
sha256 (and the commit) into the entry in ``ghfeat/pretrained.py`` (``sha256=``, ``revision=``,
``hf_hub_id=``) and ``pretrained=True`` downloads and verifies that file.

    ghfeat download ffhq256                           # convert the official file once
    ghfeat publish ffhq256 ghfeat/ghfeat-encoder-ffhq256
    ghfeat publish stylegan-ffhq256 ghfeat/stylegan-ffhq256-generator --kind generator
    ghfeat publish ffhq256 me/test --out folder/      # prepare the folder only, upload nothing
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from .pretrained import (MANIFEST_NAME, WeightsError, WeightsNotFoundError, cache_dir,
                         get_pretrained_cfg, read_manifest, sha256_file)

__all__ = ["prepare_folder", "publish", "publish_main", "PARITY"]

# How the converters were checked (see docs/convert.md and issue 10).
PARITY = ("Converted by ghfeat without TensorFlow (restricted unpickler: only the arrays are read). "
          "Converter parity, checked against the original TensorFlow graph run with TensorFlow on "
          "random weights at the official architecture: encoder codes agree to 5e-5 relative in "
          "float32 (1e-13 in float64), generator images to 8e-6; the unit tests compare every layer "
          "with an independent NumPy transcription of the official graph.")


def _how_to_get(kind: str, name: str, cfg) -> str:
    """What to run so that ``(kind, name)`` can be published, without suggesting what cannot work."""
    if cfg is not None and cfg.origin is not None:
        return f"run `ghfeat download {name}` (or `ghfeat convert {cfg.origin.file}`) first."
    if cfg is not None and cfg.embedded_path:
        return (f"ships inside the ghfeat package, so there is nothing to download or convert; publish takes "
                f"converted official weights. To upload the packaged model anyway: "
                f"ghfeat.create_{kind}({name!r}, pretrained=True).push_to_hub(REPO_ID).")
    return ("it has no official file (no `ghfeat download`); convert your own weights with `ghfeat convert FILE "
            f"--name {name}` first, or upload a saved folder with `hf upload`.")


def prepare_folder(kind: str, name: str, out_dir: str | os.PathLike, repo_id: str | None = None) -> Path:
    """Write the Hub folder (``config.json``, ``model.safetensors``, ``README.md``) of the converted
    ``(kind, name)`` from the ghfeat cache; the card gains a provenance section (official file,
    its sha256, licence, converter parity, the sha256 to pin)."""
    from . import _registry
    from ._io import atomic_write_text
    from .hub import CARD_NAME, write_hub_folder

    manifest_path = cache_dir() / kind / name / MANIFEST_NAME
    cfg = get_pretrained_cfg(kind, name)
    if not manifest_path.is_file():
        if cfg is not None and cfg.origin is None and cfg.embedded_path:
            raise WeightsNotFoundError(f"{kind} {name!r} {_how_to_get(kind, name, cfg)}")
        raise WeightsNotFoundError(f"{kind} {name!r} is not converted in {cache_dir()}: {_how_to_get(kind, name, cfg)}")
    manifest = read_manifest(manifest_path.parent)
    model = _registry._create(kind, name, True, None, {})       # verified load from the cache
    out = write_hub_folder(model, out_dir, cfg=cfg, repo_id=repo_id)
    weights_sha = sha256_file(out / "model.safetensors")
    source = manifest.get("source") or {}
    lines = ["## Provenance", "",
             f"- Source file: `{source.get('file')}`"
             + (f", linked from {cfg.origin.page}" if cfg is not None and cfg.origin else ""),
             f"- sha256 of the source file: `{source.get('sha256')}`",
             f"- sha256 of `model.safetensors`: `{weights_sha}`",
             f"- Converted with ghfeat {manifest.get('ghfeat_version')} on {manifest.get('created')}",
             "- Licence of the weights: the genforce/ghfeat repository has no LICENSE file and its "
             "code derives from NVlabs/stylegan (CC BY-NC 4.0): treat them as non-commercial "
             "research use.",
             f"- {PARITY}", ""]
    card = (out / CARD_NAME).read_text()
    head, sep, tail = card.partition("## Citation")
    atomic_write_text(out / CARD_NAME, head + "\n".join(lines) + "\n" + sep + tail, what="model card")
    return out


def publish(kind: str, name: str, repo_id: str, *, private: bool | None = None,
            token: str | None = None, endpoint: str | None = None) -> dict:
    """Prepare the folder (:func:`prepare_folder`) and upload it with ``huggingface_hub``.

    Returns ``{"commit_url", "sha256"}``: pin that sha256 in the entry."""
    from huggingface_hub import HfApi

    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    api = HfApi(endpoint=endpoint, token=token, library_name="ghfeat")
    with tempfile.TemporaryDirectory(prefix="ghfeat-publish-") as tmp:
        folder = prepare_folder(kind, name, tmp, repo_id)
        sha = sha256_file(folder / "model.safetensors")
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder),
                                 commit_message=f"Upload {kind} {name} converted with ghfeat")
    return {"commit_url": str(getattr(info, "commit_url", info)), "sha256": sha}


def _network_error(exc: BaseException) -> bool:
    """An error of the network stack or of the Hub's HTTP API (not a bug of ghfeat)."""
    for cls in type(exc).__mro__:
        root = cls.__module__.split(".")[0]
        if root.startswith(("httpx", "httpcore", "requests", "urllib3", "huggingface_hub")):   # httpx2 too
            return True
    return False


def publish_main(argv=None) -> int:
    from .cli import HelpFormatter
    p = argparse.ArgumentParser(prog="ghfeat publish", formatter_class=HelpFormatter,
                                description=__doc__.split("\n")[0],
                                epilog="Log in first (`hf auth login` or HF_TOKEN).")
    p.add_argument("name", help="converted entry, e.g. ffhq256 or stylegan-ffhq256")
    p.add_argument("repo_id", help="Hub repo, e.g. ghfeat/ghfeat-encoder-ffhq256")
    p.add_argument("--kind", choices=("encoder", "generator", "discriminator"), default=None,
                   help="default: encoder for names without 'stylegan-', else generator")
    p.add_argument("--private", action="store_true")
    p.add_argument("--out", default=None, help="only write the folder here; upload nothing")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = p.parse_args(argv)
    kind = args.kind or ("generator" if args.name.startswith("stylegan-") else "encoder")
    try:
        if args.out:
            folder = prepare_folder(kind, args.name, args.out, args.repo_id)
            print(f"wrote {folder} (sha256 of model.safetensors: "
                  f"{sha256_file(folder / 'model.safetensors')}); upload it with `hf upload`")
            return 0
        res = publish(kind, args.name, args.repo_id, private=args.private or None)
    except (WeightsError, OSError, ValueError) as exc:
        print(f"ghfeat publish: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:              # huggingface_hub / httpx: no route, refused, timeout, HTTP errors
        if not _network_error(exc):
            raise
        where = os.environ.get("HF_ENDPOINT") or "the Hugging Face Hub"
        print(f"ghfeat publish: error: could not upload to {where} ({type(exc).__name__}: "
              f"{str(exc).strip().splitlines()[0] if str(exc).strip() else 'no details'}); check the network, "
              f"HF_ENDPOINT and your login (`hf auth login` / HF_TOKEN). Nothing was published; `--out DIR` "
              f"prepares the folder without uploading.", file=sys.stderr)
        return 2
    print(f"uploaded {kind} {args.name} to {args.repo_id}: {res['commit_url']}\n"
          f"pin it in ghfeat/pretrained.py: hf_hub_id={args.repo_id!r}, sha256={res['sha256']!r}, "
          f"revision=<the commit above>")
    return 0
