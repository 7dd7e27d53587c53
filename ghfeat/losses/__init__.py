"""Losses for training a GH-Feat encoder: VGG16 perceptual loss, adversarial losses, pixel MSE.

    from ghfeat.losses import VGGPerceptualLoss, get_adversarial_loss, encoder_loss
    vgg = VGGPerceptualLoss(weights="imagenet")              # torchvision weights + preprocessing
    adv = get_adversarial_loss("logistic-r1", r1_gamma=10.0)  # official; "wgan-gp" = paper
    e_loss, e_logs = encoder_loss(x, G(E(x)), vgg, D, adv=adv)
    d_loss, d_logs = adv.d_loss(D, x, G(E(x)))

Formulas, defaults and weight sources: docs/losses.md.
"""
from .adversarial import (ADVERSARIAL_LOSSES, AdversarialLoss, LogisticR1Loss, WGANGPLoss,
                          code_regression_loss, encoder_loss, get_adversarial_loss, pixel_mse, real_gradient_penalty)
from .perceptual import (PREPROCESS_PRESETS, VGG16Features, VGGPerceptualLoss, VGGPreprocess,
                         load_vgg16_conv_state_dict)

__all__ = [
    "VGG16Features", "VGGPerceptualLoss", "VGGPreprocess", "PREPROCESS_PRESETS",
    "load_vgg16_conv_state_dict",
    "AdversarialLoss", "LogisticR1Loss", "WGANGPLoss", "ADVERSARIAL_LOSSES",
    "get_adversarial_loss", "real_gradient_penalty", "pixel_mse", "encoder_loss",
    "code_regression_loss",
]
