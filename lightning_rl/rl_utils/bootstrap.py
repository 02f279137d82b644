"""Values of true next states for time-major trajectories: the one bootstrap rule of on-policy methods."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["next_state_values"]


def next_state_values(
    value: Tensor, ended: Tensor, next_obs: Tensor, critic: Callable[[Tensor], Tensor]
) -> Tensor:
    """The value of each step's true next state.

    Inside an episode that is the next step's value; where a step ended its episode (terminated or
    truncated) and at the last step of the chunk, the next step belongs to another episode or is
    missing, so the critic values the stored true next observation (``critic(next_obs[ended])``;
    a terminated step's value is masked by the return computation, not here).

    Shapes:
        value: (T, B)  ended: (T, B) bool  next_obs: (T, B, *obs_shape)  critic: (N, *obs_shape) -> (N,)
        returns: (T, B), same dtype as ``value``
    """
    next_value = torch.empty_like(value)
    next_value[:-1] = value[1:]
    ended = ended.clone()
    ended[-1] = True  # the chunk's last step: its next step is not in the chunk
    next_value[ended] = critic(next_obs[ended]).to(next_value.dtype)
    return next_value
