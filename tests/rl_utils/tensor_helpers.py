"""Small tensor helpers shared by the hand-computed rl_utils tests."""

from __future__ import annotations

import torch


def t(values, dtype=torch.float32, requires_grad=False):
    return torch.tensor(values, dtype=dtype, requires_grad=requires_grad)


def close(actual, expected, atol=1e-5):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=atol, rtol=1e-5)


def column(values):
    """A (T, 1) time-major tensor: one env, ``len(values)`` steps."""
    return t([[v] for v in values])
