"""``PrioritizedBuffer``: nerveX's replay buffer, a thin facade over packed storage, a sampler, eviction
rules, statistics and persistence (see the package docstring for how they fit)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tensordict import TensorDictBase

from lightning_rl.data.replay import persistence
from lightning_rl.data.replay.checks import (
    NestedKey,
    checked_float,
    checked_int,
    index_array,
    normalize_key,
    priority_array,
)
from lightning_rl.data.replay.eviction import Eviction
from lightning_rl.data.replay.items import DictItems
from lightning_rl.data.replay.sampler import Sampler
from lightning_rl.data.replay.samplers import PrioritizedSampler, UniformSampler
from lightning_rl.data.replay.stats import buffer_stats
from lightning_rl.data.replay.storage import STORAGES, PackedStorage

_DEFAULTS = {"alpha": 0.6, "prioritized": True, "eps": 1e-6}  # of the default sampler's arguments

Items = TensorDictBase | list[dict[str, Any]]


class PrioritizedBuffer:
    """Ring buffer of transitions with proportional prioritized (or uniform) sampling (Schaul et al., 2016).

    Items are ``TensorDict`` batches (the fast path) or plain dicts as in nerveX (``buffer.append({'data':
    'placeholder'})``; tensor values are stored packed, other values beside them: see
    :mod:`~lightning_rl.data.replay.items`). Storage is allocated from the per-item shapes and dtypes of
    the first batch; every later batch must have the same keys, per-item shapes and dtypes. All fields of
    an item are packed into one row of a ``(maxlen, row_bytes)`` uint8 tensor (one cache miss per sampled
    item); priorities live in torchrl's C++ sum/min segment trees.

    Eviction (``max_use``, ``max_staleness``, :meth:`evict`): an evicted item is never sampled again but
    stays in its slot until overwritten (so :meth:`get` still reads it); importance weights are normalized
    over live items only. Uniform buffers sample through a sum tree with priority 1 per live item once
    items can be evicted (``max_use`` or ``max_staleness`` set, or after the first :meth:`evict`), and
    with a plain ``torch.randint`` otherwise.

    Not thread-safe: one buffer belongs to one process/thread (per-rank under DDP).

    Args:
        maxlen: maximum number of items (``collections.deque``'s and nerveX's name); the oldest are
            overwritten first (ring buffer).
        alpha: priority exponent of the default prioritized sampler; items are stored with priority
            ``(p + eps) ** alpha`` (0 = uniform).
        prioritized: the default sampler: ``True`` proportional prioritized, ``False`` uniform (weights all
            1, :meth:`update_priority` a no-op; needs no C++ extension unless items can be evicted).
        eps: added to ``|td error|`` by the default prioritized sampler so that no item gets zero
            probability; must be > 0.
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
        sampler: a :class:`~lightning_rl.data.replay.Sampler` (e.g. an R2D2 sequence sampler) instead of
            the default one; ``alpha``, ``prioritized`` and ``eps`` must then keep their defaults.
    """

    def __init__(
        self,
        maxlen: int,
        alpha: float = 0.6,
        prioritized: bool = True,
        eps: float = 1e-6,
        seed: int | None = None,
        compress_keys: Sequence[NestedKey] = (),
        max_use: int | None = None,
        max_staleness: int | None = None,
        storage: Literal["memory", "memmap"] = "memory",
        memmap_dir: str | os.PathLike[str] | None = None,
        sampler: Sampler | None = None,
    ) -> None:
        capacity = checked_int("maxlen", maxlen, lo=1)
        self._alpha = checked_float("alpha", alpha, lo=0.0)
        if not isinstance(prioritized, bool):
            raise ValueError(f"prioritized must be a bool (True or False), got {prioritized!r}")
        self._eps = checked_float("eps", eps, lo=0.0, lo_open=True)
        if seed is not None:
            seed = checked_int("seed", seed, lo=0)
        if isinstance(compress_keys, str):  # a bare "obs" means one key, not the keys "o", "b", "s"
            compress_keys = [compress_keys]
        compress = tuple(normalize_key(k, "compress_keys") for k in compress_keys)
        self._eviction = Eviction(max_use, max_staleness)
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
        if storage == "memmap" and not isinstance(memmap_dir, (str, os.PathLike)):
            raise ValueError(f"memmap_dir must be a directory path with storage='memmap', got {memmap_dir!r}")
        if storage != "memmap" and memmap_dir is not None:
            raise ValueError(f"memmap_dir is only used with storage='memmap', got storage={storage!r}")
        if sampler is None:
            evictable = max_use is not None or max_staleness is not None
            sampler = PrioritizedSampler(alpha, eps) if prioritized else UniformSampler(tree=evictable)
        elif not isinstance(sampler, Sampler):
            raise ValueError(f"sampler must implement lightning_rl.data.replay.Sampler, got {sampler!r}")
        elif {"alpha": alpha, "prioritized": prioritized, "eps": eps} != _DEFAULTS:
            raise ValueError(
                "alpha, prioritized and eps configure the default sampler; configure sampler= itself"
            )
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        self._storage = PackedStorage(
            capacity, storage, None if memmap_dir is None else Path(memmap_dir), compress
        )
        self._sampler = sampler
        self._items = DictItems(capacity)
        sampler.bind(self._storage, generator)
        self._eviction.bind(self._storage, sampler)
        self._max_use = self._eviction.max_use  # read on every sample()
        self._parts = persistence.ReplayParts(self._storage, sampler, self._eviction, self._items, generator)

    capacity = property(attrgetter("_storage.capacity"), doc="Maximum number of stored items (``maxlen``).")
    prioritized = property(attrgetter("_sampler.prioritized"), doc="Whether sampling is prioritized.")
    alpha = property(attrgetter("_alpha"), doc="Priority exponent of the default prioritized sampler.")
    max_use = property(attrgetter("_eviction.max_use"), doc="Uses after which an item is evicted.")
    max_staleness = property(attrgetter("_eviction.max_staleness"), doc="Staleness above which items go.")
    pushed = property(
        attrgetter("_storage.pushed"),
        doc="Items added since construction or :meth:`clear` (overwritten too).",
    )
    sampled = property(
        attrgetter("_storage.sampled"),
        doc="Items sampled since construction or :meth:`clear` (each occurrence in a batch counts).",
    )
    num_sampleable = property(
        attrgetter("_sampler.live"),
        doc="Stored items that are not evicted (those :meth:`sample` can return).",
    )

    @property
    def train_iter(self) -> int:
        """The learner's current train iteration: the default ``policy_iter`` of new items and the
        reference of ``max_staleness``. Set it before sampling; it never decreases. Kept by :meth:`clear`."""
        return self._eviction.train_iter

    @train_iter.setter
    def train_iter(self, value: int) -> None:
        self._eviction.set_train_iter(value)

    def __len__(self) -> int:
        return self._storage.size

    def __repr__(self) -> str:
        st, ev = self._storage, self._eviction
        return (
            f"{type(self).__name__}(size={st.size}, capacity={st.capacity}, "
            f"prioritized={self.prioritized}, alpha={self._alpha}, eps={self._eps}, sampler="
            f"{type(self._sampler).__name__}, max_use={ev.max_use}, max_staleness={ev.max_staleness}, "
            f"storage={st.kind!r})"
        )

    def clear(self) -> None:
        """Drop all items, priorities and counters (the storage is freed; the RNG state and
        :attr:`train_iter` are kept)."""
        self._parts.reset()

    # ------------------------------------------------------------------ adding items
    def append(
        self,
        item: TensorDictBase | Mapping[str, Any],
        priority: float | None = None,
        policy_iter: int | None = None,
    ) -> int:
        """Add one item (a ``TensorDict`` with ``batch_size []``, or a dict); see :meth:`extend`.

        Returns:
            The item's storage index.
        """
        if isinstance(item, TensorDictBase) and item.batch_dims == 0:
            batch: Items = item.unsqueeze(0)
        elif isinstance(item, Mapping) and not isinstance(item, TensorDictBase):
            batch = [dict(item)]
        else:
            got = list(item.batch_size) if isinstance(item, TensorDictBase) else type(item).__name__
            raise ValueError(f"item must be a TensorDict with batch_size [] or a dict, got {got}")
        prio = None
        if priority is not None:
            prio = torch.tensor([checked_float("priority", priority, lo=0.0)], dtype=torch.float32)
        return int(self.extend(batch, prio, policy_iter)[0])

    def extend(
        self,
        batch: Items,
        priority: torch.Tensor | None = None,
        policy_iter: int | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Add ``N`` items: a ``TensorDict`` batch (``batch_size [N]``, or ``[N, *]`` whose trailing dims
        belong to each item, e.g. ``[N, L]`` sequences from ``SequenceBuilder``), or a list of ``N`` dicts
        (into a buffer of dict items); the oldest are overwritten when full. Samples come back with
        ``batch_size [B]`` (a list of ``B`` dicts for dict items).

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
        dict_batch = None
        if isinstance(batch, TensorDictBase):
            if self._items.names is not None:
                raise ValueError(
                    "this buffer stores dict items (its first ones were): extend it with a list of dicts"
                )
            if batch.batch_dims < 1:
                raise ValueError(
                    f"batch must have batch_size [N, ...] (a leading item dim), got {list(batch.batch_size)}"
                )
        elif isinstance(batch, Sequence) and not isinstance(batch, (str, bytes)):
            if self._storage.rows is not None and self._items.names is None:
                raise ValueError("this buffer stores TensorDict batches (its first ones were), not dicts")
            dict_batch = self._items.split(batch)
            batch = dict_batch.tensors
        else:
            raise ValueError(
                "batch must be a TensorDict with batch_size [N] or a list of dicts, "
                f"got {type(batch).__name__}"
            )
        n = batch.batch_size[0]
        policy_iters = self._eviction.policy_iters(policy_iter, n)
        if n == 0:
            return torch.empty(0, dtype=torch.int64)
        prio = priority_array(priority, n) if priority is not None and self._sampler.prioritized else None
        values = self._storage.prepare(batch, allow_empty=dict_batch is not None)
        index, slots = self._storage.slots(n)
        # Every check is done: the sampler and the rules record the items, then the ring advances.
        self._sampler.extend(slots, None if prio is None else prio[n - slots.size :])
        self._eviction.extend(slots, policy_iters)
        self._storage.write(values, n)
        if dict_batch is not None:
            self._items.write(slots, dict_batch)
        return torch.from_numpy(index)

    # ------------------------------------------------------------------ sampling
    def sample(self, batch_size: int, beta: float = 0.4) -> Items:
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
            ``beta == 0``). For dict items, a list of ``B`` dicts: each item's keys, then ``keys.INDEX``
            (``int``) and ``keys.WEIGHT`` (``float``).
        """
        # Fast path for the common call (an int and a float in range); anything else is fully validated.
        if type(batch_size) is not int or not 1 <= batch_size <= self._sampler.live:
            batch_size = self._check_batch_size(batch_size)
        if type(beta) is not float or not 0.0 <= beta <= 1.0:
            beta = checked_float("beta", beta, lo=0.0, hi=1.0)
        self._storage.sampled += batch_size
        index, weight = self._sampler.sample(batch_size, beta)
        out = self._storage.gather(index, weight)
        if self._max_use is not None:
            self._eviction.after_sample(index)
        return out if self._items.names is None else self._items.join(out)

    def _check_batch_size(self, batch_size: Any) -> int:
        batch_size = checked_int("batch_size", batch_size, lo=1)
        live, size = self._sampler.live, self._storage.size
        if batch_size > live:
            if live == 0:
                raise ValueError(
                    f"cannot sample batch_size={batch_size}: no sampleable items "
                    f"(len {size}, all evicted or empty)"
                )
            raise ValueError(
                f"batch_size must be <= num_sampleable = {live} (stored, not evicted; len {size}), "
                f"got {batch_size}"
            )
        return batch_size

    def get(self, index: torch.Tensor) -> Items:
        """Items at storage indices ``index`` (N,) int64, e.g. ``torch.arange(len(buffer))`` for all
        (evicted items included: they stay stored until overwritten).

        Returns the same layout as :meth:`sample`, with ``keys.WEIGHT`` all 1.
        """
        index = torch.as_tensor(index, dtype=torch.int64)
        size = self._storage.size
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= size):
            raise IndexError(f"index must be in [0, len(buffer) = {size}), got {index.tolist()}")
        index = index.cpu().contiguous()
        out = self._storage.gather(index.numpy(), torch.ones(index.shape[0], dtype=torch.float32))
        return out if self._items.names is None else self._items.join(out)

    # ------------------------------------------------------------------ priorities and eviction
    def update_priority(self, index: torch.Tensor, priority: torch.Tensor) -> None:
        """Set the priorities of sampled items to ``(priority + eps) ** alpha``.

        Args:
            index: ``(B,)`` storage indices (``keys.INDEX`` of a sampled batch, or the ``keys.INDEX``
                values of sampled dict items); any device.
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
        self._sampler.update_priority(index, priority)

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
        lo, hi, size = int(idx.min()), int(idx.max()), self._storage.size
        if lo < 0 or hi >= size:
            raise IndexError(f"index must be in [0, len(buffer) = {size}), got min {lo} max {hi}")
        return self._eviction.evict(np.unique(idx))

    # ------------------------------------------------------------------ monitoring and checkpoints
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
        return buffer_stats(self._storage, self._sampler, self._eviction)

    def state_dict(self) -> dict[str, Any]:
        """Full state as tensors and Python primitives (loadable with ``torch.load(weights_only=True)``).

        Holds the filled part of the storage (``compress_keys`` as lists of lz4-compressed ``uint8``
        chunks; dict items' other values as they are, see :mod:`~lightning_rl.data.replay.items`), the
        stored priorities, use counts and policy iterations, counters and the sampling RNG state.
        Tensors are copies (they never share memory with the buffer).
        """
        return persistence.state_dict(self._parts)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore exactly what :meth:`state_dict` saved (subsequent samples are identical).

        The buffer must have been built with the same ``maxlen``, ``alpha``, ``eps``, ``prioritized``,
        ``max_use`` and ``max_staleness`` (``storage`` may differ). Raises ``ValueError`` naming the
        offending field for corrupt or incompatible state; the buffer is unchanged in that case.
        """
        persistence.load_state_dict(self._parts, state)

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write the whole buffer to ``directory`` atomically: a crash mid-save leaves the previous copy
        there intact (see :func:`lightning_rl.utils.io.atomic_directory`).

        The directory is self-contained whatever the ``storage``: ``state.pt`` (what :meth:`state_dict`
        holds except the tensor fields) and ``rows.bin`` (the packed items, raw, streamed in chunks so a
        memmap buffer larger than RAM can be saved; with a CRC-32 in ``state.pt``).
        """
        persistence.save(self._parts, directory)

    def load(self, directory: str | os.PathLike[str]) -> None:
        """Restore a buffer written by :meth:`save` (subsequent samples are identical).

        Same compatibility rules as :meth:`load_state_dict`. Raises ``FileNotFoundError`` if
        ``directory`` or one of its files is missing and ``ValueError`` naming the problem if a file is
        corrupt or does not match this buffer; the buffer is unchanged in both cases.
        """
        persistence.load(self._parts, directory)
