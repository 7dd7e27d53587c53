"""Architectures (shapes and hyperparameters only; loading lives in ghfeat.pretrained)."""
from .generator import MappingNetwork, SynthesisNetwork, StyleGANGenerator, pack_styles, unpack_styles
from .discriminator import StyleGANDiscriminator
from . import zoo  # noqa: F401  (registers the model entries)
