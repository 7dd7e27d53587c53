"""Loading a shipped model pair as a user without network would: offline, with an empty cache,
so that only the files inside the package can serve (shared by test_shipped_*.py)."""
import pytest

import ghfeat


def load_offline(tmp_path_factory, encoder: str, gan: str):
    """``(encoder, generator, discriminator)`` with pretrained weights, in eval mode."""
    from huggingface_hub import constants as hf_constants   # imported first: it reads the env once
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setattr(hf_constants, "HF_HUB_OFFLINE", True)
        mp.setenv("GHFEAT_OFFLINE", "1")
        mp.setenv("GHFEAT_CACHE", str(tmp_path_factory.mktemp("cache")))
        mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf")))
        return (ghfeat.create_encoder(encoder, pretrained=True).eval(),
                ghfeat.create_generator(gan, pretrained=True).eval(),
                ghfeat.create_discriminator(gan, pretrained=True).eval())
