"""Argument checks that name the field and the allowed values (bad input fails before training).

Each check raises a :class:`ConfigError` whose text reads as before (``batch_size must be > 0, got 0``)
and which also carries the parts separately (``field``, ``problem``, ``allowed``), so that
``lightning-rl`` can print the field under its config section:
``error: data.init_args.batch_size: got 0; allowed: > 0``.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import torch

from lightning_rl.errors import ReportedError

CONFIG_SECTIONS = ("model", "data", "trainer", "evaluator")  # the top-level sections of a run's config


class ConfigError(ReportedError, ValueError):
    """A bad configuration value; ``lightning-rl`` reports it as one line and exits with status 2.

    Args:
        message: the whole sentence (``str(error)``).
        field: the argument at fault, relative to its class (``batch_size``); ``None``: not one field.
        problem: what is wrong with it, short (``got 0``); default: ``message``.
        allowed: the allowed values or range (``> 0``, ``'huber', 'mse'``), if there is a known set.
    """

    exit_code = 2

    def __init__(
        self, message: str, field: str | None = None, problem: str | None = None, allowed: str | None = None
    ):
        super().__init__(message)
        self.field, self.problem, self.allowed = field, problem or message, allowed

    def line(self, section: str = "") -> str:
        """``<section><field>: <problem>; allowed: <allowed>`` (the ``lightning-rl`` error line); a field
        already named from the config's top (``data.init_args.minibatch``, raised by a policy about its
        DataModule) is not put under ``section``."""
        if self.field is None:
            text = f"{section.rstrip('.')}: {self}" if section else str(self)
        elif self.field.partition(".")[0] in CONFIG_SECTIONS:
            text = f"{self.field}: {self.problem}"
        else:
            text = f"{section}{self.field}: {self.problem}"
        if self.allowed is not None:
            text += f"; allowed: {self.allowed}"
        return text


def invalid(field: str, value: Any, allowed: str, rule: str | None = None) -> ConfigError:
    """The error of ``field`` holding ``value`` outside ``allowed`` (``rule``: the sentence's wording of
    ``allowed``, e.g. ``must be > 0``)."""
    return ConfigError(
        f"{field} {rule or f'must be {allowed}'}, got {value!r}", field, f"got {value!r}", allowed
    )


def check_range(name: str, value: float, low: float, high: float, low_open: bool = False) -> None:
    """``low <= value <= high`` (``low < value`` when ``low_open``)."""
    if not (low < value <= high if low_open else low <= value <= high):
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise invalid(name, value, interval, f"must be in {interval}")


def check_positive(**values: float | None) -> None:
    """Every given value is > 0 (``None`` means "unset" and is skipped)."""
    for name, value in values.items():
        if value is not None and not value > 0:
            raise invalid(name, value, "> 0")


def check_at_least(name: str, value: float | None, low: float) -> None:
    """A finite ``value >= low`` (``None`` means "unset" and is skipped)."""
    if value is not None and (isinstance(value, bool) or not (math.isfinite(value) and value >= low)):
        raise invalid(name, value, f">= {low}")


def check_int(name: str, value: Any, low: int) -> int:
    """``value`` is an int (not a bool) ``>= low``; returns it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise invalid(name, value, f"an int >= {low}")
    return value


def check_choice(name: str, value: Any, allowed: Collection[Any]) -> None:
    if value not in allowed:
        raise invalid(name, value, ", ".join(map(repr, sorted(allowed))), f"must be one of {sorted(allowed)}")


def describe(x: Any) -> str:
    """What a bad argument was, for error messages: a tensor's shape, dtype and device, else its type."""
    if isinstance(x, torch.Tensor):
        return f"tensor(shape={tuple(x.shape)}, dtype={x.dtype}, device={x.device})"
    return type(x).__name__
