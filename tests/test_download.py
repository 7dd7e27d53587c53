"""pretrained=True's last step: download the official file, verify, convert, install, load.

A local HTTP server on 127.0.0.1 serves official-format pickles (tests/_official_fixtures.py) and
misbehaves on request: a dropped connection, a corrupted body, an HTML page, a 404, Google Drive's
"download anyway" page. Test entries ("dltest256" from an (E, G, D, Gs) pickle at a tiny 256 px
config, "stylegan-dl32" from a (G, D, Gs) pickle) point their official link at that server.
"""
from __future__ import annotations

import hashlib
import json
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

import ghfeat
from ghfeat import _registry, download, pretrained
from ghfeat._io import build_from_config, read_safetensors
from ghfeat._registry import ModelEntry
from ghfeat.pretrained import (Origin, PretrainedCfg, WeightsCorruptError, WeightsDownloadError,
                               WeightsNotFoundError, WeightsOfflineError)

try:
    from _official_fixtures import TinyConfig, write_encoder_pkl, write_stylegan_pkl
except ImportError:  # tests/ imported as a package
    from tests._official_fixtures import TinyConfig, write_encoder_pkl, write_stylegan_pkl

ENC_FILE = "ghfeat-encoder-dltest-256.pkl"
GAN_FILE = "stylegan-dl-32.pkl"
PAGE = "https://github.com/genforce/ghfeat#testing"


# -- a file server that can misbehave --------------------------------------------------------------
class FileServer:
    """Serves ``files[path] = bytes`` with ``Range`` support; ``modes[path]`` injects a fault:
    "drop" (first full GET: half the body, then the connection closes), "corrupt", "html", "gdrive"
    (an HTML confirm form unless the query has ``confirm=``), "garbage" (HTML-free bytes that are not
    a pickle). ``requests`` records ``(path, Range header)``."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                path, _, query = self.path.partition("?")
                rng = self.headers.get("Range")
                server.requests.append((path, rng))
                data, mode = server.files.get(path), server.modes.get(path)
                if data is None:
                    return self._send(404, b"not found", "text/plain")
                if mode == "html":
                    return self._send(200, b"<!DOCTYPE html><html><body>File not found</body></html>", "text/html")
                if mode == "gdrive" and "confirm=" not in query:
                    page = (b'<html><body>Google Drive can\'t scan this file for viruses.'
                            b'<form id="download-form" action="' + path.encode() + b'" method="get">'
                            b'<input type="hidden" name="id" value="abc"><input type="hidden" name="export" '
                            b'value="download"><input type="hidden" name="confirm" value="t">'
                            b'<input type="hidden" name="uuid" value="u-1"></form></body></html>')
                    return self._send(200, page, "text/html; charset=utf-8")
                if mode == "corrupt":
                    data = data[:-16] + bytes(b ^ 0xFF for b in data[-16:])
                if mode == "garbage":
                    data = b"\x00" * len(data)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if mode == "drop" and not start:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

            def _send(self, status, body, ctype):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def gets(self, contains: str = "") -> list:
        return [r for r in self.requests if contains in r[0]]


# -- official-format files and registry entries -----------------------------------------------------
@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """The two pickles, and the config.json of every network they convert to (for the builders)."""
    from ghfeat.convert import convert
    enc_test = pytest.importorskip("test_convert_encoder")
    tmp = tmp_path_factory.mktemp("official")
    write_encoder_pkl(tmp / ENC_FILE, TinyConfig(resolution=256, fmap_base=128, fmap_max=8, z_dim=8,
                                                 w_dim=8, mapping_layers=2), enc_test._official_variables())
    write_stylegan_pkl(tmp / GAN_FILE, TinyConfig())
    out = {}
    for file, tag in ((ENC_FILE, "dltest256"), (GAN_FILE, "stylegan-dl32")):
        res = convert(tmp / file, name=tag, out=tmp / tag)
        for kind, net in res["networks"].items():
            folder = Path(net["out"])
            out[(kind, net["name"])] = (json.loads((folder / "config.json").read_text()),
                                        read_safetensors(folder / "model.safetensors"))
    return types.SimpleNamespace(enc=(tmp / ENC_FILE).read_bytes(), gan=(tmp / GAN_FILE).read_bytes(), nets=out)


@pytest.fixture
def server():
    srv = FileServer()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def env(tmp_path, monkeypatch, server, official):
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "GHFEAT_OFFLINE", "GHFEAT_OFFICIAL_MIRROR",
                "GHFEAT_KEEP_DOWNLOADS", "GHFEAT_ALLOW_UNPINNED"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GHFEAT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(pretrained, "ALLOW_UNPINNED", False)
    monkeypatch.setattr(download, "BACKOFF", 0.0)
    server.files["/files/" + ENC_FILE] = official.enc
    server.files["/files/" + GAN_FILE] = official.gan
    _registry._ensure_loaded()

    def register(file=None, sha=None, url=None):
        for (kind, name), (doc, _) in official.nets.items():
            f = ENC_FILE if name.endswith("dltest256") else GAN_FILE
            if file is not None and f != file:
                continue
            builder = (lambda doc: lambda **kw: build_from_config(dict(doc, config=dict(doc["config"], **kw))))(doc)
            monkeypatch.setitem(_registry._REGISTRY[kind], name, ModelEntry(kind, name, builder, "test"))
            origin = Origin(f, PAGE, url or f"{server.url}/files/{f}", sha256=sha)
            monkeypatch.setitem(pretrained._PRETRAINED, (kind, name), PretrainedCfg(
                name=name, kind=kind, hf_hub_id=f"ghfeat/{name}-{kind}", architecture=name, origin=origin))

    register()
    cache = tmp_path / "cache"
    return types.SimpleNamespace(srv=server, cache=cache, dl=cache / "downloads", register=register,
                                 nets=official.nets, sha=lambda b: hashlib.sha256(b).hexdigest())


def leftovers(cache: Path) -> list[str]:
    """Everything in the cache except an intentional resumable ``.part``."""
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())


def assert_same_state(model, expected):
    state = model.state_dict()
    assert set(state) == set(expected)
    for k, v in expected.items():
        assert torch.equal(state[k], v), k


# -- the happy path ---------------------------------------------------------------------------------
def test_first_call_downloads_converts_caches_every_network_and_loads(env, official):
    assert ghfeat.list_models("*dltest256", pretrained=True, cached=True) == []
    enc = ghfeat.create_encoder("dltest256", pretrained=True)
    assert enc.weights_source.startswith("local-cache:")
    assert_same_state(enc, env.nets[("encoder", "dltest256")][1])
    assert len(env.srv.gets(ENC_FILE)) == 1
    # the same download gave the generator and discriminator: no second request
    gen = ghfeat.create_generator("stylegan-dltest256", pretrained=True)
    disc = ghfeat.create_discriminator("stylegan-dltest256", pretrained=True)
    assert_same_state(gen, env.nets[("generator", "stylegan-dltest256")][1])
    assert_same_state(disc, env.nets[("discriminator", "stylegan-dltest256")][1])
    assert len(env.srv.requests) == 1
    # raw pickle deleted; its sha256 recorded next to the cache and in every manifest
    sha = env.sha(official.enc)
    assert not (env.dl / ENC_FILE).exists() and not list(env.dl.glob("*.part"))
    assert (env.dl / (ENC_FILE + ".sha256")).read_text() == f"{sha}  {ENC_FILE}\n"
    for kind, name in (("encoder", "dltest256"), ("generator", "stylegan-dltest256")):
        manifest = json.loads((env.cache / kind / name / "manifest.json").read_text())
        assert manifest["source"]["sha256"] == sha and manifest["source"]["file"] == ENC_FILE
    # and the raw training G of the pickle, loadable from its folder
    raw = ghfeat.load_model(env.cache / "generator" / "stylegan-dltest256-G")
    assert type(raw) is type(gen) and not torch.equal(raw.w_avg, gen.w_avg)
    assert ghfeat.list_models("*dltest256", pretrained=True, cached=True) == ["stylegan-dltest256", "dltest256"]
    assert ghfeat.list_models("*dl32", pretrained=True, cached=False) == ["stylegan-dl32"]


def test_concurrent_calls_download_once(env):
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        download.fetch_official("generator", "stylegan-dl32", progress=False))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and len(env.srv.gets(GAN_FILE)) == 1
    assert sorted(len(r["networks"]) for r in results) == [0, 3]      # G, D and the raw G


def test_pinned_source_sha256_and_keep(env, official, monkeypatch):
    env.register(GAN_FILE, sha=env.sha(official.gan))
    monkeypatch.setenv("GHFEAT_KEEP_DOWNLOADS", "1")
    gen = ghfeat.create_generator("stylegan-dl32", pretrained=True)
    assert_same_state(gen, env.nets[("generator", "stylegan-dl32")][1])
    assert (env.dl / GAN_FILE).read_bytes() == official.gan          # kept on request


# -- interruptions and bad files ------------------------------------------------------------------
def test_interrupted_download_is_resumed(env, official):
    env.srv.modes["/files/" + GAN_FILE] = "drop"
    url, dest = f"{env.srv.url}/files/{GAN_FILE}", env.dl / GAN_FILE
    with pytest.raises(WeightsDownloadError, match="resumes"):
        download.download_file(url, dest, retries=0, progress=False)
    part = dest.with_name(GAN_FILE + ".part")
    assert not dest.exists() and part.stat().st_size == len(official.gan) // 2   # never used as is
    assert download.download_file(url, dest, progress=False) == env.sha(official.gan)
    assert env.srv.requests[-1][1] == f"bytes={len(official.gan) // 2}-"        # HTTP Range resume
    assert dest.read_bytes() == official.gan and not part.exists()
    # within one call, an interruption is resumed automatically, and the file then converts
    dest.unlink()
    env.srv.requests.clear()
    gen = ghfeat.create_generator("stylegan-dl32", pretrained=True)
    assert_same_state(gen, env.nets[("generator", "stylegan-dl32")][1])
    assert [r[1] for r in env.srv.requests] == [None, f"bytes={len(official.gan) // 2}-"]


def test_corrupted_download_is_refused_before_parsing(env, official):
    env.register(GAN_FILE, sha=env.sha(official.gan))
    env.srv.modes["/files/" + GAN_FILE] = "corrupt"
    with pytest.raises(WeightsCorruptError, match="sha256.*deleted before anything read it"):
        ghfeat.create_generator("stylegan-dl32", pretrained=True)
    assert leftovers(env.cache) == []
    # without a pinned sha256, a file that is not an official pickle fails conversion: deleted too
    env.register(GAN_FILE, sha=None)
    env.srv.modes["/files/" + GAN_FILE] = "garbage"
    with pytest.raises(WeightsCorruptError, match="not a usable official file") as err:
        ghfeat.create_generator("stylegan-dl32", pretrained=True)
    assert "ghfeat convert stylegan-dl-32.pkl" in str(err.value)
    assert leftovers(env.cache) == []


@pytest.mark.parametrize("mode", ["html", "404"])
def test_dead_link_or_html_page_gives_the_manual_steps(env, mode):
    if mode == "html":
        env.srv.modes["/files/" + ENC_FILE] = "html"
    else:
        env.register(ENC_FILE, url=f"{env.srv.url}/gone/{ENC_FILE}")
    with pytest.raises(WeightsNotFoundError) as err:
        ghfeat.create_encoder("dltest256", pretrained=True)
    msg = str(err.value)
    assert ("HTML page instead of the file" if mode == "html" else "HTTP 404") in msg
    assert ENC_FILE in msg and PAGE in msg and f"ghfeat convert {ENC_FILE} --name dltest256" in msg
    assert leftovers(env.cache) == []


def test_unreachable_server_says_what_to_do(env):
    import socket
    with socket.socket() as sock:                      # a port on 127.0.0.1 that nobody serves
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env.register(GAN_FILE, url=f"http://127.0.0.1:{port}/{GAN_FILE}")
    with pytest.raises(WeightsDownloadError, match="No network here.*GHFEAT_OFFICIAL_MIRROR") as err:
        ghfeat.create_generator("stylegan-dl32", pretrained=True)
    assert "ghfeat convert stylegan-dl-32.pkl" in str(err.value) and leftovers(env.cache) == []


def test_google_drive_confirm_page_is_followed(env, official):
    env.srv.modes["/files/" + GAN_FILE] = "gdrive"
    dest = env.dl / GAN_FILE
    assert download.download_file(f"{env.srv.url}/files/{GAN_FILE}", dest, progress=False) == env.sha(official.gan)
    assert len(env.srv.requests) == 2 and dest.read_bytes() == official.gan


def test_disk_space_is_checked_first(env, monkeypatch):
    monkeypatch.setattr(download.shutil, "disk_usage", lambda p: types.SimpleNamespace(free=1000))
    with pytest.raises(WeightsDownloadError, match="not enough free disk space"):
        ghfeat.create_generator("stylegan-dl32", pretrained=True)
    assert leftovers(env.cache) == []


# -- offline, mirror, command line ----------------------------------------------------------------
@pytest.mark.parametrize("var", ["GHFEAT_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_fails_fast_with_the_manual_steps(env, monkeypatch, var):
    monkeypatch.setenv(var, "1")
    with pytest.raises(WeightsOfflineError) as err:
        ghfeat.create_encoder("dltest256", pretrained=True)
    msg = str(err.value)
    assert "ghfeat download dltest256" in msg and f"ghfeat convert {ENC_FILE}" in msg and PAGE in msg
    assert env.srv.requests == [] and leftovers(env.cache) == []


def test_mirror_from_environment_or_argument(env, official, monkeypatch):
    env.register(url="https://example.invalid/never-used")        # the official link is unreachable
    env.srv.files["/mirror/" + GAN_FILE] = official.gan
    monkeypatch.setenv("GHFEAT_OFFICIAL_MIRROR", env.srv.url + "/mirror/")
    gen = ghfeat.create_generator("stylegan-dl32", pretrained=True)
    assert_same_state(gen, env.nets[("generator", "stylegan-dl32")][1])
    monkeypatch.delenv("GHFEAT_OFFICIAL_MIRROR")
    env.srv.files["/m2/" + ENC_FILE] = official.enc
    res = download.fetch_official("encoder", "dltest256", mirror=env.srv.url + "/m2", progress=False)
    assert res["networks"]["encoder"]["name"] == "dltest256"
    assert [r[0] for r in env.srv.requests] == ["/mirror/" + GAN_FILE, "/m2/" + ENC_FILE]


def test_cli_download_and_list(env, official, capsys):
    from ghfeat.cli import main
    assert main(["download", "stylegan-dl32", "--keep"]) == 0
    assert "stylegan-dl32" in capsys.readouterr().out and (env.dl / GAN_FILE).is_file()
    assert main(["download", GAN_FILE]) == 0                       # by file name: already there
    assert "already converted" in capsys.readouterr().out and len(env.srv.requests) == 1
    assert main(["list", "*dl32", "--pretrained"]) == 0
    assert "[cached]" in capsys.readouterr().out
    assert main(["download", "no-such-model"]) == 2
    env.srv.modes["/files/" + ENC_FILE] = "html"
    assert main(["download", "dltest256"]) == 2
    assert "HTML page" in capsys.readouterr().err


def test_direct_download_links():
    assert download.direct_url("https://www.dropbox.com/s/ab/x.pkl?dl=0") == "https://www.dropbox.com/s/ab/x.pkl?dl=1"
    assert download.direct_url("https://drive.google.com/file/d/ID123/view?usp=sharing") == \
        "https://drive.google.com/uc?export=download&id=ID123"
    assert download.direct_url("https://drive.google.com/open?id=ID9") == "https://drive.google.com/uc?export=download&id=ID9"
    for cfg in pretrained.list_pretrained_cfgs():
        if cfg.origin is None:          # ghfeat's own models (embedded): nothing to download
            continue
        assert cfg.origin.url.endswith(f"/{cfg.origin.file}?dl=1"), cfg.origin.url
        assert download.official_url(cfg, "http://m/x") == f"http://m/x/{cfg.origin.file}"


# -- publishing -----------------------------------------------------------------------------------
def test_publish_prepares_the_card_and_uploads(env, official, monkeypatch, tmp_path):
    from huggingface_hub import HfApi

    from ghfeat.publish import prepare_folder, publish_main
    assert publish_main(["stylegan-dl32", "me/x", "--out", str(tmp_path / "f")]) == 2   # not converted yet
    download.fetch_official("generator", "stylegan-dl32", progress=False)
    folder = prepare_folder("generator", "stylegan-dl32", tmp_path / "f", "me/x")
    card = (folder / "README.md").read_text()
    assert f"sha256 of the source file: `{env.sha(official.gan)}`" in card and GAN_FILE in card
    assert "CC BY-NC 4.0" in card and "8e-6" in card and "hf-hub:me/x" in card
    assert ghfeat.load_model(folder).state_dict().keys() == env.nets[("generator", "stylegan-dl32")][1].keys()
    calls = {}
    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.setdefault("create", repo_id))
    monkeypatch.setattr(HfApi, "upload_folder", lambda self, *, repo_id, folder_path, **kw: calls.update(
        files=sorted(p.name for p in Path(folder_path).iterdir())) or types.SimpleNamespace(commit_url="u/1"))
    assert publish_main(["stylegan-dl32", "me/x"]) == 0
    assert calls == {"create": "me/x", "files": ["README.md", "config.json", "model.safetensors"]}
