"""The importance-sampling exponent schedule of prioritized replay."""

from __future__ import annotations

from collections.abc import Callable

from lightning_rl.data.replay.checks import checked_float, checked_int


def linear_beta(start: float = 0.4, end: float = 1.0, steps: int = 100_000) -> Callable[[int], float]:
    """Importance-sampling exponent annealed linearly from ``start`` to ``end`` over ``steps`` steps,
    then held at ``end`` (Schaul et al. anneal beta to 1 by the end of training)."""
    start = checked_float("start", start, lo=0.0, hi=1.0)
    end = checked_float("end", end, lo=0.0, hi=1.0)
    steps = checked_int("steps", steps, lo=1)

    def beta(step: int) -> float:
        frac = min(max(step, 0) / steps, 1.0)
        return start + (end - start) * frac

    return beta
