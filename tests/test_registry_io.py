"""Registry/factory and the config.json + model.safetensors round trip."""
import json

import pytest
import torch

import ghfeat
from ghfeat._io import load_model, save_model


def test_list_models_by_kind():
    gens = ghfeat.list_models(kind="generator")
    assert {"stylegan-256", "stylegan-mnist32"} <= set(gens)
    assert "stylegan-256" in ghfeat.list_models(kind="discriminator")
    assert ghfeat.list_models("*mnist*", kind="generator") == ["stylegan-mnist32"]
    info = ghfeat.list_models("stylegan-256", with_info=True)
    assert ("generator", "stylegan-256") == info[0][:2] and "256" in info[0][2]


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match="Did you mean 'stylegan-256'"):
        ghfeat.create_generator("stylegan256")
    with pytest.raises(ValueError, match="Available"):
        ghfeat.create_discriminator("no-such-model")


def test_config_overrides():
    G = ghfeat.create_generator("stylegan-mnist32", fmap_max=16)
    assert G.config["fmap_max"] == 16 and G.config["resolution"] == 32
    assert G.registry_name == "stylegan-mnist32"
    D = ghfeat.create_discriminator("stylegan-mnist32")
    assert D.resolution == 32 and "z_dim" not in D.config


def test_stylegan_256_is_the_official_config():
    G = ghfeat.create_generator("stylegan-256")
    assert G.num_layers == 14 and G.z_dim == G.w_dim == 512
    assert G.style_dims == [1024] * 8 + [512] * 2 + [256] * 2 + [128] * 2


@pytest.mark.parametrize("kind,name", [("generator", "stylegan-tiny32"), ("discriminator", "stylegan-tiny32")])
def test_save_load_round_trip_bit_identical(tmp_path, kind, name):
    torch.manual_seed(0)
    model = getattr(ghfeat, f"create_{kind}")(name).eval()
    if kind == "generator":
        model.w_avg.normal_()                         # buffers travel too
        x = torch.randn(4, model.z_dim)
        run = lambda m: m(x, randomize_noise=False, truncation_psi=0.5)  # noqa: E731
    else:
        x = torch.randn(4, 3, 32, 32)
        run = lambda m: m(x)  # noqa: E731
    save_model(model, tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "config.json").read_text())
    assert doc["ghfeat_class"] == type(model).__name__ and doc["config"] == model.config
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model)
    with torch.no_grad():
        assert torch.equal(run(model), run(loaded))


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path)
    G = ghfeat.create_generator("stylegan-tiny32")
    save_model(G, tmp_path / "g")
    # truncated weights
    wpath = tmp_path / "g" / "model.safetensors"
    wpath.write_bytes(wpath.read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_model(tmp_path / "g")
    # weights of another config
    save_model(G, tmp_path / "h")
    doc = json.loads((tmp_path / "h" / "config.json").read_text())
    doc["config"]["fmap_max"] = 16
    (tmp_path / "h" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="shape mismatches"):
        load_model(tmp_path / "h")
    doc["ghfeat_class"] = "NoSuchNet"
    (tmp_path / "h" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="does not know"):
        load_model(tmp_path / "h")


def test_save_fp16_storage(tmp_path):
    from safetensors.torch import load_file
    G = ghfeat.create_generator("stylegan-tiny32")
    save_model(G, tmp_path, dtype=torch.float16)
    assert all(t.dtype == torch.float16 for t in load_file(str(tmp_path / "model.safetensors")).values())
    assert load_model(tmp_path).synthesis.const.dtype == torch.float32
