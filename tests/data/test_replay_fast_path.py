"""PrioritizedBuffer's fast sample/update path: the packed-row gather, the update_priority shortcuts and
their fallbacks give the same results as the general path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.data import PrioritizedBuffer


def mixed_batch(n: int, start: int = 0) -> TensorDict:
    """Items ``start..start+n`` with one key per dtype / shape kind, each derived from the item id."""
    v = torch.arange(start, start + n)
    return TensorDict(
        {
            "obs": v[:, None].float().expand(n, 4).clone() + torch.arange(4.0),
            "action": v,
            "reward": v[:, None].float() * 0.5,
            "next_obs": v[:, None].float().expand(n, 4).clone() - torch.arange(4.0),
            "terminated": v % 3 == 0,
            "steps": (v % 7).to(torch.int32),
            "half": v.to(torch.float16),
            "frames": (v[:, None, None] + torch.arange(6).view(2, 3)).to(torch.uint8),
        },
        batch_size=[n],
    )


def expected_items(index: torch.Tensor) -> TensorDict:
    return torch.stack([mixed_batch(1, int(i))[0] for i in index.tolist()])


@pytest.mark.parametrize("prioritized", [True, False])
def test_sampled_fields_are_the_stored_items_contiguous_and_typed(prioritized):
    buf = PrioritizedBuffer(64, prioritized=prioritized, seed=0)
    buf.extend(mixed_batch(50))
    batch = buf.sample(32, beta=0.5)
    want = expected_items(batch[keys.INDEX])
    for key in want.keys(leaves_only=True):
        got = batch[key]
        assert got.dtype == want[key].dtype and got.shape == want[key].shape, key
        assert got.is_contiguous(), key
        assert torch.equal(got, want[key]), key
    # the fields own their memory: writing to a sample leaves the buffer (and later samples) unchanged
    batch["obs"].fill_(-1.0)
    again = buf.get(batch[keys.INDEX])
    assert torch.equal(again["obs"], want["obs"])


def test_bfloat16_and_zero_size_keys_fall_back_to_index_select():
    n = 20
    td = TensorDict(
        {
            "x": torch.arange(n, dtype=torch.bfloat16),
            "empty": torch.zeros(n, 0),
            "a": torch.arange(n),
        },
        batch_size=[n],
    )
    buf = PrioritizedBuffer(32, seed=0)
    buf.extend(td)
    batch = buf.sample(16)
    assert batch["x"].dtype == torch.bfloat16 and batch["empty"].shape == (16, 0)
    assert torch.equal(batch["x"].float(), batch[keys.INDEX].float())
    assert torch.equal(batch["a"], batch[keys.INDEX])


def test_nested_keys_use_the_packed_gather():
    n = 10
    td = TensorDict(
        {"obs": {"pixels": torch.arange(n)[:, None].expand(n, 3).clone()}, "a": torch.arange(n)}, [n]
    )
    buf = PrioritizedBuffer(16, seed=0)
    buf.extend(td)
    batch = buf.sample(8)
    assert torch.equal(batch["obs", "pixels"][:, 0], batch[keys.INDEX])
    assert torch.equal(batch["a"], batch[keys.INDEX])


def test_same_seed_same_samples_and_rng_state_round_trip():
    def run(buf: PrioritizedBuffer, steps: int) -> list[torch.Tensor]:
        out = []
        for _ in range(steps):
            b = buf.sample(16, beta=0.4)
            buf.update_priority(b[keys.INDEX], (b[keys.INDEX] % 5).float())
            out.append(torch.cat([b[keys.INDEX].float(), b[keys.WEIGHT]]))
        return out

    a, b = PrioritizedBuffer(128, seed=7), PrioritizedBuffer(128, seed=7)
    for buf in (a, b):
        buf.extend(mixed_batch(100))
    assert all(torch.equal(x, y) for x, y in zip(run(a, 5), run(b, 5), strict=True))
    state = a.state_dict()
    ref = run(a, 5)
    b.load_state_dict(state)
    assert all(torch.equal(x, y) for x, y in zip(ref, run(b, 5), strict=True))


def _tree_leaves(buf: PrioritizedBuffer) -> np.ndarray:
    return buf.state_dict()["priorities"].numpy()


@pytest.mark.parametrize(
    "convert",
    [
        lambda i, p: (i, p),  # the fast path
        lambda i, p: (i.to(torch.int32), p.double()),  # other dtypes
        lambda i, p: (i.tolist(), p.tolist()),  # sequences
        lambda i, p: (i[:, None], p[:, None]),  # other shapes
        lambda i, p: (i, p.clone().requires_grad_(True)),  # a priority that requires grad
        lambda i, p: (torch.stack([i, i]).T[:, 0], torch.stack([p, p]).T[:, 0]),  # strided views
    ],
)
def test_update_priority_argument_kinds_agree_with_the_fast_path(convert):
    ref, buf = PrioritizedBuffer(64, seed=1), PrioritizedBuffer(64, seed=1)
    for b in (ref, buf):
        b.extend(mixed_batch(64))
    i_ref, i_buf = ref.sample(32)[keys.INDEX], buf.sample(32)[keys.INDEX]
    assert torch.equal(i_ref, i_buf)
    prio = torch.rand(32, generator=torch.Generator().manual_seed(3)) * 4
    ref.update_priority(i_ref, prio)
    buf.update_priority(*convert(i_buf, prio))
    np.testing.assert_array_equal(_tree_leaves(ref), _tree_leaves(buf))
    assert ref.stats()["priority_max"] == buf.stats()["priority_max"]


def test_strided_index_updates_the_right_items():
    buf = PrioritizedBuffer(16, alpha=1.0, seed=0)
    buf.extend(mixed_batch(16))
    # every item sampled, so no update is dropped as stale
    while not (buf.state_dict()["use_count"] > 0).all():
        buf.sample(16)
    index = torch.arange(16)[::2]  # 0, 2, ..., 14: a strided view
    buf.update_priority(index, torch.full((8,), 3.0))
    leaves = _tree_leaves(buf)
    np.testing.assert_allclose(leaves[0::2], 3.0, rtol=1e-5)
    np.testing.assert_allclose(leaves[1::2], 1.0)  # still the initial max priority


@pytest.mark.parametrize("bad", [float("nan"), -1.0, float("inf")])
def test_update_priority_rejects_bad_values_on_the_fast_path(bad):
    buf = PrioritizedBuffer(16, seed=0)
    buf.extend(mixed_batch(16))
    index = buf.sample(8)[keys.INDEX]
    before = _tree_leaves(buf).copy()
    prio = torch.ones(8)
    prio[3] = bad
    with pytest.raises(ValueError, match="priority"):
        buf.update_priority(index, prio)
    np.testing.assert_array_equal(before, _tree_leaves(buf))


@pytest.mark.parametrize("value", [-1, 16, 2**62])
def test_update_priority_rejects_out_of_range_indices(value):
    buf = PrioritizedBuffer(16, seed=0)
    buf.extend(mixed_batch(16))
    index = buf.sample(8)[keys.INDEX].clone()
    index[5] = value
    with pytest.raises(ValueError, match="index values must be in"):
        buf.update_priority(index, torch.ones(8))


def test_negative_zero_priority_is_accepted():
    buf = PrioritizedBuffer(16, seed=0)
    buf.extend(mixed_batch(16))
    index = buf.sample(8)[keys.INDEX]
    buf.update_priority(index, torch.full((8,), -0.0))
    assert (_tree_leaves(buf) > 0).all()


def test_duplicates_in_a_batch_count_as_uses():
    buf = PrioritizedBuffer(4, seed=0, max_use=3)
    buf.extend(mixed_batch(4))
    buf.update_priority(torch.arange(4), torch.tensor([0.0, 0.0, 0.0, 0.0]))  # not sampled: dropped
    batch = buf.sample(4)
    counts = torch.bincount(batch[keys.INDEX], minlength=4)
    assert buf.stats()["reuse_max"] == float(counts.max())
    assert buf.sampled == 4
