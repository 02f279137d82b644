"""Reading the recorded fields back out of an incoming TensorDict, with errors that name the field."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDictBase

__all__ = ["required_tensor"]


def required_tensor(data: TensorDictBase, key: object, what: str, known: Sequence[object]) -> torch.Tensor:
    """``data[key]`` when it is a tensor; else a ``ValueError`` saying the ``what`` (``"batch"``,
    ``"step"``) lacks ``key`` or holds something else, listing the ``known`` keys."""
    value = data.get(key, None)
    if isinstance(value, torch.Tensor):
        return value
    if value is None:
        raise ValueError(f"{what} is missing key {key!r} (recorded keys: {list(known)})")
    raise ValueError(f"{what} key {key!r} must be a tensor, got {type(value).__name__}")
