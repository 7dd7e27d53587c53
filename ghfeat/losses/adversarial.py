"""Adversarial losses for the encoder/discriminator game, and the full encoder objective.

Two formulations (``get_adversarial_loss(name, **kw)``):

``"logistic-r1"`` (default; the official GH-Feat code, StyleGAN v1 ``D_logistic_simplegp``)::

    L_D = E[softplus(D(G(E(x))))] + E[softplus(-D(x))] + r1_gamma / 2 * E[||grad_x D(x)||^2]
    L_E = E[softplus(-D(G(E(x))))]                                   r1_gamma = 10

``"wgan-gp"`` (the paper's Eq. (2)-(3), lambda_3 = 5)::

    L_D = E[D(G(E(x)))] - E[D(x)] + gp_weight * E[||grad_x D(x)||^2]
    L_E = -E[D(G(E(x)))]                                              gp_weight = 5

In both the penalty is zero-centred and taken at the *real* images (not at interpolates and
not ``(||g|| - 1)^2`` as in Gulrajani et al.); ``||.||^2`` sums over C, H, W and ``E`` averages
over the batch. With the defaults both penalties weigh ``E||grad||^2`` by 5.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import torch
import torch.nn.functional as F

from .perceptual import VGGPerceptualLoss

__all__ = [
    "AdversarialLoss", "LogisticR1Loss", "WGANGPLoss", "ADVERSARIAL_LOSSES",
    "get_adversarial_loss", "real_gradient_penalty", "pixel_mse", "encoder_loss",
]

Discriminator = Callable[[torch.Tensor], torch.Tensor]


class AdversarialLoss(Protocol):
    name: str

    def d_loss(self, D: Discriminator, real: torch.Tensor, fake: torch.Tensor
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def g_loss(self, D: Discriminator, fake: torch.Tensor
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...


def real_gradient_penalty(D: Discriminator, real: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """``E_batch[ sum_{C,H,W} (d D(x) / d x)^2 ]`` at the real images, and the scores ``D(x)``.

    ``real`` is detached and given ``requires_grad`` here (the caller's tensor is untouched).
    The gradient is built with ``create_graph=True`` so the penalty trains D, and is taken of
    the float32 sum of the scores, so it is safe under autocast.
    Returns ``(penalty [] float32, scores [N] float32)``.
    """
    real = real.detach().requires_grad_(True)
    scores = D(real)
    (grad,) = torch.autograd.grad(outputs=scores.float().sum(), inputs=real, create_graph=True)
    penalty = grad.float().square().flatten(1).sum(1).mean()
    return penalty, scores.float().reshape(scores.shape[0], -1).squeeze(1)


def _scores(D: Discriminator, x: torch.Tensor) -> torch.Tensor:
    s = D(x).float()
    return s.reshape(s.shape[0], -1).squeeze(1)


def _check_weight(name: str, value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


@dataclass
class LogisticR1Loss:
    """Non-saturating logistic loss with R1 (the official GH-Feat / StyleGAN v1 recipe).

    ``d_loss``: ``mean(softplus(D(fake))) + mean(softplus(-D(real))) + r1_gamma * 0.5 *
    mean_n(||grad_x D(real_n)||^2)``; ``g_loss``: ``mean(softplus(-D(fake)))``.
    ``fake`` is detached inside ``d_loss``; ``r1_gamma=0`` skips the penalty.
    """
    r1_gamma: float = 10.0
    name: str = "logistic-r1"

    def __post_init__(self):
        _check_weight("r1_gamma", self.r1_gamma)

    def d_loss(self, D, real, fake):
        if self.r1_gamma > 0:
            r1, real_scores = real_gradient_penalty(D, real)
        else:
            r1, real_scores = None, _scores(D, real.detach())
        fake_scores = _scores(D, fake.detach())
        loss_real = F.softplus(-real_scores).mean()
        loss_fake = F.softplus(fake_scores).mean()
        loss = loss_real + loss_fake
        logs = {"d/score_real": real_scores.mean(), "d/score_fake": fake_scores.mean(),
                "d/loss_real": loss_real, "d/loss_fake": loss_fake}
        if r1 is not None:
            loss_gp = r1 * (self.r1_gamma * 0.5)
            loss = loss + loss_gp
            logs.update({"d/r1_penalty": r1, "d/loss_gp": loss_gp})
        logs["d/loss"] = loss
        return loss, {k: v.detach() for k, v in logs.items()}

    def g_loss(self, D, fake):
        fake_scores = _scores(D, fake)
        loss = F.softplus(-fake_scores).mean()
        return loss, {"g/score_fake": fake_scores.mean().detach(), "g/adv": loss.detach()}


@dataclass
class WGANGPLoss:
    """The paper's Eq. (2)-(3): Wasserstein critic with a zero-centred penalty on reals.

    ``d_loss``: ``mean(D(fake)) - mean(D(real)) + gp_weight * mean_n(||grad_x D(real_n)||^2)``
    (paper: lambda_3 = 5); ``g_loss``: ``-mean(D(fake))``. ``fake`` is detached in ``d_loss``.
    """
    gp_weight: float = 5.0
    name: str = "wgan-gp"

    def __post_init__(self):
        _check_weight("gp_weight", self.gp_weight)

    def d_loss(self, D, real, fake):
        if self.gp_weight > 0:
            gp, real_scores = real_gradient_penalty(D, real)
        else:
            gp, real_scores = None, _scores(D, real.detach())
        fake_scores = _scores(D, fake.detach())
        loss = fake_scores.mean() - real_scores.mean()
        logs = {"d/score_real": real_scores.mean(), "d/score_fake": fake_scores.mean(),
                "d/wasserstein": -loss}
        if gp is not None:
            loss_gp = gp * self.gp_weight
            loss = loss + loss_gp
            logs.update({"d/grad_penalty": gp, "d/loss_gp": loss_gp})
        logs["d/loss"] = loss
        return loss, {k: v.detach() for k, v in logs.items()}

    def g_loss(self, D, fake):
        fake_scores = _scores(D, fake)
        loss = -fake_scores.mean()
        return loss, {"g/score_fake": fake_scores.mean().detach(), "g/adv": loss.detach()}


ADVERSARIAL_LOSSES: dict[str, type] = {"logistic-r1": LogisticR1Loss, "wgan-gp": WGANGPLoss}


def get_adversarial_loss(name: str = "logistic-r1", **kwargs) -> AdversarialLoss:
    """Build an adversarial loss by name: ``"logistic-r1"`` (``r1_gamma=10``) or ``"wgan-gp"``
    (``gp_weight=5``)."""
    if name not in ADVERSARIAL_LOSSES:
        close = difflib.get_close_matches(str(name), ADVERSARIAL_LOSSES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown adversarial loss {name!r}; valid names: "
                         f"{sorted(ADVERSARIAL_LOSSES)}.{hint}")
    cls = ADVERSARIAL_LOSSES[name]
    try:
        return cls(**kwargs)
    except TypeError as exc:
        fields = [f for f in cls.__dataclass_fields__ if f != "name"]
        raise TypeError(f"{name!r} accepts {fields}, got {sorted(kwargs)}") from exc


def pixel_mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``mean((x - y)^2)`` over all elements, in float32. Shapes must match."""
    if x.shape != y.shape:
        raise ValueError(f"pixel_mse needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    return (x.float() - y.float()).square().mean()


def encoder_loss(x: torch.Tensor, x_rec: torch.Tensor,
                 feat_fn: Callable[[torch.Tensor], torch.Tensor] | None,
                 D: Discriminator | None, perceptual_weight: float = 5e-5,
                 adv_weight: float = 0.08, adv: str | AdversarialLoss = "logistic-r1"
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The GH-Feat encoder objective (official code; the paper's adversarial weight is 0.1)::

        mean((x_rec - x)^2) + perceptual_weight * mean((F(x) - F(x_rec))^2)
                            + adv_weight * adv.g_loss(D, x_rec)

    Args:
        x: real images ``[N, C, H, W]`` in ``[-1, 1]`` (the target; no gradient goes to it).
        x_rec: ``G(E(x))``, same shape.
        feat_fn: ``F``, images -> features (e.g. :class:`VGG16Features`), or a
            :class:`VGGPerceptualLoss` (its features are used); ``None`` drops the term.
        D: the discriminator, images -> scores ``[N]`` or ``[N, 1]``; ``None`` drops the term.
        adv: adversarial loss name or object; only its ``g_loss`` is used.
    Returns:
        ``(loss [], logs)``; logs hold the unweighted terms ``e/pixel``, ``e/perceptual``,
        ``e/adv`` (those computed) and ``e/loss``, all detached.
    """
    if isinstance(adv, str):
        adv = get_adversarial_loss(adv)
    x = x.detach()
    pix = pixel_mse(x_rec, x)
    loss = pix
    logs = {"e/pixel": pix}
    if feat_fn is not None:
        if isinstance(feat_fn, VGGPerceptualLoss):
            feat_fn = feat_fn.vgg
        with torch.no_grad():
            f_real = feat_fn(x).float()
        perc = (feat_fn(x_rec).float() - f_real).square().mean()
        loss = loss + perceptual_weight * perc
        logs["e/perceptual"] = perc
    if D is not None:
        g, _ = adv.g_loss(D, x_rec)
        loss = loss + adv_weight * g
        logs["e/adv"] = g
    logs["e/loss"] = loss
    return loss, {k: v.detach() for k, v in logs.items()}


def code_regression_loss(pred: Sequence[torch.Tensor], target: Sequence[torch.Tensor],
                         scale: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """Code regression on the generator's own samples: for ``x = G(w)`` whose per-layer styles
    ``y_i = A_i(w_i)`` are known, ``mean_i mean(((E(x)_i - y_i) / s_i)^2)``, averaged over layers.

    Args:
        pred, target: per-layer codes, lists of ``[N, 2C_i]`` (target detached).
        scale: per-layer ``[2C_i]`` std of the codes (``None`` = 1): makes the term scale-free.
    Returns:
        the loss ``[]``: 1 for a prediction off by one standard deviation in every dimension.
    """
    if len(pred) != len(target) or not pred:
        raise ValueError(f"pred and target must be lists of the same number of layers, got {len(pred)} and "
                         f"{len(target)}")
    terms = []
    for i, (p, t) in enumerate(zip(pred, target)):
        if p.shape != t.shape:
            raise ValueError(f"layer {i}: prediction {tuple(p.shape)} vs target {tuple(t.shape)}")
        d = p.float() - t.detach().float()
        if scale is not None:
            d = d / scale[i]
        terms.append(d.square().mean())
    return torch.stack(terms).mean()
