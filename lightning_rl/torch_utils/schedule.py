"""One schedule type for every annealed value: epsilon, learning rate, clip range, entropy weight, beta."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["SCHEDULE_KINDS", "Schedule", "ScheduleKind"]

ScheduleKind = Literal["constant", "linear", "exp"]
SCHEDULE_KINDS: tuple[str, ...] = ("constant", "linear", "exp")


@dataclass(frozen=True)
class Schedule:
    """``schedule(t) -> float`` over a counter ``t`` (env steps, updates, or a budget fraction in [0, 1]).

    * ``"constant"``: ``start``.
    * ``"linear"``: ``start + (end - start) * min(t / duration, 1)``: from ``start`` to ``end`` over
      ``duration``, then held at ``end``.
    * ``"exp"``: ``end + (start - end) * exp(-t / duration)`` (DI-engine's exponential epsilon decay).

    Negative ``t`` counts as 0. ``end=None`` means 0 (anneal to zero).

    Examples:
        ``Schedule(1.0, 0.05, "linear", 10_000)(env_steps)``: DQN's epsilon over env steps.
        ``Schedule(3e-4, None, "linear")(progress)``: a learning rate annealed to 0 over the budget.
    """

    start: float
    end: float | None = None
    kind: ScheduleKind = "linear"
    duration: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(f"kind must be one of {SCHEDULE_KINDS}, got {self.kind!r}")
        if not self.duration > 0:
            raise ValueError(f"duration must be > 0, got {self.duration}")
        if self.end is None:
            object.__setattr__(self, "end", 0.0)

    def __call__(self, t: float) -> float:
        if self.kind == "constant":
            return self.start
        if self.kind == "linear":
            return self.start + (self.end - self.start) * min(max(t, 0) / self.duration, 1.0)
        return self.end + (self.start - self.end) * math.exp(-max(t, 0) / self.duration)
