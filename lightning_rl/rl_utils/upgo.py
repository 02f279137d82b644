"""Upgoing policy update (UPGO, AlphaStar: Vinyals et al., 2019), as in DI-engine's ``upgo``.

Time-major ``(T, B)`` tensors, with the ``value`` / ``next_value`` / ``terminated`` / ``truncated``
conventions of :mod:`~lightning_rl.rl_utils.advantage`: a chunk may span episode boundaries, no trace
crosses a boundary, ``terminated`` cuts the bootstrap and ``truncated`` bootstraps from ``next_value``.
"""

from __future__ import annotations

import torch

from lightning_rl.rl_utils._checks import check_clip, check_time_major
from lightning_rl.rl_utils.advantage import _checked_chunk

__all__ = ["upgo_returns", "upgo_loss"]


def upgo_returns(
    reward: torch.Tensor,
    value: torch.Tensor,
    next_value: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor | None,
    gamma: float,
) -> torch.Tensor:
    """UPGO targets: follow the sampled trajectory only while it does better than expected.

    The one-step action-value estimate of step t is ``Q_t = r_t + gamma * (1 - terminated_t) *
    next_value_t``. The trace from step t continues into step t+1 when step t does not end the episode
    (``done_t = terminated_t | truncated_t`` is 0), t+1 is inside the chunk, and ``Q_{t+1} >= value_{t+1}``
    (the next action was at least as good as the policy's average)::

        continue_t = (1 - done_t) * [t < T - 1] * [Q_{t+1} >= value_{t+1}]
        G_t = r_t + gamma * (1 - terminated_t) * (continue_t * G_{t+1} + (1 - continue_t) * next_value_t)

    So ``G_{T-1} = Q_{T-1}`` and at an episode end ``G_t = Q_t``. This is DI-engine's ``upgo_returns``
    (a lambda-return whose lambda is the indicator above) with a discount and episode boundaries.

    Computed without gradient.

    Shapes:
        - reward, value, next_value: :math:`(T, B)`.
        - terminated: :math:`(T, B)` bool or float; truncated: :math:`(T, B)` or None.
        - output: :math:`(T, B)`.
    """
    time, not_terminated, not_done = _checked_chunk(
        reward, terminated, truncated, gamma, value=value, next_value=next_value
    )
    with torch.no_grad():
        value = value.detach()
        next_value = next_value.detach()
        bootstrap = gamma * not_terminated
        q = reward + bootstrap * next_value
        upgoing = (q[1:] >= value[1:]).to(reward.dtype)
        cont = not_done * torch.cat([upgoing, torch.zeros_like(reward[:1])], dim=0)

        returns = torch.empty_like(reward)
        following = torch.zeros_like(reward[0])
        for t in reversed(range(time)):
            following = reward[t] + bootstrap[t] * (cont[t] * following + (1.0 - cont[t]) * next_value[t])
            returns[t] = following
    return returns


def upgo_loss(
    target_log_prob: torch.Tensor,
    rhos: torch.Tensor,
    reward: torch.Tensor,
    value: torch.Tensor,
    next_value: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor | None,
    gamma: float,
    rho_clip: float = 1.0,
) -> torch.Tensor:
    """UPGO policy-gradient loss ``-mean(min(rhos, rho_clip) * (G - value) * target_log_prob)``.

    ``G`` = :func:`upgo_returns`; the advantage ``min(rhos, rho_clip) * (G - value)`` is detached, so only
    ``target_log_prob`` receives gradient. It is a loss to minimize (added to the total loss with a
    positive weight).

    Args:
        rhos: importance ratios ``pi(a|s) / mu(a|s)`` (``exp(target_log_prob - behaviour_log_prob)``);
            ones for on-policy data.
        rho_clip: the ratios are clipped from above at this value (> 0; ``inf`` for no clipping).

    Shapes:
        - target_log_prob: :math:`(T, B)` with gradient; rhos: :math:`(T, B)`.
        - reward, value, next_value, terminated: :math:`(T, B)`; truncated: :math:`(T, B)` or None.
        - output: :math:`()`.
    """
    check_clip("rho_clip", rho_clip)
    check_time_major(reward, target_log_prob=target_log_prob, rhos=rhos)
    returns = upgo_returns(reward, value, next_value, terminated, truncated, gamma)
    with torch.no_grad():
        advantage = rhos.detach().clamp(max=rho_clip) * (returns - value.detach())
    return -(advantage * target_log_prob).mean()
