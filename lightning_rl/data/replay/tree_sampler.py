"""Sampling through torchrl's C++ sum segment tree: the shared core of the uniform (once items can be
evicted) and prioritized samplers.

Eviction: an evicted item has priority 0 in the sum tree (and +inf in a min tree), so it is never drawn
and importance weights are normalized over live items only; a live item never has priority 0, so a zero
leaf marks an evicted one. Evicted items stay in storage until overwritten.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from lightning_rl.data._torchrl_compat import segment_tree_classes
from lightning_rl.data.replay.checks import StateReader
from lightning_rl.data.replay.sampler import LoadedSampler
from lightning_rl.data.replay.storage import PackedStorage

_MAX_REDRAWS = 16


class SumTreeSampler:
    """Stratified proportional draws over a sum tree (plus a min tree if ``with_min_tree``), use counts,
    eviction. Subclasses give items their priorities (:meth:`_write_priorities`) and weights."""

    prioritized = False

    def __init__(self, with_min_tree: bool) -> None:
        self._with_min_tree = with_min_tree
        self._storage: PackedStorage | None = None
        self._sum_tree: Any = None
        self._min_tree: Any = None
        self.live = 0
        self.use: np.ndarray | None = None
        self.max_priority = 1.0  # running max of stored priorities (alpha space); new items get it
        # Per batch size: (float64 draw buffer, its numpy view, arange, float32 masses).
        self._draw_cache: dict[int, tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]] = {}

    def bind(self, storage: PackedStorage, generator: torch.Generator) -> None:
        self._storage = storage
        self._gen = generator
        self.reset()

    def reset(self) -> None:
        self.live = 0
        self.max_priority = 1.0
        self._start_tree()

    def _start_tree(self) -> None:
        """Fresh trees (all items evicted) and use counts (all 0)."""
        sum_cls, min_cls = segment_tree_classes()
        cap = self._storage.capacity
        self._sum_tree = sum_cls(cap)
        self._min_tree = min_cls(cap) if self._with_min_tree else None
        # int64: np.add.at has a fast path for it (measured 8x slower with int32). np.zeros maps pages
        # lazily, so a huge capacity costs no time up front.
        self.use = np.zeros(cap, dtype=np.int64)

    def _stored_priorities(self, priority: np.ndarray | None) -> np.ndarray | None:
        """Tree priorities ``(M,)`` float32 for new items given ``|td error|`` ``priority`` (``None``: the
        default); raises ``ValueError`` for unusable values. The base ignores ``priority``."""
        return None

    def _write_priorities(self, slots: np.ndarray, stored: np.ndarray | None) -> None:
        """Put the priorities of the items written to ``slots`` into the trees."""
        raise NotImplementedError

    # ------------------------------------------------------------------ adding and evicting
    def extend(self, slots: np.ndarray, priority: np.ndarray | None) -> None:
        stored = self._stored_priorities(priority)
        size = self._storage.size
        occupied = slots[slots < size]  # the ring fills slots 0.. before it wraps
        if self.live < size and occupied.size:
            overwritten_live = int(np.count_nonzero(self._sum_tree[occupied] > 0))
        else:
            overwritten_live = occupied.size
        self.live += slots.size - overwritten_live
        self._write_priorities(slots, stored)
        self.use[slots] = 0

    def evict(self, slots: np.ndarray) -> int:
        slots = slots[self._sum_tree[slots] > 0]
        if slots.size:
            self._sum_tree.update(slots, 0.0)
            if self._min_tree is not None:
                self._min_tree.update(slots, math.inf)
            self.live -= int(slots.size)
        return int(slots.size)

    def live_mask(self) -> np.ndarray:
        return self._sum_tree[np.arange(self._storage.size, dtype=np.int64)] > 0

    # ------------------------------------------------------------------ drawing
    def _draw(self, batch_size: int) -> np.ndarray:
        """``(B,)`` live slots by stratified sampling: the total mass is split into ``batch_size`` equal
        segments with one uniform draw in each. Counts the draws in :attr:`use`."""
        size = self._storage.size
        cache = self._draw_cache.get(batch_size)
        if cache is None:
            draw = torch.empty(batch_size, dtype=torch.float64)
            cache = (
                draw,
                draw.numpy(),
                np.arange(batch_size, dtype=np.float64),
                np.empty(batch_size, dtype=np.float32),
            )
            self._draw_cache[batch_size] = cache
        draw, draws, arange, mass = cache
        total = self._sum_tree.query(0, size)
        # Into a preallocated buffer: the same numbers as torch.rand(..., generator), ~2 µs cheaper.
        draw.uniform_(generator=self._gen)
        # mass = ((arange + draws) * (total / batch_size)) as float32, without temporaries.
        np.add(draws, arange, out=draws)
        np.multiply(draws, total / batch_size, out=mass, casting="same_kind")
        # Numpy overloads of the tree calls: ~2x cheaper than the torch ones for small batches.
        index = self._sum_tree.scan_lower_bound(mass)
        if self.live == size:
            # Nothing evicted: only fp32 rounding pushing a draw past the total mass can go wrong
            # (scan returns >= size); the last item is the one that mass belongs to. Stratified masses
            # are non-decreasing and so are their indices: the last one is the largest.
            if index[-1] >= size:
                np.minimum(index, size - 1, out=index)
        else:
            self._redraw_evicted(index, total)
        np.add.at(self.use, index, 1)  # counts duplicates, unlike use[index] += 1
        return index

    def _redraw_evicted(self, index: np.ndarray, total: float) -> None:
        """Replace, in place, draws that landed on an evicted item or past the stored ones.

        The scan lands on a zero-priority leaf only through fp32 rounding at the edge of a neighbour's
        mass (or a draw of exactly 0), so redraws are rare; draws still bad after ``_MAX_REDRAWS`` rounds
        go to the nearest live item at or below them (the one their mass was meant for).
        """
        size = self._storage.size
        for attempt in range(_MAX_REDRAWS + 1):
            bad = np.flatnonzero((index >= size) | (self._sum_tree[np.minimum(index, size - 1)] == 0))
            if bad.size == 0:
                return
            if attempt == _MAX_REDRAWS:
                break
            draws = torch.rand(bad.size, generator=self._gen, dtype=torch.float64).numpy()
            index[bad] = self._sum_tree.scan_lower_bound((draws * total).astype(np.float32))
        live = np.flatnonzero(self.live_mask())
        below = np.searchsorted(live, np.minimum(index[bad], size - 1), side="right") - 1
        index[bad] = live[np.maximum(below, 0)]

    # ------------------------------------------------------------------ monitoring and checkpoints
    def stats(self) -> dict[str, float]:
        return {"priority_mean": 1.0 if self.live else 0.0, "priority_max": self.max_priority}

    def state_dict(self) -> dict[str, Any]:
        size = self._storage.size
        leaves = self._sum_tree[np.arange(size, dtype=np.int64)]
        return {
            "max_priority": self.max_priority,
            "tree": True,
            "priorities": torch.from_numpy(np.asarray(leaves, dtype=np.float32).copy()),
            "use_count": torch.from_numpy(self.use[:size].copy()),
        }

    def read_state(self, reader: StateReader, size: int) -> LoadedSampler:
        max_priority = reader.get("max_priority", float)
        if not (math.isfinite(max_priority) and max_priority > 0):
            raise ValueError(f"replay state: 'max_priority' must be finite and > 0, got {max_priority}")
        if not reader.get("tree", bool):
            return self._read_plain_state(reader, size)
        use = reader.tensor("use_count", torch.int64, (size,)).numpy()
        if size and int(use.min()) < 0:
            raise ValueError("replay state: 'use_count' must be >= 0")
        priorities = reader.tensor("priorities", torch.float32, (size,)).numpy()
        if size and not bool((np.isfinite(priorities) & (priorities >= 0)).all()):
            raise ValueError("replay state: 'priorities' must be finite and >= 0 (0 = evicted)")
        self._check_saved_priorities(priorities, max_priority)

        def apply() -> None:
            self._load_tree(priorities, use, max_priority)

        return LoadedSampler(live=priorities > 0, use=use, apply=apply)

    def _read_plain_state(self, reader: StateReader, size: int) -> LoadedSampler:
        """The saved buffer sampled without a tree (plain uniform)."""
        raise ValueError(
            "replay state: 'tree' is False but this buffer samples through the sum tree "
            "(prioritized, max_use or max_staleness set)"
        )

    def _check_saved_priorities(self, priorities: np.ndarray, max_priority: float) -> None:
        """Raise ``ValueError`` for saved (non-negative, finite) priorities this sampler cannot hold."""

    def _load_tree(self, priorities: np.ndarray, use: np.ndarray, max_priority: float) -> None:
        """Fresh trees holding ``priorities`` (``(size,)``, 0: evicted) and ``use`` of slots ``[0, size)``."""
        self._start_tree()
        size = priorities.shape[0]
        self.use[:size] = use
        slots = np.arange(size, dtype=np.int64)
        prio = np.ascontiguousarray(priorities)
        self._sum_tree.update(slots, prio)
        if self._min_tree is not None:
            self._min_tree.update(slots, np.where(prio > 0, prio, np.float32(np.inf)))
        self.live = int(np.count_nonzero(prio))
        self.max_priority = max_priority
