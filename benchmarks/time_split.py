"""Where a run's wall time goes: the time spent inside chosen methods, patched for the duration of a run."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any


class TimeSplit:
    """``with TimeSplit(update=(SAC, "train"), eval=(module, "evaluate_policy")) as split: ...`` then
    ``split.totals`` (seconds by label). Each target is ``(owner, attribute)``: a class's method or a
    module's function, replaced by a timing wrapper inside the ``with`` block (the targets must not call
    one another, or their times overlap)."""

    def __init__(self, **targets: tuple[Any, str]):
        self.targets = targets
        self.totals = dict.fromkeys(targets, 0.0)
        self._originals: list[tuple[Any, str, Any]] = []

    def _timed(self, label: str, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.totals[label] += time.perf_counter() - start

        return wrapper

    def __enter__(self) -> TimeSplit:
        for label, (owner, name) in self.targets.items():
            original = vars(owner)[name] if isinstance(owner, type) else getattr(owner, name)
            self._originals.append((owner, name, original))
            setattr(owner, name, self._timed(label, getattr(owner, name)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for owner, name, original in reversed(self._originals):
            setattr(owner, name, original)
        self._originals.clear()

    def describe(self, total_s: float) -> str:
        """``update 12.1 s (71%), eval ..., other ...`` of a run that took ``total_s``."""
        parts = [*self.totals.items(), ("other", total_s - sum(self.totals.values()))]
        return ", ".join(
            f"{label} {seconds:.1f} s ({100 * seconds / total_s:.0f}%)" for label, seconds in parts
        )
