"""Publishing ghfeat modules: ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``.

A published folder is what :func:`ghfeat.save_model` writes (``config.json`` +
``model.safetensors``) plus a ``README.md`` model card whose YAML front matter the Hub reads
(license, ``library_name: ghfeat``, tags, pipeline tag). The model classes mix in
:class:`HubMixin`:

    class GHFeatEncoder(HubMixin, nn.Module): ...

    enc.save_pretrained("my-encoder")                 # folder, ready to upload
    enc.push_to_hub("me/my-encoder")                  # create repo (if needed) + upload
    enc = GHFeatEncoder.from_pretrained("hf-hub:me/my-encoder")   # or a local folder
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from ._io import WEIGHTS_NAME, atomic_write_bytes, save_model

CARD_NAME = "README.md"
_PIPELINE_TAGS = {"encoder": "image-feature-extraction", "generator": "unconditional-image-generation",
                  "discriminator": "image-classification"}
_CITATION = """@inproceedings{xu2021generative,
  title     = {Generative Hierarchical Features from Synthesizing Images},
  author    = {Xu, Yinghao and Shen, Yujun and Zhu, Jiapeng and Yang, Ceyuan and Zhou, Bolei},
  booktitle = {CVPR},
  year      = {2021}
}"""


def _model_kind(model: nn.Module, cfg=None) -> str | None:
    if cfg is not None:
        return cfg.kind
    kind = getattr(type(model), "ghfeat_kind", None)
    if kind:
        return kind
    name = type(model).__name__.lower()
    return next((k for k in ("discriminator", "generator", "encoder") if k in name), None)


def model_card(model: nn.Module, cfg=None, repo_id: str | None = None) -> str:
    """A ``README.md`` model card for ``model`` (facts taken from its ``PretrainedCfg`` if any)."""
    kind = _model_kind(model, cfg) or "module"
    cls = type(model).__name__
    n_params = sum(p.numel() for p in model.parameters())
    tags = ["ghfeat", "gh-feat", "stylegan", "pytorch", "safetensors", kind]
    front = ["---"]
    if cfg is not None:              # a model of your own: you choose its license
        front.append(f"license: {cfg.license}")
        if cfg.license == "other":   # the Hub asks for a name and a link with "other"
            front.append("license_name: upstream-unspecified")
            if cfg.origin is not None:
                front.append(f"license_link: {cfg.origin.page.split('#')[0]}")
    front += ["library_name: ghfeat", "tags:"]
    front += [f"- {t}" for t in tags]
    front.append(f"pipeline_tag: {_PIPELINE_TAGS.get(kind, 'image-feature-extraction')}")
    if cfg is not None and cfg.paper_ids:
        front.append("arxiv: " + ", ".join(p.split(":", 1)[-1] for p in cfg.paper_ids))
    front.append("---")

    title = f"GH-Feat {kind}: {cfg.name}" if cfg is not None else f"GH-Feat {kind} ({cls})"
    create = {"encoder": "GHFeatEncoder", "generator": "StyleGANGenerator",
              "discriminator": "StyleGANDiscriminator"}.get(kind, cls)
    location = f"hf-hub:{repo_id}" if repo_id else "path/to/this/folder"
    body = [f"# {title}", "",
            f"A `{cls}` ({n_params / 1e6:.2f}M parameters) for "
            "[ghfeat](https://arxiv.org/abs/2007.10379), a PyTorch port of GH-Feat "
            "(Generative Hierarchical Features, CVPR 2021). Files: `config.json` (class and "
            "constructor arguments) and `model.safetensors` (weights).", "",
            "## Usage", "", "```python", "import ghfeat",
            f"model = ghfeat.{create}.from_pretrained({location!r})",
            "```", ""]
    if cfg is not None:
        body += ["## Details", ""]
        if cfg.input_size:
            body.append(f"- Input: `[N, {cfg.input_size[0]}, {cfg.input_size[1]}, {cfg.input_size[2]}]` "
                        f"RGB float in [{cfg.input_range[0]:g}, {cfg.input_range[1]:g}]")
        if cfg.alignment:
            body.append(f"- Alignment: {cfg.alignment}")
        if cfg.paired_generator:
            body.append(f"- Pairs with the generator `{cfg.paired_generator}`")
        if cfg.origin is not None:
            body.append(f"- Converted from the official file `{cfg.origin.file}` ({cfg.origin.page})")
        if cfg.sha256:
            body.append(f"- sha256 of `{cfg.filename}`: `{cfg.sha256}`")
        if cfg.notes:
            body.append(f"- Notes: {cfg.notes}")
        body.append("")
        if cfg.metrics:
            body += ["## Metrics", "", "| metric | value |", "|---|---|"]
            body += [f"| {k} | {v:g} |" for k, v in cfg.metrics.items()]
            body += ["", cfg.metrics_protocol, ""]
    body += ["## Citation", "", "```bibtex", _CITATION, "```", ""]
    return "\n".join(front) + "\n\n" + "\n".join(body)


def write_hub_folder(model: nn.Module, out_dir: str | os.PathLike, cfg=None,
                     dtype: torch.dtype | None = None, repo_id: str | None = None) -> Path:
    """Write ``config.json``, ``model.safetensors`` and a ``README.md`` card into ``out_dir``.

    ``cfg`` defaults to ``model.pretrained_cfg``; the folder can be uploaded to the Hub as is and
    loaded with ``from_pretrained`` / ``create_*(folder)``. Returns ``out_dir`` as a Path.
    """
    cfg = cfg if cfg is not None else getattr(model, "pretrained_cfg", None)
    kind = _model_kind(model, cfg)
    extra = {"ghfeat_kind": kind} if kind else {}
    if cfg is not None:
        extra["pretrained_name"] = cfg.name
    out = save_model(model, out_dir, dtype=dtype, extra_config=extra)
    atomic_write_bytes(out / CARD_NAME, model_card(model, cfg, repo_id).encode())
    return out


class HubMixin:
    """Adds ``save_pretrained``, ``from_pretrained`` and ``push_to_hub`` to a ghfeat module
    (a class decorated with ``@register_module_class`` whose ``__init__`` uses
    ``@register_to_config``)."""

    def save_pretrained(self, save_directory: str | os.PathLike, *, dtype: torch.dtype | None = None,
                        repo_id: str | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` + ``README.md`` into ``save_directory``."""
        return write_hub_folder(self, save_directory, dtype=dtype, repo_id=repo_id)

    @classmethod
    def from_pretrained(cls, location: str | os.PathLike, *, revision: str | None = None,
                        device: str | torch.device = "cpu", **overrides):
        """Rebuild from a folder written by :meth:`save_pretrained`, ``"hf-hub:org/name[@rev]"``
        or a bare ``"org/name"`` Hub id (strict load, eval mode). The saved class must be ``cls``
        or a subclass; ``overrides`` change config values that do not change shapes."""
        from .pretrained import load_location
        location = str(location)
        if (not location.startswith("hf-hub:") and not Path(location).expanduser().exists()
                and location.count("/") == 1 and not location.startswith((".", "/", "~"))):
            location = "hf-hub:" + location
        return load_location(location, revision=revision, overrides=overrides,
                             base_class=cls).to(device)

    def push_to_hub(self, repo_id: str, *, commit_message: str | None = None, private: bool | None = None,
                    token: str | None = None, revision: str | None = None, create_pr: bool = False,
                    dtype: torch.dtype | None = None, endpoint: str | None = None) -> str:
        """Save into a temporary folder and upload it to ``repo_id`` (created if missing).

        Returns the URL of the commit. ``endpoint`` defaults to ``HF_ENDPOINT`` (read now).
        """
        from huggingface_hub import HfApi
        endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
        api = HfApi(endpoint=endpoint, token=token, library_name="ghfeat")
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="ghfeat-push-") as tmp:
                self.save_pretrained(tmp, dtype=dtype, repo_id=repo_id)
                info = api.upload_folder(
                    repo_id=repo_id, folder_path=tmp, revision=revision, create_pr=create_pr,
                    commit_message=commit_message or f"Upload {type(self).__name__} with ghfeat")
        except Exception as exc:
            if not _is_network_error(exc):
                raise
            raise ConnectionError(f"push_to_hub({repo_id!r}): could not reach the Hugging Face Hub at "
                                  f"{endpoint or 'https://huggingface.co'} ({type(exc).__name__}: {exc}). "
                                  "Check the network, HF_ENDPOINT and HF_HUB_OFFLINE, or save_pretrained() "
                                  "to a folder and upload it later.") from exc
        return str(getattr(info, "commit_url", info))


def _is_network_error(exc: BaseException) -> bool:
    """A failure to reach the server (no network, refused, timed out, offline mode), not an HTTP
    answer such as 401/403/404, which huggingface_hub already explains."""
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & {"ConnectionError", "TransportError", "ConnectError", "TimeoutException",
                         "OfflineModeIsEnabled", "NetworkError"})


__all__ = ["HubMixin", "write_hub_folder", "model_card", "CARD_NAME", "WEIGHTS_NAME"]
