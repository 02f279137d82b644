"""Experience replay: nerveX's ``PrioritizedBuffer`` as a facade over separate parts, in the spirit of
TorchRL's storage / sampler / writer split.

=================  ===========================================================================
module             job
=================  ===========================================================================
``buffer``         :class:`PrioritizedBuffer`: the public API; validates calls and wires the parts
``storage``        :class:`PackedStorage`: the ring position and the items, packed into one
                   ``(capacity, row_bytes)`` uint8 tensor (RAM, device or memmap), and the gather
``items``          dict items: tensor values to the storage, other values to object columns
``sampler``        :class:`Sampler`: the protocol every sampler implements
``tree_sampler``   the sum-tree core shared by the default samplers (stratified draws, eviction)
``samplers``       :class:`UniformSampler` and :class:`PrioritizedSampler`, the defaults
``eviction``       ``max_use``, ``max_staleness`` and manual eviction, counted per cause
``stats``          :meth:`PrioritizedBuffer.stats`
``persistence``    ``state_dict`` (lz4 columns) and ``save`` / ``load`` (a directory with a CRC)
``checks``         argument and saved-state validation (every error names the field)
=================  ===========================================================================

The importance-sampling exponent ``beta`` is annealed by the caller (the off-policy DataModule uses a
``lightning_rl.torch_utils.Schedule`` over env steps) and passed to each ``sample``.

The fast path (DESIGN.md §6 "Replay speed"): ``sample`` is one draw from the sampler (torchrl's C++
segment trees, or ``torch.randint``) plus one gather of whole packed rows; ``update_priority`` goes
straight to the sampler; ``extend`` of a vector step writes one slice per key. Measure with
``benchmarks/replay_buffer.py``.

Adding a sampler (an R2D2 sequence sampler, a multi-agent episode sampler) needs no edit here: write a
class with the members of :class:`Sampler` (``prioritized``, ``live``, ``use``; ``bind``, ``reset``,
``extend``, ``sample``, ``update_priority``, ``evict``, ``live_mask``, ``stats``, ``state_dict``,
``read_state``) and pass it as ``PrioritizedBuffer(maxlen, sampler=MySampler(...))``. Subclassing
:class:`PrioritizedSampler` is the short way when only one step differs, e.g. a sequence sampler whose
``update_priority`` takes ``(B, T)`` TD errors and stores ``eta * max + (1 - eta) * mean`` per sequence
(``lightning_rl.data.sequence_priority``), with items being ``SequenceBuilder`` sequences. The sampler
draws slots and weights; the storage gathers them, so a sampler may read stored fields (an episode id,
say) through the :class:`PackedStorage` it is bound to. ``tests/data/test_replay_samplers.py`` plugs in
both kinds.
"""

from lightning_rl.data.replay.buffer import PrioritizedBuffer
from lightning_rl.data.replay.checks import StateReader
from lightning_rl.data.replay.sampler import LoadedSampler, Sampler
from lightning_rl.data.replay.samplers import PrioritizedSampler, UniformSampler
from lightning_rl.data.replay.storage import PackedStorage

__all__ = [
    "LoadedSampler",
    "PackedStorage",
    "PrioritizedBuffer",
    "PrioritizedSampler",
    "Sampler",
    "StateReader",
    "UniformSampler",
]
