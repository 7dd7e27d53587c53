"""``ghfeat download-data``: MNIST / Fashion-MNIST from a server on 127.0.0.1 serving small fake files
(their sha256 pinned in place of the real ones): checksums, resume, corrupt files, offline, no network,
both folder layouts."""
from __future__ import annotations

import gzip
import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from ghfeat import data_download
from ghfeat.cli import main
from ghfeat.data import make_dataset, mnist_dataset
from _helpers import fake_mnist_files




class Server:
    """Serves ``files[name]`` under ``/<dataset>/<name>`` with ``Range``; ``drop`` sends half of a file
    once and closes; ``corrupt`` flips its last byte. ``requests`` records ``(path, Range)``."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.drop: set[str] = set()
        self.corrupt: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                srv.requests.append((self.path, rng))
                data = srv.files.get(self.path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path in srv.corrupt:
                    data = data[:-1] + bytes([data[-1] ^ 0xFF])
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if self.path in srv.drop and not start:
                    srv.drop.discard(self.path)
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def site(monkeypatch):
    from ghfeat import download

    srv = Server()
    datasets = {}
    for seed, (name, (tv, _, _)) in enumerate(data_download.DATASETS.items()):
        files = fake_mnist_files(20, seed=seed, gz=True)
        for f, b in files.items():
            srv.files[f"/{name}/{f}"] = b
        datasets[name] = (tv, (f"{srv.url}/{name}/",), {f: hashlib.sha256(b).hexdigest() for f, b in files.items()})
    monkeypatch.setattr(data_download, "DATASETS", datasets)
    monkeypatch.setattr(download, "BACKOFF", 0.0)
    for var in ("GHFEAT_OFFLINE", "HF_HUB_OFFLINE", data_download.MIRROR_ENV):
        monkeypatch.delenv(var, raising=False)
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def test_the_pinned_checksums_are_the_standard_files():
    sums = {n: s for _, _, files in data_download.DATASETS.values() for n, s in files.items()}
    assert len(sums) == 4 and all(len(s) == 64 for s in sums.values())
    assert data_download.DATASETS["mnist"][2]["train-images-idx3-ubyte.gz"].startswith("0386cf35")
    assert data_download.DATASETS["fashion-mnist"][2]["t10k-labels-idx1-ubyte.gz"].startswith("8d3605d1")


def test_download_then_train_spec_reads_it(site, tmp_path, capsys):
    assert main(["download-data", "mnist", "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert f"data=mnist:{tmp_path / 'm'}" in out and "CC BY-SA 3.0" in out
    for f, b in fake_mnist_files(20, seed=0, gz=True).items():
        assert (tmp_path / "m" / f).read_bytes() == b
    ds = make_dataset(f"mnist:{tmp_path / 'm'}", 32, labels=True, channels=1)
    img, label = ds[13]
    raw = np.frombuffer(gzip.decompress(fake_mnist_files(20, seed=0, gz=True)["train-images-idx3-ubyte.gz"])[16:], np.uint8)
    assert img.shape == (1, 32, 32) and int(label) == 3
    assert np.allclose((img[0, 2:30, 2:30].numpy() + 1) * 127.5, raw.reshape(20, 28, 28)[13], atol=1e-3)
    n = len(site.requests)
    assert main(["download-data", "mnist", "--out", str(tmp_path / "m")]) == 0     # intact files: no request
    assert len(site.requests) == n


def test_torchvision_layout(site, tmp_path):
    folder = data_download.download_dataset("fashion-mnist", tmp_path / "tv", torchvision=True, progress=False)
    assert folder == tmp_path / "tv" / "FashionMNIST" / "raw" and len(list(folder.iterdir())) == 4
    assert len(mnist_dataset(tmp_path / "tv", "test")) == 20                       # data=fashion-mnist:<root>
    folder = data_download.download_dataset("mnist", tmp_path / "tv", torchvision=True, progress=False)
    assert folder == tmp_path / "tv" / "MNIST" / "raw"


def test_interrupted_download_resumes_and_corrupt_file_is_refused(site, tmp_path, capsys):
    name = "/mnist/train-images-idx3-ubyte.gz"
    site.drop.add(name)
    data_download.download_dataset("mnist", tmp_path / "m", progress=False)         # resumed within the call
    ranges = [r for p, r in site.requests if p == name]
    assert ranges[0] is None and ranges[1] == f"bytes={len(site.files[name]) // 2}-"
    assert (tmp_path / "m" / "train-images-idx3-ubyte.gz").read_bytes() == site.files[name]
    (tmp_path / "m" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"damaged")           # a damaged local file
    site.corrupt.add("/mnist/t10k-labels-idx1-ubyte.gz")                               # ... and a bad mirror
    assert main(["download-data", "mnist", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "sha256" in err and "corrupt" in err
    assert not (tmp_path / "m" / "t10k-labels-idx1-ubyte.gz").exists()
    site.corrupt.clear()
    assert main(["download-data", "mnist", "--out", str(tmp_path / "m")]) == 0
    assert [p for p, _ in site.requests[-1:]] == ["/mnist/t10k-labels-idx1-ubyte.gz"]   # only that file again


def test_offline_and_unreachable_fail_at_once_in_one_line(site, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GHFEAT_OFFLINE", "1")
    assert main(["download-data", "mnist", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "offline mode is on" in err and site.requests == []
    monkeypatch.delenv("GHFEAT_OFFLINE")
    site.httpd.shutdown()
    site.httpd.server_close()                             # nobody listens there any more
    t = time.perf_counter()
    assert main(["download-data", "mnist", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert time.perf_counter() - t < 3.0 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "cannot be reached" in err and "GHFEAT_DATA_MIRROR" in err


def test_missing_file_on_a_mirror_tries_the_next(site, tmp_path, monkeypatch):
    tv, _, sums = data_download.DATASETS["mnist"]
    monkeypatch.setitem(data_download.DATASETS, "mnist", (tv, (f"{site.url}/nothing/", f"{site.url}/mnist/"), sums))
    data_download.download_dataset("mnist", tmp_path / "m", progress=False)
    assert len(list((tmp_path / "m").glob("*.gz"))) == 4
    assert {p.split("/")[1] for p, _ in site.requests} == {"nothing", "mnist"}
