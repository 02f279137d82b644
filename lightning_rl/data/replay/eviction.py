"""Eviction rules of the replay buffer: ``max_use`` (an item sampled that many times), ``max_staleness``
(items from policies more than that many train iterations old) and eviction on request, counted per cause.

The rules decide which items go; the sampler forgets them (:meth:`Sampler.evict`); the storage keeps them
until overwritten.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from lightning_rl.data.replay.checks import StateReader, checked_int, index_array
from lightning_rl.data.replay.sampler import LoadedSampler, Sampler
from lightning_rl.data.replay.storage import PackedStorage

_COUNTERS = ("evicted_max_use", "evicted_stale", "evicted_manual")


class Eviction:
    """Per-slot ``policy_iter`` (the train iteration of the policy that produced the item), the learner's
    :attr:`train_iter`, the eviction rules and their counters.

    Args:
        max_use: evict an item once it has been sampled this many times (``None``: never).
        max_staleness: evict items with ``train_iter - policy_iter > max_staleness`` (``None``: never).
    """

    def __init__(self, max_use: int | None, max_staleness: int | None) -> None:
        self.max_use = None if max_use is None else checked_int("max_use", max_use, lo=1)
        self.max_staleness = (
            None if max_staleness is None else checked_int("max_staleness", max_staleness, lo=0)
        )
        self.train_iter = 0

    def bind(self, storage: PackedStorage, sampler: Sampler) -> None:
        if self.max_use is not None and sampler.use is None:
            raise ValueError(f"max_use needs a sampler that counts uses; {type(sampler).__name__} does not")
        self._storage = storage
        self._sampler = sampler
        self.reset()

    def reset(self) -> None:
        """Forget every item and zero the counters (:attr:`train_iter` is kept)."""
        self.counts = dict.fromkeys(_COUNTERS, 0)
        self.policy_iter = np.zeros(self._storage.capacity, dtype=np.int64)  # per slot
        # Staleness bookkeeping by push id: every item before _stale_ptr was checked against the current
        # threshold; _last_descent is the latest item whose policy_iter is below its predecessor's (0:
        # none), so from _stale_ptr on policy_iter is non-decreasing iff _last_descent <= _stale_ptr.
        self._stale_ptr = 0
        self._last_descent = 0

    # ------------------------------------------------------------------ events
    def policy_iters(self, policy_iter: int | torch.Tensor | None, n: int) -> np.ndarray:
        """Validate ``policy_iter`` of ``extend`` into ``(n,)`` int64 (default: :attr:`train_iter`)."""
        if policy_iter is None:
            return np.full(n, self.train_iter, dtype=np.int64)
        if not isinstance(policy_iter, torch.Tensor):
            return np.full(n, checked_int("policy_iter", policy_iter, lo=0), dtype=np.int64)
        if tuple(policy_iter.shape) != (n,):
            raise ValueError(
                f"policy_iter must be an int or ({n},) integers, got shape {tuple(policy_iter.shape)}"
            )
        values = index_array(policy_iter, "policy_iter")
        if n and int(values.min()) < 0:
            raise ValueError(f"policy_iter must be >= 0, got min {int(values.min())}")
        return values

    def extend(self, slots: np.ndarray, policy_iters: np.ndarray) -> None:
        """Record the ``(N,)`` ``policy_iters`` of items about to be written (the last ``M`` at ``slots``;
        the ring has not advanced yet); evict those already stale."""
        kept = policy_iters[policy_iters.size - slots.size :]
        if self.max_staleness is not None:
            self._note_descents(kept, policy_iters.size - slots.size)
        self.policy_iter[slots] = kept
        if self.max_staleness is not None:
            stale = slots[kept < self.train_iter - self.max_staleness]
            if stale.size:
                self.counts["evicted_stale"] += self._sampler.evict(stale)

    def after_sample(self, index: np.ndarray) -> None:
        """``max_use``: evict the items of a drawn batch (``(B,)`` slots) that reached it."""
        used_up = index[self._sampler.use[index] >= self.max_use]
        if used_up.size:
            self.counts["evicted_max_use"] += self._sampler.evict(np.unique(used_up))

    def evict(self, slots: np.ndarray) -> int:
        """Evict on request (``(K,)`` unique slots in ``[0, size)``); returns how many were live."""
        evicted = self._sampler.evict(slots)
        self.counts["evicted_manual"] += evicted
        return evicted

    def set_train_iter(self, value: int) -> None:
        """Advance :attr:`train_iter` (never backwards), evicting what became stale."""
        value = checked_int("train_iter", value, lo=0)
        if value < self.train_iter:
            raise ValueError(f"train_iter must not decrease: it is {self.train_iter}, got {value}")
        if value != self.train_iter:
            self.train_iter = value
            if self.max_staleness is not None and self._storage.size:
                self._evict_stale()

    # ------------------------------------------------------------------ staleness internals
    def _note_descents(self, policy_iters: np.ndarray, first_id_offset: int) -> None:
        """Record in ``_last_descent`` the push id of the latest new item whose ``policy_iter`` is below
        its predecessor's (before the items are written)."""
        st = self._storage
        seq = policy_iters
        if st.size:
            seq = np.concatenate(([self.policy_iter[(st.cursor - 1) % st.capacity]], policy_iters))
        drops = np.flatnonzero(seq[1:] < seq[:-1])
        if drops.size:
            lead = seq.size - policy_iters.size  # 1 if the previous item was prepended
            self._last_descent = st.pushed + first_id_offset + int(drops[-1]) + 1 - lead

    def _evict_stale(self) -> None:
        """Evict live items with ``policy_iter < train_iter - max_staleness``.

        Usual case, policy_iter non-decreasing in insertion order from ``_stale_ptr`` on: the stale items
        are a prefix, found by binary search, and ``_stale_ptr`` moves past them (O(log n + evicted)).
        Otherwise one vectorized pass over all stored items.
        """
        st = self._storage
        threshold = self.train_iter - self.max_staleness
        ptr = max(self._stale_ptr, st.pushed - st.size)
        if self._last_descent <= ptr:
            n_stale = self._count_below(ptr, threshold)
            if n_stale:
                slots = np.arange(ptr, ptr + n_stale, dtype=np.int64) % st.capacity
                self.counts["evicted_stale"] += self._sampler.evict(slots)
            self._stale_ptr = ptr + n_stale
        else:
            stale = np.flatnonzero(self.policy_iter[: st.size] < threshold)
            if stale.size:
                self.counts["evicted_stale"] += self._sampler.evict(stale)

    def _count_below(self, start_id: int, threshold: int) -> int:
        """Number of items from push id ``start_id`` on, in insertion order, before the first with
        ``policy_iter >= threshold`` (their policy_iter is non-decreasing)."""
        cap, pushed = self._storage.capacity, self._storage.pushed
        count = pushed - start_id
        s0 = start_id % cap
        first = min(count, cap - s0)  # the ids run to the end of the ring, then wrap to slot 0
        k = int(np.searchsorted(self.policy_iter[s0 : s0 + first], threshold))
        if k == first and count > first:
            k += int(np.searchsorted(self.policy_iter[: count - first], threshold))
        return k

    def _find_last_descent(self) -> int:
        st = self._storage
        if st.size < 2:
            return 0
        pi = self.policy_iter
        ordered = np.concatenate((pi[st.cursor : st.size], pi[: st.cursor]))  # oldest first
        drops = np.flatnonzero(ordered[1:] < ordered[:-1])
        return st.pushed - st.size + int(drops[-1]) + 1 if drops.size else 0

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, object]:
        size = self._storage.size
        return {
            "max_use": self.max_use,
            "max_staleness": self.max_staleness,
            "train_iter": self.train_iter,
            **self.counts,
            "policy_iter": torch.from_numpy(self.policy_iter[:size].copy()),
        }

    def read_config(self, reader: StateReader) -> Callable[[], None]:
        """Validate the rules and counters of a saved state; returns what applies them."""
        reader.same("max_use", self.max_use)
        reader.same("max_staleness", self.max_staleness)
        values = {name: reader.get(name, int) for name in ("train_iter", *_COUNTERS)}
        for name, value in values.items():
            if value < 0:
                raise ValueError(f"replay state: '{name}' must be >= 0, got {value}")

        def apply() -> None:
            self.train_iter = values.pop("train_iter")
            self.counts = values

        return apply

    def read_items(self, reader: StateReader, size: int, sampler: LoadedSampler) -> Callable[[], None]:
        """Validate the saved ``policy_iter`` of ``size`` items against the rules (no live item may be used
        up or stale); returns what loads it once the storage ring is restored."""
        policy_iter = reader.tensor("policy_iter", torch.int64, (size,)).numpy()
        if size and int(policy_iter.min()) < 0:
            raise ValueError("replay state: 'policy_iter' must be >= 0")
        live = sampler.live
        if self.max_use is not None and bool((sampler.use[live] >= self.max_use).any()):
            raise ValueError(f"replay state: 'priorities' > 0 for items used max_use={self.max_use} times")
        train_iter = reader.get("train_iter", int)
        if self.max_staleness is not None and bool(
            (policy_iter[live] < train_iter - self.max_staleness).any()
        ):
            raise ValueError(
                f"replay state: 'priorities' > 0 for items staler than max_staleness={self.max_staleness}"
            )

        def apply() -> None:
            self.policy_iter[:size] = policy_iter
            self._stale_ptr = self._storage.pushed - size  # rescanning evicted items is harmless
            self._last_descent = self._find_last_descent()

        return apply
