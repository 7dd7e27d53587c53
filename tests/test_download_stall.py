"""Downloads that hang or misbehave (issue 18): a mirror that trickles bytes, one that goes silent,
a broken ``Content-Length``, a full disk while writing the ``.part``, and messages that do not
contradict themselves. A local server on 127.0.0.1 plays the mirror; the stall window is made
small (0.5 s) so the tests are fast."""
from __future__ import annotations

import errno
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ghfeat import download
from ghfeat.download import download_file, download_main
from ghfeat.pretrained import WeightsDownloadError

DATA = bytes(range(256)) * 64          # 16 KiB


class Mirror:
    """``mode``: "ok" (serves DATA, honours Range), "trickle" (announces 10 MB, then 1 byte every
    20 ms), "silent" (headers, then nothing), "badlength" (``Content-Length: abc``), "error"
    (HTTP 500)."""

    def __init__(self):
        self.mode, self.ranges, self.stop = "ok", [], threading.Event()
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                mirror.ranges.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if mirror.mode == "error":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", "application/octet-stream")
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(DATA) - 1}/{len(DATA)}")
                length = {"trickle": str(10_000_000), "badlength": "abc"}.get(mirror.mode, str(len(DATA) - start))
                self.send_header("Content-Length", length)
                self.end_headers()
                if mirror.mode == "trickle":
                    for i in range(10_000):
                        if mirror.stop.is_set():
                            return
                        try:
                            self.wfile.write(DATA[i % 256:i % 256 + 1])
                            self.wfile.flush()
                        except OSError:
                            return
                        time.sleep(0.02)
                elif mirror.mode == "silent":
                    mirror.stop.wait(30)
                else:
                    self.wfile.write(DATA[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ghfeat-encoder-ffhq-256.pkl"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()


@pytest.fixture
def mirror(monkeypatch):
    monkeypatch.setattr(download, "BACKOFF", 0.0)
    m = Mirror()
    yield m
    m.stop.set()
    m.httpd.shutdown()
    m.httpd.server_close()


def test_trickling_mirror_is_a_stall_with_the_part_kept_then_resumed(mirror, tmp_path):
    mirror.mode = "trickle"
    dest = tmp_path / "f.pkl"
    t0 = time.monotonic()
    with pytest.raises(WeightsDownloadError) as err:
        download_file(mirror.url, dest, progress=False, stall_seconds=0.5, min_rate=1000)
    took = time.monotonic() - t0
    part = tmp_path / "f.pkl.part"
    msg = str(err.value)
    assert took < 10, took                                     # not the 60 s read timeout, not forever
    assert "stalled" in msg and "1000 bytes/s over 0.5 s" in msg and "GHFEAT_DOWNLOAD_MIN_RATE" in msg
    assert part.is_file() and 0 < part.stat().st_size < 1000 and "f.pkl.part" in msg and "resumes" in msg
    assert not dest.exists() and len(mirror.ranges) == 1        # a stall is not retried
    got = part.read_bytes()
    assert got == bytes(range(len(got)))                        # what came in is the file's start
    mirror.mode = "ok"                                          # the mirror recovers: resume from the .part
    download_file(mirror.url, dest, progress=False, stall_seconds=0.5, min_rate=1000)
    assert dest.read_bytes() == DATA and mirror.ranges[-1] == f"bytes={len(got)}-"


def test_silent_mirror_is_a_stall_and_says_nothing_was_downloaded(mirror, tmp_path):
    mirror.mode = "silent"
    t0 = time.monotonic()
    with pytest.raises(WeightsDownloadError, match=r"stalled \(no data for 0.5 s.*nothing was downloaded"):
        download_file(mirror.url, tmp_path / "f.pkl", progress=False, stall_seconds=0.5)
    assert time.monotonic() - t0 < 10 and not (tmp_path / "f.pkl").exists()


def test_bad_content_length_is_a_clear_error(mirror, tmp_path):
    mirror.mode = "badlength"
    with pytest.raises(WeightsDownloadError, match="invalid Content-Length 'abc'.*nothing was downloaded"):
        download_file(mirror.url, tmp_path / "f.pkl", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_failed_download_does_not_claim_a_part_is_kept(mirror, tmp_path):
    mirror.mode = "error"
    with pytest.raises(WeightsDownloadError) as err:
        download_file(mirror.url, tmp_path / "f.pkl", progress=False, retries=1)
    assert "HTTP 500" in str(err.value) and "nothing was downloaded" in str(err.value)
    assert ".part" not in str(err.value) and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [{"stall_seconds": 0}, {"stall_seconds": float("nan")}, {"min_rate": -1},
                                 {"min_rate": float("inf")}])
def test_stall_settings_are_checked(tmp_path, bad):
    with pytest.raises(ValueError, match="must be a finite number"):
        download_file("http://127.0.0.1:9/x", tmp_path / "x", progress=False, **bad)


def test_stall_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("GHFEAT_DOWNLOAD_STALL_SECONDS", "7")
    monkeypatch.setenv("GHFEAT_DOWNLOAD_MIN_RATE", "0")
    assert download._stall_settings(None, None) == (7.0, 0.0)
    monkeypatch.setenv("GHFEAT_DOWNLOAD_STALL_SECONDS", "soon")
    with pytest.raises(ValueError, match=r"\$GHFEAT_DOWNLOAD_STALL_SECONDS must be a finite number > 0, got 'soon'"):
        download._stall_settings(None, None)


def test_full_disk_while_writing_the_part_is_one_clear_error(mirror, tmp_path, monkeypatch):
    class Full:
        """A file that takes 1000 bytes, then reports ENOSPC (what a full disk does)."""

        def __init__(self, path, mode):
            self.f, self.n = open(path, mode), 0

        def write(self, b):
            if self.n + len(b) > 1000:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.n += len(b)
            return self.f.write(b)

        def flush(self):
            self.f.flush()

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    monkeypatch.setattr(download, "open", Full, raising=False)
    with pytest.raises(OSError, match=r"cannot write download .*f\.pkl\.part: the disk is full") as err:
        download_file(mirror.url, tmp_path / "f.pkl", progress=False)
    assert len(mirror.ranges) == 1                              # a full disk is not retried
    assert not (tmp_path / "f.pkl").exists() and "\n" not in str(err.value)


def test_download_messages_do_not_contradict_themselves(capsys):
    assert download_main(["ffhq256", "--kind", "generator"]) == 2
    err = capsys.readouterr().err
    assert "'ffhq256' is the encoder entry, not a generator" in err and "stylegan-ffhq256" in err
    assert "no official entry" not in err and len(err.strip().splitlines()) == 1
    assert download_main(["mnist32"]) == 2
    err = capsys.readouterr().err
    assert "'mnist32' ships inside the ghfeat package" in err and "no official entry" not in err
    assert download_main(["nonesuch"]) == 2
    assert "no official entry 'nonesuch'" in capsys.readouterr().err
