"""Read the official TensorFlow pickles without TensorFlow and without running pickled code.

The official files (``stylegan-*-256.pkl`` = ``(G, D, Gs)``, ``ghfeat-encoder-*-256.pkl`` =
``(E, G, D, Gs)``) are pickles of ``dnnlib.tflib.network.Network`` objects. Unpickling them
normally *executes* the network-building source code embedded in each object. Here a restricted
unpickler maps that class to an inert stub whose ``__setstate__`` only keeps the data, and allows
no other global except NumPy's array/dtype/scalar reconstruction (and two plain-dict classes).
Any other global (``os.system``, ``builtins.eval``, ...) raises :class:`pickle.UnpicklingError`.

Result: one plain dict per pickled network::

    {"name": "G_style" | "D_basic" | ...,          # the TF network name (Gs is named "Gs")
     "version": 3,
     "build_func_name": "G_style",
     "static_kwargs": {...},                       # constructor kwargs recorded by tflib
     "own_variables": {name: np.ndarray},          # this network's variables, local names
     "variables": {name: np.ndarray},              # own + every component's, TF style:
                                                   #   component variables are prefixed with the
                                                   #   component's *network name*, e.g.
                                                   #   "G_mapping/Dense0/weight", exactly the keys
                                                   #   of ``Network.vars`` in the TF code
     "components": {key: <same dict>}}             # e.g. {"mapping": ..., "synthesis": ...}

The embedded source code (``build_module_src``) is dropped unread.
"""
from __future__ import annotations

import io
import os
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np

__all__ = ["read_tf_pickle", "loads_tf_pickle", "RestrictedUnpickler", "UnsafePickleError", "network_from_state"]

_NETWORK_KEYS = ("name", "variables")


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle references a global that an official network pickle never needs."""


class _StructureError(ValueError):
    """The pickle is readable but is not shaped like an official tflib network pickle."""


class _NetworkStub:
    """Stands in for ``dnnlib.tflib.network.Network``; keeps the pickled state, runs nothing."""

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise _StructureError(
                f"a pickled dnnlib Network carries a {type(state).__name__} state; expected the tflib "
                "state dict {version, name, static_kwargs, components, build_module_src, "
                "build_func_name, variables}")
        missing = [k for k in _NETWORK_KEYS if k not in state]
        if missing:
            raise _StructureError(f"a pickled dnnlib Network lacks {missing} in its state; "
                                         "this is not an official tflib network pickle")
        state = dict(state)
        state.pop("build_module_src", None)  # source code: never executed, not kept
        self.state = state


class _EasyDictStub(dict):
    """``dnnlib.util.EasyDict`` is a plain dict with attribute access; read it as a dict."""


# (module, name) -> object. Both numpy 1.x (`numpy.core`) and 2.x (`numpy._core`) spellings.
_ALLOWED = {
    ("dnnlib.tflib.network", "Network"): _NetworkStub,
    ("dnnlib.util", "EasyDict"): _EasyDictStub,
    ("dnnlib", "EasyDict"): _EasyDictStub,
    ("collections", "OrderedDict"): OrderedDict,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _mod in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_mod}.multiarray", "_reconstruct")] = np._core.multiarray._reconstruct
    _ALLOWED[(f"{_mod}.multiarray", "scalar")] = np._core.multiarray.scalar
    _ALLOWED[(f"{_mod}.numeric", "_frombuffer")] = np._core.numeric._frombuffer


def _codecs_encode(text, encoding="utf-8"):
    """Protocol-2 pickles written by Python 3 store bytes as ``_codecs.encode(str, 'latin1')``;
    allow exactly that and nothing else of the codecs machinery."""
    if not isinstance(text, str) or str(encoding).lower().replace("-", "") not in ("latin1", "iso88591"):
        raise UnsafePickleError("refusing _codecs.encode with anything but (str, 'latin1')")
    return text.encode("latin1")


_ALLOWED[("_codecs", "encode")] = _codecs_encode


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of an official tflib network pickle."""

    def find_class(self, module: str, name: str):
        obj = _ALLOWED.get((module, name))
        if obj is None:
            raise UnsafePickleError(
                f"refusing to load global '{module}.{name}': official StyleGAN / GH-Feat pickles "
                "reference only dnnlib.tflib.network.Network and NumPy array reconstruction, so this "
                "file is not one of them (or it was tampered with). ghfeat never runs code from a pickle.")
        return obj


def _as_array(name: str, value) -> np.ndarray:
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiub":
        raise ValueError(f"variable {name!r} is a {type(value).__name__}"
                         f"{' of dtype ' + str(value.dtype) if isinstance(value, np.ndarray) else ''}; "
                         "expected a numeric numpy array")
    return value


def network_from_state(stub: _NetworkStub, path: str = "network") -> dict:
    """Turn an unpickled stub into the plain dict described in the module docstring."""
    state = stub.state
    name = state["name"]
    if not isinstance(name, str):
        raise ValueError(f"{path}: network name is a {type(name).__name__}, expected a string")
    variables = state["variables"]
    if isinstance(variables, dict):
        variables = list(variables.items())
    if not isinstance(variables, (list, tuple)):
        raise ValueError(f"{path} ({name}): 'variables' is a {type(variables).__name__}; expected a "
                         "list of (name, ndarray) pairs")
    own = {}
    for item in variables:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
            raise ValueError(f"{path} ({name}): 'variables' must hold (name, ndarray) pairs, got {item!r:.80}")
        if item[0] in own:
            raise ValueError(f"{path} ({name}): variable {item[0]!r} appears twice")
        own[item[0]] = _as_array(f"{name}/{item[0]}", item[1])
    components = {}
    for key, comp in dict(state.get("components") or {}).items():
        if not isinstance(comp, _NetworkStub):
            raise ValueError(f"{path} ({name}): component {key!r} is a {type(comp).__name__}, "
                             "expected a pickled dnnlib Network")
        components[str(key)] = network_from_state(comp, f"{path}.components.{key}")
    flat = dict(own)
    for comp in components.values():
        for var_name, value in comp["variables"].items():
            flat[f"{comp['name']}/{var_name}"] = value
    static_kwargs = state.get("static_kwargs") or {}
    return {"name": name, "version": state.get("version"), "build_func_name": state.get("build_func_name"),
            "static_kwargs": _plain(dict(static_kwargs)), "own_variables": own, "variables": flat,
            "components": components}


def _plain(obj):
    """EasyDict/OrderedDict -> dict, recursively (static kwargs are small)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


def _load(fileobj, source: str) -> list[dict]:
    try:
        obj = RestrictedUnpickler(fileobj).load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{source}: {exc}") from None
    except _StructureError as exc:
        raise ValueError(f"{source}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, IndexError, KeyError, TypeError, AttributeError, ValueError,
            MemoryError, UnicodeDecodeError, OverflowError, ImportError) as exc:
        raise ValueError(f"{source} is not a readable pickle ({type(exc).__name__}: {exc}); it may be "
                         "truncated or corrupt: download it again and compare its size/sha256 with the "
                         "published one.") from exc
    if isinstance(obj, _NetworkStub):
        obj = (obj,)
    if not isinstance(obj, (tuple, list)) or not obj or not all(isinstance(o, _NetworkStub) for o in obj):
        got = type(obj).__name__ if not isinstance(obj, (tuple, list)) else \
            f"{type(obj).__name__} of {[type(o).__name__ for o in obj]}"
        raise ValueError(f"{source} holds a {got}; an official pickle holds a tuple of dnnlib Networks "
                         "((G, D, Gs) for stylegan-*.pkl, (E, G, D, Gs) for ghfeat-encoder-*.pkl)")
    return [network_from_state(o, f"{source}[{i}]") for i, o in enumerate(obj)]


def loads_tf_pickle(data: bytes, source: str = "<bytes>") -> list[dict]:
    """Parse the bytes of an official tflib pickle; returns one dict per network, in file order."""
    return _load(io.BytesIO(data), source)


def read_tf_pickle(path: str | os.PathLike) -> list[dict]:
    """Read an official TF pickle file (streamed; see :func:`loads_tf_pickle`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    with open(path, "rb", buffering=1 << 20) as f:
        return _load(f, str(path))
