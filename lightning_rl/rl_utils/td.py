"""Temporal-difference losses and return estimators: pure tensor functions.

Conventions shared by every function here (the policies rely on them):

* Transitions are batch-first: ``q: (B, A)``, ``action: (B,)`` int64, ``reward: (B, n)`` holding
  ``r_t .. r_{t+n-1}`` and zero-padded after the episode ended.
* ``terminated: (B,)`` (bool or float) is 1 when the episode terminated inside the window: no bootstrap.
  A time-limit truncation is *not* terminated: it bootstraps from the last observation.
* ``steps: (B,)`` int64 or ``None`` is the number of real env steps in the window (1..n); the
  bootstrap is discounted by ``gamma ** steps`` (``None`` means ``gamma ** n``).
* ``weight: (B,)`` importance-sampling weights or ``None`` (all ones).
* Targets are computed without gradient; only the online prediction (``q``, ``v``, ``dist``) gets one.
* TD losses return ``(loss, abs_td_error)`` where ``abs_td_error = |target - prediction|`` is detached,
  ready to be written back as priorities.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from lightning_rl.rl_utils._checks import (
    check_batch,
    check_choice,
    check_dim,
    check_non_negative,
    check_shape,
    check_unit_interval,
)

__all__ = [
    "QOneStepData",
    "q_1step_td_data",
    "QNStepData",
    "VOneStepData",
    "VNStepData",
    "TDLambdaData",
    "DistNStepData",
    "q_1step_td_error",
    "q_nstep_td_error",
    "q_nstep_td_error_with_rescale",
    "cql_penalty",
    "v_1step_td_error",
    "v_nstep_td_error",
    "value_transform",
    "value_inv_transform",
    "generalized_lambda_returns",
    "td_lambda_error",
    "categorical_projection",
    "dist_nstep_td_error",
    "qr_nstep_td_error",
]

LOSS_TYPES = ("mse", "huber")


# ---------------------------------------------------------------------------------------------------------
# Data containers
# ---------------------------------------------------------------------------------------------------------


class QOneStepData(NamedTuple):
    """One-step Q-learning transition batch. See :func:`q_1step_td_error` for shapes."""

    q: torch.Tensor
    next_q: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    next_action: torch.Tensor | None = None
    weight: torch.Tensor | None = None


q_1step_td_data = QOneStepData  # nerveX's / DI-engine's name, built as (q, next_q, action, reward, done)


class QNStepData(NamedTuple):
    """n-step Q-learning transition batch. See :func:`q_nstep_td_error` for shapes."""

    q: torch.Tensor
    next_q: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    next_action: torch.Tensor | None = None
    steps: torch.Tensor | None = None
    weight: torch.Tensor | None = None


class VOneStepData(NamedTuple):
    """One-step state-value transition batch. See :func:`v_1step_td_error` for shapes."""

    v: torch.Tensor
    next_v: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    weight: torch.Tensor | None = None


class VNStepData(NamedTuple):
    """n-step state-value transition batch. See :func:`v_nstep_td_error` for shapes."""

    v: torch.Tensor
    next_v: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    steps: torch.Tensor | None = None
    weight: torch.Tensor | None = None


class TDLambdaData(NamedTuple):
    """Time-major chunk for TD(lambda) value learning. See :func:`td_lambda_error` for shapes."""

    value: torch.Tensor
    reward: torch.Tensor
    weight: torch.Tensor | None = None
    terminated: torch.Tensor | None = None


class DistNStepData(NamedTuple):
    """n-step distributional (C51) transition batch. See :func:`dist_nstep_td_error` for shapes."""

    dist: torch.Tensor
    next_dist: torch.Tensor
    action: torch.Tensor
    next_action: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    steps: torch.Tensor | None = None
    weight: torch.Tensor | None = None


# ---------------------------------------------------------------------------------------------------------
# Validation and shared pieces
# ---------------------------------------------------------------------------------------------------------


def _nstep_reward(reward: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Accept ``(B,)`` as a 1-step window; return ``(B, n)``."""
    if reward.dim() == 1:
        reward = reward.unsqueeze(-1)
    if reward.dim() != 2 or reward.shape[0] != batch_size or reward.shape[1] < 1:
        raise ValueError(f"reward must have shape ({batch_size}, n) with n >= 1, got {tuple(reward.shape)}")
    return reward


def _discounted_reward_and_bootstrap(
    reward: torch.Tensor, terminated: torch.Tensor, steps: torch.Tensor | None, gamma: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``sum_k gamma^k r_{t+k}`` and the bootstrap factor ``gamma^steps * (1 - terminated)``.

    ``reward`` is ``(B, n)``; the padding after the episode end is zero so it adds nothing.
    """
    nstep = reward.shape[1]
    discounts = gamma ** torch.arange(nstep, device=reward.device, dtype=reward.dtype)
    discounted_reward = (reward * discounts).sum(-1)
    if steps is None:
        bootstrap_discount = torch.full_like(discounted_reward, gamma**nstep)
    else:
        bootstrap_discount = torch.pow(gamma, steps.to(reward.dtype))
    not_terminated = 1.0 - terminated.to(reward.dtype)
    return discounted_reward, bootstrap_discount * not_terminated


def _weighted_loss(
    prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, loss_type: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample criterion, importance-weighted mean, and the detached absolute TD error."""
    if loss_type == "mse":
        per_sample = (prediction - target).pow(2)
    else:
        per_sample = F.smooth_l1_loss(prediction, target, reduction="none", beta=1.0)
    if weight is not None:
        per_sample = per_sample * weight
    return per_sample.mean(), (target - prediction).abs().detach()


def _select_next_q(next_q: torch.Tensor, next_action: torch.Tensor | None) -> torch.Tensor:
    # Without next_action this is vanilla DQN (max over the target net); with it, double DQN where the
    # caller chose next_action with the online net.
    if next_action is None:
        return next_q.max(dim=-1).values
    return next_q.gather(-1, next_action.long().unsqueeze(-1)).squeeze(-1)


def _check_q_data(
    q: torch.Tensor,
    next_q: torch.Tensor,
    action: torch.Tensor,
    terminated: torch.Tensor,
    next_action: torch.Tensor | None,
    steps: torch.Tensor | None,
    weight: torch.Tensor | None,
    layout: str = "(B, A)",
) -> int:
    """The batch size, after checking that ``q`` has ``layout`` (``(B, A)`` Q-values, ``(B, A, N)``
    quantiles), ``next_q`` its shape and the per-sample tensors ``(B,)``."""
    check_dim("q", q, layout.count(",") + 1, layout)
    check_shape("next_q", next_q, tuple(q.shape))
    batch_size = q.shape[0]
    check_batch(
        batch_size, action=action, terminated=terminated, next_action=next_action, steps=steps, weight=weight
    )
    return batch_size


def _q_nstep_loss(
    data: QNStepData, gamma: float, loss_type: str, rescale_eps: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`q_nstep_td_error`, or with ``rescale_eps`` :func:`q_nstep_td_error_with_rescale`."""
    check_unit_interval("gamma", gamma)
    check_choice("loss_type", loss_type, LOSS_TYPES)
    q, next_q, action, reward, terminated, next_action, steps, weight = data
    batch_size = _check_q_data(q, next_q, action, terminated, next_action, steps, weight)
    reward = _nstep_reward(reward, batch_size)

    with torch.no_grad():
        discounted_reward, bootstrap = _discounted_reward_and_bootstrap(reward, terminated, steps, gamma)
        next_value = _select_next_q(next_q, next_action)
        if rescale_eps is None:
            target = discounted_reward + bootstrap * next_value
        else:
            next_value = value_inv_transform(next_value, rescale_eps)
            target = value_transform(discounted_reward + bootstrap * next_value, rescale_eps)
    q_taken = q.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
    return _weighted_loss(q_taken, target, weight, loss_type)


# ---------------------------------------------------------------------------------------------------------
# Q-learning
# ---------------------------------------------------------------------------------------------------------


def q_nstep_td_error(
    data: QNStepData, gamma: float, loss_type: str = "mse"
) -> tuple[torch.Tensor, torch.Tensor]:
    """n-step Q-learning TD loss (DQN / double DQN).

    ``target = sum_k gamma^k r_{t+k} + gamma^steps * (1 - terminated) * next_q[next_action]``, where
    ``next_action`` defaults to ``argmax next_q`` (vanilla DQN). The target carries no gradient.

    Args:
        data: :class:`QNStepData`.
        gamma: discount factor in [0, 1].
        loss_type: ``"mse"`` or ``"huber"`` (smooth L1 with delta 1), applied per sample.

    Returns:
        ``(loss, abs_td_error)``: ``loss = mean(weight * criterion(q[action], target))`` and the detached
        ``|target - q[action]|`` for priorities.

    Shapes:
        - q: :math:`(B, A)` online Q-values at s_t.
        - next_q: :math:`(B, A)` target-net Q-values at s_{t+steps}.
        - action: :math:`(B,)` int64.
        - reward: :math:`(B, n)` r_t..r_{t+n-1}, zero after the episode ended (``(B,)`` is read as n=1).
        - terminated: :math:`(B,)` bool or float.
        - next_action: :math:`(B,)` int64 or None.
        - steps: :math:`(B,)` int64 or None (``None`` -> n).
        - weight: :math:`(B,)` or None.
        - loss: :math:`()`; abs_td_error: :math:`(B,)`.
    """
    return _q_nstep_loss(data, gamma, loss_type, rescale_eps=None)


def q_1step_td_error(
    data: QOneStepData, gamma: float, weight: torch.Tensor | None = None, loss_type: str = "mse"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-step Q-learning TD loss (DQN / double DQN).

    ``target = r_t + gamma * (1 - terminated) * next_q[next_action]`` with ``next_action`` defaulting to
    ``argmax next_q``. Same as :func:`q_nstep_td_error` with n = 1. The importance weights come in
    ``data.weight`` or, as nerveX's ``q_1step_td_error(data, gamma, weights)`` takes them, in
    ``weight`` (not both).

    Returns:
        ``(loss, abs_td_error)`` as in :func:`q_nstep_td_error`.

    Shapes:
        - q, next_q: :math:`(B, A)`.
        - action, next_action (or None): :math:`(B,)` int64.
        - reward: :math:`(B,)`.
        - terminated: :math:`(B,)` bool or float.
        - weight: :math:`(B,)` or None.
        - loss: :math:`()`; abs_td_error: :math:`(B,)`.
    """
    q, next_q, action, reward, terminated, next_action, data_weight = data
    if weight is not None and data_weight is not None:
        raise ValueError("weight is given twice: in data.weight and as the weight argument; give one")
    weight = data_weight if weight is None else weight
    check_shape("reward", reward, (q.shape[0],))
    nstep_data = QNStepData(q, next_q, action, reward, terminated, next_action, None, weight)
    return q_nstep_td_error(nstep_data, gamma, loss_type)


def cql_penalty(q: torch.Tensor, action: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Conservative Q-learning regularizer for discrete actions (CQL(H), Kumar et al. 2020, eq. 4).

    ``penalty = mean(weight * (logsumexp_a' q[a'] - q[action]))``: pushes down the Q-values of all
    actions (a soft maximum) and up the one of the action in the data, so actions the data never takes
    are not overestimated. Added to a TD loss as ``alpha * penalty`` for offline training; it is >= 0
    and only the soft maximum's excess over the data action matters (adding a constant to a row of
    ``q`` leaves it unchanged).

    Shapes:
        - q: :math:`(B, A)` online Q-values at s_t (with gradient).
        - action: :math:`(B,)` int64, the actions in the data.
        - weight: :math:`(B,)` or None (all ones).
        - penalty: :math:`()`.
    """
    check_dim("q", q, 2, "(B, A)")
    check_batch(q.shape[0], action=action, weight=weight)
    q_taken = q.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
    per_sample = torch.logsumexp(q, dim=-1) - q_taken
    if weight is not None:
        per_sample = per_sample * weight
    return per_sample.mean()


def qr_nstep_td_error(
    data: QNStepData, gamma: float, kappa: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """n-step quantile-regression TD loss (QR-DQN, Dabney et al., 2018).

    The ``N`` quantiles ``q[action]`` sit at the midpoints ``tau_i = (2i + 1) / (2N)``; the target
    quantiles are ``sum_k gamma^k r_{t+k} + gamma^steps * (1 - terminated) * next_q[next_action]``
    (``next_action`` defaults to the argmax of the target quantiles' mean). With ``u_ij = target_j -
    q_i`` the per-sample loss is ``sum_i mean_j |tau_i - 1{u_ij < 0}| * L_kappa(u_ij) / kappa``, where
    ``L_kappa`` is the Huber loss with threshold ``kappa`` (``kappa = 0``: ``|u_ij|``, the plain quantile
    loss).

    Returns:
        ``(loss, per_sample)``: ``loss = mean(weight * per_sample)`` and the detached per-sample loss
        :math:`(B,)`, the priority.

    Shapes:
        - q: :math:`(B, A, N)` online quantiles at s_t; next_q: :math:`(B, A, N)` target-net ones at
          s_{t+steps}.
        - action, reward, terminated, next_action, steps, weight: as :func:`q_nstep_td_error`.
        - loss: :math:`()`; per_sample: :math:`(B,)`.
    """
    check_unit_interval("gamma", gamma)
    check_non_negative(kappa=kappa)
    q, next_q, action, reward, terminated, next_action, steps, weight = data
    batch_size = _check_q_data(q, next_q, action, terminated, next_action, steps, weight, "(B, A, N)")
    n_quantiles = q.shape[-1]
    reward = _nstep_reward(reward, batch_size)
    batch_index = torch.arange(batch_size, device=q.device)
    with torch.no_grad():
        discounted_reward, bootstrap = _discounted_reward_and_bootstrap(reward, terminated, steps, gamma)
        if next_action is None:
            next_action = next_q.mean(-1).argmax(-1)
        next_quantiles = next_q[batch_index, next_action.long()]  # (B, N)
        target = discounted_reward.unsqueeze(-1) + bootstrap.unsqueeze(-1) * next_quantiles
    quantiles = q[batch_index, action.long()]  # (B, N)
    u = target.unsqueeze(1) - quantiles.unsqueeze(2)  # (B, N_pred, N_target)
    if kappa > 0:
        huber = F.huber_loss(u, torch.zeros_like(u), reduction="none", delta=kappa) / kappa
    else:
        huber = u.abs()
    tau = (2 * torch.arange(n_quantiles, device=q.device, dtype=q.dtype) + 1) / (2 * n_quantiles)
    per_sample = ((tau.unsqueeze(-1) - (u.detach() < 0).to(q.dtype)).abs() * huber).mean(-1).sum(-1)
    weighted = per_sample if weight is None else per_sample * weight
    return weighted.mean(), per_sample.detach()


# ---------------------------------------------------------------------------------------------------------
# Value rescaling (R2D2)
# ---------------------------------------------------------------------------------------------------------


def value_transform(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """The R2D2 value rescaling ``h(x) = sign(x) * (sqrt(|x| + 1) - 1) + eps * x`` (Pohlen et al., 2018).

    Shapes:
        - x: any; output: same as x.
    """
    check_non_negative(eps=eps)
    return torch.sign(x) * (torch.sqrt(x.abs() + 1.0) - 1.0) + eps * x


def value_inv_transform(x: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Exact inverse of :func:`value_transform`.

    ``h^{-1}(x) = sign(x) * (y^2 - 1)`` with ``y = (sqrt(1 + 4 eps (|x| + 1 + eps)) - 1) / (2 eps)``.
    Evaluated as ``(y - 1) * (y + 1)`` with ``y - 1`` rewritten algebraically so that neither factor
    cancels catastrophically near 0 in float32; the form also holds for ``eps = 0``.

    Shapes:
        - x: any; output: same as x.
    """
    check_non_negative(eps=eps)
    abs_x = x.abs()
    root = torch.sqrt(1.0 + 4.0 * eps * (abs_x + 1.0 + eps))
    y_minus_1 = 4.0 * abs_x * (1.0 + eps + abs_x) / ((1.0 + 2.0 * eps + 2.0 * abs_x + root) * (root + 1.0))
    return torch.sign(x) * y_minus_1 * (y_minus_1 + 2.0)


def q_nstep_td_error_with_rescale(
    data: QNStepData, gamma: float, loss_type: str = "mse", eps: float = 1e-3
) -> tuple[torch.Tensor, torch.Tensor]:
    """n-step Q-learning TD loss in rescaled value space (R2D2).

    The network predicts ``h(Q)``. The target is
    ``h(sum_k gamma^k r_{t+k} + gamma^steps * (1 - terminated) * h^{-1}(next_q[next_action]))`` with ``h``
    = :func:`value_transform`; ``next_action`` defaults to ``argmax next_q`` (``h`` is monotonic, so
    the argmax is the same in either space).

    Returns:
        ``(loss, abs_td_error)`` with the error measured in rescaled space, ``|target - q[action]|``.

    Shapes:
        As :func:`q_nstep_td_error`.
    """
    return _q_nstep_loss(data, gamma, loss_type, rescale_eps=eps)


# ---------------------------------------------------------------------------------------------------------
# State-value TD
# ---------------------------------------------------------------------------------------------------------


def v_nstep_td_error(
    data: VNStepData, gamma: float, loss_type: str = "mse"
) -> tuple[torch.Tensor, torch.Tensor]:
    """n-step state-value TD loss.

    ``target = sum_k gamma^k r_{t+k} + gamma^steps * (1 - terminated) * next_v`` (no gradient).

    Returns:
        ``(loss, abs_td_error)``: ``mean(weight * criterion(v, target))`` and detached ``|target - v|``.

    Shapes:
        - v: :math:`(B,)` online value of s_t.
        - next_v: :math:`(B,)` (target) value of s_{t+steps}.
        - reward: :math:`(B, n)` (``(B,)`` is read as n=1).
        - terminated: :math:`(B,)`; steps: :math:`(B,)` int64 or None; weight: :math:`(B,)` or None.
        - loss: :math:`()`; abs_td_error: :math:`(B,)`.
    """
    check_unit_interval("gamma", gamma)
    check_choice("loss_type", loss_type, LOSS_TYPES)
    v, next_v, reward, terminated, steps, weight = data
    check_dim("v", v, 1, "(B,)")
    batch_size = v.shape[0]
    check_batch(batch_size, next_v=next_v, terminated=terminated, steps=steps, weight=weight)
    reward = _nstep_reward(reward, batch_size)

    with torch.no_grad():
        discounted_reward, bootstrap = _discounted_reward_and_bootstrap(reward, terminated, steps, gamma)
        target = discounted_reward + bootstrap * next_v
    return _weighted_loss(v, target, weight, loss_type)


def v_1step_td_error(
    data: VOneStepData, gamma: float, loss_type: str = "mse"
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-step state-value TD loss: ``target = r_t + gamma * (1 - terminated) * next_v``.

    Returns:
        ``(loss, abs_td_error)`` as in :func:`v_nstep_td_error`.

    Shapes:
        - v, next_v, reward, terminated: :math:`(B,)`; weight: :math:`(B,)` or None.
        - loss: :math:`()`; abs_td_error: :math:`(B,)`.
    """
    v, next_v, reward, terminated, weight = data
    check_shape("reward", reward, tuple(v.shape))
    return v_nstep_td_error(VNStepData(v, next_v, reward, terminated, None, weight), gamma, loss_type)


# ---------------------------------------------------------------------------------------------------------
# Lambda returns
# ---------------------------------------------------------------------------------------------------------


def generalized_lambda_returns(
    rewards: torch.Tensor,
    pcontinues: torch.Tensor | float,
    state_values: torch.Tensor,
    bootstrap_value: torch.Tensor | None,
    lambda_: torch.Tensor | float,
) -> torch.Tensor:
    """Lambda-returns of a time-major chunk, computed backwards (trfl / DI-engine semantics).

    Alignment: at index ``t`` the agent is in s_t, receives ``rewards[t]`` and continues with
    probability-discount ``pcontinues[t]`` (``gamma * (1 - terminated_t)``) into s_{t+1}, whose value is
    ``state_values[t]`` -- i.e. ``state_values`` are the values of the NEXT states, ``V(s_1..s_T)``.
    With ``G_T = bootstrap_value``::

        G_t = rewards[t] + pcontinues[t] * ((1 - lambda_t) * state_values[t] + lambda_t * G_{t+1})

    In the usual case ``bootstrap_value = state_values[-1] = V(s_T)`` (pass ``None`` for that), so
    ``G_{T-1} = r_{T-1} + p_{T-1} V(s_T)``: the trace is cut at the end of the chunk, exactly as in
    trfl/DI-engine. ``lambda_ = 1`` gives the discounted return to the end of the chunk plus the
    discounted ``bootstrap_value`` (Monte-Carlo with a zero bootstrap); ``lambda_ = 0`` gives the one-step
    targets ``rewards[t] + pcontinues[t] * state_values[t]``. A zero ``pcontinues[t]`` (termination) cuts
    both the bootstrap and the trace at t.

    Computed without gradient: these are targets.

    Shapes:
        - rewards: :math:`(T, B)`.
        - pcontinues: :math:`(T, B)` or a float.
        - state_values: :math:`(T, B)`, V(s_{t+1}) for t = 0..T-1.
        - bootstrap_value: :math:`(B,)` or None (-> ``state_values[-1]``).
        - lambda_: float in [0, 1] or :math:`(T, B)`.
        - output: :math:`(T, B)`.
    """
    check_dim("rewards", rewards, 2, "(T, B)")
    check_shape("state_values", state_values, tuple(rewards.shape))
    if bootstrap_value is None:
        bootstrap_value = state_values[-1]
    check_shape("bootstrap_value", bootstrap_value, (rewards.shape[1],))
    if isinstance(pcontinues, torch.Tensor):
        check_shape("pcontinues", pcontinues, tuple(rewards.shape))
    else:
        pcontinues = torch.full_like(rewards, float(pcontinues))
    if isinstance(lambda_, torch.Tensor):
        check_shape("lambda_", lambda_, tuple(rewards.shape))
    else:
        check_unit_interval("lambda_", lambda_)
        lambda_ = torch.full_like(rewards, float(lambda_))

    with torch.no_grad():
        returns = torch.empty_like(rewards)
        next_return = bootstrap_value.detach()
        for t in reversed(range(rewards.shape[0])):
            blended = (1.0 - lambda_[t]) * state_values[t] + lambda_[t] * next_return
            next_return = rewards[t] + pcontinues[t] * blended
            returns[t] = next_return
    return returns


def td_lambda_error(data: TDLambdaData, gamma: float = 0.9, lambda_: float = 0.8) -> torch.Tensor:
    """TD(lambda) state-value loss over a time-major chunk (as DI-engine's ``td_lambda_error``).

    ``G = generalized_lambda_returns(reward, gamma * (1 - terminated), value[1:], value[-1], lambda_)``
    and ``loss = 0.5 * mean(weight * (G - value[:-1])^2)``; only ``value[:-1]`` receives gradient.

    ``terminated[t] = 1`` means s_{t+1} is terminal: no bootstrap from ``value[t+1]`` and the trace is cut
    there (so a chunk may span an episode reset). ``terminated=None`` means no termination in the chunk.
    A truncation inside the chunk cannot be expressed (the value of the truncated last observation is not
    in ``value``); chunks should end at truncations.

    Returns:
        ``loss`` (0-dim). No per-sample error: the priority of a sequence is the caller's choice.

    Shapes:
        - value: :math:`(T+1, B)` values of s_0..s_T.
        - reward: :math:`(T, B)`.
        - weight: :math:`(B,)` or None.
        - terminated: :math:`(T, B)` bool or float, or None.
        - loss: :math:`()`.
    """
    check_unit_interval("gamma", gamma)
    value, reward, weight, terminated = data
    check_dim("reward", reward, 2, "(T, B)")
    time, batch_size = reward.shape
    check_shape("value", value, (time + 1, batch_size))
    check_batch(batch_size, weight=weight)
    if terminated is None:
        pcontinues = torch.full_like(reward, gamma)
    else:
        check_shape("terminated", terminated, (time, batch_size))
        pcontinues = gamma * (1.0 - terminated.to(reward.dtype))
    returns = generalized_lambda_returns(reward, pcontinues, value[1:], value[-1], lambda_)
    per_step = (returns - value[:-1]).pow(2)
    if weight is not None:
        per_step = per_step * weight
    return 0.5 * per_step.mean()


# ---------------------------------------------------------------------------------------------------------
# Distributional (C51)
# ---------------------------------------------------------------------------------------------------------


def categorical_projection(
    next_dist: torch.Tensor,
    discounted_reward: torch.Tensor,
    bootstrap_discount: torch.Tensor,
    v_min: float,
    v_max: float,
) -> torch.Tensor:
    """Project ``discounted_reward + bootstrap_discount * Z`` onto the fixed support (C51).

    ``Z`` has probabilities ``next_dist`` on the atoms ``linspace(v_min, v_max, N)``. Each shifted atom is
    clipped to ``[v_min, v_max]`` and its mass split between the two neighbouring atoms in proportion to
    proximity. An atom landing exactly on a support point keeps all its mass there (the usual
    ``floor``/``ceil`` split would drop it when ``floor == ceil``), so every row still sums to 1.

    Shapes:
        - next_dist: :math:`(B, N)` probabilities (each row sums to 1).
        - discounted_reward: :math:`(B,)`, ``sum_k gamma^k r_{t+k}``.
        - bootstrap_discount: :math:`(B,)`, ``gamma^steps * (1 - terminated)``.
        - output: :math:`(B, N)` probabilities.
    """
    if next_dist.dim() != 2 or next_dist.shape[1] < 2:
        raise ValueError(f"next_dist must have shape (B, N) with N >= 2, got {tuple(next_dist.shape)}")
    if not v_min < v_max:
        raise ValueError(f"v_min must be < v_max, got v_min={v_min}, v_max={v_max}")
    batch_size, n_atom = next_dist.shape
    check_batch(batch_size, discounted_reward=discounted_reward, bootstrap_discount=bootstrap_discount)

    with torch.no_grad():
        support = torch.linspace(v_min, v_max, n_atom, device=next_dist.device, dtype=next_dist.dtype)
        delta = (v_max - v_min) / (n_atom - 1)
        shifted = discounted_reward.unsqueeze(-1) + bootstrap_discount.unsqueeze(-1) * support
        position = ((shifted.clamp(v_min, v_max) - v_min) / delta).clamp(0, n_atom - 1)
        lower = position.floor()
        upper_share = position - lower  # 0 when the atom lands exactly on a support point
        lower_index = lower.long()
        upper_index = (lower_index + 1).clamp(max=n_atom - 1)
        projected = torch.zeros_like(next_dist)
        projected.scatter_add_(1, lower_index, next_dist * (1.0 - upper_share))
        projected.scatter_add_(1, upper_index, next_dist * upper_share)
    return projected


def dist_nstep_td_error(
    data: DistNStepData, gamma: float, v_min: float, v_max: float, n_atom: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """n-step distributional TD loss (C51, Bellemare et al., 2017).

    The target distribution is ``next_dist[next_action]`` shifted by the n-step Bellman operator
    (``sum_k gamma^k r_{t+k} + gamma^steps * (1 - terminated) * z``) and projected onto
    ``linspace(v_min, v_max, n_atom)`` by :func:`categorical_projection`. The loss is the cross-entropy
    against the online ``dist[action]``, whose probabilities are clamped at 1e-8 before the log.

    ``next_action`` is required: the caller picks it (``argmax`` of the expected target Q for C51, or of the
    online net for a double variant).

    Returns:
        ``(loss, cross_entropy)``: ``loss = mean(weight * cross_entropy)`` and the detached per-sample
        cross-entropy :math:`(B,)`, usable as priority.

    Shapes:
        - dist: :math:`(B, A, N)` online probabilities at s_t.
        - next_dist: :math:`(B, A, N)` target-net probabilities at s_{t+steps}.
        - action, next_action: :math:`(B,)` int64.
        - reward: :math:`(B, n)` (``(B,)`` is read as n=1).
        - terminated: :math:`(B,)`; steps: :math:`(B,)` int64 or None; weight: :math:`(B,)` or None.
        - loss: :math:`()`; cross_entropy: :math:`(B,)`.
    """
    check_unit_interval("gamma", gamma)
    dist, next_dist, action, next_action, reward, terminated, steps, weight = data
    if dist.dim() != 3 or dist.shape[-1] != n_atom:
        raise ValueError(f"dist must have shape (B, A, n_atom={n_atom}), got {tuple(dist.shape)}")
    check_shape("next_dist", next_dist, tuple(dist.shape))
    batch_size = dist.shape[0]
    check_batch(
        batch_size, action=action, next_action=next_action, terminated=terminated, steps=steps, weight=weight
    )
    reward = _nstep_reward(reward, batch_size)

    batch_index = torch.arange(batch_size, device=dist.device)
    with torch.no_grad():
        discounted_reward, bootstrap = _discounted_reward_and_bootstrap(reward, terminated, steps, gamma)
        next_dist_taken = next_dist[batch_index, next_action.long()]
        target = categorical_projection(next_dist_taken, discounted_reward, bootstrap, v_min, v_max)
    log_prob = dist[batch_index, action.long()].clamp(min=1e-8).log()
    cross_entropy = -(target * log_prob).sum(-1)
    per_sample = cross_entropy if weight is None else cross_entropy * weight
    return per_sample.mean(), cross_entropy.detach()
