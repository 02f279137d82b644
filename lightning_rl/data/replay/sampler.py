"""What :class:`~lightning_rl.data.replay.PrioritizedBuffer` asks of a sampler: the one interface that new
samplers (an R2D2 sequence sampler, a multi-agent episode sampler) implement to plug in.

Slots are storage indices in ``[0, capacity)``; slot arrays are C-contiguous int64 numpy (the C++ trees
read raw buffers). The buffer calls, in this order within one call of its own:

- ``extend``: ``sampler.extend(slots, priority)`` before the storage ring advances (``storage.size`` is
  still the count before the write), then eviction rules may call ``sampler.evict`` on the new slots;
- ``sample``: ``sampler.sample(batch_size, beta)``, then the storage gathers the returned slots and the
  ``max_use`` rule may call ``sampler.evict``;
- ``update_priority`` / ``evict`` / ``stats`` / checkpoints: the method of the same name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch

if TYPE_CHECKING:
    from lightning_rl.data.replay.checks import StateReader
    from lightning_rl.data.replay.storage import PackedStorage


@dataclasses.dataclass
class LoadedSampler:
    """A sampler's validated saved state (from :meth:`Sampler.read_state`), not yet applied."""

    live: np.ndarray  # (size,) bool: False for evicted items (eviction rules cross-check them)
    use: np.ndarray | None  # (size,) int64 times sampled since written; None when not counted
    apply: Callable[[], None]  # replaces the sampler's state by this one; cannot fail


@runtime_checkable
class Sampler(Protocol):
    """Chooses which stored items a batch holds, with their importance weights.

    Attributes (plain attributes: the buffer reads them on every call):
        prioritized: whether :meth:`update_priority` and the weights mean anything (``False``: the buffer
            skips priority validation in ``extend``).
        live: stored items that :meth:`sample` can return (not evicted); ``batch_size`` is checked
            against it.
        use: ``(capacity,)`` int64 times each slot was sampled since it was written (the ``max_use`` rule,
            the reuse statistics), or ``None`` if this sampler does not count (then ``max_use`` is refused).
    """

    prioritized: bool
    live: int
    use: np.ndarray | None

    def bind(self, storage: PackedStorage, generator: torch.Generator) -> None:
        """Attach to a buffer's storage (``capacity``, ring position, stored fields) and take the buffer's
        random generator for every draw (its state is checkpointed by the buffer); then empty."""

    def reset(self) -> None:
        """Forget every item (the buffer was cleared)."""

    def extend(self, slots: np.ndarray, priority: np.ndarray | None) -> None:
        """Items are about to be written to ``slots`` (``(M,)`` unique; some may overwrite live items).

        ``priority``: ``(M,)`` float32 ``|td error|`` the caller gave (not range-checked), or ``None``
        (the sampler's default, e.g. the maximum priority seen). Raise ``ValueError`` before changing
        anything if it is unusable.
        """

    def sample(self, batch_size: int, beta: float) -> tuple[np.ndarray, torch.Tensor]:
        """Draw ``batch_size`` (``1 <= batch_size <= live``) live slots; count them in :attr:`use`.

        Returns:
            ``(B,)`` int64 numpy slots in ``[0, storage.size)`` and ``(B,)`` float32 importance weights
            in ``(0, 1]`` (``beta`` in ``[0, 1]`` is the importance-sampling exponent).
        """

    def update_priority(self, index: Any, priority: Any) -> None:
        """New priorities for sampled items (the buffer's public ``update_priority``: validate the
        arguments and raise ``ValueError`` naming them; drop updates for overwritten or evicted items)."""

    def evict(self, slots: np.ndarray) -> int:
        """Never sample the items at ``slots`` (``(K,)`` unique, in ``[0, storage.size)``) again, until
        overwritten; returns how many of them were live."""

    def live_mask(self) -> np.ndarray:
        """``(storage.size,)`` bool, ``True`` for live items."""

    def stats(self) -> dict[str, float]:
        """``priority_mean`` (over live items; 0 with none) and ``priority_max`` (given to new items)."""

    def state_dict(self) -> dict[str, Any]:
        """Entries merged into the buffer's state (tensors and primitives only; no name of the buffer's
        own entries)."""

    def read_state(self, reader: StateReader, size: int) -> LoadedSampler:
        """Validate this sampler's entries of a saved buffer state holding ``size`` items (raise
        ``ValueError`` naming the field; change nothing)."""
