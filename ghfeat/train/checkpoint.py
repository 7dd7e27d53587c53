"""Atomic training checkpoints, RNG state capture, and clean exits on SIGTERM/SIGINT.

A run folder keeps its checkpoints as ``<run_dir>/checkpoints/ckpt-<step:09d>.pt``. A checkpoint is
written to a hidden temporary file in the same folder, flushed and fsynced, then renamed over its
final name (``os.replace`` is atomic on POSIX and Windows), and the folder is fsynced. A crash at
any point leaves either the complete new file or no new file: a leftover temporary file never
matches the checkpoint pattern, so :func:`find_latest_checkpoint` cannot pick it.

Checkpoints are read with ``torch.load(weights_only=True)``: they hold only tensors, numbers,
strings, lists/tuples and dicts (model/optimizer/scaler state dicts qualify; RNG states are stored
as tensors by :func:`capture_rng_state`). Nothing in a checkpoint executes code when loaded.
"""
from __future__ import annotations

import os
import random
import re
import signal
import threading
import warnings
from pathlib import Path

import numpy as np
import torch

CHECKPOINT_DIR = "checkpoints"
_CKPT_RE = re.compile(r"^ckpt-(\d+)\.pt$")


def checkpoint_path(run_dir: str | os.PathLike, step: int) -> Path:
    """``<run_dir>/checkpoints/ckpt-<step>.pt``."""
    return Path(run_dir) / CHECKPOINT_DIR / f"ckpt-{int(step):09d}.pt"


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` to ``path`` atomically (temp file + fsync + ``os.replace`` + dir fsync).

    ``state`` must be loadable with ``weights_only=True`` (tensors, primitives, containers).
    Returns the final path.
    """
    from .._io import atomic_open

    path = Path(path)
    with atomic_open(path, "wb", what="checkpoint") as f:
        torch.save(state, f)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"checkpoint {path} could not be loaded ({type(exc).__name__}: {exc}). It "
                         "is corrupt, or not a ghfeat checkpoint (only tensors/numbers/dicts are "
                         "accepted); resume from an earlier one or start a new run.") from exc


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run as ``(step, path)``, oldest first."""
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _CKPT_RE.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def is_readable(path: str | os.PathLike) -> bool:
    """Whether ``path`` opens as a ``weights_only`` checkpoint. Cheap: tensor data is memory-mapped,
    not read, so this catches truncated files, foreign formats and refused pickles (not a flipped
    bit inside a tensor). A failure is tried once more: an exception raised asynchronously into
    the first attempt (a signal handler's, such as PyTorch's "DataLoader worker killed") says
    nothing about the file."""
    for _ in range(2):
        try:
            torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            return True
        except Exception:
            continue
    return False


def move_aside(path: str | os.PathLike) -> Path:
    """Rename an unreadable checkpoint to ``<name>.corrupt`` (``.corrupt-1``, ... if taken): it no
    longer matches the checkpoint pattern, so it is never resumed from, counted or pruned."""
    path = Path(path)
    target = path.with_name(path.name + ".corrupt")
    n = 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{n}")
    os.replace(path, target)
    return target


def find_latest_checkpoint(run_dir: str | os.PathLike, verify: bool = False) -> Path | None:
    """The newest complete checkpoint of ``run_dir``, or None.

    With ``verify=True`` each candidate (newest first) is loaded, and an unreadable one is skipped
    (e.g. a disk that lied about fsync).
    """
    for _, p in reversed(list_checkpoints(run_dir)):
        if not verify:
            return p
        try:
            load_checkpoint(p)
            return p
        except ValueError:
            continue
    return None


def prune_checkpoints(run_dir: str | os.PathLike, keep: int) -> list[Path]:
    """Keep the newest ``keep`` *readable* checkpoints, delete older readable ones (``keep <= 0``
    keeps all); returns the deleted. Temporary files of killed writers are removed too.

    An unreadable checkpoint is never counted and never deleted: it is moved aside
    (:func:`move_aside`, with a warning). When no checkpoint is readable nothing is deleted.
    """
    if (Path(run_dir) / CHECKPOINT_DIR).is_dir():
        _remove_stale_temp_files(Path(run_dir) / CHECKPOINT_DIR)
    if keep <= 0:
        return []
    readable = []
    for _, p in reversed(list_checkpoints(run_dir)):        # newest first
        if is_readable(p):
            readable.append(p)
        else:
            moved = move_aside(p)
            warnings.warn(f"checkpoint {p} is unreadable; moved it aside to {moved.name}",
                          RuntimeWarning, stacklevel=2)
    old = readable[keep:]
    for p in old:
        p.unlink(missing_ok=True)
    return old


def _remove_stale_temp_files(folder: Path) -> None:
    """Delete the temporary files of :func:`save_checkpoint` calls whose process is gone (a hard
    kill mid-write); they are incomplete by construction and never a checkpoint."""
    from .._io import remove_stale_temp_files
    remove_stale_temp_files(folder)                  # .ckpt-<step>.tmp-<pid>-<token>.pt
    for p in folder.glob(".ckpt-*.pt.tmp-*"):        # the name used by ghfeat <= 0.x
        pid = p.name.rpartition("-")[2]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)            # still running: leave it
        except ProcessLookupError:
            p.unlink(missing_ok=True)
        except OSError:
            pass


# ------------------------------------------------------------------------------------------------
# RNG state (python random, numpy global, torch CPU, all CUDA devices) as tensors
# ------------------------------------------------------------------------------------------------

def capture_rng_state() -> dict:
    """Every global RNG state of this process, in a ``weights_only``-loadable form."""
    version, mt, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": {"version": int(version), "state": torch.tensor(mt, dtype=torch.int64),
                   "gauss": gauss},
        "numpy": {"name": str(np_name), "keys": torch.from_numpy(np_keys.astype(np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng_state(state: dict) -> None:
    """Inverse of :func:`capture_rng_state`. CUDA states are restored when present and the
    process sees the same number of devices (or more; extra devices keep their state)."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32), npst["pos"],
                         npst["has_gauss"], npst["gauss"]))
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        for i, s in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s.cpu().to(torch.uint8), i)


# ------------------------------------------------------------------------------------------------
# Clean exit on SIGTERM / SIGINT
# ------------------------------------------------------------------------------------------------

class GracefulExit:
    """Context manager turning SIGTERM/SIGINT into a flag the training loop polls.

        with GracefulExit() as stop:
            for step in ...:
                train_step()
                if stop.requested:
                    save_checkpoint(...); break

    A second SIGINT while a stop is pending raises ``KeyboardInterrupt`` (to force quit).
    Previous handlers are restored on exit. Outside the main thread it installs nothing (Python
    only delivers signals to the main thread) and ``requested`` stays False unless set by hand.
    """

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
        self.signals = tuple(signals)
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handler(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self.signum = signum

    def __enter__(self) -> "GracefulExit":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous.clear()
