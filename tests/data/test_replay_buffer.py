"""PrioritizedBuffer core: sampling law, IS weights, ring buffer, validation, checkpoint round trips."""

from __future__ import annotations

import copy

import pytest
import torch
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.data import PrioritizedBuffer


def make_batch(values: list[float] | torch.Tensor, obs_dim: int = 4) -> TensorDict:
    """Batch whose items are identified by ``value`` (stored in every key)."""
    v = torch.as_tensor(values, dtype=torch.float32)
    n = v.shape[0]
    return TensorDict(
        {
            keys.OBS: v[:, None].expand(n, obs_dim).clone(),
            keys.ACTION: v.long(),
            keys.REWARD: v[:, None].expand(n, 3).clone(),
            keys.NEXT_OBS: (v + 0.5)[:, None].expand(n, obs_dim).clone(),
            keys.TERMINATED: v.long() % 2 == 1,
            keys.STEPS: torch.ones(n, dtype=torch.int64),
        },
        batch_size=[n],
    )


def stored_ids(buf: PrioritizedBuffer, draws: int = 400) -> set[int]:
    ids: set[int] = set()
    for _ in range(draws):
        ids.update(buf.sample(len(buf))[keys.ACTION].tolist())
    return ids


# ---------------------------------------------------------------------- sampling law
def test_frequencies_follow_priority_power_alpha():
    alpha = 0.7
    td_error = torch.tensor([0.1, 1.0, 2.0, 4.0, 8.0])
    buf = PrioritizedBuffer(8, alpha=alpha, seed=0)
    buf.extend(make_batch(range(5)))
    # Equal initial priorities + stratified sampling with batch == N: every item is drawn exactly once.
    first = buf.sample(5)
    assert sorted(first[keys.INDEX].tolist()) == [0, 1, 2, 3, 4]
    buf.update_priority(first[keys.INDEX], td_error[first[keys.INDEX]])

    counts = torch.zeros(5)
    draws = 0
    for _ in range(3000):
        idx = buf.sample(5)[keys.INDEX]
        counts += torch.bincount(idx, minlength=5).float()
        draws += 5
    p = (td_error + 1e-6) ** alpha
    expected = p / p.sum() * draws
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 20.0, (counts, expected)  # df=4: P(chi2 > 20) ~ 5e-4; stratification lowers it more
    # The sampled items carry their own data.
    batch = buf.sample(5)
    assert torch.equal(batch[keys.ACTION], batch[keys.INDEX])


def test_importance_weights_match_hand_computation():
    alpha, beta = 0.5, 0.4
    buf = PrioritizedBuffer(4, alpha=alpha, eps=1e-6, seed=1)
    buf.extend(make_batch([0, 1, 2]), priority=torch.tensor([1.0, 2.0, 4.0]))
    p = [(x + 1e-6) ** alpha for x in (1.0, 2.0, 4.0)]
    total, n = sum(p), 3
    raw = [(n * pi / total) ** -beta for pi in p]
    w_max = max(raw)
    expected = [r / w_max for r in raw]
    seen = set()
    for _ in range(50):
        batch = buf.sample(3, beta=beta)
        assert batch[keys.WEIGHT].dtype == torch.float32 and batch[keys.INDEX].dtype == torch.int64
        for i, w in zip(batch[keys.INDEX].tolist(), batch[keys.WEIGHT].tolist(), strict=True):
            assert w == pytest.approx(expected[i], rel=1e-5)
            seen.add(i)
    assert seen == {0, 1, 2}
    assert expected[0] == pytest.approx(1.0)  # lowest priority -> largest weight, normalized to 1
    assert torch.all(buf.sample(3, beta=0.0)[keys.WEIGHT] == 1.0)


def test_new_items_get_max_priority_seen_so_far():
    buf = PrioritizedBuffer(8, alpha=1.0, eps=1e-6, seed=0)
    buf.extend(make_batch([0, 1]))
    batch = buf.sample(2)
    buf.update_priority(batch[keys.INDEX], torch.tensor([5.0, 0.5])[batch[keys.INDEX]])
    # Lowering priorities later does not lower the running max.
    batch = buf.sample(2)
    buf.update_priority(batch[keys.INDEX], torch.full((2,), 0.1))
    new = buf.extend(make_batch([2]))
    prios = buf.state_dict()["priorities"]
    assert prios[new].item() == pytest.approx(5.0 + 1e-6, rel=1e-6)
    assert buf.stats()["priority_max"] == pytest.approx(5.0 + 1e-6, rel=1e-6)


def test_stale_updates_for_overwritten_items_are_dropped():
    buf = PrioritizedBuffer(2, alpha=1.0, eps=1e-6, seed=0)
    buf.extend(make_batch([0, 1]))
    old = buf.sample(2)[keys.INDEX]
    buf.extend(make_batch([2, 3]))  # overwrites both sampled slots before their update arrives
    buf.update_priority(old, torch.full((2,), 100.0))
    assert torch.allclose(buf.state_dict()["priorities"], torch.ones(2))
    fresh = buf.sample(2)[keys.INDEX]
    buf.update_priority(fresh, torch.full((2,), 3.0))
    assert torch.allclose(buf.state_dict()["priorities"], torch.full((2,), 3.0 + 1e-6))


def test_uniform_mode():
    buf = PrioritizedBuffer(10, prioritized=False, seed=0)
    buf.extend(make_batch(range(10)))
    counts = torch.zeros(10)
    for _ in range(1000):
        batch = buf.sample(10, beta=1.0)
        assert torch.all(batch[keys.WEIGHT] == 1.0)
        counts += torch.bincount(batch[keys.INDEX], minlength=10).float()
    expected = counts.sum() / 10
    assert float(((counts - expected) ** 2 / expected).sum()) < 35.0  # df=9
    buf.update_priority(batch[keys.INDEX], torch.rand(10))  # no-op, no error
    assert "priorities" in buf.state_dict() and buf.state_dict()["priorities"] is None


# ---------------------------------------------------------------------- ring buffer and storage
def test_ring_overwrite_and_returned_indices():
    buf = PrioritizedBuffer(4, seed=0)
    assert buf.extend(make_batch([0, 1, 2])).tolist() == [0, 1, 2]
    assert buf.extend(make_batch([3, 4, 5])).tolist() == [3, 0, 1]
    assert len(buf) == 4 and buf.capacity == 4
    assert stored_ids(buf) == {2, 3, 4, 5}
    batch = buf.sample(4)
    # Every stored key of an item comes from the same transition.
    assert torch.equal(batch[keys.OBS][:, 0], batch[keys.ACTION].float())
    assert torch.equal(batch[keys.NEXT_OBS][:, 0], batch[keys.ACTION].float() + 0.5)
    # More than capacity in one call keeps the last `capacity` items.
    idx = buf.extend(make_batch(range(10, 20)))
    assert idx.shape == (10,)
    assert stored_ids(buf) == {16, 17, 18, 19}
    s = buf.stats()
    assert s["size"] == 4 and s["fill"] == 1.0 and s["pushed"] == 16


def test_nested_keys_and_dtypes_roundtrip():
    buf = PrioritizedBuffer(8, seed=0)
    batch = TensorDict(
        {
            "a": torch.arange(4, dtype=torch.float64),
            ("nested", "img"): torch.arange(4 * 6, dtype=torch.uint8).reshape(4, 2, 3),
            ("nested", "half"): torch.arange(4, dtype=torch.bfloat16),
            "flag": torch.tensor([True, False, True, False]),
        },
        batch_size=[4],
    )
    buf.extend(batch)
    out = buf.sample(4)
    for key in ("a", ("nested", "img"), ("nested", "half"), "flag"):
        assert out[key].dtype == batch[key].dtype
        assert torch.equal(out[key], batch[key][out[keys.INDEX]])
        assert out[key].is_contiguous()
    clone = PrioritizedBuffer(8)
    clone.load_state_dict(buf.state_dict())
    assert (clone.sample(4) == buf.sample(4)).all()


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"maxlen": 0}, "maxlen"),
        ({"maxlen": 2.5}, "maxlen"),
        ({"maxlen": 4, "alpha": -0.1}, "alpha"),
        ({"maxlen": 4, "eps": 0.0}, "eps"),
        ({"maxlen": 4, "prioritized": "yes"}, "prioritized"),
        ({"maxlen": 4, "seed": -1}, "seed"),
        ({"maxlen": 4, "compress_keys": [3]}, "compress_keys"),
    ],
)
def test_constructor_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        PrioritizedBuffer(**kwargs)


def test_call_errors_name_the_field():
    buf = PrioritizedBuffer(8, seed=0)
    with pytest.raises(ValueError, match="batch"):
        buf.extend({"obs": torch.zeros(2)})
    with pytest.raises(ValueError, match="batch_size"):
        buf.extend(TensorDict({"obs": torch.zeros(())}, batch_size=[]))
    with pytest.raises(ValueError, match="index"):
        buf.extend(TensorDict({keys.INDEX: torch.zeros(2)}, batch_size=[2]))
    buf.extend(make_batch([0, 1, 2]))
    for bad, field in (
        (make_batch([0]).exclude(keys.STEPS), keys.STEPS),
        (make_batch([0], obs_dim=5), keys.OBS),
        (make_batch([0]).update({keys.ACTION: torch.zeros(1, dtype=torch.int32)}), keys.ACTION),
        (make_batch([0]).update({"extra": torch.zeros(1)}), "extra"),
    ):
        with pytest.raises(ValueError, match=field):
            buf.extend(bad)
    assert len(buf) == 3  # failed extends changed nothing
    with pytest.raises(ValueError, match="batch_size"):
        buf.sample(0)
    with pytest.raises(ValueError, match="batch_size"):
        buf.sample(4)
    with pytest.raises(ValueError, match="beta"):
        buf.sample(2, beta=1.5)
    with pytest.raises(ValueError, match="beta"):
        buf.sample(2, beta=-0.1)
    with pytest.raises(ValueError, match="priority"):
        buf.update_priority(torch.tensor([0, 1]), torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="priority"):
        buf.update_priority(torch.tensor([0, 1]), torch.tensor([1.0, -2.0]))
    with pytest.raises(ValueError, match="priority"):
        buf.update_priority(torch.tensor([0, 1]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="index"):
        buf.update_priority(torch.tensor([0, 8]), torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match="index"):
        buf.update_priority(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0]))


# ---------------------------------------------------------------------- checkpoints
def _fill_and_train(buf: PrioritizedBuffer, steps: int = 20) -> None:
    g = torch.Generator().manual_seed(123)
    for t in range(steps):
        buf.extend(make_batch(torch.arange(4) + 4 * t))
        if len(buf) >= 8:
            batch = buf.sample(8, beta=0.5)
            buf.update_priority(batch[keys.INDEX], torch.rand(8, generator=g) * 3)


@pytest.mark.parametrize("prioritized", [True, False])
def test_save_load_roundtrip_gives_identical_samples(tmp_path, prioritized):
    buf = PrioritizedBuffer(50, alpha=0.6, prioritized=prioritized, seed=7)
    _fill_and_train(buf)  # 80 pushed into 50 slots: wrapped
    path = tmp_path / "replay.pt"
    torch.save(buf.state_dict(), path)
    state = torch.load(path, weights_only=True)
    clone = PrioritizedBuffer(50, alpha=0.6, prioritized=prioritized, seed=999)
    clone.load_state_dict(state)
    assert clone.stats() == buf.stats()
    g = torch.Generator().manual_seed(5)
    for step in range(5):
        a, b = buf.sample(16, beta=0.5), clone.sample(16, beta=0.5)
        assert (a == b).all(), step
        prio = torch.rand(16, generator=g)
        buf.update_priority(a[keys.INDEX], prio)
        clone.update_priority(b[keys.INDEX], prio)
        new = make_batch([1000 + step])
        assert torch.equal(buf.extend(new), clone.extend(new))


def test_partial_buffer_state_is_small_and_empty_state_loads():
    buf = PrioritizedBuffer(100_000, seed=0)
    empty = buf.state_dict()
    assert empty["storage"] is None
    buf.extend(make_batch(range(3)))
    state = buf.state_dict()
    assert state["storage"]["data"][0].shape[0] == 3
    assert all(t.untyped_storage().nbytes() < 1000 for t in state["storage"]["data"])
    buf.load_state_dict(empty)
    assert len(buf) == 0


def test_lz4_compressed_keys_roundtrip_and_shrink(tmp_path):
    g = torch.Generator().manual_seed(0)
    n = 64
    img = torch.zeros(n, 4, 32, 32, dtype=torch.uint8)
    img[:, :, 8:12, :] = torch.randint(0, 255, (n, 4, 4, 32), generator=g, dtype=torch.uint8)
    batch = TensorDict({keys.OBS: img, keys.NEXT_OBS: img.roll(1, 0), keys.ACTION: torch.arange(n)}, [n])
    plain = PrioritizedBuffer(100, seed=3)
    packed = PrioritizedBuffer(100, seed=3, compress_keys=[keys.OBS, keys.NEXT_OBS])
    for buf in (plain, packed):
        buf.extend(batch)
        buf.sample(8)
    state = packed.state_dict()
    obs_pos = state["storage"]["keys"].index([keys.OBS])
    assert state["storage"]["data"][obs_pos] is None
    chunks = state["storage"]["lz4_chunks"][obs_pos]
    assert all(c.dtype == torch.uint8 for c in chunks)
    assert sum(c.numel() for c in chunks) < img.numel() / 3
    torch.save(plain.state_dict(), tmp_path / "plain.pt")
    torch.save(state, tmp_path / "packed.pt")
    assert (tmp_path / "packed.pt").stat().st_size < (tmp_path / "plain.pt").stat().st_size / 2
    restored = PrioritizedBuffer(100)
    restored.load_state_dict(torch.load(tmp_path / "packed.pt", weights_only=True))
    a, b = plain.sample(32), restored.sample(32)
    assert (a == b).all()
    assert torch.equal(b[keys.OBS], img[b[keys.INDEX]])


def test_compress_key_must_exist():
    buf = PrioritizedBuffer(10, compress_keys="pixels")
    with pytest.raises(ValueError, match="pixels"):
        buf.extend(make_batch([0]))


def _corruptions():
    def set_(path, value):
        def f(state):
            d = state
            for p in path[:-1]:
                d = d[p]
            d[path[-1]] = value

        return f

    def flip_lz4(state):
        chunk = state["storage"]["lz4_chunks"][0][0]
        chunk[len(chunk) // 2 :] ^= 0x5A

    return [
        ("missing", lambda s: s.pop("cursor"), "cursor"),
        ("format", set_(["format"], "other"), "format"),
        ("capacity", set_(["capacity"], 11), "capacity"),
        ("alpha", set_(["alpha"], 0.9), "alpha"),
        ("prioritized", set_(["prioritized"], False), "prioritized"),
        ("cursor", set_(["cursor"], 3), "cursor"),
        ("size", set_(["size"], 5), "size"),
        ("priorities_shape", set_(["priorities"], torch.ones(3)), "priorities"),
        ("priorities_nan", lambda s: s["priorities"].__setitem__(0, float("nan")), "priorities"),
        ("rng", set_(["rng_state"], torch.zeros(3, dtype=torch.uint8)), "rng_state"),
        ("data_shape", lambda s: s["storage"]["data"].__setitem__(1, torch.zeros(2)), "storage.data"),
        ("dtype", lambda s: s["storage"]["dtypes"].__setitem__(1, "notadtype"), "dtypes"),
        ("lz4_bytes", flip_lz4, "lz4"),
        (
            "lz4_chunks",
            lambda s: s["storage"]["lz4_chunks"][0].append(torch.zeros(3, dtype=torch.uint8)),
            "lz4",
        ),
        ("not_dict", lambda s: None, None),
    ]


@pytest.mark.parametrize(("name", "corrupt", "field"), _corruptions(), ids=[c[0] for c in _corruptions()])
def test_corrupt_state_raises_value_error_and_leaves_buffer_intact(name, corrupt, field):
    src = PrioritizedBuffer(10, seed=0, compress_keys=[keys.OBS])
    _fill_and_train(src, steps=3)
    state = copy.deepcopy(src.state_dict())
    if name == "not_dict":
        state = [1, 2]
    else:
        corrupt(state)
    target = PrioritizedBuffer(10, seed=1)
    target.extend(make_batch([42.0]))
    with pytest.raises(ValueError, match=field):
        target.load_state_dict(state)
    assert len(target) == 1 and target.sample(1)[keys.ACTION].item() == 42


def test_sample_clamps_scan_overshoot_from_float_rounding(monkeypatch):
    # Draws at the very top of the mass make the fp32 tree scan run past the last stored item
    # (into empty slots) for some priority sets; sample() must clamp to the filled range.
    g = torch.Generator().manual_seed(0)
    configs = [torch.rand(17, generator=g) * 10.0 ** -float(k % 5) for k in range(40)]
    monkeypatch.setattr(
        torch, "rand", lambda n, generator=None, dtype=None: torch.full((n,), 1 - 1e-12, dtype=dtype)
    )
    for prio in configs:
        buf = PrioritizedBuffer(20, alpha=1.0, seed=0)
        buf.extend(make_batch(range(17)), priority=prio)
        batch = buf.sample(4)
        assert int(batch[keys.INDEX].max()) < 17
        assert torch.equal(batch[keys.ACTION], batch[keys.INDEX])


def test_missing_cpp_extension_gives_clear_error(monkeypatch):
    import sys

    from lightning_rl.data import _torchrl_compat

    monkeypatch.setitem(sys.modules, "torchrl._torchrl", None)  # makes the import fail
    _torchrl_compat.segment_tree_classes.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"torch==2\.14\.1.*torchrl==0\.14\.1"):
            PrioritizedBuffer(4)
        buf = PrioritizedBuffer(4, prioritized=False)  # uniform replay needs no extension
        buf.extend(make_batch([0, 1]))
        assert buf.sample(2).batch_size == (2,)
    finally:
        _torchrl_compat.segment_tree_classes.cache_clear()


def test_get_returns_stored_items_and_checks_bounds():
    buffer = PrioritizedBuffer(8, prioritized=False, seed=0)
    buffer.extend(TensorDict({keys.OBS: torch.arange(5.0).unsqueeze(1)}, batch_size=[5]))
    items = buffer.get(torch.tensor([4, 0]))
    assert items[keys.OBS].squeeze(1).tolist() == [4.0, 0.0]
    assert items[keys.INDEX].tolist() == [4, 0] and items[keys.WEIGHT].tolist() == [1.0, 1.0]
    with pytest.raises(IndexError, match=r"index must be in \[0, len\(buffer\) = 5\)"):
        buffer.get(torch.tensor([5]))
