"""Save and load any ghfeat module as ``config.json`` + ``model.safetensors``.

The folder layout is the one diffusers and the Hugging Face Hub use, so a saved folder can be
pushed to the Hub as it is. Loading is strict: a missing or unexpected tensor is an error.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import torch
from torch import nn

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _module_classes():
    from . import models  # noqa: F401  (registers the classes)
    from .models._base import MODULE_CLASSES
    return MODULE_CLASSES


def model_config(model: nn.Module) -> dict:
    """The JSON document describing ``model``: its class and constructor arguments."""
    if not hasattr(model, "config"):
        raise TypeError(f"{type(model).__name__} is not a ghfeat module (it has no .config); "
                        "only modules built by ghfeat can be saved with save_model().")
    from . import __version__
    doc = {"ghfeat_class": type(model).__name__, "ghfeat_version": __version__,
           "config": model.config}
    if getattr(model, "pretrained_cfg", None) is not None:
        doc["pretrained_name"] = model.pretrained_cfg.name
    from ._models import generator_identity
    name = generator_identity(model)
    if name:                   # the pair check knows a saved folder by this name (and an encoder by
        doc["ghfeat_name"] = name      # its config's generator_name)
    return doc


def build_from_config(doc: dict, source: str = "config.json") -> nn.Module:
    """Build a module (random init) from a ``config.json`` document (``source`` names it in errors)."""
    classes = _module_classes()
    name = doc.get("ghfeat_class") if isinstance(doc, dict) else None
    if name not in classes:
        raise ValueError(f"{source} names class {name!r}, which this version of ghfeat does not "
                         f"know; known classes: {sorted(classes)}. Upgrade ghfeat?")
    config = doc.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{source}: 'config' must be an object of {name} arguments, got {type(config).__name__}")
    import inspect
    params = inspect.signature(classes[name].__init__).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(config) - set(params) - {"self"})
        if unknown:
            raise ValueError(f"{source}: {name} has no argument(s) {unknown}; the file was written by another "
                             f"ghfeat version or edited by hand (known: {sorted(set(params) - {'self'})})")
    try:
        return classes[name](**config)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: cannot build {name} from its config ({exc})") from exc


def check_writable(path: str | os.PathLike, *, folder: bool, what: str = "output") -> Path:
    """Refuse, before any work, an output ``path`` that cannot be written: a folder (``folder=True``)
    or a file (``folder=False``) whose place is taken by the other kind, under a regular file, or
    in a folder without write permission. Creates nothing; returns ``Path(path)``."""
    path = Path(path).expanduser()
    refuse_package_path(path, what)
    if path.exists() and path.is_dir() != folder:
        raise ValueError(f"{what} {path} exists and is {'a file' if folder else 'a folder'}, not "
                         f"{'a folder' if folder else 'a file'}")
    p = path if folder else path.parent
    while not p.exists() and p.parent != p:
        p = p.parent
    if not p.is_dir():
        raise ValueError(f"{what} {path}: {p} is a file, not a folder")
    if not os.access(p, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path}: {p} is not writable")
    return path


def state_dict_for_saving(model: nn.Module, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies of every parameter and persistent buffer (floats cast to ``dtype``)."""
    out = {}
    for key, value in model.state_dict().items():
        value = value.detach().to("cpu")
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        out[key] = value.contiguous().clone()
    return out


# ---------------------------------------------------------------------------------------------
# Atomic outputs: every file ghfeat writes goes through atomic_output()
# ---------------------------------------------------------------------------------------------
PACKAGE_DIR = Path(__file__).resolve().parent
_TMP_MARK = ".tmp-"


class WriteError(OSError):
    """An output could not be written (disk full, no permission, read-only file system...). The
    message is one line that says which file and what to do; nothing was left behind."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "write failed"


def write_error(exc: OSError, path: Path, what: str = "output") -> WriteError:
    """``exc`` (raised while writing ``path``) as a :class:`WriteError` with a one-line message."""
    import errno
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        why = ("the disk is full (no space left on device)" if code == errno.ENOSPC else
               "the disk quota is exceeded" if code == errno.EDQUOT else "the file is too large for this file system")
        fix = "free some space or write it to another disk"
    elif code in (errno.EACCES, errno.EPERM):
        why, fix = "permission denied", "pick a folder you can write to"
    elif code == errno.EROFS:
        why, fix = "the file system is read-only", "pick a writable folder"
    else:
        why, fix = (exc.strerror or type(exc).__name__), "check the path and the disk"
    err = WriteError(f"cannot write {what} {path}: {why}; {fix}. Nothing was written (no partial file is "
                     "left behind).")
    err.errno = code
    return err


def inside_package(path: str | os.PathLike) -> bool:
    """True when ``path`` lies inside the installed ghfeat package (its files are never written)."""
    try:
        Path(os.path.abspath(Path(path).expanduser())).resolve().relative_to(PACKAGE_DIR)
        return True
    except ValueError:
        return False


def refuse_package_path(path: str | os.PathLike, what: str = "output") -> None:
    """Refuse an output ``path`` inside the installed ghfeat package (commands never write there)."""
    if inside_package(path):
        raise ValueError(f"{what} {path} lies inside the installed ghfeat package ({PACKAGE_DIR}); ghfeat never "
                         "writes into its own package: pick another path")


def temp_path_for(path: Path) -> Path:
    """The hidden temporary file next to ``path`` (same folder, same suffix so that libraries that
    pick the format from the extension still see it; the writer's PID is in the name)."""
    return path.with_name(f".{path.stem}{_TMP_MARK}{os.getpid()}-{os.urandom(3).hex()}{path.suffix}")


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: Path) -> None:
    """fsync a folder (so a rename in it is durable); a no-op where folders cannot be opened."""
    if os.name != "posix":
        return
    try:
        _fsync_path(directory)
    except OSError:
        pass


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, what: str = "output", allow_package: bool = False):
    """Write one file atomically: yields a temporary path in the same folder; when the block ends
    without error the file is fsynced and renamed over ``path`` (``os.replace``, atomic) and the
    folder fsynced. On *any* failure (including ``KeyboardInterrupt``) the temporary file is removed
    and ``path`` is untouched; a write failure (disk full, permission...) becomes a one-line
    :class:`WriteError`. Outputs inside the ghfeat package are refused unless ``allow_package``.

        with atomic_output(out) as tmp:
            np.savez(tmp, ...)        # or PIL .save(tmp), torch.save(x, tmp), ...
    """
    path = Path(path).expanduser()
    if not allow_package:
        refuse_package_path(path, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(exc, path, what) from exc
    tmp = temp_path_for(path)
    try:
        yield tmp
        if not tmp.is_file():
            raise RuntimeError(f"the writer of {path} produced no file")
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError) and getattr(exc, "errno", None):
            raise write_error(exc, path, what) from exc
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", *, what: str = "output", allow_package: bool = False,
                **kwargs):
    """``open(path, mode)`` through :func:`atomic_output` (``mode`` "w"/"wb"; text modes take
    ``encoding=`` etc.). The file is flushed before it is renamed into place."""
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_open writes a new file: mode must be 'w' or 'wb', got {mode!r}")
    with atomic_output(path, what=what, allow_package=allow_package) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, what: str = "output",
                       allow_package: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_open(path, "wb", what=what, allow_package=allow_package) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, *, what: str = "output",
                      allow_package: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_output`)."""
    return atomic_write_bytes(path, text.encode("utf-8"), what=what, allow_package=allow_package)


def remove_stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that :func:`atomic_output` writers left behind when their process
    was killed outright (SIGKILL, power loss): they are incomplete by construction. A file whose
    writer is still running is left alone. Returns the removed paths."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        if not p.name.startswith(".") or _TMP_MARK not in p.name:
            continue
        pid = p.name.rpartition(_TMP_MARK)[2].split("-")[0].split(".")[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)            # still running: leave it
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
        except OSError:
            pass
    return removed


def save_model(model: nn.Module, directory: str | os.PathLike, dtype: torch.dtype | None = None,
               extra_config: dict | None = None) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for ``model`` into ``directory``.

    Args:
        model: a ghfeat module (built by ghfeat, so it has ``.config``).
        directory: created if missing; existing files of the same names are replaced atomically.
        dtype: optional storage dtype for floating tensors (e.g. ``torch.float16``).
        extra_config: extra JSON keys written into ``config.json`` (e.g. provenance).
    Returns:
        the directory as a ``Path``.
    """
    from safetensors.torch import save

    directory = Path(directory)
    refuse_package_path(directory, "model folder")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(exc, directory, "model folder") from exc
    doc = model_config(model)
    if extra_config:
        doc.update(extra_config)
    atomic_write_bytes(directory / WEIGHTS_NAME, save(state_dict_for_saving(model, dtype),
                                                       metadata={"format": "pt"}))
    atomic_write_bytes(directory / CONFIG_NAME, (json.dumps(doc, indent=2) + "\n").encode())
    return directory


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a safetensors file, turning a truncated or corrupt file into a clear error."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file {path} does not exist")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises SafetensorError / OSError on bad headers
        raise ValueError(f"{path} is not a valid safetensors file ({exc}); it may be truncated or "
                         "corrupt: delete it and download or convert it again.") from exc


def check_finite_state(state: dict[str, torch.Tensor], source: str = "weights") -> None:
    """Refuse weights holding NaN or Inf (a damaged or diverged file would give NaN features/images
    with no error)."""
    bad = [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
           and v.numel() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(f"{source} hold non-finite values (NaN or Inf) in {len(bad)} tensor(s): "
                         f"{', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}; the file is damaged or comes from "
                         "a diverged run: use another copy (delete it and download/convert it again, or pick an "
                         "earlier checkpoint)")


def load_state_dict_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "weights") -> nn.Module:
    """``model.load_state_dict(state, strict=True)`` with shapes checked and a readable error."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or mismatched:
        def head(items):
            return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")
        lines = [f"{source} do not match {type(model).__name__}:"]
        if missing:
            lines.append(f"  missing tensors: {head(missing)}")
        if unexpected:
            lines.append(f"  unexpected tensors: {head(unexpected)}")
        if mismatched:
            lines.append(f"  shape mismatches: {head(mismatched)}")
        lines.append("  The file was made for another architecture/config; build the model with the "
                     "config saved next to the weights (ghfeat.load_model(dir)).")
        raise ValueError("\n".join(lines))
    check_finite_state(state, source)
    with torch.no_grad():
        model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
    return model


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a module saved by :func:`save_model` (strict load; returns it in eval mode)."""
    directory = Path(directory)
    cfg_path = directory / CONFIG_NAME
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{directory} has no {CONFIG_NAME}; expected a folder written by "
                                "ghfeat.save_model() / save_pretrained() (config.json + model.safetensors)")
    try:
        doc = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{cfg_path} is not valid JSON ({exc})") from exc
    model = build_from_config(doc, str(cfg_path))
    load_state_dict_strict(model, read_safetensors(directory / WEIGHTS_NAME), str(directory / WEIGHTS_NAME))
    if isinstance(doc.get("ghfeat_name"), str):
        model.ghfeat_name = doc["ghfeat_name"]          # what the pair check knows it by
    return model.to(device).eval()
