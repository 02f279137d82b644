"""Samplers plug into PrioritizedBuffer without editing it: one written from scratch against the ``Sampler``
protocol, and an R2D2-style sequence sampler as a small subclass of ``PrioritizedSampler``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.data import PrioritizedBuffer, sequence_priority
from lightning_rl.data.replay import (
    LoadedSampler,
    PackedStorage,
    PrioritizedSampler,
    Sampler,
    StateReader,
    UniformSampler,
)


class SweepSampler:
    """Visits the live items in slot order, wrapping around (each live item once per sweep, like an
    epoch); weights all 1."""

    prioritized = False

    def __init__(self) -> None:
        self.live = 0
        self.use: np.ndarray | None = None

    def bind(self, storage: PackedStorage, generator: torch.Generator) -> None:
        self._storage = storage
        self.reset()

    def reset(self) -> None:
        cap = self._storage.capacity
        self._alive = np.zeros(cap, dtype=bool)
        self.use = np.zeros(cap, dtype=np.int64)
        self.live = 0
        self._next = 0

    def extend(self, slots: np.ndarray, priority: np.ndarray | None) -> None:
        self.live += int(np.count_nonzero(~self._alive[slots]))
        self._alive[slots] = True
        self.use[slots] = 0

    def sample(self, batch_size: int, beta: float) -> tuple[np.ndarray, torch.Tensor]:
        live = np.flatnonzero(self._alive[: self._storage.size])
        start = int(np.searchsorted(live, self._next))
        picks = live[(start + np.arange(batch_size)) % live.size]
        self._next = int(picks[-1]) + 1
        np.add.at(self.use, picks, 1)
        return picks, torch.ones(batch_size)

    def update_priority(self, index, priority) -> None:
        pass

    def evict(self, slots: np.ndarray) -> int:
        evicted = int(np.count_nonzero(self._alive[slots]))
        self._alive[slots] = False
        self.live -= evicted
        return evicted

    def live_mask(self) -> np.ndarray:
        return self._alive[: self._storage.size].copy()

    def stats(self) -> dict[str, float]:
        return {"priority_mean": 1.0 if self.live else 0.0, "priority_max": 1.0}

    def state_dict(self) -> dict:
        size = self._storage.size
        return {
            "sweep_next": self._next,
            "sweep_alive": torch.from_numpy(self._alive[:size].copy()),
            "sweep_use": torch.from_numpy(self.use[:size].copy()),
        }

    def read_state(self, reader: StateReader, size: int) -> LoadedSampler:
        next_slot = reader.get("sweep_next", int)
        alive = reader.tensor("sweep_alive", torch.bool, (size,)).numpy()
        use = reader.tensor("sweep_use", torch.int64, (size,)).numpy()

        def apply() -> None:
            self.reset()
            self._alive[:size], self.use[:size] = alive, use
            self.live, self._next = int(alive.sum()), next_slot

        return LoadedSampler(live=alive, use=use, apply=apply)


def make_batch(values) -> TensorDict:
    v = torch.as_tensor(values)
    return TensorDict({keys.OBS: v[:, None].float().expand(-1, 2).clone(), keys.ACTION: v}, [v.shape[0]])


def sampled(buf: PrioritizedBuffer, n: int) -> list[int]:
    return buf.sample(n)[keys.INDEX].tolist()


def test_a_sampler_written_against_the_protocol_plugs_in(tmp_path):
    assert isinstance(SweepSampler(), Sampler)
    buf = PrioritizedBuffer(8, sampler=SweepSampler(), max_use=2)
    assert not buf.prioritized and "SweepSampler" in repr(buf)
    buf.extend(make_batch(range(6)))
    assert sampled(buf, 4) == [0, 1, 2, 3]
    assert sampled(buf, 4) == [4, 5, 0, 1]  # 0 and 1 are now used twice: evicted by max_use
    assert buf.num_sampleable == 4 and buf.stats()["evicted_max_use"] == 2.0
    buf.update_priority(torch.tensor([2]), torch.tensor([5.0]))  # the sampler ignores priorities
    assert buf.evict(torch.tensor([3, 0])) == 1
    assert sampled(buf, 3) == [2, 4, 5]  # each a second time: evicted
    buf.extend(make_batch([6, 7, 8]))  # slots 6, 7 and 0 (evicted, overwritten live)
    s = buf.stats()
    assert (s["sampleable"], s["evicted_max_use"], s["evicted_manual"], s["reuse_max"]) == (
        3.0,
        5.0,
        1.0,
        2.0,
    )
    assert buf.sample(3)[keys.ACTION].tolist() == [6, 7, 8]  # the sweep goes on after slot 5

    buf.save(tmp_path / "saved")
    for restore in (lambda c: c.load(tmp_path / "saved"), lambda c: c.load_state_dict(buf.state_dict())):
        clone = PrioritizedBuffer(8, sampler=SweepSampler(), max_use=2)
        restore(clone)
        assert clone.stats() == buf.stats()
        assert sampled(clone, 3) == [6, 7, 0]
    assert sampled(buf, 3) == [6, 7, 0]
    assert buf.num_sampleable == 0


class SequencePrioritySampler(PrioritizedSampler):
    """R2D2 (Kapturowski et al., 2019): ``update_priority`` takes ``(B, T)`` TD errors of the trained
    steps of sampled sequences and stores ``eta * max + (1 - eta) * mean`` over their valid steps (the
    stored ``keys.MASK`` of the items, read from the storage)."""

    def __init__(self, burn_in: int, eta: float = 0.9, **kwargs) -> None:
        super().__init__(**kwargs)
        self.burn_in, self.eta = burn_in, eta

    def update_priority(self, index, priority) -> None:
        index = torch.as_tensor(index)
        mask = dict(self._storage.leaves)[keys.MASK][index][:, self.burn_in :]
        super().update_priority(index, sequence_priority(priority, mask, self.eta))


def test_an_r2d2_sequence_sampler_is_a_small_subclass():
    n, length, burn_in = 6, 5, 2
    mask = torch.ones(n, length, dtype=torch.bool)
    mask[0, 4:] = False  # the end of an episode: padding
    items = TensorDict({keys.OBS: torch.randn(n, length, 3), keys.MASK: mask}, [n, length])
    buf = PrioritizedBuffer(16, sampler=SequencePrioritySampler(burn_in, alpha=1.0, eps=1e-6), seed=0)
    assert buf.prioritized
    buf.extend(items)
    batch = buf.sample(n)
    assert batch.batch_size == (n,) and batch[keys.MASK].shape == (n, length)
    index = batch[keys.INDEX]
    td_error = torch.rand(n, length - burn_in, generator=torch.Generator().manual_seed(0)) * 3
    buf.update_priority(index, td_error)
    valid = mask[index][:, burn_in:]
    top = torch.where(valid, td_error, 0.0).amax(1)
    mean = torch.where(valid, td_error, 0.0).sum(1) / valid.sum(1)
    expected = 0.9 * top + 0.1 * mean + 1e-6
    torch.testing.assert_close(buf.state_dict()["priorities"][index], expected)


def test_sampler_argument_errors():
    with pytest.raises(ValueError, match="sampler must implement"):
        PrioritizedBuffer(8, sampler=object())
    with pytest.raises(ValueError, match="configure the default sampler"):
        PrioritizedBuffer(8, sampler=SweepSampler(), alpha=0.9)
    with pytest.raises(ValueError, match="max_use needs a sampler that counts uses; UniformSampler"):
        PrioritizedBuffer(8, sampler=UniformSampler(), max_use=2)
    assert "UniformSampler" in repr(PrioritizedBuffer(8, prioritized=False))
    assert "PrioritizedSampler" in repr(PrioritizedBuffer(8))
