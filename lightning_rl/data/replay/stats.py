"""Monitoring values of a replay buffer (``buffer/...`` metrics), from its storage, sampler and eviction."""

from __future__ import annotations

import math

import numpy as np

from lightning_rl.data.replay.eviction import Eviction
from lightning_rl.data.replay.sampler import Sampler
from lightning_rl.data.replay.storage import PackedStorage

# reuse_frac_<name>: the fraction of stored items sampled [lo, hi) times (hi None: no bound)
_REUSE_BINS = (("0", 0, 1), ("1", 1, 2), ("2_3", 2, 4), ("4_7", 4, 8), ("8_plus", 8, None))


def buffer_stats(storage: PackedStorage, sampler: Sampler, eviction: Eviction) -> dict[str, float]:
    """See :meth:`lightning_rl.data.replay.PrioritizedBuffer.stats` (O(len) vectorized numpy)."""
    size, live, cap = storage.size, sampler.live, storage.capacity
    pushed, sampled = storage.pushed, storage.sampled
    out = {
        "size": float(size),
        "capacity": float(cap),
        "fill": size / cap,
        "pushed": float(pushed),
        "sampled": float(sampled),
        "sample_insert_ratio": sampled / pushed if pushed else 0.0,
        "sampleable": float(live),
        **{name: float(count) for name, count in eviction.counts.items()},
        **{name: float(value) for name, value in sampler.stats().items()},
    }
    if sampler.use is not None:
        use = sampler.use[:size]
        counts = np.bincount(np.minimum(use, 8), minlength=9)
        out["reuse_mean"] = float(use.mean()) if size else 0.0
        out["reuse_max"] = float(use.max()) if size else 0.0
        for name, lo, hi in _REUSE_BINS:
            out[f"reuse_frac_{name}"] = float(counts[lo:hi].sum()) / size if size else 0.0
    else:  # the sampler does not count uses (plain uniform)
        out["reuse_mean"] = out["reuse_max"] = math.nan
        out.update({f"reuse_frac_{name}": math.nan for name, _, _ in _REUSE_BINS})
    policy_iter = eviction.policy_iter[:size]
    if live < size:
        policy_iter = policy_iter[sampler.live_mask()]
    staleness = eviction.train_iter - policy_iter
    out["staleness_mean"] = float(staleness.mean()) if live else 0.0
    out["staleness_max"] = float(staleness.max()) if live else 0.0
    return out
