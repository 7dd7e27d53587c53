"""Lazy re-exports for package ``__init__`` files (PEP 562): ``import ghfeat`` stays light, and
``ghfeat.extract`` imports ``ghfeat.api`` (and torch) only when it is first used."""
from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str], extra: tuple[str, ...] = ()):
    """``(__getattr__, __dir__, __all__)`` for ``package``, where ``exports`` maps each public name
    to the relative module that defines it (``{"extract": ".api"}``) and ``extra`` lists names the
    package defines itself."""
    names = sorted(exports) + list(extra)

    def __getattr__(name: str):
        if name in exports:
            value = getattr(importlib.import_module(exports[name], package), name)
            setattr(importlib.import_module(package), name, value)   # cached: next access is direct
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return names

    return __getattr__, __dir__, names
