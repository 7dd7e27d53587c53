"""Empty batches give empty results of the usual shapes across the public API (issue 12), and
edge inputs that used to crash inside the library get clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ghfeat
from ghfeat import editing

N0 = torch.zeros(0, 3, 32, 32)


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return ghfeat.create_encoder("tiny32"), ghfeat.create_generator("stylegan-tiny32")


@pytest.mark.parametrize("images", [N0, torch.zeros(0, 3, 32, 32, dtype=torch.uint8), np.zeros((0, 32, 32, 3)),
                                    torch.zeros(0, 1, 32, 32)], ids=["float", "uint8", "numpy", "gray"])
def test_load_images_empty_batch(images):
    assert ghfeat.load_images(images).shape == (0, 3, 32, 32)
    assert ghfeat.load_images(images, size=16, resize=True).shape == (0, 3, 16, 16)


def test_empty_list_and_empty_images_still_refused():
    with pytest.raises(ValueError, match="empty list"):
        ghfeat.load_images([])
    with pytest.raises(ValueError, match="is empty"):
        ghfeat.load_images(torch.zeros(1, 3, 0, 32))


def test_api_functions_on_an_empty_batch(models):
    enc, gen = models
    L, D = enc.num_layers, enc.style_dim_max
    feats = ghfeat.extract(N0, model=enc)
    assert list(feats) == list(range(1, L + 1))
    assert all(f.shape == (0, d) for f, d in zip(feats.values(), ghfeat.level_dims(enc).values()))
    assert ghfeat.extract(N0, levels=[2, 1], model=enc, flatten=True).shape == (0, sum(enc.style_dims[-2:]))
    assert ghfeat.encode(N0, enc).shape == (0, L, D)
    assert ghfeat.decode(torch.zeros(0, L, D), gen).shape == (0, 3, 32, 32)
    assert ghfeat.decode([torch.zeros(0, d) for d in gen.style_dims], gen).shape == (0, 3, 32, 32)
    rec, codes = ghfeat.reconstruct(N0, enc, gen, return_codes=True)
    assert rec.shape == (0, 3, 32, 32) and codes.shape == (0, L, D)
    assert ghfeat.reconstruct(N0.to(torch.uint8), enc, gen).dtype == torch.uint8
    two = torch.rand(2, 3, 32, 32) * 2 - 1
    assert ghfeat.style_mix(N0, two, [1], enc, gen).shape == (3, 1, 3, 32, 32)
    assert ghfeat.style_mix(two, N0, [1], enc, gen).shape == (1, 3, 3, 32, 32)


def test_models_on_an_empty_batch(models):
    enc, gen = models
    assert enc(N0).shape == (0, enc.num_layers, enc.style_dim_max)
    assert gen(torch.zeros(0, gen.z_dim)).shape == (0, 3, 32, 32)
    assert gen.generate(w=torch.zeros(0, gen.w_dim)).shape == (0, 3, 32, 32)
    D = ghfeat.create_discriminator("stylegan-tiny32")
    assert D(N0).shape == (0, 1)


def test_editing_functions_on_an_empty_batch(models):
    enc, gen = models
    L, D = enc.num_layers, enc.style_dim_max
    assert editing.sample_codes(gen, 0).shape == (0, L, D)
    assert editing.mix_codes(torch.zeros(0, L, D), torch.zeros(1, L, D), [1]).shape == (0, L, D)
    assert editing.global_edit(N0, [L], enc, gen).shape == (0, 3, 32, 32)
    mask = torch.zeros(32, 32)
    assert editing.local_edit(N0, torch.zeros(1, 3, 32, 32), mask, [1], enc, gen).shape == (0, 3, 32, 32)
    comp, m = editing.paste_patch(N0, torch.zeros(1, 3, 8, 8), 0, 0)
    assert comp.shape == (0, 3, 32, 32) and m.shape == (0, 1, 32, 32)
    assert editing.interpolate(torch.zeros(0, L, D), torch.zeros(0, L, D), 3).shape == (3, 0, L, D)
    out, comp = editing.harmonize(N0, torch.zeros(1, 3, 32, 32), mask, enc, gen, background_levels=[1],
                                  return_composite=True)
    assert out.shape == comp.shape == (0, 3, 32, 32)


def test_decode_and_paste_patch_bad_arguments(models, tmp_path):
    enc, gen = models
    codes = torch.zeros(1, enc.num_layers, enc.style_dim_max)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            ghfeat.decode(codes, gen, batch_size=bad)
    with pytest.raises(TypeError, match="generator must be"):
        ghfeat.decode(codes, object())
    from PIL import Image
    Image.new("RGB", (32, 32), "white").save(tmp_path / "a.png")
    Image.new("RGB", (8, 8), "black").save(tmp_path / "b.png")
    comp, m = editing.paste_patch(str(tmp_path / "a.png"), str(tmp_path / "b.png"), 0, 0)
    assert comp.shape == (1, 3, 32, 32) and comp[0, 0, 0, 0] == -1 and comp[0, 0, 9, 9] == 1
    assert editing.paste_patch(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 8, 8),
                               np.int64(2), 3)[1].sum() == 64
    with pytest.raises(TypeError, match="top must be an int"):
        editing.paste_patch(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 8, 8), 1.5, 0)


def test_meta_and_unavailable_devices_are_clear_errors(models):
    enc, gen = models
    x = torch.zeros(1, 3, 32, 32)
    with pytest.raises(ValueError, match="'meta' device"):
        ghfeat.extract(x.to("meta"), model=enc)
    with torch.device("meta"):
        meta_enc = ghfeat.create_encoder("tiny32")
        meta_gen = ghfeat.create_generator("stylegan-tiny32")
    with pytest.raises(ValueError, match="encoder is on the 'meta' device"):
        ghfeat.extract(x, model=meta_enc)
    with pytest.raises(ValueError, match="generator is on the 'meta' device"):
        ghfeat.reconstruct(x, enc, meta_gen)
    with pytest.raises(ValueError, match="'meta' device"):
        ghfeat.decode(torch.zeros(1, gen.num_layers, gen.style_dim_max, device="meta"), gen)
    with pytest.raises(ValueError, match="not a device"):
        ghfeat.extract(x, model=enc, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            ghfeat.extract(x, model="tiny32", device="cuda", pretrained=False)


def test_push_to_hub_without_network_is_a_clear_error(models):
    enc, _ = models
    with pytest.raises(ConnectionError, match="could not reach the Hugging Face Hub"):
        enc.push_to_hub("me/x", endpoint="http://127.0.0.1:9", token="hf_test")
