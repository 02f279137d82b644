"""Prioritized (or uniform) experience replay over preallocated tensor storage: nerveX's PrioritizedBuffer.

The fast path is a thin layer over torchrl's C++ segment trees and packed tensor storage (DESIGN.md §6
"Replay speed"). Measured with ``benchmarks/replay_buffer.py`` on the 2-core dev VM (shared, noisy),
capacity 1e6 filled, batch 256, 4-float observations, fresh indices and priorities every cycle: one
sample+update_priority cycle 142 µs vs 295 µs for cpprb's ``PrioritizedReplayBuffer`` and 492 µs for
torchrl's ``TensorDictPrioritizedReplayBuffer`` in the same quiet run (ratio to cpprb 0.48; 0.51-0.60
in runs with another process busy); the C++ trees plus one row gather alone take ~95 µs, mostly cache
misses (scan ~45 µs, min-tree update ~20 µs, sum-tree update ~7 µs), the rest is the field copies and
Python/numpy/torch call overhead (~45 µs over ~50 calls). Items are always added a whole vector step at a time
(:meth:`PrioritizedBuffer.extend`: ~37 µs for 8 items, ~55 µs for 256; torchrl's single-item ``add``
costs ~240 µs).

Optional features, each off unless configured, and then absent from the sample/update path: ``max_use``
(evict an item once sampled that many times), ``max_staleness`` (evict items from policies more than
that many train iterations old), :meth:`PrioritizedBuffer.evict` (by storage index), memmap-backed
storage for buffers larger than RAM. :meth:`PrioritizedBuffer.save` / :meth:`PrioritizedBuffer.load`
persist the whole buffer to a directory atomically.

Not thread-safe: one buffer belongs to one process/thread (per-rank under DDP).
"""

from __future__ import annotations

import contextlib
import math
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase, is_non_tensor

from lightning_rl import keys
from lightning_rl.data._packed_rows import NestedKey, Schema, memmap_rows, row_layout, structured_rows
from lightning_rl.data._replay_checks import (
    RESERVED_KEYS,
    LoadedState,
    StateReader,
    checked_float,
    checked_int,
    index_array,
    normalize_key,
    read_schema,
)
from lightning_rl.data._torchrl_compat import new_flat_tensordict, segment_tree_classes
from lightning_rl.utils.checks import describe
from lightning_rl.utils.compression import lz4_compress_chunks, lz4_decompress_chunks
from lightning_rl.utils.io import atomic_directory

__all__ = ["PrioritizedBuffer", "linear_beta"]


_FORMAT = "lightning_rl.PrioritizedBuffer"
_VERSION = 2
_STORAGES = ("memory", "memmap")
_STATE_FILE = "state.pt"  # save(): everything but the rows, loadable with weights_only=True
_ROWS_FILE = "rows.bin"  # save(): the packed rows of slots [0, size), raw
_IO_CHUNK_BYTES = 64 << 20  # save()/load() stream the rows in chunks of this size
_MAX_REDRAWS = 16
_INT64, _FLOAT32 = np.dtype(np.int64), np.dtype(np.float32)
_REUSE_BINS = (("0", 0, 1), ("1", 1, 2), ("2_3", 2, 4), ("4_7", 4, 8), ("8_plus", 8, None))


class PrioritizedBuffer:
    """Ring buffer of transitions with proportional prioritized sampling (Schaul et al., 2016).

    Storage is allocated from the per-item shapes and dtypes of the first batch given to :meth:`extend`;
    every later batch must have the same keys, per-item shapes and dtypes. All fields of an item are
    packed into one row of a ``(capacity, row_bytes)`` uint8 tensor, each key being a strided typed view
    of it: a random sample then costs one cache miss per item instead of one per key (measured 20 vs
    45-75 µs for 256 six-key items at capacity 1e6). On CPU the rows are also viewed as a numpy
    structured array: a sample is one ``take`` of whole rows plus a contiguous copy of each field
    (~12 vs ~17 µs cache-hot for six ``index_select``). Priorities live in torchrl's C++ sum/min
    segment trees.

    Eviction: an evicted item is never sampled again but stays in its slot until overwritten (so
    :meth:`get` still reads it). It has priority 0 in the sum tree and +inf in the min tree (so
    importance weights are normalized over live items only); a live item never has priority 0
    (``eps > 0``), so a zero leaf marks an evicted one. Uniform buffers sample through a sum tree with
    priority 1 per live item once items can be evicted (``max_use`` or ``max_staleness`` set, or after
    the first :meth:`evict`), and with a plain ``torch.randint`` otherwise.

    Args:
        capacity: maximum number of items; the oldest are overwritten first (ring buffer).
        alpha: priority exponent; items are stored with priority ``(p + eps) ** alpha`` (0 = uniform).
        prioritized: ``False`` gives uniform sampling (weights all 1, :meth:`update_priority` is a no-op)
            and needs no C++ extension unless items can be evicted.
        eps: added to ``|td error|`` so that no item gets zero probability; must be > 0.
        seed: seed of the sampling ``torch.Generator`` (``None``: nondeterministic).
        compress_keys: keys (``str`` or nested ``tuple``) stored lz4-compressed in :meth:`state_dict`
            (image observations); does not affect the in-memory storage or :meth:`save`.
        max_use: evict an item once it has been sampled this many times (``None``: never).
        max_staleness: evict items with ``train_iter - policy_iter > max_staleness`` (``None``: never),
            where ``policy_iter`` is the train iteration of the policy that produced the item (see
            :meth:`extend`) and :attr:`train_iter` the learner's current one.
        storage: ``"memory"`` (RAM, or the device of the first batch) or ``"memmap"`` (CPU rows backed
            by a file in ``memmap_dir``, paged to disk by the OS: for buffers larger than RAM).
        memmap_dir: directory of the backing file; required with ``storage="memmap"``, else unused.
    """

    def __init__(
        self,
        capacity: int,
        alpha: float = 0.6,
        prioritized: bool = True,
        eps: float = 1e-6,
        seed: int | None = None,
        compress_keys: Sequence[NestedKey] = (),
        max_use: int | None = None,
        max_staleness: int | None = None,
        storage: Literal["memory", "memmap"] = "memory",
        memmap_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self._capacity = checked_int("capacity", capacity, lo=1)
        self._alpha = checked_float("alpha", alpha, lo=0.0)
        if not isinstance(prioritized, bool):
            raise ValueError(f"prioritized must be a bool (True or False), got {prioritized!r}")
        self._prioritized = prioritized
        self._eps = checked_float("eps", eps, lo=0.0, lo_open=True)
        self._alpha_f32, self._eps_f32 = np.float32(self._alpha), np.float32(self._eps)
        if seed is not None:
            seed = checked_int("seed", seed, lo=0)
        if isinstance(compress_keys, str):  # a bare "obs" means one key, not the keys "o", "b", "s"
            compress_keys = [compress_keys]
        self._compress_keys = tuple(normalize_key(k, "compress_keys") for k in compress_keys)
        self._max_use = None if max_use is None else checked_int("max_use", max_use, lo=1)
        self._max_staleness = (
            None if max_staleness is None else checked_int("max_staleness", max_staleness, lo=0)
        )
        if storage not in _STORAGES:
            raise ValueError(f"storage must be one of {_STORAGES}, got {storage!r}")
        self._storage = storage
        self._memmap_dir: Path | None = None
        if storage == "memmap":
            if not isinstance(memmap_dir, (str, os.PathLike)):
                raise ValueError(
                    f"memmap_dir must be a directory path with storage='memmap', got {memmap_dir!r}"
                )
            self._memmap_dir = Path(memmap_dir)
        elif memmap_dir is not None:
            raise ValueError(f"memmap_dir is only used with storage='memmap', got storage={storage!r}")

        self._gen = torch.Generator()
        if seed is None:
            self._gen.seed()
        else:
            self._gen.manual_seed(seed)
        # Whether sampling goes through the sum tree from the start (uniform buffers switch on evict()).
        self._tree_default = prioritized or max_use is not None or max_staleness is not None
        self._tree_classes: tuple[type, type] | None = None
        if self._tree_default:
            self._tree_classes = segment_tree_classes()  # raises a clear ImportError if unloadable
        # Per batch size: (float64 draw buffer, its numpy view, arange, float32 masses).
        self._draw_cache: dict[int, tuple[torch.Tensor, np.ndarray, np.ndarray, np.ndarray]] = {}
        self._train_iter = 0
        self._reset()

    # ------------------------------------------------------------------ basic state
    def _reset(self) -> None:
        self._rows: torch.Tensor | None = None  # (capacity, row_bytes) uint8, all fields packed
        self._leaves: list[tuple[NestedKey, torch.Tensor]] = []  # key -> (capacity, *item) view of rows
        # CPU storage: the rows as a numpy structured array (one field per key), for the gather.
        self._np_rows: np.ndarray | None = None
        self._np_fields: list[tuple[NestedKey, str]] = []  # (key, structured field name)
        self._flat = True
        self._device = torch.device("cpu")
        self._cursor = 0  # next slot to write
        self._size = 0
        self._live = 0  # stored items not evicted
        self._pushed = 0  # items ever extended (since construction / clear); item k has push id k
        self._sampled = 0  # items ever sampled
        self._max_priority = 1.0  # running max of stored priorities (alpha space); new items get it
        self._evicted_max_use = 0
        self._evicted_stale = 0
        self._evicted_manual = 0
        # Staleness bookkeeping by push id: every item before _stale_ptr was checked against the current
        # threshold; _last_descent is the latest item whose policy_iter is below its predecessor's (0:
        # none), so from _stale_ptr on policy_iter is non-decreasing iff _last_descent <= _stale_ptr.
        self._stale_ptr = 0
        self._last_descent = 0
        # Per slot (numpy, allocated with the rows): times sampled since written, which also tells
        # update_priority whether an update can refer to the item in the slot (counted only when
        # sampling through the tree: on the plain uniform path the random writes cost ~25%); and the
        # train iteration of the policy that produced the item.
        self._use: np.ndarray | None = None
        self._policy_iter: np.ndarray | None = None
        self._tree = self._tree_default
        self._sum_tree: Any = None
        self._min_tree: Any = None  # prioritized only: uniform weights need no minimum
        if self._tree:
            self._make_trees()

    def _make_trees(self) -> None:
        sum_cls, min_cls = self._tree_classes
        self._sum_tree = sum_cls(self._capacity)
        self._min_tree = min_cls(self._capacity) if self._prioritized else None

    @property
    def capacity(self) -> int:
        """Maximum number of stored items."""
        return self._capacity

    @property
    def prioritized(self) -> bool:
        return self._prioritized

    @property
    def alpha(self) -> float:
        return self._alpha

    @property
    def max_use(self) -> int | None:
        return self._max_use

    @property
    def max_staleness(self) -> int | None:
        return self._max_staleness

    @property
    def pushed(self) -> int:
        """Items added since construction or :meth:`clear` (overwritten ones included)."""
        return self._pushed

    @property
    def sampled(self) -> int:
        """Items sampled since construction or :meth:`clear` (each occurrence in a batch counts)."""
        return self._sampled

    @property
    def num_sampleable(self) -> int:
        """Stored items that are not evicted (those :meth:`sample` can return)."""
        return self._live

    @property
    def train_iter(self) -> int:
        """The learner's current train iteration: the default ``policy_iter`` of new items and the
        reference of ``max_staleness``. Set it before sampling; it never decreases. Kept by :meth:`clear`."""
        return self._train_iter

    @train_iter.setter
    def train_iter(self, value: int) -> None:
        value = checked_int("train_iter", value, lo=0)
        if value < self._train_iter:
            raise ValueError(f"train_iter must not decrease: it is {self._train_iter}, got {value}")
        if value != self._train_iter:
            self._train_iter = value
            if self._max_staleness is not None and self._size:
                self._evict_stale()

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self._size}, capacity={self._capacity}, "
            f"prioritized={self._prioritized}, alpha={self._alpha}, eps={self._eps}, "
            f"max_use={self._max_use}, max_staleness={self._max_staleness}, storage={self._storage!r})"
        )

    def clear(self) -> None:
        """Drop all items, priorities and counters (the storage is freed; the RNG state and
        :attr:`train_iter` are kept)."""
        self._reset()

    # ------------------------------------------------------------------ adding items
    def append(
        self, item: TensorDictBase, priority: float | None = None, policy_iter: int | None = None
    ) -> int:
        """Add one item (a ``TensorDict`` with ``batch_size []``); see :meth:`extend`.

        Returns:
            The item's storage index.
        """
        if not isinstance(item, TensorDictBase) or item.batch_dims != 0:
            got = list(item.batch_size) if isinstance(item, TensorDictBase) else type(item).__name__
            raise ValueError(f"item must be a TensorDict with batch_size [], got {got}")
        prio = None
        if priority is not None:
            prio = torch.tensor([checked_float("priority", priority, lo=0.0)], dtype=torch.float32)
        return int(self.extend(item.unsqueeze(0), prio, policy_iter)[0])

    def extend(
        self,
        batch: TensorDictBase,
        priority: torch.Tensor | None = None,
        policy_iter: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Add a batch of ``N`` items (``batch_size [N]``, or ``[N, *]`` whose trailing dims belong to each
        item, e.g. ``[N, L]`` sequences from ``SequenceBuilder``), overwriting the oldest when full.
        Samples come back with ``batch_size [B]``.

        New items get the maximum priority seen so far, so each is likely sampled at least once, or,
        if ``priority`` (``(N,)`` ``|td error|``, e.g. computed by an actor) is given,
        ``(priority + eps) ** alpha`` (ignored by uniform buffers). ``policy_iter`` (an int, or ``(N,)``
        integers, all >= 0) is the train iteration of the policy that produced the items (default:
        :attr:`train_iter`); items already stale under ``max_staleness`` are stored evicted. If
        ``N > capacity`` only the last ``capacity`` items are kept.

        Returns:
            ``(N,)`` int64 storage indices (slot of item ``i`` is ``(cursor + i) % capacity``; with
            ``N > capacity`` the dropped leading items map to slots taken by later items).
        """
        if not isinstance(batch, TensorDictBase):
            raise ValueError(f"batch must be a TensorDict with batch_size [N], got {type(batch).__name__}")
        if batch.batch_dims < 1:
            raise ValueError(
                f"batch must have batch_size [N, ...] (a leading item dim), got {list(batch.batch_size)}"
            )
        n = batch.batch_size[0]
        policy_iters = self._policy_iters(policy_iter, n)
        if n == 0:
            return torch.empty(0, dtype=torch.int64)
        stored_priority = None
        if priority is not None and self._prioritized:
            _, stored_priority, _ = self._priority_arrays(torch.arange(n), priority)
        if self._rows is None:
            self._allocate_from(batch)
        values = self._batch_values(batch)

        cap = self._capacity
        index_np = np.arange(self._cursor, self._cursor + n, dtype=np.int64) % cap
        m = min(n, cap)
        start = (self._cursor + n - m) % cap
        end = start + m
        for (_, store), value in zip(self._leaves, values, strict=True):
            if n > m:
                value = value[n - m :]
            if end <= cap:
                store[start:end] = value
            else:  # wraps around the end of the ring
                first = cap - start
                store[start:] = value[:first]
                store[: end - cap] = value[first:]

        slots = index_np[n - m :]  # unique: m <= capacity
        policy_iters = policy_iters[n - m :]
        if self._max_staleness is not None:
            self._note_descents(policy_iters, n - m)
        if self._tree:
            occupied = slots[slots < self._size]  # the ring fills slots 0.. before it wraps
            if self._live < self._size and occupied.size:
                overwritten_live = int(np.count_nonzero(self._sum_tree[occupied] > 0))
            else:
                overwritten_live = occupied.size
            self._live += m - overwritten_live
            if not self._prioritized:
                self._sum_tree.update(slots, 1.0)
            elif stored_priority is None:
                self._sum_tree.update(slots, self._max_priority)
                self._min_tree.update(slots, self._max_priority)
            else:
                stored_priority = stored_priority[n - m :]
                self._sum_tree.update(slots, stored_priority)
                self._min_tree.update(slots, stored_priority)
                self._max_priority = max(self._max_priority, float(stored_priority.max()))
            self._use[slots] = 0
        self._policy_iter[slots] = policy_iters
        self._cursor = (self._cursor + n) % cap
        self._size = min(self._size + n, cap)
        self._pushed += n
        if not self._tree:
            self._live = self._size
        if self._max_staleness is not None:
            stale = slots[policy_iters < self._train_iter - self._max_staleness]
            if stale.size:
                self._evicted_stale += self._kill(stale)
        return torch.from_numpy(index_np)

    def _policy_iters(self, policy_iter: int | torch.Tensor | None, n: int) -> np.ndarray:
        """Validate ``policy_iter`` of :meth:`extend` into ``(n,)`` int64."""
        if policy_iter is None:
            return np.full(n, self._train_iter, dtype=np.int64)
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

    def _note_descents(self, policy_iters: np.ndarray, first_id_offset: int) -> None:
        """Record in ``_last_descent`` the push id of the latest new item whose ``policy_iter`` is below
        its predecessor's (before the items are written)."""
        seq = policy_iters
        if self._size:
            seq = np.concatenate(([self._policy_iter[(self._cursor - 1) % self._capacity]], policy_iters))
        drops = np.flatnonzero(seq[1:] < seq[:-1])
        if drops.size:
            lead = seq.size - policy_iters.size  # 1 if the previous item was prepended
            self._last_descent = self._pushed + first_id_offset + int(drops[-1]) + 1 - lead

    def _allocate_from(self, batch: TensorDictBase) -> None:
        for key, value in batch.items(include_nested=True):
            if is_non_tensor(value):
                raise ValueError(f"batch key {key!r} holds non-tensor data; only tensors can be stored")
        leaf_keys = list(batch.keys(include_nested=True, leaves_only=True))
        if not leaf_keys:
            raise ValueError("batch has no tensor entries to store")
        normalized = [normalize_key(k, "batch key") for k in leaf_keys]
        for ck in self._compress_keys:
            if ck not in normalized:
                raise ValueError(
                    f"compress_keys entry {ck!r} is not a key of the stored batches; "
                    f"keys: {sorted(map(str, normalized))}"
                )
        devices = {batch.get(k).device for k in leaf_keys}
        if len(devices) != 1:
            raise ValueError(f"all batch entries must be on one device, got {sorted(map(str, devices))}")
        device = devices.pop()
        if self._storage == "memmap" and device.type != "cpu":
            raise ValueError(f"storage='memmap' keeps items on the CPU; batch is on {device}")
        schema = [(key, tuple(batch.get(key).shape[1:]), batch.get(key).dtype) for key in leaf_keys]
        self._allocate(schema, device)

    def _allocate(self, schema: Schema, device: torch.device) -> None:
        """Allocate the packed rows for ``schema``, the field views and the per-slot arrays."""
        for key, _, _ in schema:
            if key in RESERVED_KEYS:
                raise ValueError(
                    f"batch must not contain the key {key!r}: sample() adds it (keys.INDEX / keys.WEIGHT)"
                )
        offsets, row_bytes = row_layout(schema)
        cap = self._capacity
        if self._storage == "memmap":
            rows = memmap_rows(self._memmap_dir, cap, row_bytes)
        else:
            # torch.empty: pages are only touched when written, so a huge capacity costs no time up
            # front. Unwritten slots are never read (indices < size only), so no initialization.
            rows = torch.empty((cap, row_bytes), dtype=torch.uint8, device=device)
        if self._tree:
            # int64: np.add.at has a fast path for it (measured 8x slower with int32).
            self._use = np.empty(cap, dtype=np.int64)
        self._policy_iter = np.empty(cap, dtype=np.int64)
        leaves = []
        for (key, shape, dtype), offset in zip(schema, offsets, strict=True):
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes == 0:  # zero-size items have no bytes to view
                view = torch.empty((cap, *shape), dtype=dtype, device=device)
            else:
                view = rows[:, offset : offset + nbytes]
                if dtype != torch.uint8:
                    view = view.view(dtype)
                view = view.view(cap, *shape)
            leaves.append((key, view))
        self._rows = rows
        self._leaves = leaves
        self._flat = all(isinstance(k, str) for k, _ in leaves)
        self._device = rows.device
        self._np_rows, self._np_fields = structured_rows(rows, schema, offsets, row_bytes)

    def _batch_values(self, batch: TensorDictBase) -> list[torch.Tensor]:
        values = []
        for key, store in self._leaves:
            value = batch.get(key, None)
            if not isinstance(value, torch.Tensor):
                raise ValueError(
                    f"batch is missing key {key!r} (stored keys: {[k for k, _ in self._leaves]})"
                    if value is None
                    else f"batch key {key!r} must be a tensor, got {type(value).__name__}"
                )
            if value.shape[1:] != store.shape[1:] or value.dtype != store.dtype:
                raise ValueError(
                    f"batch key {key!r} has per-item shape {tuple(value.shape[1:])} dtype {value.dtype}; "
                    f"the buffer stores shape {tuple(store.shape[1:])} dtype {store.dtype}"
                )
            values.append(value)
        n_keys = len(batch.keys()) if self._flat else len(batch.keys(include_nested=True, leaves_only=True))
        if n_keys != len(self._leaves):
            extra = set(batch.keys(include_nested=True, leaves_only=True)) - {k for k, _ in self._leaves}
            raise ValueError(f"batch has keys the buffer does not store: {sorted(map(str, extra))}")
        return values

    # ------------------------------------------------------------------ sample
    def sample(self, batch_size: int, beta: float = 0.4) -> TensorDictBase:
        """Sample ``batch_size`` items with replacement from the :attr:`num_sampleable` live items.

        Requires ``1 <= batch_size <= num_sampleable``: a larger batch would mostly repeat the few live
        items (a starved buffer; collect more first). Every occurrence of an item counts as one use
        for ``max_use``; items reaching ``max_use`` are evicted after this batch is drawn.

        Prioritized: stratified proportional sampling (the total priority mass is split into
        ``batch_size`` equal segments, one uniform draw in each). Importance weights
        ``w_i = (N * P(i)) ** -beta / max_j w_j``, where the max is over all live items (from the
        min-tree), so ``w_i = (p_i / p_min) ** -beta`` in ``(0, 1]``.

        Returns:
            ``TensorDict`` with ``batch_size [batch_size]``: the stored keys plus ``keys.INDEX``
            ``(B,)`` int64 storage indices and ``keys.WEIGHT`` ``(B,)`` float32 (all 1 if uniform or
            ``beta == 0``).
        """
        # Fast path for the common call (an int and a float in range); anything else is fully validated.
        if type(batch_size) is not int or not 1 <= batch_size <= self._live:
            batch_size = self._check_batch_size(batch_size)
        if type(beta) is not float or not 0.0 <= beta <= 1.0:
            beta = checked_float("beta", beta, lo=0.0, hi=1.0)
        self._sampled += batch_size
        if not self._tree:
            index = torch.randint(self._size, (batch_size,), generator=self._gen)
            return self._gather(index.numpy(), torch.ones(batch_size, dtype=torch.float32))
        index_np, weight_np = self._sample_tree(batch_size, beta)
        out = self._gather(index_np, torch.from_numpy(weight_np))
        np.add.at(self._use, index_np, 1)  # counts duplicates, unlike use[index] += 1
        if self._max_use is not None:
            used_up = index_np[self._use[index_np] >= self._max_use]
            if used_up.size:
                self._evicted_max_use += self._kill(np.unique(used_up))
        return out

    def _check_batch_size(self, batch_size: Any) -> int:
        batch_size = checked_int("batch_size", batch_size, lo=1)
        if batch_size > self._live:
            if self._live == 0:
                raise ValueError(
                    f"cannot sample batch_size={batch_size}: no sampleable items "
                    f"(len {self._size}, all evicted or empty)"
                )
            raise ValueError(
                f"batch_size must be <= num_sampleable = {self._live} (stored, not evicted; "
                f"len {self._size}), got {batch_size}"
            )
        return batch_size

    def get(self, index: torch.Tensor) -> TensorDictBase:
        """Items at storage indices ``index`` (N,) int64, e.g. ``torch.arange(len(buffer))`` for all
        (evicted items included: they stay stored until overwritten).

        Returns the same layout as :meth:`sample`, with ``keys.WEIGHT`` all 1.
        """
        index = torch.as_tensor(index, dtype=torch.int64)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self._size):
            raise IndexError(f"index must be in [0, len(buffer) = {self._size}), got {index.tolist()}")
        index = index.cpu().contiguous()
        return self._gather(index.numpy(), torch.ones(index.shape[0], dtype=torch.float32))

    def _sample_tree(self, batch_size: int, beta: float) -> tuple[np.ndarray, np.ndarray]:
        size = self._size
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
        if self._live == size:
            # Nothing evicted: only fp32 rounding pushing a draw past the total mass can go wrong
            # (scan returns >= size); the last item is the one that mass belongs to. Stratified masses
            # are non-decreasing and so are their indices: the last one is the largest.
            if index[-1] >= size:
                np.minimum(index, size - 1, out=index)
        else:
            self._redraw_evicted(index, total)
        if not self._prioritized or beta == 0.0:
            weight = np.ones(batch_size, dtype=np.float32)
        else:
            weight = self._sum_tree[index]
            # Python floats are weak scalars (NEP 50): the arithmetic stays float32.
            np.divide(weight, self._min_tree.query(0, size), out=weight)  # min over live items
            np.power(weight, -beta, out=weight)
        return index, weight

    def _redraw_evicted(self, index: np.ndarray, total: float) -> None:
        """Replace, in place, draws that landed on an evicted item or past the stored ones.

        The scan lands on a zero-priority leaf only through fp32 rounding at the edge of a neighbour's
        mass (or a draw of exactly 0), so redraws are rare; draws still bad after ``_MAX_REDRAWS`` rounds
        go to the nearest live item at or below them (the one their mass was meant for).
        """
        size = self._size
        for attempt in range(_MAX_REDRAWS + 1):
            bad = np.flatnonzero((index >= size) | (self._sum_tree[np.minimum(index, size - 1)] == 0))
            if bad.size == 0:
                return
            if attempt == _MAX_REDRAWS:
                break
            draws = torch.rand(bad.size, generator=self._gen, dtype=torch.float64).numpy()
            index[bad] = self._sum_tree.scan_lower_bound((draws * total).astype(np.float32))
        live = np.flatnonzero(self._sum_tree[np.arange(size, dtype=np.int64)] > 0)
        below = np.searchsorted(live, np.minimum(index[bad], size - 1), side="right") - 1
        index[bad] = live[np.maximum(below, 0)]

    def _gather(self, index: np.ndarray, weight: torch.Tensor) -> TensorDictBase:
        """Items at ``index`` (``(B,)`` int64 numpy, in ``[0, size)``) with ``weight`` (``(B,)`` float32)."""
        n = torch.Size([index.shape[0]])
        index_t = torch.from_numpy(index)
        if self._np_rows is not None:
            # One take of whole packed rows (one cache miss per item), then a contiguous copy of each
            # field out of that small block: ~2x cheaper than an index_select per key.
            block = self._np_rows.take(index)
            values = {key: torch.from_numpy(block[name].copy()) for key, name in self._np_fields}
        else:  # device storage, or dtypes numpy lacks: index_select from each strided view
            if self._device.type != "cpu":
                index_t = index_t.to(self._device, non_blocking=True)
                weight = weight.to(self._device, non_blocking=True)
            values = {key: torch.index_select(store, 0, index_t) for key, store in self._leaves}
        if self._flat:
            out = values
            out[keys.INDEX] = index_t
            out[keys.WEIGHT] = weight
            return new_flat_tensordict(out, n)
        result = TensorDict(batch_size=n)
        for key, value in values.items():
            result.set(key, value)
        result.set(keys.INDEX, index_t)
        result.set(keys.WEIGHT, weight)
        return result

    # ------------------------------------------------------------------ priorities and eviction
    def update_priority(self, index: torch.Tensor, priority: torch.Tensor) -> None:
        """Set the priorities of sampled items to ``(priority + eps) ** alpha``.

        Args:
            index: ``(B,)`` storage indices (``keys.INDEX`` of a sampled batch); any device.
            priority: ``(B,)`` (or any shape with ``B`` elements) ``|td error|``, finite and >= 0.

        Stale updates are dropped: an update for a slot that :meth:`extend` overwrote after the slot was
        last sampled refers to the old item (e.g. a batch sampled before Lightning's one-batch
        prefetch triggered more collection), so the new item keeps its initial priority. Updates of
        evicted items are dropped (an update never revives an item), and so are indices
        >= ``len(self)`` (after :meth:`clear`). Only sampled items can be updated this way: to give
        fresh items their own priorities pass ``priority`` to :meth:`extend`. If a slot was overwritten
        and then sampled again, a late update from the older batch cannot be told apart and is applied.
        With duplicate indices the last one wins. Uniform buffers ignore the call.
        """
        if not self._prioritized:
            return
        idx, stored, p_hi = self._priority_arrays(index, priority)
        if idx.size == 0:
            return
        size = self._size
        # One reduction checks both bounds: negative indices are huge as uint64.
        hi = int(idx.view(np.uint64).max())
        if hi >= self._capacity:
            lo, hi = int(idx.min()), int(idx.max())
            raise ValueError(f"index values must be in [0, capacity={self._capacity}), got min {lo} max {hi}")
        if self._use is None or size == 0:
            return
        # use == 0: not sampled since (over)written, so the update is for an item no longer there.
        if hi < size and self._live == size:  # the usual case: only the use counts can drop updates
            keep = None if self._use[idx].min() > 0 else self._use[idx] > 0
        else:
            keep = (idx < size) & (self._use[idx] > 0)
            if self._live < size:
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
        if p_hi > self._max_priority:
            self._max_priority = p_hi

    def _priority_arrays(
        self, index: torch.Tensor, priority: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Validate and convert to CPU numpy: ``(int64 indices, float32 (priority + eps) ** alpha, max of
        those)`` (the max is ``-inf`` for no items)."""
        # This runs every training step: the usual call (1-D CPU int64 / float32 tensors) converts
        # straight to numpy; anything else goes through the general conversions.
        # (numpy's attribute checks are cheaper than torch's; .numpy() refuses device tensors and
        # tensors requiring grad.)
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
            idx, prio = self._convert_priority_args(index, priority)
        if prio.size == 0:
            return idx, prio, -math.inf
        p_lo = float(prio.min())
        if not p_lo >= 0.0:  # also catches NaN
            raise ValueError(f"priority must be finite and >= 0 (|td error|), got min {p_lo}")
        stored = np.add(prio, self._eps_f32)
        np.power(stored, self._alpha_f32, out=stored)
        p_hi = float(stored.max())
        if not math.isfinite(p_hi):
            raise ValueError(f"priority must be finite, got max {float(prio.max())}")
        return idx, stored, p_hi

    @staticmethod
    def _convert_priority_args(index: Any, priority: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(index, priority)`` of any kind (tensors of any dtype, shape or device, sequences) as
        ``(N,)`` int64 and float32 CPU numpy arrays."""
        if not isinstance(index, torch.Tensor):
            index = torch.as_tensor(index)
        if not isinstance(priority, torch.Tensor):
            priority = torch.as_tensor(priority)
        if index.ndim != 1:
            index = index.reshape(-1)
        if priority.ndim != 1 or priority.requires_grad:
            priority = priority.detach().reshape(-1)
        if index.shape[0] != priority.shape[0]:
            raise ValueError(
                f"priority must have one element per index: expected {index.shape[0]}, "
                f"got {priority.shape[0]}"
            )
        idx = index_array(index, "index")
        if priority.dtype is not torch.float32 or not priority.is_cpu:
            priority = priority.to("cpu", torch.float32)
        return idx, priority.numpy()

    def evict(self, index: torch.Tensor) -> int:
        """Evict the items at storage indices ``index`` (``(N,)`` integers, any device): they are never
        sampled again and stay stored until overwritten (e.g. a frame store whose frames were dropped).

        Evicting an evicted item again is a no-op. On a uniform buffer without ``max_use`` /
        ``max_staleness`` the first call switches sampling to the sum tree (one O(len) pass); use counts
        start from 0 then.

        Returns:
            The number of items that were live and are now evicted.
        """
        if not isinstance(index, torch.Tensor):
            index = torch.as_tensor(index)
        idx = index_array(index.reshape(-1), "index")
        if idx.size == 0:
            return 0
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= self._size:
            raise IndexError(f"index must be in [0, len(buffer) = {self._size}), got min {lo} max {hi}")
        if not self._tree:
            self._start_tree()
        evicted = self._kill(np.unique(idx))
        self._evicted_manual += evicted
        return evicted

    def _start_tree(self) -> None:
        """Switch a plain uniform buffer to sampling through a sum tree, priority 1 per stored item."""
        if self._tree_classes is None:
            self._tree_classes = segment_tree_classes()
        self._tree = True
        self._make_trees()
        if self._rows is not None:
            self._use = np.zeros(self._capacity, dtype=np.int64)
        if self._size:
            self._sum_tree.update(np.arange(self._size, dtype=np.int64), 1.0)

    def _kill(self, slots: np.ndarray) -> int:
        """Evict the items at ``slots`` (unique int64 storage indices); returns how many were live."""
        slots = slots[self._sum_tree[slots] > 0]
        if slots.size:
            self._sum_tree.update(slots, 0.0)
            if self._min_tree is not None:
                self._min_tree.update(slots, math.inf)
            self._live -= int(slots.size)
        return int(slots.size)

    def _evict_stale(self) -> None:
        """Evict live items with ``policy_iter < train_iter - max_staleness``.

        Usual case, policy_iter non-decreasing in insertion order from ``_stale_ptr`` on: the stale items
        are a prefix, found by binary search, and ``_stale_ptr`` moves past them (O(log n + evicted)).
        Otherwise one vectorized pass over all stored items.
        """
        threshold = self._train_iter - self._max_staleness
        ptr = max(self._stale_ptr, self._pushed - self._size)
        if self._last_descent <= ptr:
            n_stale = self._count_below(ptr, threshold)
            if n_stale:
                slots = np.arange(ptr, ptr + n_stale, dtype=np.int64) % self._capacity
                self._evicted_stale += self._kill(slots)
            self._stale_ptr = ptr + n_stale
        else:
            stale = np.flatnonzero(self._policy_iter[: self._size] < threshold)
            if stale.size:
                self._evicted_stale += self._kill(stale)

    def _count_below(self, start_id: int, threshold: int) -> int:
        """Number of items from push id ``start_id`` on, in insertion order, before the first with
        ``policy_iter >= threshold`` (their policy_iter is non-decreasing)."""
        cap = self._capacity
        count = self._pushed - start_id
        s0 = start_id % cap
        first = min(count, cap - s0)  # the ids run to the end of the ring, then wrap to slot 0
        k = int(np.searchsorted(self._policy_iter[s0 : s0 + first], threshold))
        if k == first and count > first:
            k += int(np.searchsorted(self._policy_iter[: count - first], threshold))
        return k

    # ------------------------------------------------------------------ monitoring
    def stats(self) -> dict[str, float]:
        """Monitoring values (O(len) vectorized numpy; call once per log interval).

        ``size``, ``capacity``, ``fill`` (size / capacity), ``pushed`` and ``sampled`` (items since
        construction or :meth:`clear`), ``sample_insert_ratio`` (sampled / pushed, 0 before any push),
        ``sampleable`` (live items), ``evicted_max_use``, ``evicted_stale``, ``evicted_manual`` (items
        evicted so far per cause), ``priority_mean`` (mean priority of live items, alpha space; 1 when
        uniform, 0 with none live), ``priority_max`` (running max given to new items), ``reuse_mean``,
        ``reuse_max`` and ``reuse_frac_{0,1,2_3,4_7,8_plus}`` (times each stored item was sampled:
        mean, max and the fraction of stored items in each range; NaN on a plain uniform buffer, which
        does not count uses), ``staleness_mean`` and ``staleness_max`` (``train_iter - policy_iter``
        over live items). Means and maxes over no items are 0.
        """
        size, live = self._size, self._live
        if self._prioritized:
            priority_mean = self._sum_tree.query(0, size) / live if live else 0.0
        else:
            priority_mean = 1.0 if live else 0.0
        out = {
            "size": float(size),
            "capacity": float(self._capacity),
            "fill": size / self._capacity,
            "pushed": float(self._pushed),
            "sampled": float(self._sampled),
            "sample_insert_ratio": self._sampled / self._pushed if self._pushed else 0.0,
            "sampleable": float(live),
            "evicted_max_use": float(self._evicted_max_use),
            "evicted_stale": float(self._evicted_stale),
            "evicted_manual": float(self._evicted_manual),
            "priority_mean": float(priority_mean),
            "priority_max": float(self._max_priority),
        }
        if self._tree:
            use = self._use[:size] if size else np.zeros(0, dtype=np.int64)
            counts = np.bincount(np.minimum(use, 8), minlength=9)
            out["reuse_mean"] = float(use.mean()) if size else 0.0
            out["reuse_max"] = float(use.max()) if size else 0.0
            for name, lo, hi in _REUSE_BINS:
                out[f"reuse_frac_{name}"] = float(counts[lo:hi].sum()) / size if size else 0.0
        else:  # the plain uniform path does not count uses
            out["reuse_mean"] = out["reuse_max"] = math.nan
            out.update({f"reuse_frac_{name}": math.nan for name, _, _ in _REUSE_BINS})
        policy_iter = self._policy_iter[:size] if size else np.zeros(0, dtype=np.int64)
        if live < size:
            policy_iter = policy_iter[self._sum_tree[np.arange(size, dtype=np.int64)] > 0]
        staleness = self._train_iter - policy_iter
        out["staleness_mean"] = float(staleness.mean()) if live else 0.0
        out["staleness_max"] = float(staleness.max()) if live else 0.0
        return out

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Full state as tensors and Python primitives (loadable with ``torch.load(weights_only=True)``).

        Holds the filled part of the storage (``compress_keys`` as lists of lz4-compressed ``uint8``
        chunks), the stored priorities, use counts and policy iterations, counters and the sampling RNG
        state. Tensors are copies (they never share memory with the buffer).
        """
        state = self._meta_state()
        storage = self._schema_state()
        if storage is not None:
            data, chunks, per_chunk = [], [], []
            for key, store in self._leaves:
                filled = store[: self._size]
                if normalize_key(key, "key") in self._compress_keys:
                    c, k = lz4_compress_chunks(filled)  # copies chunk by chunk, never the whole field
                    data.append(None)
                    chunks.append(c)
                    per_chunk.append(k)
                else:
                    # A view would serialize the whole packed storage: copy the field out.
                    data.append(filled.to("cpu", copy=True, memory_format=torch.contiguous_format))
                    chunks.append(None)
                    per_chunk.append(0)
            storage.update({"data": data, "lz4_chunks": chunks, "lz4_items_per_chunk": per_chunk})
        state["storage"] = storage
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore exactly what :meth:`state_dict` saved (subsequent samples are identical).

        The buffer must have been built with the same ``capacity``, ``alpha``, ``eps``, ``prioritized``,
        ``max_use`` and ``max_staleness`` (``storage`` may differ). Raises ``ValueError`` naming the
        offending field for corrupt or incompatible state; the buffer is unchanged in that case.
        """
        loaded = self._read_state(state)
        fields = self._read_storage(state.get("storage"), loaded.size)
        schema = None if fields is None else [(key, tuple(v.shape[1:]), v.dtype) for key, v in fields]
        self._commit(loaded, schema)
        for (_, store), (_, value) in zip(self._leaves, fields or [], strict=True):
            store[: loaded.size] = value

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write the whole buffer to ``directory`` atomically: a crash mid-save leaves the previous copy
        there intact (see :func:`lightning_rl.utils.io.atomic_directory`).

        The directory is self-contained whatever the ``storage``: ``state.pt`` (what :meth:`state_dict`
        holds except the items) and ``rows.bin`` (the packed items, raw, streamed in chunks so a memmap
        buffer larger than RAM can be saved; with a CRC-32 in ``state.pt``).
        """
        state = self._meta_state()
        storage = self._schema_state()
        with atomic_directory(directory) as tmp:
            if storage is not None:
                storage["row_bytes"] = int(self._rows.shape[1])
                storage["rows_crc32"] = self._write_rows(tmp / _ROWS_FILE)
            state["storage"] = storage
            torch.save(state, tmp / _STATE_FILE)

    def load(self, directory: str | os.PathLike[str]) -> None:
        """Restore a buffer written by :meth:`save` (subsequent samples are identical).

        Same compatibility rules as :meth:`load_state_dict`. Raises ``FileNotFoundError`` if
        ``directory`` or one of its files is missing and ``ValueError`` naming the problem if a file is
        corrupt or does not match this buffer; the buffer is unchanged in both cases.
        """
        directory = Path(directory)
        state_path = directory / _STATE_FILE
        if not directory.is_dir():
            raise FileNotFoundError(f"no saved replay buffer at {directory}: not a directory")
        if not state_path.is_file():
            raise FileNotFoundError(f"no saved replay buffer at {directory}: {_STATE_FILE} is missing")
        try:
            state = torch.load(state_path, weights_only=True)
        except Exception as err:  # pickle, zip and torch errors alike mean a corrupt file
            raise ValueError(f"replay directory {directory}: {_STATE_FILE} is corrupt: {err}") from err
        loaded = self._read_state(state)
        schema = self._check_rows_file(state.get("storage"), loaded.size, directory)
        self._commit(loaded, schema)
        if schema is not None:
            try:
                self._read_rows(directory / _ROWS_FILE)
            except BaseException:
                self._reset()  # an I/O error after validation: empty rather than half-loaded
                raise

    # ------------------------------------------------------------------ checkpoint internals
    def _meta_state(self) -> dict[str, Any]:
        size = self._size
        policy_iter = self._policy_iter[:size] if size else np.zeros(0, dtype=np.int64)
        priorities = use = None
        if self._tree:
            leaves = self._sum_tree[np.arange(size, dtype=np.int64)]
            priorities = torch.from_numpy(np.asarray(leaves, dtype=np.float32).copy())
            use = torch.from_numpy(self._use[:size].copy() if size else np.zeros(0, dtype=np.int64))
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "capacity": self._capacity,
            "alpha": self._alpha,
            "eps": self._eps,
            "prioritized": self._prioritized,
            "max_use": self._max_use,
            "max_staleness": self._max_staleness,
            "cursor": self._cursor,
            "size": size,
            "pushed": self._pushed,
            "sampled": self._sampled,
            "max_priority": self._max_priority,
            "train_iter": self._train_iter,
            "evicted_max_use": self._evicted_max_use,
            "evicted_stale": self._evicted_stale,
            "evicted_manual": self._evicted_manual,
            "tree": self._tree,
            "rng_state": self._gen.get_state(),
            "priorities": priorities,
            "use_count": use,
            "policy_iter": torch.from_numpy(policy_iter.copy()),
            "storage": None,
        }

    def _schema_state(self) -> dict[str, Any] | None:
        if self._rows is None or self._size == 0:
            return None
        names, shapes, dtypes = [], [], []
        for key, store in self._leaves:
            nkey = normalize_key(key, "key")
            names.append([nkey] if isinstance(nkey, str) else list(nkey))
            shapes.append(list(store.shape[1:]))
            dtypes.append(str(store.dtype).removeprefix("torch."))
        return {"keys": names, "shapes": shapes, "dtypes": dtypes}

    def _write_rows(self, path: Path) -> int:
        """Write rows ``[0, size)`` to ``path`` chunk by chunk; returns their CRC-32."""
        crc = 0
        step = max(1, _IO_CHUNK_BYTES // self._rows.shape[1])
        with open(path, "wb") as f:
            for start in range(0, self._size, step):
                chunk = self._rows[start : min(start + step, self._size)].cpu().numpy()
                f.write(memoryview(chunk))
                crc = zlib.crc32(chunk, crc)
        return crc

    def _read_rows(self, path: Path) -> None:
        step = max(1, _IO_CHUNK_BYTES // self._rows.shape[1])
        with open(path, "rb") as f:
            for start in range(0, self._size, step):
                chunk = self._rows[start : min(start + step, self._size)].numpy()
                if f.readinto(memoryview(chunk)) != chunk.nbytes:
                    raise ValueError(f"{path} changed while loading: it is shorter than before")

    def _check_rows_file(self, storage: Any, size: int, directory: Path) -> Schema | None:
        """Validate the ``storage`` entry of a saved ``state.pt`` and ``rows.bin`` (length and CRC-32)."""
        if size == 0:
            if storage is not None:
                raise ValueError("replay state: 'storage' must be None when 'size' is 0")
            return None
        schema = read_schema(storage)
        _, row_bytes = row_layout(schema)
        saved_row_bytes, crc = storage.get("row_bytes"), storage.get("rows_crc32")
        if saved_row_bytes != row_bytes or not isinstance(crc, int):
            raise ValueError(
                f"replay state: 'storage.row_bytes' {saved_row_bytes!r} / 'storage.rows_crc32' {crc!r} "
                f"do not match the schema (row_bytes {row_bytes}, an int CRC)"
            )
        path = directory / _ROWS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no saved replay buffer at {directory}: {_ROWS_FILE} is missing")
        expected = size * row_bytes
        if path.stat().st_size != expected:
            raise ValueError(
                f"replay directory {directory}: {_ROWS_FILE} has {path.stat().st_size} bytes, "
                f"expected {expected} (size {size} x row_bytes {row_bytes})"
            )
        actual = 0
        with open(path, "rb") as f:
            while block := f.read(_IO_CHUNK_BYTES):
                actual = zlib.crc32(block, actual)
        if actual != crc:
            raise ValueError(f"replay directory {directory}: {_ROWS_FILE} is corrupt (CRC-32 mismatch)")
        return schema

    def _read_state(self, state: Any) -> LoadedState:
        """Validate everything in ``state`` but the storage; nothing is changed."""
        r = StateReader(state)
        if r.get("format", str) != _FORMAT:
            raise ValueError(f"replay state: 'format' must be {_FORMAT!r}, got {state.get('format')!r}")
        if r.get("version", int) != _VERSION:
            raise ValueError(
                f"replay state: unsupported 'version' {state.get('version')!r} (supported: {_VERSION})"
            )
        for name, mine in (("capacity", self._capacity), ("prioritized", self._prioritized)):
            theirs = r.get(name, type(mine))
            if theirs != mine:
                raise ValueError(f"replay state: '{name}' is {theirs!r} but this buffer has {mine!r}")
        for name, mine in (("alpha", self._alpha), ("eps", self._eps)):
            theirs = r.get(name, float)
            if theirs != mine:
                raise ValueError(f"replay state: '{name}' is {theirs!r} but this buffer has {mine!r}")
        for name, mine in (("max_use", self._max_use), ("max_staleness", self._max_staleness)):
            theirs = r.optional_int(name)
            if theirs != mine:
                raise ValueError(f"replay state: '{name}' is {theirs!r} but this buffer has {mine!r}")
        cap = self._capacity
        names = ("pushed", "sampled", "train_iter", "evicted_max_use", "evicted_stale", "evicted_manual")
        counters = {name: r.get(name, int) for name in names}
        for name, value in counters.items():
            if value < 0:
                raise ValueError(f"replay state: '{name}' must be >= 0, got {value}")
        pushed = counters["pushed"]
        size = r.get("size", int)
        cursor = r.get("cursor", int)
        if size != min(pushed, cap):
            raise ValueError(f"replay state: 'size' {size} must equal min(pushed={pushed}, capacity={cap})")
        if cursor != pushed % cap:
            raise ValueError(f"replay state: 'cursor' {cursor} must equal pushed % capacity = {pushed % cap}")
        max_priority = r.get("max_priority", float)
        if not (math.isfinite(max_priority) and max_priority > 0):
            raise ValueError(f"replay state: 'max_priority' must be finite and > 0, got {max_priority}")
        rng_state = r.get("rng_state", torch.Tensor)
        try:
            torch.Generator().set_state(rng_state)
        except (RuntimeError, TypeError) as err:
            raise ValueError(
                f"replay state: 'rng_state' is not a valid torch.Generator state: {err}"
            ) from err
        tree = r.get("tree", bool)
        if self._tree_default and not tree:
            raise ValueError(
                "replay state: 'tree' is False but this buffer samples through the sum tree "
                "(prioritized, max_use or max_staleness set)"
            )
        if tree and self._tree_classes is None:
            self._tree_classes = segment_tree_classes()  # before anything changes: it may raise
        policy_iter = r.tensor("policy_iter", torch.int64, (size,)).numpy()
        if size and int(policy_iter.min()) < 0:
            raise ValueError("replay state: 'policy_iter' must be >= 0")
        priorities = use = None
        if tree:
            use = r.tensor("use_count", torch.int64, (size,)).numpy()
            if size and int(use.min()) < 0:
                raise ValueError("replay state: 'use_count' must be >= 0")
            priorities = r.tensor("priorities", torch.float32, (size,)).numpy()
            self._check_priorities(priorities, use, policy_iter, max_priority, counters["train_iter"])
        elif state.get("priorities") is not None or state.get("use_count") is not None:
            raise ValueError("replay state: 'priorities' and 'use_count' must be None when 'tree' is False")
        return LoadedState(
            size=size,
            cursor=cursor,
            max_priority=max_priority,
            tree=tree,
            rng_state=rng_state,
            counters=counters,
            priorities=priorities,
            use=use,
            policy_iter=policy_iter,
        )

    def _check_priorities(
        self,
        priorities: np.ndarray,
        use: np.ndarray,
        policy_iter: np.ndarray,
        max_priority: float,
        train_iter: int,
    ) -> None:
        if priorities.size == 0:
            return
        if not bool((np.isfinite(priorities) & (priorities >= 0)).all()):
            raise ValueError("replay state: 'priorities' must be finite and >= 0 (0 = evicted)")
        live = priorities > 0
        if self._prioritized and float(priorities.max()) > max_priority:
            raise ValueError("replay state: 'priorities' exceed 'max_priority'")
        if not self._prioritized and not bool(np.isin(priorities, (0.0, 1.0)).all()):
            raise ValueError("replay state: 'priorities' of a uniform buffer must be 0 (evicted) or 1")
        if self._max_use is not None and bool((use[live] >= self._max_use).any()):
            raise ValueError(f"replay state: 'priorities' > 0 for items used max_use={self._max_use} times")
        if self._max_staleness is not None and bool(
            (policy_iter[live] < train_iter - self._max_staleness).any()
        ):
            raise ValueError(
                f"replay state: 'priorities' > 0 for items staler than max_staleness={self._max_staleness}"
            )

    def _read_storage(self, storage: Any, size: int) -> list[tuple[NestedKey, torch.Tensor]] | None:
        """Validate the ``storage`` entry of :meth:`state_dict` into ``[(key, (size, *shape) values)]``."""
        if size == 0:
            if storage is not None:
                raise ValueError("replay state: 'storage' must be None when 'size' is 0")
            return None
        schema = read_schema(storage)
        fields = ("data", "lz4_chunks", "lz4_items_per_chunk")
        lists = []
        for f in fields:
            v = storage.get(f)
            if not isinstance(v, list) or len(v) != len(schema):
                raise ValueError(
                    f"replay state: 'storage.{f}' must be a list with one entry per key, got {describe(v)}"
                )
            lists.append(v)
        out: list[tuple[NestedKey, torch.Tensor]] = []
        for (key, shape, dtype), data, chunks, per_chunk in zip(schema, *lists, strict=True):
            full = (size, *shape)
            if data is not None:
                if not isinstance(data, torch.Tensor) or data.dtype != dtype or tuple(data.shape) != full:
                    raise ValueError(
                        f"replay state: 'storage.data' of {key!r} must be a {dtype} tensor of shape {full}, "
                        f"got {describe(data)}"
                    )
                value = data
            elif chunks is not None:
                try:
                    value = lz4_decompress_chunks(chunks, per_chunk, full, dtype)
                except ValueError as err:
                    raise ValueError(f"replay state: lz4 data of {key!r}: {err}") from err
            else:
                raise ValueError(f"replay state: key {key!r} has neither 'data' nor 'lz4_chunks'")
            out.append((key, value))
        return out

    def _commit(self, loaded: LoadedState, schema: Schema | None) -> None:
        """Replace the whole state by validated ``loaded`` (the rows are allocated, not filled)."""
        self._reset()
        if loaded.tree and not self._tree:
            self._start_tree()
        if schema is not None:
            self._allocate(schema, torch.device("cpu"))
        size = loaded.size
        if size:
            self._policy_iter[:size] = loaded.policy_iter
        self._live = size
        if self._tree and size:
            self._use[:size] = loaded.use
            slots = np.arange(size, dtype=np.int64)
            prio = np.ascontiguousarray(loaded.priorities)
            self._sum_tree.update(slots, prio)
            if self._min_tree is not None:
                self._min_tree.update(slots, np.where(prio > 0, prio, np.float32(np.inf)))
            self._live = int(np.count_nonzero(prio))
        c = loaded.counters
        self._cursor, self._size, self._pushed, self._sampled = loaded.cursor, size, c["pushed"], c["sampled"]
        self._max_priority = loaded.max_priority
        self._train_iter = c["train_iter"]
        self._evicted_max_use, self._evicted_stale = c["evicted_max_use"], c["evicted_stale"]
        self._evicted_manual = c["evicted_manual"]
        self._stale_ptr = self._pushed - size  # rescanning evicted items is harmless
        self._last_descent = self._find_last_descent()
        self._gen.set_state(loaded.rng_state)

    def _find_last_descent(self) -> int:
        size = self._size
        if size < 2:
            return 0
        pi = self._policy_iter
        ordered = np.concatenate((pi[self._cursor : size], pi[: self._cursor]))  # oldest first
        drops = np.flatnonzero(ordered[1:] < ordered[:-1])
        return self._pushed - size + int(drops[-1]) + 1 if drops.size else 0


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
