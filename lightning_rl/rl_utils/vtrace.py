"""V-trace off-policy corrected returns and the IMPALA loss (Espeholt et al., 2018).

Time-major ``(T, B)`` tensors, with the ``value`` / ``next_value`` / ``terminated`` / ``truncated``
conventions of :mod:`~lightning_rl.rl_utils.advantage`: a chunk may span episode boundaries; no trace
(eligibility or importance weight product) crosses a boundary; ``terminated`` cuts the bootstrap and
``truncated`` bootstraps from ``next_value`` (``V(final_obs)``).

Log-probabilities are per step, summed over action dimensions for a multi-dimensional action. The loss
follows the sign and scale conventions of :mod:`~lightning_rl.rl_utils.ppo`: every returned loss is
minimized, ``loss = policy_loss + value_weight * value_loss + entropy_weight * entropy_loss`` with
``entropy_loss = -mean(weight * entropy)`` and a 0.5 factor on the squared value error.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from lightning_rl.rl_utils._checks import check_clip, check_time_major, check_unit_interval
from lightning_rl.rl_utils.advantage import _checked_chunk

__all__ = ["VTraceReturns", "VTraceData", "VTraceLoss", "vtrace", "vtrace_error"]


class VTraceReturns(NamedTuple):
    """Output of :func:`vtrace`: value targets ``vs`` and policy-gradient advantages, both :math:`(T, B)`."""

    vs: torch.Tensor
    pg_advantage: torch.Tensor


class VTraceData(NamedTuple):
    """A time-major IMPALA learner chunk. See :func:`vtrace_error` for shapes."""

    target_log_prob: torch.Tensor
    behaviour_log_prob: torch.Tensor
    entropy: torch.Tensor
    value: torch.Tensor
    next_value: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor | None = None
    weight: torch.Tensor | None = None


class VTraceLoss(NamedTuple):
    """IMPALA losses, each 0-dim; ``loss = policy_loss + vf_coef * value_loss + ent_coef * entropy_loss``."""

    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    entropy_loss: torch.Tensor


def vtrace(
    target_log_prob: torch.Tensor,
    behaviour_log_prob: torch.Tensor,
    reward: torch.Tensor,
    value: torch.Tensor,
    next_value: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor | None,
    gamma: float,
    lambda_: float = 1.0,
    rho_clip: float = 1.0,
    c_clip: float = 1.0,
    pg_rho_clip: float = 1.0,
) -> VTraceReturns:
    """V-trace targets and policy-gradient advantages.

    With ``ratio_t = exp(target_log_prob_t - behaviour_log_prob_t)`` (pi / mu), ``rho_t = min(rho_clip,
    ratio_t)``, ``c_t = lambda_ * min(c_clip, ratio_t)``, and backwards from ``vs_T - V_T = 0``::

        delta_t     = rho_t * (r_t + gamma * (1 - terminated_t) * next_value_t - value_t)
        vs_t        = value_t + delta_t + gamma * (1 - done_t) * c_t * (vs_{t+1} - value_{t+1})
        next_vs_t   = vs_{t+1} if t < T - 1 and not done_t else next_value_t
        pg_advantage_t = min(pg_rho_clip, ratio_t) * (r_t + gamma * (1 - terminated_t) * next_vs_t - value_t)

    where ``done_t = terminated_t | truncated_t``. On-policy (``ratio = 1``, clips >= 1) ``vs`` equals the
    :func:`~lightning_rl.rl_utils.gae` returns with the same ``lambda_``. ``lambda_`` is the trace
    discount of the paper's remark 2 (``c_t = lambda * min(c_bar, ratio)``).

    Computed without gradient.

    Args:
        gamma: discount in [0, 1].
        lambda_: trace discount in [0, 1].
        rho_clip: rho-bar (> 0, ``inf`` for none), clips the importance weight of the TD errors in ``vs``.
        c_clip: c-bar (> 0, ``inf`` for none), clips the trace coefficients.
        pg_rho_clip: clips the importance weight of the policy-gradient advantage.

    Returns:
        :class:`VTraceReturns` ``(vs, pg_advantage)``.

    Shapes:
        - target_log_prob: :math:`(T, B)` log pi(a_t | s_t) of the learner policy.
        - behaviour_log_prob: :math:`(T, B)` log mu(a_t | s_t) of the actor that collected the chunk.
        - reward, value, next_value: :math:`(T, B)`.
        - terminated: :math:`(T, B)` bool or float; truncated: :math:`(T, B)` or None.
        - vs, pg_advantage: :math:`(T, B)`.
    """
    check_unit_interval("lambda_", lambda_)
    check_clip("rho_clip", rho_clip)
    check_clip("c_clip", c_clip)
    check_clip("pg_rho_clip", pg_rho_clip)
    time, not_terminated, not_done = _checked_chunk(
        reward,
        terminated,
        truncated,
        gamma,
        target_log_prob=target_log_prob,
        behaviour_log_prob=behaviour_log_prob,
        value=value,
        next_value=next_value,
    )
    with torch.no_grad():
        value = value.detach()
        next_value = next_value.detach()
        ratio = torch.exp(target_log_prob.detach() - behaviour_log_prob.detach()).to(reward.dtype)
        rho = ratio.clamp(max=rho_clip)
        trace = gamma * not_done * lambda_ * ratio.clamp(max=c_clip)
        delta = rho * (reward + gamma * not_terminated * next_value - value)

        vs_minus_value = torch.empty_like(reward)
        acc = torch.zeros_like(reward[0])
        for t in reversed(range(time)):
            acc = delta[t] + trace[t] * acc
            vs_minus_value[t] = acc
        vs = value + vs_minus_value

        shifted_vs = torch.cat([vs[1:], next_value[-1:]], dim=0)
        next_vs = torch.where(not_done.bool(), shifted_vs, next_value)
        pg_rho = ratio.clamp(max=pg_rho_clip)
        pg_advantage = pg_rho * (reward + gamma * not_terminated * next_vs - value)
    return VTraceReturns(vs, pg_advantage)


def vtrace_error(
    data: VTraceData,
    gamma: float,
    lambda_: float = 1.0,
    rho_clip: float = 1.0,
    c_clip: float = 1.0,
    pg_rho_clip: float = 1.0,
) -> VTraceLoss:
    """IMPALA losses on V-trace targets (see :func:`vtrace` for the targets and the clipping arguments).

    * ``policy_loss = -mean(weight * pg_advantage * target_log_prob)``;
    * ``value_loss = 0.5 * mean(weight * (vs - value)^2)``;
    * ``entropy_loss = -mean(weight * entropy)``;

    means over all ``T * B`` steps. Only ``target_log_prob``, ``entropy`` and ``value`` receive gradient
    (``next_value`` is a bootstrap target).

    Shapes:
        - target_log_prob, behaviour_log_prob, entropy, value, next_value, reward: :math:`(T, B)`.
        - terminated: :math:`(T, B)`; truncated: :math:`(T, B)` or None.
        - weight: :math:`(T, B)` or None (e.g. a padding mask).
        - every output: :math:`()`.
    """
    (
        target_log_prob,
        behaviour_log_prob,
        entropy,
        value,
        next_value,
        reward,
        terminated,
        truncated,
        weight,
    ) = data
    check_time_major(reward, entropy=entropy, weight=weight)
    vs, pg_advantage = vtrace(
        target_log_prob,
        behaviour_log_prob,
        reward,
        value,
        next_value,
        terminated,
        truncated,
        gamma,
        lambda_,
        rho_clip,
        c_clip,
        pg_rho_clip,
    )
    policy_per_step = pg_advantage * target_log_prob
    value_per_step = (vs - value).pow(2)
    if weight is not None:
        policy_per_step = policy_per_step * weight
        value_per_step = value_per_step * weight
        entropy = entropy * weight
    return VTraceLoss(-policy_per_step.mean(), 0.5 * value_per_step.mean(), -entropy.mean())
