"""Fetch, verify and convert the official GH-Feat / StyleGAN files (``pretrained=True``'s last step).

When no converted copy is cached and no Hub copy is published, ``create_encoder("ffhq256",
pretrained=True)`` calls :func:`fetch_official`, which

1. refuses at once when offline (``GHFEAT_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``), with the manual steps;
2. downloads the official pickle from the link the genforce/ghfeat README lists (direct-download
   form), or from a mirror (``mirror=`` / ``$GHFEAT_OFFICIAL_MIRROR``: a base URL holding the files
   under their official names), into ``<cache>/downloads/<file>.part``: progress bar, free disk
   space checked first, resumed with an HTTP ``Range`` request after an interruption, renamed to
   ``<file>`` only when complete;
3. checks the sha256 (against ``Origin.sha256`` when the entry pins one) *before* anything is
   parsed, and records it in ``<cache>/downloads/<file>.sha256``;
4. converts it with the restricted reader (:func:`ghfeat.convert.convert`), which installs every
   network of the file (an encoder pickle gives the encoder, its generator ``Gs`` and
   discriminator, and the raw training ``G`` as ``stylegan-TAG-G``), so the matching generator
   then loads with no second download;
5. deletes the raw pickle unless asked to keep it (``keep=True`` / ``$GHFEAT_KEEP_DOWNLOADS=1``).

Only the standard library talks to the network (``urllib``). An HTML page where the file should
be (what file hosts serve for a dead link) is refused with the manual steps, except Google Drive's
"can't scan this file for viruses" page, whose download form is followed once.

Command line: ``ghfeat download NAME [--mirror URL] [--keep] [--force]``.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import http.client
import os
import shutil
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from http.cookiejar import CookieJar
from pathlib import Path

from ._io import WriteError, atomic_write_text, write_error
from .pretrained import (MANIFEST_NAME, PretrainedCfg, WeightsCorruptError, WeightsDownloadError, WeightsError,
                         WeightsNotFoundError, WeightsOfflineError, _truthy, cache_dir, convert_hint,
                         get_pretrained_cfg, hf_offline, list_pretrained_cfgs, sha256_file)

__all__ = ["fetch_official", "download_file", "official_url", "direct_url", "offline",
           "find_cfgs", "download_main"]

MIRROR_ENV = "GHFEAT_OFFICIAL_MIRROR"
TIMEOUT = 60            # seconds to connect / get the reply headers
STALL_SECONDS = 60.0    # a download with no progress (or too little) for this long is stalled
MIN_RATE = 1024.0       # bytes/s: less than this over STALL_SECONDS is a stall (0 = only no bytes at all)
STALL_ENV, RATE_ENV = "GHFEAT_DOWNLOAD_STALL_SECONDS", "GHFEAT_DOWNLOAD_MIN_RATE"
RETRIES = 5             # resumed attempts after an interruption, within one call
BACKOFF = 1.0           # seconds to wait before retry n is n * BACKOFF
CHUNK = 1 << 20


def offline() -> bool:
    """``GHFEAT_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` (read now): never touch the network."""
    return _truthy(os.environ.get("GHFEAT_OFFLINE")) or hf_offline()


def downloads_dir() -> Path:
    return cache_dir() / "downloads"


def direct_url(url: str) -> str:
    """The direct-download form of a share link: Dropbox ``?dl=0`` -> ``?dl=1``; Google Drive
    ``/file/d/ID/view`` and ``open?id=ID`` -> ``/uc?export=download&id=ID``. Others unchanged."""
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    if parts.netloc.endswith("dropbox.com"):
        query["dl"] = "1"
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    if parts.netloc in ("drive.google.com", "docs.google.com"):
        segs = parts.path.split("/")
        file_id = segs[segs.index("d") + 1] if "d" in segs[:-1] else query.get("id")
        if file_id:
            return f"https://drive.google.com/uc?export=download&id={file_id}"
    return url


def official_url(cfg: PretrainedCfg, mirror: str | None = None) -> str:
    """Where to fetch ``cfg``'s official file: ``mirror`` (or ``$GHFEAT_OFFICIAL_MIRROR``) +
    ``/<file>``, else the direct form of the link the official README lists."""
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if mirror:
        return mirror.rstrip("/") + "/" + urllib.parse.quote(cfg.origin.file)
    if not cfg.origin.url:
        raise WeightsNotFoundError(f"no download link is known for {cfg.origin.file}. {convert_hint(cfg)}")
    return direct_url(cfg.origin.url)


# ---------------------------------------------------------------------------------------------
# One file, resumable
# ---------------------------------------------------------------------------------------------
class _FormFinder(HTMLParser):
    """Collects Google Drive's confirm target: a ``<form>`` (action + inputs) or an ``<a href>``
    carrying ``confirm=``."""

    def __init__(self):
        super().__init__()
        self.forms: list[tuple[str, dict]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("action"):
            self.forms.append((a["action"], {}))
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1][1][a["name"]] = a.get("value") or ""
        elif tag == "a" and "confirm=" in (a.get("href") or ""):
            self.links.append(a["href"])


def _confirm_url(page: bytes, base: str) -> str | None:
    """The URL behind a Google Drive "download anyway" page, or None for any other HTML."""
    finder = _FormFinder()
    finder.feed(page.decode("utf-8", "replace"))
    for action, inputs in finder.forms:
        if "confirm" in inputs or "download" in action:
            sep = "&" if "?" in action else "?"
            return urllib.parse.urljoin(base, action + sep + urllib.parse.urlencode(inputs))
    return urllib.parse.urljoin(base, finder.links[0]) if finder.links else None


def _looks_like_html(content_type: str, head: bytes) -> bool:
    start = head.lstrip()[:15].lower()
    return "text/html" in content_type.lower() or start.startswith((b"<!doctype html", b"<html"))


class _Stalled(Exception):
    """The stall rule fired (too few bytes during the last window)."""


def _stall_settings(stall_seconds, min_rate) -> tuple[float, float]:
    """``(seconds, bytes/s)`` of the stall rule: the arguments, else ``$GHFEAT_DOWNLOAD_STALL_SECONDS``
    / ``$GHFEAT_DOWNLOAD_MIN_RATE``, else 60 s and 1 KiB/s. Checked: finite, seconds > 0, rate >= 0."""
    import math
    out = []
    for value, env, default, low in ((stall_seconds, STALL_ENV, STALL_SECONDS, "> 0"),
                                     (min_rate, RATE_ENV, MIN_RATE, ">= 0")):
        where = f"${env}" if value is None and os.environ.get(env) else env.lower().replace("ghfeat_download_", "")
        raw = value if value is not None else os.environ.get(env) or default
        try:
            v = float(raw)
        except (TypeError, ValueError):
            v = float("nan")
        if not math.isfinite(v) or (v <= 0 if low == "> 0" else v < 0):
            raise ValueError(f"{where} must be a finite number {low}, got {raw!r}")
        out.append(v)
    return out[0], out[1]


class _Meter:
    """Counts the bytes of one response and raises :class:`_Stalled` when fewer than
    ``min_rate * window`` bytes came in during the last ``window`` seconds."""

    def __init__(self, window: float, min_rate: float):
        self.window, self.min_rate = window, min_rate
        self.start, self.bytes = time.monotonic(), 0

    def add(self, n: int) -> None:
        self.bytes += n
        now = time.monotonic()
        if now - self.start >= self.window:
            if self.bytes < max(self.min_rate * (now - self.start), 1):
                raise _Stalled(f"{self.bytes} bytes in {now - self.start:.0f} s")
            self.start, self.bytes = now, 0


def _read_some(resp, n: int) -> bytes:
    """Whatever the server sent so far, up to ``n`` bytes (``read`` would wait for all ``n``)."""
    read1 = getattr(resp, "read1", None)
    return read1(n) if read1 is not None else resp.read(n)


def _content_range_start(value: str | None) -> str:
    """``"bytes 100-199/200"`` -> ``"100"``; anything malformed -> ``""``."""
    parts = (value or "bytes 0-").split()
    return parts[-1].split("-")[0] if parts else ""


def _kept(part: Path) -> str:
    """What a failed download leaves: the ``.part`` (to resume) or nothing."""
    size = part.stat().st_size if part.is_file() else 0
    if size:
        return f"{part.name} ({size:,} bytes) is kept, so running the same command again resumes"
    return "nothing was downloaded"


def _check_space(folder: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise WeightsDownloadError(
            f"not enough free disk space for {what}: {needed / 1e9:.2f} GB needed (the download "
            f"and its conversion), {free / 1e9:.2f} GB free in {folder}. Free some space, or point "
            f"GHFEAT_CACHE at a larger disk.")


def _unreachable(exc: BaseException) -> str | None:
    """Why the server cannot be reached at all (a failed name lookup, a refused connection, no
    route), or None for a transient failure worth retrying. Retrying the former only makes a
    machine without network wait (about 20 s) before saying so."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, socket.gaierror):
        return f"the name lookup failed: {reason}"
    if isinstance(reason, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(reason, OSError) and reason.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return f"no route to the server: {reason.strerror}"
    return None


def download_file(url: str, dest: str | os.PathLike, *, sha256: str | None = None,
                  progress: bool = True, hint: str = "", retries: int = RETRIES,
                  space_factor: float = 2.0, stall_seconds: float | None = None,
                  min_rate: float | None = None, offline_advice: str | None = None) -> str:
    """Download ``url`` to ``dest`` through ``dest.part``; returns the file's sha256.

    Resumes an existing ``.part`` (and after each interruption, up to ``retries`` times) with an
    HTTP ``Range`` request; the ``.part`` is renamed to ``dest`` only once complete and, when
    ``sha256`` is given, matching. A mismatch deletes the file. An HTML page is refused (Google
    Drive's confirm page is followed once). ``space_factor * size`` bytes must be free.
    A server that cannot be reached at all (failed name lookup, refused connection: no network)
    fails at once, without retries, with ``offline_advice`` (default: the weights' advice).

    Stall rule: when fewer than ``min_rate`` bytes/s arrive over ``stall_seconds`` (no byte at all
    counts too), the download ends with :class:`WeightsDownloadError` at once, the ``.part`` kept
    for a resume (defaults: ``$GHFEAT_DOWNLOAD_STALL_SECONDS`` = 60, ``$GHFEAT_DOWNLOAD_MIN_RATE`` =
    1024; a socket read timeout alone never fires on a server that trickles bytes).

    Raises:
        WeightsNotFoundError: dead link (HTTP 404/403/410, an HTML page).
        WeightsDownloadError: connection failures after ``retries`` resumes (the ``.part`` stays,
            so the next call resumes); not enough disk space.
        WeightsCorruptError: size or sha256 mismatch (nothing is kept).
    """
    from tqdm.auto import tqdm

    from . import __version__

    window, rate = _stall_settings(stall_seconds, min_rate)
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(exc, dest.parent, "download folder") from exc
    part = dest.with_name(dest.name + ".part")
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    tail = f" {hint}" if hint else ""
    followed, failures, total = False, 0, None
    while True:
        have = part.stat().st_size if part.is_file() else 0
        headers = {"User-Agent": f"ghfeat/{__version__}"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            with opener.open(urllib.request.Request(url, headers=headers), timeout=min(TIMEOUT, window)) as resp:
                status = resp.status or 200
                start = _content_range_start(resp.headers.get("Content-Range"))
                if have and (status != 206 or start != str(have)):   # Range ignored: start again
                    have = 0
                length = resp.headers.get("Content-Length")
                if length is not None and not length.strip().isdigit():
                    raise WeightsDownloadError(
                        f"{url} announced an invalid Content-Length {length!r} for {dest.name} (a broken "
                        f"server or proxy); {_kept(part)}. Try again later, or set {MIRROR_ENV} to "
                        f"another server.{tail}")
                total = have + int(length) if length is not None else None
                meter = _Meter(window, rate)
                head, stalled = b"", None
                while len(head) < 512:            # enough to tell an HTML page; never waits for more
                    more = _read_some(resp, 64 << 10)
                    if not more:
                        break
                    head += more
                    try:
                        meter.add(len(more))
                    except _Stalled as exc:       # keep what came: it goes into the .part first
                        stalled = exc
                        break
                if have == 0 and _looks_like_html(resp.headers.get("Content-Type", ""), head):
                    page = head + resp.read(1 << 20)
                    nxt = None if followed else _confirm_url(page, resp.geturl())
                    if nxt is None:
                        raise WeightsNotFoundError(
                            f"{url} served an HTML page instead of the file {dest.name} (the link is "
                            f"dead, moved, or asks for a login); nothing was kept.{tail}")
                    url, followed = nxt, True
                    continue
                if have == 0:
                    part.unlink(missing_ok=True)
                if total is not None:
                    _check_space(dest.parent, int(space_factor * total) - have, dest.name)
                try:
                    f = open(part, "ab" if have else "wb")
                except OSError as exc:
                    raise write_error(exc, part, "download") from exc
                with f, tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                             desc=dest.name, disable=not progress, leave=False) as bar:
                    while head:
                        try:
                            f.write(head)
                            f.flush()
                        except OSError as exc:      # disk full: no retry; the .part resumes later
                            raise write_error(exc, part, "download") from exc
                        bar.update(len(head))
                        if stalled is not None:
                            raise stalled
                        head = _read_some(resp, CHUNK)
                        meter.add(len(head))
        except _Stalled as exc:
            raise WeightsDownloadError(
                f"downloading {dest.name} from {url} stalled ({exc}; the rule: at least {rate:g} bytes/s "
                f"over {window:g} s, ${STALL_ENV} / ${RATE_ENV}); {_kept(part)}, or set {MIRROR_ENV} to a "
                f"faster server.{tail}") from None
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:            # .part is longer than the file: start over
                part.unlink()
                continue
            if exc.code in (401, 403, 404, 410):
                raise WeightsNotFoundError(
                    f"{url} answered HTTP {exc.code} for {dest.name}: the link is dead or moved.{tail}") from None
            failures += 1
            if failures > retries:
                raise WeightsDownloadError(
                    f"downloading {dest.name} from {url} failed (HTTP {exc.code}) after {retries} "
                    f"retries; {_kept(part)}.{tail}") from None
            time.sleep(BACKOFF * failures)
            continue
        except (OSError, http.client.HTTPException) as exc:   # URLError, timeouts, IncompleteRead
            if isinstance(exc, WriteError):
                raise
            if isinstance(exc, TimeoutError):     # no byte at all for the whole window
                raise WeightsDownloadError(
                    f"downloading {dest.name} from {url} stalled (no data for {min(TIMEOUT, window):g} s; "
                    f"${STALL_ENV}); {_kept(part)}, or set {MIRROR_ENV} to a faster server.{tail}") from exc
            failures += 1
            advice = offline_advice or (
                f"No network here? Set {MIRROR_ENV} to a server that has the file, or fetch it where "
                f"there is network (`ghfeat download`, same GHFEAT_CACHE) and set GHFEAT_OFFLINE=1 here.")
            why = _unreachable(exc)
            if why is not None:                 # no network: say so now, in one exception
                raise WeightsDownloadError(
                    f"could not download {dest.name}: {urllib.parse.urlsplit(url).netloc} cannot be "
                    f"reached ({why}). {advice} ({_kept(part)}.){tail}") from None
            if failures > retries and not (part.is_file() and part.stat().st_size):
                raise WeightsDownloadError(
                    f"could not download {dest.name} from {url} ({type(exc).__name__}: {exc}). "
                    f"{advice}{tail}") from None
            if failures > retries:
                raise WeightsDownloadError(
                    f"downloading {dest.name} from {url} was interrupted ({type(exc).__name__}: {exc}) "
                    f"{retries} times; {_kept(part)}.{tail}") from None
            time.sleep(BACKOFF * failures)
            continue
        size = part.stat().st_size
        if total is not None and size < total:      # connection closed early without an error
            failures += 1
            if failures > retries:
                raise WeightsDownloadError(
                    f"downloading {dest.name} stopped at {size} of {total} bytes {retries} times; "
                    f"{_kept(part)}.{tail}")
            time.sleep(BACKOFF * failures)
            continue
        break

    actual = sha256_file(part)
    if (total is not None and size != total) or (sha256 is not None and actual != sha256):
        part.unlink()
        why = (f"{size} bytes instead of {total}" if total is not None and size != total else
               f"sha256 {actual[:16]}... instead of the pinned {sha256[:16]}...")
        raise WeightsCorruptError(
            f"the download of {dest.name} from {url} is corrupt ({why}); it was deleted before "
            f"anything read it. Try again, or get the file by hand.{tail}")
    os.replace(part, dest)
    return actual


@contextlib.contextmanager
def _lock(folder: Path):
    """One download at a time per cache, across processes (every torchrun rank may call
    ``pretrained=True`` at once): ``flock`` on the folder itself, released if the process dies."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:       # Windows: no lock
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)          # closing releases the lock


# ---------------------------------------------------------------------------------------------
# Fetch + convert + install
# ---------------------------------------------------------------------------------------------
def find_cfgs(name: str) -> list[PretrainedCfg]:
    """Entries with an official origin whose name (or official file name) is ``name``."""
    return [c for c in list_pretrained_cfgs() if c.origin is not None and name in (c.name, c.origin.file)]


def _offline_error(cfg: PretrainedCfg) -> WeightsOfflineError:
    return WeightsOfflineError(
        f"the {cfg.kind} {cfg.name!r} is not converted yet and offline mode is on "
        f"(GHFEAT_OFFLINE / HF_HUB_OFFLINE), so {cfg.origin.file} was not downloaded. On a machine "
        f"with network access (a login node) run `ghfeat download {cfg.name}` with the same "
        f"GHFEAT_CACHE, or copy the file here by hand: {convert_hint(cfg)} Or pass "
        f"checkpoint_path=...")


def fetch_official(kind: str, name: str, *, mirror: str | None = None, keep: bool | None = None,
                   progress: bool = True, force: bool = False) -> dict:
    """Download the official file of entry ``(kind, name)``, verify, convert, install every network.

    Args:
        mirror: base URL holding the official files by name (default ``$GHFEAT_OFFICIAL_MIRROR``,
            else the official link).
        keep: keep the raw pickle in ``<cache>/downloads`` (default ``$GHFEAT_KEEP_DOWNLOADS``).
        force: download again even if the file is there.
    Returns:
        :func:`ghfeat.convert.convert`'s result (``result["networks"][kind]["path"]``...), with
        no networks when another process installed the entry while this one waited.
    """
    cfg = get_pretrained_cfg(kind, name)
    if cfg is None or cfg.origin is None:
        raise WeightsNotFoundError(f"{kind} {name!r} has no official file to download.")
    if offline():
        raise _offline_error(cfg)
    keep = _truthy(os.environ.get("GHFEAT_KEEP_DOWNLOADS")) if keep is None else keep
    with _lock(downloads_dir()):
        if not force and (cache_dir() / kind / name / MANIFEST_NAME).is_file():
            return {"sha256": None, "networks": {}, "models": {}}    # another process did it
        return _fetch_locked(cfg, mirror, keep, progress, force)


def _fetch_locked(cfg: PretrainedCfg, mirror, keep, progress, force) -> dict:
    from .convert import UnsafePickleError, convert

    hint = convert_hint(cfg)
    dest = downloads_dir() / cfg.origin.file
    record = dest.with_name(dest.name + ".sha256")
    if force or not dest.is_file():
        sha = download_file(official_url(cfg, mirror), dest, sha256=cfg.origin.sha256,
                            progress=progress, hint=hint)
    else:
        sha = sha256_file(dest)
        if cfg.origin.sha256 and sha != cfg.origin.sha256:
            dest.unlink()
            raise WeightsCorruptError(f"{dest} does not match its pinned sha256 and was deleted; "
                                      f"run again to download it anew. {hint}")
    try:
        result = convert(dest, name=cfg.name, raw_generator=True)
    except (ValueError, UnsafePickleError) as exc:
        dest.unlink(missing_ok=True)
        raise WeightsCorruptError(
            f"{cfg.origin.file} (sha256 {sha[:16]}...) is not a usable official file ({exc}); it "
            f"was deleted. {hint}") from exc
    atomic_write_text(record, f"{sha}  {dest.name}\n", what="download record")   # what was converted, kept after the pickle goes
    if not keep:
        dest.unlink()
    return result


# ---------------------------------------------------------------------------------------------
# ghfeat download NAME
# ---------------------------------------------------------------------------------------------
def _no_entry_message(name: str, kind: str | None, names: list[str]) -> str:
    """Why ``ghfeat download NAME [--kind KIND]`` has nothing to fetch, without contradicting itself."""
    other = find_cfgs(name)
    if other:                            # the name exists, as another kind
        c = other[0]
        pair = ""
        if kind == "generator" and c.paired_generator:
            pair = f" Its generator is {c.paired_generator!r}: `ghfeat download {c.paired_generator}`."
        elif kind == "encoder":
            enc = [e.name for e in list_pretrained_cfgs("encoder") if e.paired_generator == c.name and e.origin]
            pair = f" Encoders trained with it: {enc}." if enc else ""
        kinds = " and ".join(sorted({x.kind for x in other}))
        return (f"{name!r} is the {kinds} entry, not a {kind}: drop --kind (or use --kind "
                f"{other[0].kind}) to download it.{pair}")
    local = [c for c in list_pretrained_cfgs() if c.name == name]
    if local and all(c.embedded_path for c in local):
        return (f"{name!r} ships inside the ghfeat package (its weights load with pretrained=True, no "
                f"download); `ghfeat download` fetches the official files: {names}")
    return f"no official entry {name!r}; one of {names} (or an official file name)"


def download_main(argv=None) -> int:
    """``ghfeat download NAME``: fetch + convert + install an official entry (e.g. on a login node)."""
    names = sorted({c.name for c in list_pretrained_cfgs() if c.origin is not None})
    from .cli import HelpFormatter
    p = argparse.ArgumentParser(
        prog="ghfeat download", formatter_class=HelpFormatter,
        description="Download an official GH-Feat / StyleGAN file, verify it, convert it and install "
                    "every network it holds into the ghfeat cache (what pretrained=True does).",
        epilog="names: " + ", ".join(names))
    p.add_argument("name", help="entry (e.g. ffhq256, stylegan-ffhq256) or official file name")
    p.add_argument("--kind", choices=("encoder", "generator", "discriminator"), default=None)
    p.add_argument("--mirror", default=None, help=f"base URL holding the files (default ${MIRROR_ENV})")
    p.add_argument("--keep", action="store_true", help="keep the raw pickle in <cache>/downloads")
    p.add_argument("--force", action="store_true", help="download again even if already converted")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = p.parse_args(argv)
    cfgs = [c for c in find_cfgs(args.name) if args.kind in (None, c.kind)]
    if not cfgs:
        print(f"ghfeat download: error: {_no_entry_message(args.name, args.kind, names)}", file=sys.stderr)
        return 2
    cfg = cfgs[0]
    local = cache_dir() / cfg.kind / cfg.name / "manifest.json"
    if local.is_file() and not args.force:
        print(f"{cfg.kind} {cfg.name} is already converted in {local.parent} (--force downloads again)")
        return 0
    try:
        result = fetch_official(cfg.kind, cfg.name, mirror=args.mirror, keep=args.keep or None)
    except WeightsError as exc:
        print(f"ghfeat download: error: {exc}", file=sys.stderr)
        return 2
    if not result["networks"]:
        print(f"{cfg.kind} {cfg.name} was installed by another process meanwhile")
        return 0
    print(f"converted {cfg.origin.file} (sha256 {result['sha256']})")
    for kind, net in result["networks"].items():
        print(f"  {kind:<13} {net['name']:<22} installed {net['path']}")
    return 0
