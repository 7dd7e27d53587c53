"""Architectures (shapes and hyperparameters only; loading lives in ghfeat.pretrained)."""
from .generator import MappingNetwork, SynthesisNetwork, StyleGANGenerator, pack_styles, unpack_styles
from .discriminator import StyleGANDiscriminator
from .encoder import GHFeatEncoder
from . import zoo, encoder_zoo  # noqa: F401,E401  (register the model entries)
