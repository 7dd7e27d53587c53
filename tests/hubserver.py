"""A fake Hugging Face Hub on 127.0.0.1 for tests (no network needed).

It speaks the part of the Hub protocol that ``huggingface_hub.hf_hub_download`` uses:
``HEAD`` and ``GET /{org}/{name}/resolve/{revision}/{filename}`` answered with ``X-Repo-Commit``
(40 hex chars), ``ETag`` and ``Content-Length``; ``Range: bytes=N-`` resumes; 404 replies carry
``X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound`` so the client raises the matching
error. Faults can be injected per file to test what a half-finished download leaves behind.

    with FakeHub() as hub:
        hub.add_file("org/repo", "model.safetensors", data)
        hf_hub_download("org/repo", "model.safetensors", endpoint=hub.url, cache_dir=tmp)

Faults (``hub.set_fault(repo_id, filename, fault)``):
    "drop":     GET sends the headers for the whole file, half the body, then closes the
                connection; a resume (``Range``) is answered 503, as a server that went down.
    "corrupt":  the body has the announced length but its last bytes are flipped (a bad mirror).
    "truncate": the body and its ``Content-Length`` are cut to half (a half-uploaded file).
"""
from __future__ import annotations

import hashlib
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

FAULTS = ("drop", "corrupt", "truncate")


@dataclass
class _Repo:
    files: dict[str, bytes] = field(default_factory=dict)
    commit: str = "0" * 40

    def recompute_commit(self) -> None:
        h = hashlib.sha1()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        self.commit = h.hexdigest()


class FakeHub:
    """A threaded HTTP server holding ``{repo_id: {filename: bytes}}``; see the module docstring.

    Attributes:
        url: the endpoint to pass as ``HF_ENDPOINT`` / ``endpoint=`` (``http://127.0.0.1:PORT``).
        requests: ``(method, path)`` of every request received, in order (to assert that a code
            path never touched the network, or how often it did).
    """

    def __init__(self):
        self.repos: dict[str, _Repo] = {}
        self.faults: dict[tuple[str, str], str] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- content -----------------------------------------------------------------------------
    def add_file(self, repo_id: str, filename: str, data: bytes) -> str:
        """Add (or replace) a file; returns the repo's new commit hash."""
        with self._lock:
            repo = self.repos.setdefault(repo_id, _Repo())
            repo.files[filename] = bytes(data)
            repo.recompute_commit()
            return repo.commit

    def add_folder(self, repo_id: str, folder) -> str:
        """Add every file of a local folder (non-recursive)."""
        from pathlib import Path
        commit = ""
        for path in sorted(Path(folder).iterdir()):
            if path.is_file():
                commit = self.add_file(repo_id, path.name, path.read_bytes())
        return commit

    def commit_of(self, repo_id: str) -> str:
        return self.repos[repo_id].commit

    def set_fault(self, repo_id: str, filename: str, fault: str | None) -> None:
        if fault is not None and fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS} or None, got {fault!r}")
        with self._lock:
            if fault is None:
                self.faults.pop((repo_id, filename), None)
            else:
                self.faults[(repo_id, filename)] = fault

    def count(self, method: str | None = None, contains: str = "") -> int:
        """How many requests (of ``method``, whose path contains ``contains``) were received."""
        return sum(1 for m, p in self.requests if (method is None or m == method) and contains in p)

    # -- server ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None, "FakeHub is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            fake_hub = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="FakeHub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    fake_hub: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep test output clean
        pass

    def do_HEAD(self):
        self._resolve(send_body=False)

    def do_GET(self):
        self._resolve(send_body=True)

    def _error(self, status: int, code: str | None, message: str, commit: str | None = None):
        body = message.encode()
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _resolve(self, send_body: bool):
        hub = self.fake_hub
        path = urlsplit(self.path).path
        hub.requests.append((self.command, path))
        parts = path.strip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return self._error(404, None, f"no route for {path}")
        repo_id = f"{parts[0]}/{parts[1]}"
        revision = unquote(parts[3])
        filename = unquote("/".join(parts[4:]))
        repo = hub.repos.get(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
        if revision not in ("main", repo.commit):
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        if filename not in repo.files:
            return self._error(404, "EntryNotFound", f"{filename} does not exist", commit=repo.commit)

        data = repo.files[filename]
        fault = hub.faults.get((repo_id, filename))
        etag = '"' + hashlib.sha256(data).hexdigest() + '"'
        announced = len(data)
        if fault == "truncate":
            data = data[: len(data) // 2]
            announced = len(data)
            etag = '"' + hashlib.sha256(data).hexdigest() + '"'
        elif fault == "corrupt":
            data = data[:-16] + bytes(b ^ 0xFF for b in data[-16:])

        start = 0
        range_header = self.headers.get("Range")
        if range_header and send_body:
            if fault == "drop":
                return self._error(503, None, "service unavailable (simulated outage)")
            start = int(range_header.split("=", 1)[1].split("-", 1)[0])

        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", repo.commit)
        self.send_header("ETag", etag)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        if start:
            self.send_header("Content-Range", f"bytes {start}-{announced - 1}/{announced}")
        self.send_header("Content-Length", str(announced - start))
        if fault == "drop" and send_body:
            self.send_header("Connection", "close")
        self.end_headers()
        if not send_body:
            return
        if fault == "drop":
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(data[start:])
