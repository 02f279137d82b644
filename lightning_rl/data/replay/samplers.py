"""The two default samplers: uniform (``prioritized=False``) and proportional prioritized (Schaul et al.,
2016), the choice :class:`~lightning_rl.data.replay.PrioritizedBuffer` makes from its ``prioritized`` flag."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import torch

from lightning_rl.data._torchrl_compat import segment_tree_classes
from lightning_rl.data.replay.checks import StateReader, checked_float, index_and_priority
from lightning_rl.data.replay.sampler import LoadedSampler
from lightning_rl.data.replay.tree_sampler import SumTreeSampler

_INT64, _FLOAT32 = np.dtype(np.int64), np.dtype(np.float32)


class UniformSampler(SumTreeSampler):
    """Uniform sampling with replacement; weights all 1, :meth:`update_priority` a no-op.

    Draws with a plain ``torch.randint`` (no C++ extension needed, no use counting: on this path the
    random writes of the counts cost ~25%) until items can be evicted; from then on through a sum tree
    with priority 1 per live item (stratified like the prioritized sampler). The switch happens at the
    first :meth:`evict` (one O(len) pass; use counts start from 0 then), or from the start with ``tree``.

    Args:
        tree: sample through the sum tree from the start (the buffer sets it with ``max_use`` or
            ``max_staleness``).
    """

    def __init__(self, tree: bool = False) -> None:
        super().__init__(with_min_tree=False)
        self._tree_from_start = tree
        if tree:
            segment_tree_classes()  # raises a clear ImportError now if the extension cannot load

    def reset(self) -> None:
        if self._tree_from_start:
            super().reset()
        else:
            self._sum_tree = self.use = None
            self.live = 0
            self.max_priority = 1.0

    def extend(self, slots: np.ndarray, priority: np.ndarray | None) -> None:
        if self._sum_tree is not None:
            super().extend(slots, priority)
        else:  # nothing is ever evicted on this path: every stored item is live
            self.live = min(self._storage.size + slots.size, self._storage.capacity)

    def _write_priorities(self, slots: np.ndarray, stored: np.ndarray | None) -> None:
        self._sum_tree.update(slots, 1.0)

    def sample(self, batch_size: int, beta: float) -> tuple[np.ndarray, torch.Tensor]:
        if self._sum_tree is None:
            index = torch.randint(self._storage.size, (batch_size,), generator=self._gen)
            return index.numpy(), torch.ones(batch_size, dtype=torch.float32)
        return self._draw(batch_size), torch.ones(batch_size, dtype=torch.float32)

    def update_priority(self, index: Any, priority: Any) -> None:
        """Uniform sampling has no priorities: ignored."""

    def evict(self, slots: np.ndarray) -> int:
        if self._sum_tree is None:
            self._start_tree()
            if self._storage.size:
                self._sum_tree.update(np.arange(self._storage.size, dtype=np.int64), 1.0)
        return super().evict(slots)

    def live_mask(self) -> np.ndarray:
        if self._sum_tree is None:
            return np.ones(self._storage.size, dtype=bool)
        return super().live_mask()

    def state_dict(self) -> dict[str, Any]:
        if self._sum_tree is None:
            return {"max_priority": self.max_priority, "tree": False, "priorities": None, "use_count": None}
        return super().state_dict()

    def _read_plain_state(self, reader: StateReader, size: int) -> LoadedSampler:
        if self._tree_from_start:
            return super()._read_plain_state(reader, size)
        if reader.state.get("priorities") is not None or reader.state.get("use_count") is not None:
            raise ValueError("replay state: 'priorities' and 'use_count' must be None when 'tree' is False")

        def apply() -> None:
            self.reset()
            self.live = size

        return LoadedSampler(live=np.ones(size, dtype=bool), use=None, apply=apply)

    def _check_saved_priorities(self, priorities: np.ndarray, max_priority: float) -> None:
        if not bool(np.isin(priorities, (0.0, 1.0)).all()):
            raise ValueError("replay state: 'priorities' of a uniform buffer must be 0 (evicted) or 1")


class PrioritizedSampler(SumTreeSampler):
    """Proportional prioritized sampling over torchrl's C++ sum/min segment trees.

    Items are stored with priority ``(p + eps) ** alpha`` for ``|td error|`` ``p``; new items without a
    given priority get the maximum seen so far, so each is likely sampled at least once. Sampling is
    stratified (the total mass split into ``batch_size`` equal segments, one uniform draw in each);
    importance weights ``w_i = (N * P(i)) ** -beta / max_j w_j`` with the max over all live items (from
    the min tree), so ``w_i = (p_i / p_min) ** -beta`` in ``(0, 1]``.

    Args:
        alpha: priority exponent (0 = uniform).
        eps: added to ``|td error|`` so that no item gets zero probability; must be > 0.
    """

    prioritized = True

    def __init__(self, alpha: float = 0.6, eps: float = 1e-6) -> None:
        super().__init__(with_min_tree=True)
        self.alpha = checked_float("alpha", alpha, lo=0.0)
        self.eps = checked_float("eps", eps, lo=0.0, lo_open=True)
        self._alpha_f32, self._eps_f32 = np.float32(self.alpha), np.float32(self.eps)
        segment_tree_classes()  # raises a clear ImportError now if the extension cannot load

    def _stored_priorities(self, priority: np.ndarray | None) -> np.ndarray | None:
        return None if priority is None else self._transform(priority)[0]

    def _write_priorities(self, slots: np.ndarray, stored: np.ndarray | None) -> None:
        if stored is None:
            self._sum_tree.update(slots, self.max_priority)
            self._min_tree.update(slots, self.max_priority)
        else:
            self._sum_tree.update(slots, stored)
            self._min_tree.update(slots, stored)
            self.max_priority = max(self.max_priority, float(stored.max()))

    def _transform(self, priority: np.ndarray) -> tuple[np.ndarray, float]:
        """``((priority + eps) ** alpha`` as new float32, its max)``; ``-inf`` for no items."""
        if priority.size == 0:
            return priority, -math.inf
        p_lo = float(priority.min())
        if not p_lo >= 0.0:  # also catches NaN
            raise ValueError(f"priority must be finite and >= 0 (|td error|), got min {p_lo}")
        stored = np.add(priority, self._eps_f32)
        np.power(stored, self._alpha_f32, out=stored)
        p_hi = float(stored.max())
        if not math.isfinite(p_hi):
            raise ValueError(f"priority must be finite, got max {float(priority.max())}")
        return stored, p_hi

    def sample(self, batch_size: int, beta: float) -> tuple[np.ndarray, torch.Tensor]:
        index = self._draw(batch_size)
        if beta == 0.0:
            weight = np.ones(batch_size, dtype=np.float32)
        else:
            weight = self._sum_tree[index]
            # Python floats are weak scalars (NEP 50): the arithmetic stays float32.
            np.divide(weight, self._min_tree.query(0, self._storage.size), out=weight)  # min over live
            np.power(weight, -beta, out=weight)
        return index, torch.from_numpy(weight)

    def update_priority(self, index: Any, priority: Any) -> None:
        """Set the priorities of sampled items to ``(priority + eps) ** alpha`` (the rules:
        :meth:`lightning_rl.data.replay.PrioritizedBuffer.update_priority`)."""
        # This runs every training step: the usual call (1-D CPU int64 / float32 tensors) converts
        # straight to numpy; anything else goes through the general conversions. (numpy's attribute
        # checks are cheaper than torch's; .numpy() refuses device tensors and tensors requiring grad.)
        idx = prio = None
        if type(index) is torch.Tensor and type(priority) is torch.Tensor:
            with contextlib.suppress(TypeError, RuntimeError):
                idx, prio = index.numpy(), priority.numpy()
        if (
            idx is None
            or not idx.flags.c_contiguous  # the C++ trees read the raw buffer, ignoring strides
            or idx.dtype is not _INT64
            or prio.dtype is not _FLOAT32
            or idx.ndim != 1
            or prio.ndim != 1
            or idx.shape[0] != prio.shape[0]
        ):
            idx, prio = index_and_priority(index, priority)
        stored, p_hi = self._transform(prio)
        if idx.size == 0:
            return
        size, cap = self._storage.size, self._storage.capacity
        # One reduction checks both bounds: negative indices are huge as uint64.
        hi = int(idx.view(np.uint64).max())
        if hi >= cap:
            lo, hi = int(idx.min()), int(idx.max())
            raise ValueError(f"index values must be in [0, capacity={cap}), got min {lo} max {hi}")
        if size == 0:
            return
        # use == 0: not sampled since (over)written, so the update is for an item no longer there.
        use = self.use
        if hi < size and self.live == size:  # the usual case: only the use counts can drop updates
            keep = None if use[idx].min() > 0 else use[idx] > 0
        else:
            keep = (idx < size) & (use[idx] > 0)
            if self.live < size:
                keep &= self._sum_tree[idx] > 0
            if keep.all():
                keep = None
        if keep is not None:
            idx = idx[keep]
            stored = stored[keep]
            if idx.size == 0:
                return
            p_hi = float(stored.max())
        self._sum_tree.update(idx, stored)
        self._min_tree.update(idx, stored)
        if p_hi > self.max_priority:
            self.max_priority = p_hi

    def stats(self) -> dict[str, float]:
        live = self.live
        mean = self._sum_tree.query(0, self._storage.size) / live if live else 0.0
        return {"priority_mean": float(mean), "priority_max": self.max_priority}

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "eps": self.eps, **super().state_dict()}

    def read_state(self, reader: StateReader, size: int) -> LoadedSampler:
        reader.same("alpha", self.alpha)
        reader.same("eps", self.eps)
        return super().read_state(reader, size)

    def _check_saved_priorities(self, priorities: np.ndarray, max_priority: float) -> None:
        if priorities.size and float(priorities.max()) > max_priority:
            raise ValueError("replay state: 'priorities' exceed 'max_priority'")
