"""Keeping the sample-to-insert ratio of a replay buffer in a band (nerveX's reuse control, Reverb's
rate limiter) when collection and learning run concurrently."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["SampleInsertRatio"]


class SampleInsertRatio:
    """Band ``[min_ratio, max_ratio]`` on ``sampled items / inserted items``.

    The learner may sample while the ratio is below ``max_ratio``; the collector may insert while it is
    at or above ``min_ratio``. Each side checks the current counts (not the counts after its own
    operation), so with ``min_ratio <= max_ratio`` at least one side may always proceed: the two can
    never wait for each other. The price is an overshoot of at most one batch (learner) or one vector
    step (collector) past the band edge.

    Args:
        band: ``(min_ratio, max_ratio)`` with ``0 <= min_ratio <= max_ratio``, ``max_ratio > 0`` (else
            the learner could never sample); ``max_ratio`` may be
            ``inf`` (never hold the learner back), ``min_ratio`` 0 (never hold the collector back).
    """

    def __init__(self, band: Sequence[float]):
        if not isinstance(band, Sequence) or isinstance(band, str) or len(band) != 2:
            raise ValueError(f"sample_insert_ratio must be a pair [min_ratio, max_ratio], got {band!r}")
        low, high = (float(x) for x in band)
        if math.isnan(low) or math.isnan(high) or not 0.0 <= low <= high or math.isinf(low) or high == 0:
            raise ValueError(
                "sample_insert_ratio must satisfy 0 <= min_ratio <= max_ratio and max_ratio > 0 (max_ratio "
                f"may be inf), got {list(band)!r}"
            )
        self.min_ratio = low
        self.max_ratio = high

    def can_sample(self, sampled: int, inserted: int) -> bool:
        """Whether the learner may draw its next batch."""
        return sampled < self.max_ratio * inserted

    def can_insert(self, sampled: int, inserted: int) -> bool:
        """Whether the collector may add its next step of items."""
        return sampled >= self.min_ratio * inserted

    def __repr__(self) -> str:
        return f"SampleInsertRatio(band=({self.min_ratio}, {self.max_ratio}))"
