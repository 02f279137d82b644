"""Advantage estimation over time-major trajectories: generalized advantage estimation (GAE).

Conventions shared with :mod:`~lightning_rl.rl_utils.vtrace` and :mod:`~lightning_rl.rl_utils.upgo` (the
on-policy and IMPALA-style policies rely on them):

* Tensors are time-major ``(T, B)``: ``B`` environments, ``T`` consecutive steps each. A chunk may span
  episode boundaries.
* ``value[t] = V(s_t)`` is the value of the observation at step ``t``.
* ``next_value[t]`` is the value of the *true* next observation of step ``t``: ``V(s_{t+1})`` inside an
  episode, and ``V(final_obs)`` at a time-limit truncation (the collector supplies the final observation;
  the next row of ``value`` then already belongs to the reset episode). At a termination its value is
  irrelevant (multiplied by 0), and at the end of the chunk it is the bootstrap value.
* ``terminated[t]`` (bool or float) is 1 when step ``t`` ended the episode in a terminal state: no bootstrap
  from ``next_value[t]``. ``truncated[t]`` is 1 when the episode was cut by a time limit: it bootstraps from
  ``next_value[t]``. Either one stops every trace (eligibility, importance weights) from crossing into the
  next episode. ``truncated=None`` means no truncation in the chunk.
* Targets and advantages are computed without gradient and returned detached.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from lightning_rl.rl_utils._checks import check_time_major, check_unit_interval

__all__ = ["GAEReturns", "gae"]


class GAEReturns(NamedTuple):
    """Output of :func:`gae`: ``advantage`` and ``returns = advantage + value``, both :math:`(T, B)`."""

    advantage: torch.Tensor
    returns: torch.Tensor


# ---------------------------------------------------------------------------------------------------------
# What the time-major estimators (advantage, vtrace, upgo) share
# ---------------------------------------------------------------------------------------------------------


def _masks(
    reward: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(not_terminated, not_done)`` as float masks of ``reward``'s dtype.

    ``not_terminated`` gates the bootstrap from ``next_value``; ``not_done`` (neither terminated nor
    truncated) gates every trace that links step t to step t+1.
    """
    terminated = terminated.bool()
    done = terminated if truncated is None else terminated | truncated.bool()
    return (~terminated).to(reward.dtype), (~done).to(reward.dtype)


def _checked_chunk(
    reward: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor | None,
    gamma: float,
    **tensors: torch.Tensor | None,
) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Check ``gamma`` and that ``terminated``, ``truncated`` and ``tensors`` have ``reward``'s shape (T, B);
    return ``(T, not_terminated, not_done)`` (:func:`_masks`)."""
    check_unit_interval("gamma", gamma)
    time, _ = check_time_major(reward, **tensors, terminated=terminated, truncated=truncated)
    return time, *_masks(reward, terminated, truncated)


# ---------------------------------------------------------------------------------------------------------
# GAE
# ---------------------------------------------------------------------------------------------------------


def gae(
    reward: torch.Tensor,
    value: torch.Tensor,
    next_value: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor | None,
    gamma: float,
    lambda_: float,
) -> GAEReturns:
    """Generalized advantage estimation (Schulman et al., 2016) with correct truncation bootstrapping.

    Backwards over the chunk, with ``A_T = 0``::

        delta_t = r_t + gamma * (1 - terminated_t) * next_value_t - value_t
        A_t     = delta_t + gamma * lambda_ * (1 - (terminated_t | truncated_t)) * A_{t+1}
        returns = A + value

    So a termination neither bootstraps nor traces; a truncation bootstraps from ``next_value_t``
    (``V(final_obs)``) but does not trace into the next episode; the last step of the chunk bootstraps
    from ``next_value[T-1]``. ``lambda_ = 0`` gives the TD(0) errors, ``lambda_ = 1`` the discounted
    return to the end of the episode (or chunk, plus the discounted bootstrap) minus ``value``.

    Computed without gradient.

    Args:
        gamma: discount in [0, 1].
        lambda_: GAE lambda in [0, 1].

    Returns:
        :class:`GAEReturns` ``(advantage, returns)``.

    Shapes:
        - reward, value, next_value: :math:`(T, B)`.
        - terminated: :math:`(T, B)` bool or float; truncated: :math:`(T, B)` bool or float, or None.
        - advantage, returns: :math:`(T, B)`.
    """
    check_unit_interval("lambda_", lambda_)
    time, not_terminated, not_done = _checked_chunk(
        reward, terminated, truncated, gamma, value=value, next_value=next_value
    )
    with torch.no_grad():
        value = value.detach()
        delta = reward + gamma * not_terminated * next_value.detach() - value
        trace = (gamma * lambda_) * not_done
        advantage = torch.empty_like(reward)
        next_advantage = torch.zeros_like(reward[0])
        for t in reversed(range(time)):
            next_advantage = delta[t] + trace[t] * next_advantage
            advantage[t] = next_advantage
    return GAEReturns(advantage, advantage + value)
