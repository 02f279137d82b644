"""Small tensor helpers shared by the hand-computed rl_utils tests."""

from __future__ import annotations

import torch


def t(values, dtype=torch.float32, requires_grad=False):
    return torch.tensor(values, dtype=dtype, requires_grad=requires_grad)


def close(actual, expected, atol=1e-5, rtol=1e-5):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=atol, rtol=rtol)


def column(values):
    """A (T, 1) time-major tensor: one env, ``len(values)`` steps."""
    return t([[v] for v in values])


def random_chunk(time, batch, generator, p_end=0.2):
    """A random time-major chunk, float64 ``(T, B)``: ``(reward, value, next_value, terminated, truncated)``.

    Each step terminates with probability ``p_end`` and otherwise truncates with probability ``p_end``.
    """
    shape = (time, batch)
    reward, value, next_value = (
        torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(3)
    )
    terminated = torch.rand(time, batch, generator=generator) < p_end
    truncated = (torch.rand(time, batch, generator=generator) < p_end) & ~terminated
    return reward, value, next_value, terminated, truncated


def as_lists(*tensors):
    """Nested Python lists, for the element-by-element reference implementations."""
    return [tensor.tolist() for tensor in tensors]
