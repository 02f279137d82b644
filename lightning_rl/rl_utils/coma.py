"""COMA's loss (Foerster et al., 2018): counterfactual multi-agent policy gradients, a pure tensor function.

Sign and scale conventions are those of :mod:`~lightning_rl.rl_utils.a2c`: every returned loss is minimized,
``loss = policy_loss + value_weight * value_loss + entropy_weight * entropy_loss``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from lightning_rl.rl_utils._checks import check_dim, check_shape, check_shapes
from lightning_rl.rl_utils.ppo import _weighted_mean

__all__ = ["COMAData", "COMALoss", "coma_error"]


class COMAData(NamedTuple):
    """A COMA batch. See :func:`coma_error` for shapes."""

    logits: torch.Tensor
    action: torch.Tensor
    q_value: torch.Tensor
    returns: torch.Tensor
    weight: torch.Tensor | None = None


class COMALoss(NamedTuple):
    """COMA losses, each 0-dim."""

    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    entropy_loss: torch.Tensor


def coma_error(data: COMAData) -> COMALoss:
    """COMA's actor and critic losses for ``N`` agents.

    With ``pi = softmax(logits)`` and ``Q = q_value`` (the centralized critic's ``Q(s, u_{-a}, .)``, one row
    per agent), agent ``a``'s counterfactual advantage is the value of its taken action against its policy's
    average while the other agents keep theirs::

        A_a = Q_a[u_a] - sum_u pi_a[u] Q_a[u]

    * ``policy_loss = -mean(weight * log pi_a[u_a] * A_a)`` (``A`` detached);
    * ``value_loss = 0.5 * mean(weight * (Q_a[u_a] - returns_a)^2)`` (the critic regresses the taken
      joint action's Q on the TD(lambda) targets ``returns``, detached);
    * ``entropy_loss = -mean(weight * entropy(pi_a))``.

    Masked actions should carry a very negative logit (zero probability): they then add nothing to the
    baseline.

    Shapes:
        - logits, q_value: :math:`(B, N, A)`, with gradient.
        - action: :math:`(B, N)` int64; returns: :math:`(B, N)`.
        - weight: :math:`(B, N)`, :math:`(B, 1)` or None.
        - every output: :math:`()`.
    """
    logits, action, q_value, returns, weight = data
    check_dim("logits", logits, 3, "(B, N, A)")
    check_shape("q_value", q_value, logits.shape, "(B, N, A)")
    check_shapes(logits.shape[:2], "(B, N)", action=action, returns=returns)
    log_pi = torch.log_softmax(logits, -1)
    pi = log_pi.exp()
    taken = action.long().unsqueeze(-1)
    q_taken = q_value.gather(-1, taken).squeeze(-1)
    baseline = (pi * q_value).sum(-1)
    advantage = (q_taken - baseline).detach()
    policy_loss = -_weighted_mean(log_pi.gather(-1, taken).squeeze(-1) * advantage, weight)
    value_loss = 0.5 * _weighted_mean((q_taken - returns.detach()).pow(2), weight)
    entropy = -(pi * log_pi).sum(-1)
    return COMALoss(policy_loss, value_loss, -_weighted_mean(entropy, weight))
