"""n-step Q-learning over stored sequences (R2D2, Kapturowski et al. 2019): pure tensor functions.

Conventions (as :mod:`lightning_rl.rl_utils.td`, with a time axis): sequences are batch-first ``(B, T)``;
``mask`` marks the real steps of each row, one contiguous block (zero padding before an episode's start
and after its end); ``reward`` is one reward per step, zero at padding; an episode terminates only at its
last real step. Targets carry no gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from lightning_rl.rl_utils._checks import (
    check_batch,
    check_choice,
    check_dim,
    check_shape,
    check_unit_interval,
)
from lightning_rl.rl_utils.td import LOSS_TYPES, _weighted_loss, value_inv_transform, value_transform

__all__ = ["QSequenceData", "q_nstep_sequence_td_error"]


class QSequenceData(NamedTuple):
    """A batch of sequences for :func:`q_nstep_sequence_td_error`.

    Shapes:
        - q: :math:`(B, T, A)` online Q-values at the state of each step.
        - bootstrap_q: :math:`(B, T, A)` target-net Q-values at the state *after* each step (for the
          row's last real step: its final observation).
        - action: :math:`(B, T)` int64; reward: :math:`(B, T)`; terminated: :math:`(B, T)` bool or float.
        - mask: :math:`(B, T)` bool, the real steps (one contiguous block, at least one per row).
        - bootstrap_action: :math:`(B, T)` int64 or None: the action valued at the state after each step
          (double Q: chosen by the online net; None: argmax of ``bootstrap_q``).
        - weight: :math:`(B,)` importance weights per sequence, or None.
    """

    q: torch.Tensor
    bootstrap_q: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    mask: torch.Tensor
    bootstrap_action: torch.Tensor | None = None
    weight: torch.Tensor | None = None


def q_nstep_sequence_td_error(
    data: QSequenceData,
    gamma: float,
    nstep: int,
    loss_type: str = "mse",
    rescale_eps: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """n-step TD loss at every real step of every sequence, the n steps taken within the sequence.

    At step ``t`` with ``m = min(nstep, last - t + 1)`` steps left in the row (``last``: its last real
    step) the target is ``sum_{k<m} gamma^k r_{t+k} + gamma^m * (1 - terminated_j) * Q'_j`` with ``j = t
    + m - 1`` and ``Q'_j = bootstrap_q[j, bootstrap_action[j]]``: near a sequence's end the window
    shortens rather than reaching past the stored steps. With ``rescale_eps`` the network predicts
    ``h(Q)`` (:func:`~lightning_rl.rl_utils.value_transform`) and the target is ``h(sum ... + gamma^m
    (1 - terminated_j) h^{-1}(Q'_j))`` (R2D2's value rescaling).

    Returns:
        ``(loss, abs_td_error)``: ``loss`` is the mean over real steps of ``weight * criterion(q[action],
        target)`` (``loss_type`` ``"mse"`` or ``"huber"``), and ``abs_td_error`` :math:`(B, T)` the
        detached ``|target - q[action]|``, zero at padding (for :func:`lightning_rl.data.sequence_priority`).
    """
    check_unit_interval("gamma", gamma)
    check_choice("loss_type", loss_type, LOSS_TYPES)
    if isinstance(nstep, bool) or not isinstance(nstep, int) or nstep < 1:
        raise ValueError(f"nstep must be an int >= 1, got {nstep!r}")
    q, bootstrap_q, action, reward, terminated, mask, bootstrap_action, weight = data
    check_dim("q", q, 3, "(B, T, A)")
    check_shape("bootstrap_q", bootstrap_q, tuple(q.shape))
    batch_size, time = q.shape[:2]
    for name, value in (("action", action), ("reward", reward), ("terminated", terminated), ("mask", mask)):
        check_shape(name, value, (batch_size, time), "(B, T)")
    if bootstrap_action is not None:
        check_shape("bootstrap_action", bootstrap_action, (batch_size, time), "(B, T)")
    check_batch(batch_size, weight=weight)
    if mask.dtype != torch.bool or not bool(mask.any(1).all()):
        raise ValueError("mask must be a bool (B, T) tensor with at least one True per row")

    with torch.no_grad():
        position = torch.arange(time, device=q.device)
        last = time - 1 - mask.flip(1).to(torch.int8).argmax(1)  # (B,) last real step of each row
        steps = (last.unsqueeze(1) - position + 1).clamp(1, nstep)  # (B, T): m
        bootstrap_index = (position + steps - 1).clamp(max=time - 1)  # (B, T): j
        real_reward = reward.masked_fill(~mask, 0.0)
        window = torch.cat([real_reward, real_reward.new_zeros(batch_size, nstep - 1)], 1).unfold(1, nstep, 1)
        discounts = gamma ** torch.arange(nstep, device=q.device, dtype=q.dtype)
        discounted_reward = (window * discounts).sum(-1)  # (B, T): padding beyond `last` adds nothing
        if bootstrap_action is None:
            next_value = bootstrap_q.max(-1).values
        else:
            next_value = bootstrap_q.gather(-1, bootstrap_action.long().unsqueeze(-1)).squeeze(-1)
        next_value = next_value.gather(1, bootstrap_index)
        not_terminated = 1.0 - terminated.to(q.dtype).gather(1, bootstrap_index)
        bootstrap = torch.pow(gamma, steps.to(q.dtype)) * not_terminated
        if rescale_eps is None:
            target = discounted_reward + bootstrap * next_value
        else:
            target = value_transform(
                discounted_reward + bootstrap * value_inv_transform(next_value, rescale_eps), rescale_eps
            )
    q_taken = q.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
    real = mask.nonzero(as_tuple=True)
    step_weight = None if weight is None else weight.unsqueeze(1).expand(batch_size, time)[real]
    loss, abs_td = _weighted_loss(q_taken[real], target[real], step_weight, loss_type)
    abs_td_error = torch.zeros_like(target)
    abs_td_error[real] = abs_td
    return loss, abs_td_error
