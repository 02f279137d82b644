"""Advantage actor-critic loss (A2C, Mnih et al., 2016): a pure, distribution-agnostic tensor function.

Sign and scale conventions are those of :mod:`~lightning_rl.rl_utils.ppo`: every returned loss is minimized,
``loss = policy_loss + value_weight * value_loss + entropy_weight * entropy_loss`` with
``entropy_loss = -mean(weight * entropy)`` (negative entropy: a positive ``entropy_weight`` is a bonus) and
``value_loss = 0.5 * mean(weight * (returns - value)^2)``. ``advantage`` and ``returns`` are detached here;
only ``log_prob``, ``value`` and ``entropy`` receive gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from lightning_rl.rl_utils._checks import check_batch, check_dim
from lightning_rl.rl_utils.ppo import _weighted_mean

__all__ = ["A2CData", "A2CLoss", "a2c_error"]


class A2CData(NamedTuple):
    """An A2C batch. See :func:`a2c_error` for shapes."""

    log_prob: torch.Tensor
    entropy: torch.Tensor
    value: torch.Tensor
    advantage: torch.Tensor
    returns: torch.Tensor
    weight: torch.Tensor | None = None


class A2CLoss(NamedTuple):
    """A2C losses, each 0-dim; ``loss = policy_loss + vf_coef * value_loss + ent_coef * entropy_loss``."""

    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    entropy_loss: torch.Tensor


def a2c_error(data: A2CData) -> A2CLoss:
    """A2C losses.

    * ``policy_loss = -mean(weight * log_prob * advantage)``;
    * ``value_loss = 0.5 * mean(weight * (value - returns)^2)``;
    * ``entropy_loss = -mean(weight * entropy)``.

    Shapes:
        - log_prob, entropy, value: :math:`(B,)` with gradient (``log_prob`` of the taken action, summed over
          action dimensions for a multi-dimensional continuous action).
        - advantage, returns: :math:`(B,)`.
        - weight: :math:`(B,)` or None.
        - every output: :math:`()`.
    """
    log_prob, entropy, value, advantage, returns, weight = data
    check_dim("log_prob", log_prob, 1, "(B,)")
    check_batch(log_prob.shape[0], **data._asdict())  # every field is per sample
    policy_loss = -_weighted_mean(log_prob * advantage.detach(), weight)
    value_loss = 0.5 * _weighted_mean((value - returns.detach()).pow(2), weight)
    entropy_loss = -_weighted_mean(entropy, weight)
    return A2CLoss(policy_loss, value_loss, entropy_loss)
