"""Argument and shape checks shared by the ``rl_utils`` losses and estimators.

Each raises ``ValueError`` naming the argument, what was expected and what it got, so a bad batch fails
at the loss with a readable message instead of broadcasting silently.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_unit_interval(name: str, x: float) -> None:
    """``0 <= x <= 1`` (discounts, lambdas, probabilities)."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {x}")


def check_non_negative(**values: float) -> None:
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


def check_clip(name: str, x: float) -> None:
    """A clip threshold: ``> 0``, ``inf`` for no clipping."""
    if not x > 0:
        raise ValueError(f"{name} must be > 0 (float('inf') for no clipping), got {x}")


def check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


def check_dim(name: str, tensor: torch.Tensor, ndim: int, layout: str) -> None:
    """``tensor`` has ``ndim`` dimensions; ``layout`` names them for the message, e.g. ``"(B, A)"``."""
    if tensor.dim() != ndim:
        raise ValueError(f"{name} must have shape {layout}, got {tuple(tensor.shape)}")


def check_shape(name: str, tensor: torch.Tensor, shape: Sequence[int], layout: str | None = None) -> None:
    """``tensor.shape == shape``; ``layout`` (e.g. ``"(T, B)"``) names the dimensions in the message."""
    if tuple(tensor.shape) != tuple(shape):
        expected = f"{layout} = {tuple(shape)}" if layout else f"{tuple(shape)}"
        raise ValueError(f"{name} must have shape {expected}, got {tuple(tensor.shape)}")


def check_shapes(shape: Sequence[int], layout: str | None = None, **tensors: torch.Tensor | None) -> None:
    """Every given tensor (``None`` means absent and is skipped) has ``shape``."""
    for name, tensor in tensors.items():
        if tensor is not None:
            check_shape(name, tensor, shape, layout)


def check_batch(batch_size: int, **tensors: torch.Tensor | None) -> None:
    """Every given per-sample tensor has shape ``(B,)``."""
    check_shapes((batch_size,), "(B,)", **tensors)


def check_time_major(reward: torch.Tensor, **tensors: torch.Tensor | None) -> tuple[int, int]:
    """``reward`` is ``(T, B)`` with ``T >= 1`` and every other given tensor has its shape; returns (T, B)."""
    if reward.dim() != 2 or reward.shape[0] < 1:
        raise ValueError(f"reward must have shape (T, B) with T >= 1, got {tuple(reward.shape)}")
    check_shapes(tuple(reward.shape), "(T, B)", **tensors)
    return reward.shape[0], reward.shape[1]
