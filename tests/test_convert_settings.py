"""Converter inputs that used to change the model or drop entries silently (issue 12): genforce
settings a state dict cannot tell, the report of what was in the file, destinations checked first."""
from __future__ import annotations

import os

import pytest
import torch

from _official_fixtures import TinyConfig, write_genforce_pth, write_stylegan_pkl
from ghfeat.convert import api as convert_api
from ghfeat.convert.cli import convert_main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("conv")
    s = write_stylegan_pkl(root / "stylegan-tiny-32.pkl", TinyConfig(), seed=3)
    pth = write_genforce_pth(root / "tiny.pth", s)
    state = torch.load(pth, weights_only=True)
    state["encoder"] = {"conv.weight": torch.zeros(2, 2)}
    state["step"] = 7
    torch.save(state, root / "with_encoder.pth")
    return s.path, pth, root / "with_encoder.pth"


def test_genforce_settings_reach_convert_and_are_reported(files):
    _, pth, _ = files
    res = convert_api.convert(pth, install=False)
    g = res["networks"]["generator"]
    assert g["assumed"] == {"fused_scale": "auto", "mapping_lr_mul": 0.01, "use_wscale": True, "final_tanh": False,
                            "truncation_psi": 0.7, "truncation_layers": 8}
    assert res["networks"]["discriminator"]["assumed"] == {"fused_scale": "auto", "use_wscale": True,
                                                           "minibatch_std_group_size": 4}
    G = res["models"]["generator"]
    assert all(layer.conv.up != "fused" for layer in G.synthesis.layers[2::2])      # 32 px: 'auto' = nearest
    res = convert_api.convert(pth, install=False, genforce_kwargs={"fused_scale": True, "mapping_lr_mul": 0.02,
                                                                   "truncation_psi": 0.5})
    G = res["models"]["generator"]
    assert all(layer.conv.up == "fused" for layer in G.synthesis.layers[2::2])
    assert G.config["mapping_lr_mul"] == 0.02 and G.config["truncation_psi"] == 0.5
    assert res["models"]["discriminator"].config["fused_scale"] is True
    assert "fused_scale" not in res["networks"]["generator"]["assumed"]


def test_genforce_final_tanh_converts_to_a_tanh_generator(files):
    _, pth, _ = files
    plain = convert_api.convert(pth, install=False)["models"]["generator"].eval()
    tanh = convert_api.convert(pth, install=False, genforce_kwargs={"final_tanh": True})["models"]["generator"].eval()
    assert tanh.config["final_tanh"] is True and not plain.config.get("final_tanh", False)
    z = torch.randn(3, plain.z_dim, generator=torch.Generator().manual_seed(0))
    # genforce's final_tanh is tanh of the same network's output (independent reference: torch.tanh)
    torch.testing.assert_close(tanh(z, randomize_noise=False), torch.tanh(plain(z, randomize_noise=False)))


@pytest.mark.parametrize("kwargs, msg", [
    ({"use_wscale": False}, "use_wscale=False"),
    ({"fused_sclae": True}, "unknown genforce setting"),
    ({"label_size": 10}, "not implemented"),
    ({"fused_scale": "yes"}, "fused_scale='yes'"),
])
def test_genforce_settings_ghfeat_cannot_honour_are_refused(files, kwargs, msg):
    _, pth, _ = files
    with pytest.raises(ValueError, match=msg):
        convert_api.convert(pth, install=False, genforce_kwargs=kwargs)


def test_report_says_what_was_in_the_file(files):
    pkl, _, extra = files
    res = convert_api.convert(extra, install=False)
    c = res["contents"]
    assert c["generator_smooth"] == "converted as the generator"
    assert c["generator"].startswith("skipped: which='Gs'")
    assert c["discriminator"] == "converted as the discriminator"
    assert c["encoder"].startswith("skipped (state dict of 1 tensors): a genforce encoder is not converted")
    assert c["step"].startswith("skipped (int)")
    res = convert_api.convert(pkl, install=False)
    assert res["contents"]["G"].startswith("skipped") and res["contents"]["Gs"] == "converted as the generator"
    with pytest.raises(ValueError, match="genforce .pth files only"):
        convert_api.convert(pkl, install=False, genforce_kwargs={"fused_scale": True})


def test_cli_genforce_kwargs_and_report(files, tmp_path, capsys):
    _, _, extra = files
    assert convert_main([str(extra), "--out", str(tmp_path / "o"), "--genforce-kwargs", '{"fused_scale": false}']) == 0
    out = capsys.readouterr().out
    assert "'encoder': skipped" in out and "assumed" in out and "mapping_lr_mul=0.01" in out
    assert "fused_scale='auto'" not in out
    for bad, msg in (("{x", "not valid JSON"), ("[1]", "JSON object"), ('{"use_wscale": false}', "use_wscale")):
        assert convert_main([str(extra), "--out", str(tmp_path / "o"), "--genforce-kwargs", bad]) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_destinations_and_source_checked_before_converting(files, tmp_path, monkeypatch, capsys):
    pkl, _, _ = files
    afile = tmp_path / "afile"
    afile.write_text("x")

    def never(*a, **k):
        raise AssertionError("converted before checking the destination")
    monkeypatch.setattr(convert_api, "detect_format", never)
    for out, msg in ((afile, "is a file"), (afile / "sub", "is a file")):
        with pytest.raises(ValueError, match=msg):
            convert_api.convert(pkl, out=out)
        assert convert_main([str(pkl), "--out", str(out)]) == 2
        assert msg in capsys.readouterr().err
    monkeypatch.setenv("GHFEAT_CACHE", str(afile))
    with pytest.raises(ValueError, match="GHFEAT_CACHE"):
        convert_api.convert(pkl, name="tinytest")
    with pytest.raises(ValueError, match="is a folder"):
        convert_api.convert(tmp_path, out=tmp_path / "o")
    if os.geteuid() != 0:                                      # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="not writable"):
            convert_api.convert(pkl, out=ro / "o")
