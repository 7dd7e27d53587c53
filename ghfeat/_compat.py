"""Installation problems named as such, not as ghfeat bugs.

A CPU build of torch beside a CUDA build of torchvision (easy to get by installing one of them from
the PyTorch CPU index and the other from PyPI), or a torchvision from another release than torch,
fails when torchvision loads its compiled operators (``RuntimeError: operator torchvision::nms does
not exist``) - which happens inside ``import timm``. :func:`checked_import` turns that into one
:class:`TorchvisionMismatchError` that names both versions and the fix.
"""
from __future__ import annotations

import traceback
from importlib import metadata

CPU_INDEX = "https://download.pytorch.org/whl/cpu"


class TorchvisionMismatchError(ImportError):
    """torch and torchvision are installed in versions / builds that do not work together."""


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def matching_torchvision(torch_version: str) -> str | None:
    """The torchvision release that belongs to ``torch_version`` (torch 2.x pairs with 0.(x+15):
    2.1 -> 0.16, 2.14 -> 0.29), or None when it cannot tell."""
    try:
        major, minor = (int(p) for p in torch_version.split("+")[0].split(".")[:2])
    except ValueError:
        return None
    return f"0.{minor + 15}" if major == 2 else None


def torchvision_mismatch(exc: BaseException) -> str | None:
    """The message for ``exc`` when it is torchvision failing to load next to this torch, else None."""
    text = f"{exc}"
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    from_torchvision = any("torchvision" in (f.filename or "") for f in frames)
    loading = isinstance(exc, (ImportError, OSError, AttributeError))   # e.g. an undefined symbol in its .so
    if not ("torchvision::" in text or loading and ("torchvision" in text.lower() or from_torchvision)):
        return None
    torch_v, tv_v = _version("torch"), _version("torchvision")
    pair = matching_torchvision(torch_v)
    build = torch_v.partition("+")[2]                  # "cpu", "cu128", or "" (PyPI)
    index = f"https://download.pytorch.org/whl/{build}" if build else CPU_INDEX
    fix = (f"pip install torch=={torch_v.split('+')[0]} torchvision=={pair}.* --index-url {index}"
           if pair else f"pip install torch torchvision --index-url {CPU_INDEX}")
    return (f"torch {torch_v} and torchvision {tv_v} do not work together (a CPU build of one beside a "
            f"CUDA build of the other, or versions from different releases), so torchvision failed to "
            f"load ({type(exc).__name__}: {text.splitlines()[0] if text else ''}). This is an installation "
            f"problem, not a ghfeat bug. Fix: install a matching pair from one index, e.g. `{fix}` "
            f"(torch {torch_v.split('+')[0]} pairs with torchvision {pair or '?'}).")


def checked_import(load):
    """``load()`` (a function doing the imports), with a torch/torchvision mismatch turned into a
    :class:`TorchvisionMismatchError`."""
    try:
        return load()
    except (RuntimeError, ImportError, AttributeError, OSError) as exc:
        msg = torchvision_mismatch(exc)
        if msg is None:
            raise
        raise TorchvisionMismatchError(msg) from None
