"""Argument checks that name the field and the allowed values (bad input fails before training)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import torch

from lightning_rl.errors import ReportedError


class ConfigError(ReportedError, ValueError):
    """A bad configuration value; ``lightning-rl`` reports it as one line and exits with status 2."""

    exit_code = 2


def check_range(name: str, value: float, low: float, high: float, low_open: bool = False) -> None:
    """``low <= value <= high`` (``low < value`` when ``low_open``)."""
    if not (low < value <= high if low_open else low <= value <= high):
        raise ValueError(f"{name} must be in {'(' if low_open else '['}{low}, {high}], got {value}")


def check_positive(**values: float | None) -> None:
    """Every given value is > 0 (``None`` means "unset" and is skipped)."""
    for name, value in values.items():
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")


def check_int(name: str, value: Any, low: int) -> int:
    """``value`` is an int (not a bool) ``>= low``; returns it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def check_choice(name: str, value: Any, allowed: Collection[Any]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")


def describe(x: Any) -> str:
    """What a bad argument was, for error messages: a tensor's shape, dtype and device, else its type."""
    if isinstance(x, torch.Tensor):
        return f"tensor(shape={tuple(x.shape)}, dtype={x.dtype}, device={x.device})"
    return type(x).__name__
