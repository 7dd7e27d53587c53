"""One trainer per run folder: ``<run_dir>/.lock``.

A second trainer started in a folder that a live trainer holds fails at once, naming the process
(PID, host, start time) that holds it, instead of racing on checkpoint files. The lock is an
``flock`` on the lock file, which the operating system releases when the holder dies (a crash, a
``kill -9``, a power loss), so a stale lock of a dead process is simply taken over. Where ``flock``
is not available (Windows, some network file systems) the lock file's PID is checked instead: a
lock of a process that no longer runs on this host is taken over.

Within one process the same holds between two lock objects (two live ``Trainer`` s in one folder:
the second is refused). A lock acquired with ``owner=`` (the trainer) is also released when that
owner is garbage-collected: a trainer that was dropped without :meth:`Trainer.close` (``train()``
closes it) does not keep its folder locked. Such a trainer may sit in a reference cycle that only
the cycle collector frees, so a lock held by this very process is retried once after
``gc.collect()``.

Under ``torchrun`` only rank 0 takes the lock (all ranks of one run share the folder).
"""
from __future__ import annotations

import errno
import gc
import json
import os
import socket
import time
import weakref
from pathlib import Path

LOCK_NAME = ".lock"

# the locks this process holds, by lock file path (entries vanish with their RunLock)
_HELD_HERE: "weakref.WeakValueDictionary[str, RunLock]" = weakref.WeakValueDictionary()


class RunFolderLocked(OSError):
    """Another live trainer holds the run folder."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "run folder locked"


def _describe(info: dict) -> str:
    if not info:
        return "a process that did not record itself"
    return (f"PID {info.get('pid', '?')} on host {info.get('host', '?')}, started "
            f"{info.get('started', '?')}")


def _read_info(path: Path) -> dict:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def _pid_alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:                 # exists, owned by someone else
        return True
    return True


class RunLock:
    """``with RunLock(run_dir): ...`` or ``lock.acquire()`` / ``lock.release()``."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None
        self._created_dir = False
        self._key: str | None = None
        self._finalizer: weakref.finalize | None = None

    def _message(self, info: dict) -> str:
        return (f"run folder {self.run_dir} is in use by another trainer ({_describe(info)}); two trainers "
                f"in one folder would overwrite each other's checkpoints. Wait for it to finish, stop it, or "
                f"use another --run-dir (a lock left by a process that died is taken over automatically)")

    def _held_here(self) -> bool:
        """Another lock object of this process holds the lock file."""
        other = _HELD_HERE.get(self._key)
        return other is not None and other is not self

    def acquire(self, owner: object = None) -> "RunLock":
        """Take the lock or raise :class:`RunFolderLocked`. ``owner``: the lock is released when
        this object is garbage-collected (if :meth:`release` was not called before)."""
        from .._io import write_error
        self._created_dir = not self.run_dir.exists()
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(exc, self.run_dir, "run folder") from exc
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        self._key = os.path.realpath(self.path)
        collected = False
        try:
            import fcntl
        except ImportError:
            fcntl = None
        for _ in range(10):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise write_error(exc, self.path, "run folder lock") from exc
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    os.close(fd)
                    if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        if not collected and self._held_here():
                            collected = True        # a dropped owner in a reference cycle lets go
                            gc.collect()
                            continue
                        raise RunFolderLocked(self._message(_read_info(self.path))) from None
                    fcntl = None            # no flock on this file system: fall back to the PID
                    continue
                try:                        # the file we locked must still be the lock file
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
            else:
                old = _read_info(self.path)
                if old.get("pid") == os.getpid() and old.get("host") == info["host"] and self._held_here():
                    if not collected:
                        collected = True
                        gc.collect()
                    if self._held_here():       # a live lock object of this process
                        os.close(fd)
                        raise RunFolderLocked(self._message(old))
                if (old.get("pid") != os.getpid() and old.get("host") == info["host"]
                        and _pid_alive(old.get("pid"))):
                    os.close(fd)
                    raise RunFolderLocked(self._message(old))
                # a lock of another host cannot be checked: refuse rather than race
                if old and old.get("host") != info["host"]:
                    os.close(fd)
                    raise RunFolderLocked(self._message(old) + f" (delete {self.path} if that process is gone)")
            try:
                os.ftruncate(fd, 0)
                os.write(fd, (json.dumps(info) + "\n").encode())
            except OSError as exc:          # e.g. a full disk: leave nothing behind
                self._fd = fd
                self.release(failed=True)
                raise write_error(exc, self.path, "run folder lock") from exc
            self._fd = fd
            _HELD_HERE[self._key] = self
            if owner is not None:
                self._finalizer = weakref.finalize(owner, self.release)
            return self
        raise RunFolderLocked(self._message(_read_info(self.path)))

    def release(self, failed: bool = False) -> None:
        """Remove the lock file and release the lock; with ``failed=True`` a run folder this lock
        created is removed again when nothing else was written into it."""
        if self._fd is None:
            return
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if _HELD_HERE.get(self._key) is self:
            del _HELD_HERE[self._key]
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None
        if failed and self._created_dir:
            try:
                self.run_dir.rmdir()                # only when empty
            except OSError:
                pass

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, exc_type, *exc) -> None:
        self.release(failed=exc_type is not None)
