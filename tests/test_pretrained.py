"""Pretrained weights: entries, resolution order, verification, Hub access, publishing.

The Hub is a local fake (tests/hubserver.py) driven through the real ``huggingface_hub`` client;
no test touches the network. ``HF_ENDPOINT``/``HF_HUB_CACHE``/``HF_HUB_OFFLINE``/``GHFEAT_CACHE``
are set per test: ghfeat reads them at call time.
"""
from __future__ import annotations

import dataclasses
import json
import time
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import ghfeat
from ghfeat import _registry, pretrained
from ghfeat._registry import ModelEntry
from ghfeat.hub import HubMixin, write_hub_folder
from ghfeat.models._base import register_module_class, register_to_config
from ghfeat.pretrained import (PretrainedCfg, WeightsCorruptError, WeightsDownloadError,
                               WeightsError, WeightsMismatchError, WeightsNotFoundError,
                               WeightsOfflineError)

try:
    from hubserver import FakeHub
except ImportError:  # tests/ imported as a package
    from tests.hubserver import FakeHub

DOC = Path(__file__).resolve().parents[1] / "docs" / "weights.md"
REPO = "testorg/tiny-encoder"


# -- a tiny ghfeat module and registry entry of our own -------------------------------------------
@register_module_class
class TinyTestEncoder(HubMixin, nn.Module):
    ghfeat_kind = "encoder"

    @register_to_config
    def __init__(self, width: int = 4, gain: float = 1.0):
        super().__init__()
        self.fc = nn.Linear(3, width)
        self.register_buffer("steps", torch.zeros(()))
        self.gain = gain

    def forward(self, x):
        return self.fc(x) * self.gain


@register_module_class
class TinyTestGenerator(HubMixin, nn.Module):
    ghfeat_kind = "generator"

    @register_to_config
    def __init__(self, width: int = 4):
        super().__init__()
        self.fc = nn.Linear(width, 3)


def tiny(fill: float | None = None, **kw) -> TinyTestEncoder:
    model = TinyTestEncoder(**kw)
    if fill is not None:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(fill)
    return model


def fill_of(model) -> float:
    return float(model.fc.weight.detach().flatten()[0])


def safetensors_bytes(model) -> bytes:
    from safetensors.torch import save
    return save({k: v.contiguous() for k, v in model.state_dict().items()})


def sha(data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def hub():
    with FakeHub() as server:
        yield server


@pytest.fixture
def env(tmp_path, monkeypatch, hub):
    """Point every cache and the Hub endpoint at this test's own places."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HOME", "GHFEAT_ALLOW_UNPINNED"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("GHFEAT_CACHE", str(tmp_path / "ghfeat"))
    monkeypatch.setattr(pretrained, "ALLOW_UNPINNED", False)
    # huggingface_hub reads its constants once, at import; requests that ghfeat does not route
    # (e.g. its agent-registry fetch while building headers) use them: keep those local too.
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(tmp_path / "agent_harnesses.json"), raising=False)
    return types.SimpleNamespace(hub=hub, tmp=tmp_path, hf=tmp_path / "hf", ghfeat=tmp_path / "ghfeat")


@pytest.fixture
def entry(monkeypatch):
    """Register encoder 'tiny-test'; returns ``set_cfg(**fields)`` (its ``.entry`` is the entry)."""
    _registry._ensure_loaded()
    ent = ModelEntry("encoder", "tiny-test", lambda **kw: TinyTestEncoder(**kw), "test entry")
    monkeypatch.setitem(_registry._REGISTRY["encoder"], "tiny-test", ent)

    def set_cfg(**fields) -> PretrainedCfg:
        cfg = PretrainedCfg(name="tiny-test", kind="encoder", hf_hub_id=REPO, **fields)
        monkeypatch.setitem(pretrained._PRETRAINED, ("encoder", "tiny-test"), cfg)
        return cfg
    set_cfg.entry = ent
    return set_cfg


def publish(hub, model=None, fill=3.0) -> bytes:
    data = safetensors_bytes(model if model is not None else tiny(fill))
    hub.add_file(REPO, "model.safetensors", data)
    return data


# -- the entries ----------------------------------------------------------------------------------
OFFICIAL = [c for c in pretrained.list_pretrained_cfgs() if c.origin is not None]


def test_official_entries_are_complete_and_frozen():
    keys = {(c.kind, c.name) for c in OFFICIAL}
    for data in ("ffhq", "tower", "bedroom"):
        assert ("encoder", f"{data}256") in keys
        assert ("generator", f"stylegan-{data}256") in keys
        assert ("discriminator", f"stylegan-{data}256") in keys
    files = {c.origin.file for c in OFFICIAL}
    assert "ghfeat-encoder-ffhq-256.pkl" in files and "stylegan-bedrooms-256.pkl" in files
    for cfg in OFFICIAL:
        assert cfg.hf_hub_id.startswith("ghfeat/") and cfg.filename == "model.safetensors"
        assert cfg.sha256 is None and not cfg.pinned          # not published yet
        assert "github.com/genforce/ghfeat" in cfg.origin.page
        assert cfg.paired_generator in (None, *(c.name for c in OFFICIAL if c.kind == "generator"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        OFFICIAL[0].sha256 = "0" * 64
    with pytest.raises(ValueError, match="sha256"):
        PretrainedCfg(name="x", kind="encoder", sha256="abc")
    assert pretrained.get_pretrained_cfg("encoder", "nope") is None
    assert pretrained.get_pretrained_cfg("encoder", "ffhq256").metrics["fid"] == 18.48


@pytest.mark.parametrize("cfg", OFFICIAL, ids=lambda c: f"{c.kind}-{c.name}")
def test_entries_match_the_registry(cfg):
    _registry._ensure_loaded()
    if not _registry._REGISTRY[cfg.kind]:
        pytest.skip(f"no {cfg.kind} registered yet")
    assert cfg.name in _registry._REGISTRY[cfg.kind], f"{cfg.kind} {cfg.name} is not registered"
    assert _registry.get_entry(cfg.kind, cfg.name).pretrained_cfg is cfg


def test_unpinned_official_entry_is_never_downloaded_from_the_hub(env, monkeypatch):
    # with no converted copy, pretrained=True would fetch the official pickle (tests/test_download.py);
    # offline, it stops at once with the manual steps and touches no server
    monkeypatch.setenv("GHFEAT_OFFLINE", "1")
    with pytest.raises(WeightsOfflineError) as err:
        ghfeat.create_generator("stylegan-ffhq256", pretrained=True)
    msg = str(err.value)
    assert "ghfeat convert stylegan-ffhq-256.pkl --name stylegan-ffhq256" in msg
    assert "github.com/genforce/ghfeat" in msg and "checkpoint_path" in msg
    assert "ghfeat download stylegan-ffhq256" in msg
    assert env.hub.count(contains="/resolve/") == 0


# -- local conversions (ghfeat convert) ------------------------------------------------------------
def test_install_converted_then_pretrained_true(env, entry):
    entry()                                            # unpinned, like the official ones
    src = env.tmp / "official.pkl"
    src.write_bytes(b"pretend TF pickle")
    path = pretrained.install_converted("encoder", "tiny-test", tiny(2.0), src)
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert path == env.ghfeat / "encoder" / "tiny-test" / "model.safetensors"
    assert manifest["sha256"] == pretrained.sha256_file(path)
    assert manifest["source"]["sha256"] == sha(b"pretend TF pickle")
    assert not list(path.parent.glob(".*tmp*"))                # temp files renamed away

    model = ghfeat.create_encoder("tiny-test", pretrained=True)
    assert fill_of(model) == 2.0 and model.weights_source.startswith("local-cache:")
    assert model.pretrained_cfg.name == "tiny-test"
    assert env.hub.count(contains="/resolve/") == 0
    # the installed folder is also a loadable save_pretrained-style folder
    assert fill_of(ghfeat.create_encoder(str(path.parent))) == 2.0


def test_local_cache_corrupt_or_interrupted(env, entry):
    entry()
    path = pretrained.install_converted("encoder", "tiny-test", tiny(2.0).state_dict(), "x.pkl")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsCorruptError, match="ghfeat convert"):
        ghfeat.create_encoder("tiny-test", pretrained=True)
    (path.parent / "manifest.json").write_text("{trunc")
    with pytest.raises(WeightsCorruptError, match="not valid JSON"):
        ghfeat.create_encoder("tiny-test", pretrained=True)
    # an install interrupted before its manifest was written is not taken for a good one
    (path.parent / "manifest.json").unlink()
    with pytest.raises(WeightsNotFoundError, match="no published sha256"):
        ghfeat.create_encoder("tiny-test", pretrained=True)


def test_real_generator_through_cache_and_folders(env, tmp_path):
    gen = ghfeat.create_generator("stylegan-tiny32")
    pretrained.install_converted("generator", "stylegan-tiny32", gen, "converted.pth")
    again = ghfeat.create_generator("stylegan-tiny32", pretrained=True)   # no PretrainedCfg needed
    for (k, a), b in zip(gen.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    folder = write_hub_folder(gen, tmp_path / "g")
    assert type(ghfeat.create_generator(str(folder))) is type(gen)
    with pytest.raises(WeightsMismatchError, match="holds a generator"):
        ghfeat.create_discriminator(str(folder))
    with pytest.raises(WeightsMismatchError, match="holds a generator"):
        ghfeat.create_discriminator("stylegan-tiny32", checkpoint_path=folder)


def test_environment_is_read_at_call_time(monkeypatch, tmp_path):
    for var in ("HF_HUB_CACHE", "HF_HOME", "GHFEAT_CACHE", "XDG_CACHE_HOME", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert pretrained._hf_cache_dir() == str(tmp_path / "home" / "hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "c"))
    assert pretrained._hf_cache_dir() == str(tmp_path / "c")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pretrained.cache_dir() == tmp_path / "xdg" / "ghfeat"
    monkeypatch.setenv("GHFEAT_CACHE", str(tmp_path / "g"))
    assert pretrained.cache_dir() == tmp_path / "g"
    for value, expected in (("1", True), ("true", True), ("0", False), ("", False)):
        monkeypatch.setenv("HF_HUB_OFFLINE", value)
        assert pretrained.hf_offline() is expected
    assert pretrained.parse_hub_location("hf-hub:a/b@v1") == ("a/b", "v1")
    assert pretrained.parse_hub_location("hf-hub:a/b") == ("a/b", None)


# -- the Hub ---------------------------------------------------------------------------------------
def test_hub_download_pinned_then_offline_from_cache(env, entry, monkeypatch):
    data = publish(env.hub, fill=3.0)
    entry(sha256=sha(data))
    model = ghfeat.create_encoder("tiny-test", pretrained=True)
    assert fill_of(model) == 3.0 and model.weights_source.startswith("hub:")
    assert env.hub.count("GET", "/resolve/") == 1, env.hub.requests

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = env.hub.count(contains="/resolve/")
    assert fill_of(ghfeat.create_encoder("tiny-test", pretrained=True)) == 3.0
    assert env.hub.count(contains="/resolve/") == before                     # served from the HF cache


def test_resolution_order_checkpoint_then_local_cache_then_hub(env, entry, tmp_path):
    data = publish(env.hub, fill=3.0)
    entry(sha256=sha(data))
    pretrained.install_converted("encoder", "tiny-test", tiny(2.0), "x.pkl")
    ckpt = tmp_path / "mine.safetensors"
    save_file(dict(tiny(1.0).state_dict()), str(ckpt))

    assert fill_of(ghfeat.create_encoder("tiny-test", checkpoint_path=ckpt)) == 1.0
    assert fill_of(ghfeat.create_encoder("tiny-test", pretrained=True, checkpoint_path=ckpt)) == 1.0
    assert fill_of(ghfeat.create_encoder("tiny-test", pretrained=True)) == 2.0
    assert env.hub.count(contains="/resolve/") == 0
    (env.ghfeat / "encoder" / "tiny-test" / "manifest.json").unlink()
    assert fill_of(ghfeat.create_encoder("tiny-test", pretrained=True)) == 3.0
    assert env.hub.count("GET", "/resolve/") == 1, env.hub.requests


def test_hub_corrupt_file_is_refetched_once_then_refused(env, entry, monkeypatch):
    data = publish(env.hub)
    entry(sha256=sha(data))
    env.hub.set_fault(REPO, "model.safetensors", "corrupt")
    with pytest.raises(WeightsCorruptError, match="sha256"):
        ghfeat.create_encoder("tiny-test", pretrained=True)
    assert env.hub.count("GET", "/resolve/") == 2                            # one retry with force_download
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")                   # the bad cached copy stays refused
    with pytest.raises(WeightsCorruptError):
        ghfeat.create_encoder("tiny-test", pretrained=True)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    env.hub.set_fault(REPO, "model.safetensors", None)          # a good server heals the cache
    assert fill_of(ghfeat.create_encoder("tiny-test", pretrained=True)) == 3.0


def test_hub_truncated_file(env, entry):
    data = publish(env.hub)
    env.hub.set_fault(REPO, "model.safetensors", "truncate")
    entry(sha256=sha(data))
    with pytest.raises(WeightsCorruptError, match="truncated"):
        ghfeat.create_encoder("tiny-test", pretrained=True)
    # with no pinned hash (hf-hub: locations) the safetensors header check catches it
    write_hub_folder(tiny(3.0), env.tmp / "folder")
    env.hub.add_folder("testorg/tiny-folder", env.tmp / "folder")
    env.hub.set_fault("testorg/tiny-folder", "model.safetensors", "truncate")
    with pytest.raises(WeightsCorruptError, match="not a valid safetensors file"):
        ghfeat.create_encoder("hf-hub:testorg/tiny-folder")


def test_interrupted_download_leaves_nothing_usable(env, entry, monkeypatch):
    import huggingface_hub.file_download as fd
    monkeypatch.setattr(fd, "time", types.SimpleNamespace(sleep=lambda s: None))  # skip retry pauses
    data = publish(env.hub)
    entry(sha256=sha(data))
    env.hub.set_fault(REPO, "model.safetensors", "drop")
    with pytest.raises(WeightsDownloadError, match="interrupted|failed"):
        ghfeat.create_encoder("tiny-test", pretrained=True)
    leftovers = [p for p in env.hf.rglob("*") if p.is_file() and {"blobs", "snapshots"} & set(p.parts)]
    assert leftovers == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsOfflineError):
        ghfeat.create_encoder("tiny-test", pretrained=True)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    env.hub.set_fault(REPO, "model.safetensors", None)
    assert fill_of(ghfeat.create_encoder("tiny-test", pretrained=True)) == 3.0


def test_repo_missing_and_entry_missing(env, entry):
    entry(sha256="0" * 64)
    with pytest.raises(WeightsNotFoundError, match="was not found"):
        ghfeat.create_encoder("tiny-test", pretrained=True)
    env.hub.add_file(REPO, "other.bin", b"x")
    with pytest.raises(WeightsNotFoundError, match="has no file 'model.safetensors'"):
        ghfeat.create_encoder("tiny-test", pretrained=True)
    with pytest.raises(WeightsNotFoundError, match="Revision"):
        pretrained.hub_download(REPO, "other.bin", "f" * 40)


def test_offline_cache_miss_fails_fast_with_instructions(env, entry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry(sha256="0" * 64, origin=pretrained.Origin("ghfeat-encoder-ffhq-256.pkl",
                                                           "https://github.com/genforce/ghfeat#testing"))
    start = time.perf_counter()
    with pytest.raises(WeightsOfflineError) as err:
        ghfeat.create_encoder("tiny-test", pretrained=True)
    assert time.perf_counter() - start < 5
    assert "HF_HUB_OFFLINE" in str(err.value)
    assert "ghfeat convert ghfeat-encoder-ffhq-256.pkl --name tiny-test" in str(err.value)
    assert env.hub.count(contains="/resolve/") == 0
    assert isinstance(err.value, WeightsNotFoundError) and isinstance(err.value, WeightsError)


@pytest.mark.parametrize("revision", ["main", "commit"])
def test_hand_made_hf_cache_offline(env, entry, monkeypatch, revision):
    data = safetensors_bytes(tiny(4.0))
    commit = "1234567890abcdef1234567890abcdef12345678"
    repo_dir = env.hf / ("models--" + REPO.replace("/", "--"))
    (repo_dir / "snapshots" / commit).mkdir(parents=True)
    (repo_dir / "snapshots" / commit / "model.safetensors").write_bytes(data)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)             # no trailing newline
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    entry(sha256=sha(data), revision="main" if revision == "main" else commit)
    assert fill_of(ghfeat.create_encoder("tiny-test", pretrained=True)) == 4.0
    assert env.hub.count(contains="/resolve/") == 0


def test_unpinned_download_needs_opt_in(env, entry, monkeypatch):
    publish(env.hub, fill=5.0)
    entry()
    with pytest.raises(WeightsNotFoundError, match="GHFEAT_ALLOW_UNPINNED"):
        ghfeat.create_encoder("tiny-test", pretrained=True)
    assert env.hub.count(contains="/resolve/") == 0
    monkeypatch.setenv("GHFEAT_ALLOW_UNPINNED", "1")
    assert fill_of(ghfeat.create_encoder("tiny-test", pretrained=True)) == 5.0


# -- explicit checkpoints and mismatches -----------------------------------------------------------
def test_checkpoint_files_and_errors(env, entry, tmp_path):
    pt = tmp_path / "w.pt"
    torch.save(tiny(6.0).state_dict(), pt)
    assert fill_of(ghfeat.create_encoder("tiny-test", checkpoint_path=pt)) == 6.0
    torch.save({"state_dict": tiny(7.0).state_dict(), "epoch": 3}, pt)
    assert fill_of(ghfeat.create_encoder("tiny-test", checkpoint_path=pt)) == 7.0

    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        ghfeat.create_encoder("tiny-test", checkpoint_path=tmp_path / "missing.safetensors")
    torch.save({"generator": {}, "generator_smooth": {}}, pt)
    with pytest.raises(WeightsMismatchError, match="ghfeat convert"):
        ghfeat.create_encoder("tiny-test", checkpoint_path=pt)
    torch.save({"fc.weight": types.SimpleNamespace()}, pt)      # arbitrary pickled object
    with pytest.raises(WeightsCorruptError, match="weights_only"):
        ghfeat.create_encoder("tiny-test", checkpoint_path=pt)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(safetensors_bytes(tiny(1.0))[:40])
    with pytest.raises(WeightsCorruptError, match="truncated or corrupt"):
        ghfeat.create_encoder("tiny-test", checkpoint_path=bad)


def test_shape_and_key_mismatch_never_half_loads(env, entry, tmp_path):
    ckpt = tmp_path / "w4.safetensors"
    state = dict(tiny(1.0).state_dict())
    save_file(state, str(ckpt))
    with pytest.raises(WeightsMismatchError, match=r"(?s)overrides \{'width': 8\}.*shape mismatches"):
        ghfeat.create_encoder("tiny-test", checkpoint_path=ckpt, width=8)
    model = tiny(9.0)
    save_file(dict(state, extra=torch.zeros(1)), str(ckpt))
    with pytest.raises(WeightsMismatchError, match="unexpected tensors: extra"):
        pretrained.load_pretrained(model, entry.entry, checkpoint_path=ckpt)
    assert fill_of(model) == 9.0                                # untouched
    # overrides that keep the shapes are fine
    save_file(state, str(ckpt))
    assert ghfeat.create_encoder("tiny-test", checkpoint_path=ckpt, gain=2.0).gain == 2.0


def test_checkpoint_folder_of_another_class(env, entry, tmp_path):
    write_hub_folder(TinyTestGenerator(), tmp_path / "gen")
    with pytest.raises(WeightsMismatchError, match="holds a generator"):
        ghfeat.create_encoder("tiny-test", checkpoint_path=tmp_path / "gen")


# -- locations: hf-hub: and local folders -----------------------------------------------------------
def test_hf_hub_location(env, entry):
    folder = write_hub_folder(tiny(3.0), env.tmp / "folder")
    commit = env.hub.add_folder("testorg/tiny-folder", folder)
    model = ghfeat.create_encoder("hf-hub:testorg/tiny-folder")
    assert isinstance(model, TinyTestEncoder) and fill_of(model) == 3.0 and not model.training
    assert fill_of(ghfeat.create_encoder(f"hf-hub:testorg/tiny-folder@{commit}")) == 3.0
    assert ghfeat.create_encoder("hf-hub:testorg/tiny-folder", gain=3.0).gain == 3.0
    with pytest.raises(WeightsMismatchError, match="change the architecture"):
        ghfeat.create_encoder("hf-hub:testorg/tiny-folder", width=2)

    gets = env.hub.count("GET", "model.safetensors")
    with pytest.raises(WeightsMismatchError, match="holds an encoder"):
        ghfeat.create_generator("hf-hub:testorg/tiny-folder")
    assert env.hub.count("GET", "model.safetensors") == gets  # refused before fetching weights
    with pytest.raises(WeightsNotFoundError, match="was not found"):
        ghfeat.create_encoder("hf-hub:testorg/missing")
    with pytest.raises(ValueError, match="hf-hub:org/name"):
        ghfeat.create_encoder("hf-hub:justaname")


def test_local_folder_location(env, tmp_path):
    folder = write_hub_folder(tiny(2.5), tmp_path / "enc")
    assert fill_of(ghfeat.create_encoder(str(folder))) == 2.5
    with pytest.raises(WeightsMismatchError, match="create_encoder"):
        ghfeat.create_generator(str(folder))
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsNotFoundError, match="has no config.json"):
        ghfeat.create_encoder(str(tmp_path / "empty"))


# -- publishing ------------------------------------------------------------------------------------
def test_save_pretrained_from_pretrained_round_trip(env, tmp_path):
    model = tiny()
    out = model.save_pretrained(tmp_path / "pub")
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    card = (out / "README.md").read_text()
    front = card.split("---")[1]
    assert "library_name: ghfeat" in front and "pipeline_tag: image-feature-extraction" in front
    assert json.loads((out / "config.json").read_text())["ghfeat_kind"] == "encoder"

    again = TinyTestEncoder.from_pretrained(out)
    x = torch.randn(2, 3)
    torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)
    with pytest.raises(WeightsMismatchError, match="not a TinyTestGenerator"):
        TinyTestGenerator.from_pretrained(out)

    env.hub.add_folder("testorg/pub", out)                     # bare "org/name" means the Hub
    torch.testing.assert_close(TinyTestEncoder.from_pretrained("testorg/pub")(x), model(x))


def test_card_from_pretrained_cfg():
    cfg = pretrained.get_pretrained_cfg("encoder", "ffhq256")
    card = ghfeat.hub.model_card(tiny(), cfg, repo_id=cfg.hf_hub_id)
    front = card.split("---")[1]
    assert "license: other\nlicense_name: upstream-unspecified\n" in front
    assert "library_name: ghfeat" in front and "- ghfeat" in front
    assert "arxiv: 2007.10379" in card and "| fid | 18.48 |" in card
    assert "ghfeat-encoder-ffhq-256.pkl" in card and "hf-hub:ghfeat/ghfeat-encoder-ffhq256" in card


def test_push_to_hub_uploads_the_saved_folder(monkeypatch):
    from huggingface_hub import HfApi
    calls = {}

    def create_repo(self, repo_id, **kw):
        calls["create"] = (repo_id, kw)

    def upload_folder(self, *, repo_id, folder_path, **kw):
        calls["files"] = sorted(p.name for p in Path(folder_path).iterdir())
        calls["card"] = (Path(folder_path) / "README.md").read_text()
        return types.SimpleNamespace(commit_url=f"https://hub.test/{repo_id}/commit/1")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    url = tiny().push_to_hub("me/tiny", private=True)
    assert url == "https://hub.test/me/tiny/commit/1"
    assert calls["create"] == ("me/tiny", {"private": True, "exist_ok": True})
    assert calls["files"] == ["README.md", "config.json", "model.safetensors"]
    assert "hf-hub:me/tiny" in calls["card"]


# -- docs ------------------------------------------------------------------------------------------
def test_docs_model_table_is_up_to_date(capsys):
    text = DOC.read_text()
    assert pretrained.render_doc_table(text) == text, (
        "docs/weights.md is stale: run `python -m ghfeat.pretrained --update docs/weights.md`")
    pretrained._main(["--markdown"])
    assert capsys.readouterr().out == pretrained.model_table_markdown()
