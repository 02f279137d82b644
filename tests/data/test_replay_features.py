"""PrioritizedBuffer features: append, max_use, max_staleness, evict, stats, save/load, memmap storage."""

from __future__ import annotations

import math
import os
import zlib

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.data import PrioritizedBuffer
from lightning_rl.data.replay import persistence as replay_module
from lightning_rl.utils import io as io_module
from lightning_rl.utils.integrity import MANIFEST_FILE, CheckpointError


def make_batch(values) -> TensorDict:
    """Items identified by ``value``: ``ACTION`` holds it, ``OBS`` repeats it."""
    v = torch.as_tensor(values, dtype=torch.float32)
    n = v.shape[0]
    return TensorDict(
        {keys.OBS: v[:, None].expand(n, 3).clone(), keys.ACTION: v.long(), keys.REWARD: v * 0.5},
        batch_size=[n],
    )


def live_mask(buf: PrioritizedBuffer) -> np.ndarray:
    return buf.state_dict()["priorities"].numpy() > 0


def exercise(buf: PrioritizedBuffer, steps: int, seed: int = 0) -> list[TensorDict]:
    """Extend / sample / update for ``steps`` rounds; returns the sampled batches."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for t in range(steps):
        buf.train_iter = buf.train_iter + 1
        buf.extend(make_batch(torch.arange(3) + 100 * t))
        if buf.num_sampleable >= 4:
            batch = buf.sample(4, beta=0.5)
            buf.update_priority(batch[keys.INDEX], torch.rand(4, generator=g) * 2)
            batches.append(batch)
    return batches


# ---------------------------------------------------------------------- append
def test_append_adds_one_item_like_extend():
    a = PrioritizedBuffer(4, alpha=1.0, seed=0)
    b = PrioritizedBuffer(4, alpha=1.0, seed=0)
    for i in range(6):
        item = make_batch([i])[0]
        assert a.append(item, priority=float(i), policy_iter=i) == i % 4
        b.extend(make_batch([i]), priority=torch.tensor([float(i)]), policy_iter=i)
    assert a.stats() == b.stats()
    assert (a.sample(4) == b.sample(4)).all()
    with pytest.raises(ValueError, match=r"item must be a TensorDict with batch_size \[\]"):
        a.append(make_batch([1, 2]))
    with pytest.raises(ValueError, match="priority"):
        a.append(make_batch([1])[0], priority=-1.0)


# ---------------------------------------------------------------------- max_use
def test_max_use_evicts_after_exact_number_of_uses():
    buf = PrioritizedBuffer(8, alpha=1.0, max_use=2, seed=0)
    buf.extend(make_batch(range(4)))
    # Equal priorities and batch == live items: stratified sampling draws each item exactly once.
    for round_ in range(2):
        batch = buf.sample(4)
        assert sorted(batch[keys.INDEX].tolist()) == [0, 1, 2, 3], round_
    assert buf.num_sampleable == 0 and len(buf) == 4
    assert buf.stats()["evicted_max_use"] == 4.0
    buf.update_priority(batch[keys.INDEX], torch.full((4,), 9.0))  # must not revive them
    assert not live_mask(buf).any()
    with pytest.raises(ValueError, match="no sampleable items"):
        buf.sample(1)
    buf.extend(make_batch([10, 11]))
    assert buf.num_sampleable == 2
    assert sorted(buf.sample(2)[keys.ACTION].tolist()) == [10, 11]
    with pytest.raises(ValueError, match="batch_size must be <= num_sampleable = 2"):
        buf.sample(3)


@pytest.mark.parametrize("prioritized", [True, False])
def test_max_use_property_items_never_sampled_after_their_last_use(prioritized):
    max_use = 3
    buf = PrioritizedBuffer(64, alpha=0.7, prioritized=prioritized, max_use=max_use, seed=1)
    buf.extend(make_batch(range(64)))
    g = torch.Generator().manual_seed(2)
    uses = np.zeros(64, dtype=np.int64)
    while buf.num_sampleable >= 8:
        batch = buf.sample(8, beta=0.4)
        index = batch[keys.INDEX].numpy()
        assert (uses[index] < max_use).all()  # every drawn item was live before this batch
        np.add.at(uses, index, 1)
        buf.update_priority(batch[keys.INDEX], torch.rand(8, generator=g) * 5)
        if not prioritized:
            assert torch.all(batch[keys.WEIGHT] == 1.0)
    assert buf.stats()["evicted_max_use"] == float((uses >= max_use).sum())
    assert buf.num_sampleable == int((uses < max_use).sum())
    assert np.array_equal(live_mask(buf), uses < max_use)
    assert buf.state_dict()["use_count"].tolist() == uses.tolist()


def test_uniform_max_use_samples_every_live_item_once_per_sweep():
    buf = PrioritizedBuffer(10, prioritized=False, max_use=1, seed=0)
    buf.extend(make_batch(range(6)))
    first = buf.sample(3, beta=1.0)  # strata of 2 items each: 3 distinct items
    second = buf.sample(3, beta=1.0)  # the 3 live ones, one per stratum
    assert sorted(first[keys.INDEX].tolist() + second[keys.INDEX].tolist()) == list(range(6))
    assert torch.all(first[keys.WEIGHT] == 1.0) and torch.all(second[keys.WEIGHT] == 1.0)
    assert buf.num_sampleable == 0 and buf.stats()["evicted_max_use"] == 6.0
    assert (buf.pushed, buf.sampled) == (6, 6)


# ---------------------------------------------------------------------- max_staleness
def test_staleness_filter_exact():
    buf = PrioritizedBuffer(20, max_staleness=2, seed=0)
    for it in range(4):
        buf.train_iter = it
        buf.extend(make_batch([10 * it, 10 * it + 1]))  # policy_iter defaults to train_iter
    assert buf.num_sampleable == 6  # at train_iter 3 the items of iteration 0 are 3 > 2 iterations old
    buf.train_iter = 4  # threshold 2: items of iterations 0 and 1 are stale
    assert buf.num_sampleable == 4 and buf.stats()["evicted_stale"] == 4.0
    assert live_mask(buf).tolist() == [False] * 4 + [True] * 4
    for _ in range(20):
        assert set(buf.sample(4)[keys.ACTION].tolist()) <= {20, 21, 30, 31}
    # An item from an old policy is stale on arrival.
    buf.extend(make_batch([99]), policy_iter=1)
    assert buf.num_sampleable == 4 and buf.stats()["evicted_stale"] == 5.0
    stats = buf.stats()
    assert stats["staleness_mean"] == 1.5 and stats["staleness_max"] == 2.0
    with pytest.raises(ValueError, match="train_iter must not decrease"):
        buf.train_iter = 3


@pytest.mark.parametrize("ordered", [True, False])
def test_staleness_property_against_brute_force(ordered):
    cap, max_staleness = 16, 3
    buf = PrioritizedBuffer(cap, max_staleness=max_staleness, seed=0)
    rng = np.random.default_rng(0 if ordered else 1)
    policy_of_slot = np.full(cap, -1)
    train_iter = 0
    for _ in range(60):
        if rng.random() < 0.4:
            train_iter += int(rng.integers(0, 3))
            buf.train_iter = train_iter
        n = int(rng.integers(1, 6))
        if ordered:  # the usual case: produced by the current or a slightly older policy, in order
            pis = np.sort(rng.integers(max(0, train_iter - 2), train_iter + 1, size=n))
        else:
            pis = rng.integers(max(0, train_iter - 5), train_iter + 1, size=n)
        index = buf.extend(make_batch(range(n)), policy_iter=torch.from_numpy(pis))
        policy_of_slot[index.numpy()] = pis
        stored = policy_of_slot[: len(buf)]
        expected = stored >= train_iter - max_staleness  # threshold never decreases
        assert np.array_equal(live_mask(buf), expected)
        assert buf.num_sampleable == int(expected.sum())
        if buf.num_sampleable:
            sampled = buf.sample(buf.num_sampleable)[keys.INDEX].numpy()
            assert expected[sampled].all()


# ---------------------------------------------------------------------- evict
def test_evict_excludes_items_and_renormalizes_weights():
    alpha, beta = 1.0, 0.5
    buf = PrioritizedBuffer(8, alpha=alpha, eps=1e-6, seed=0)
    buf.extend(make_batch(range(4)), priority=torch.tensor([1.0, 2.0, 4.0, 8.0]))
    assert buf.evict(torch.tensor([0, 0, 3], dtype=torch.int32)) == 2  # duplicates count once
    assert buf.evict(torch.tensor([0])) == 0  # already evicted
    assert buf.num_sampleable == 2 and buf.stats()["evicted_manual"] == 2.0
    p = {1: 2.0 + 1e-6, 2: 4.0 + 1e-6}
    for _ in range(30):
        batch = buf.sample(2, beta=beta)
        for i, w in zip(batch[keys.INDEX].tolist(), batch[keys.WEIGHT].tolist(), strict=True):
            assert i in p
            assert w == pytest.approx((p[i] / p[1]) ** -beta, rel=1e-5)  # min over live items only
    assert buf.stats()["priority_mean"] == pytest.approx((p[1] + p[2]) / 2, rel=1e-6)
    buf.update_priority(torch.tensor([0, 3]), torch.tensor([5.0, 5.0]))  # evicted: dropped
    assert live_mask(buf).tolist() == [False, True, True, False]
    assert torch.equal(buf.get(torch.tensor([3]))[keys.ACTION], torch.tensor([3]))  # still stored
    with pytest.raises(IndexError, match=r"index must be in \[0, len\(buffer\) = 4\)"):
        buf.evict(torch.tensor([4]))
    with pytest.raises(ValueError, match="index must be an integer tensor"):
        buf.evict(torch.tensor([1.0]))
    buf.extend(make_batch(range(4, 8)))  # fills slots 4..7; overwriting none
    buf.extend(make_batch([8]))  # overwrites the evicted slot 0 with a live item
    assert buf.num_sampleable == 7 and live_mask(buf).tolist()[0]


def test_evict_switches_plain_uniform_buffer_to_tree_sampling():
    buf = PrioritizedBuffer(10, prioritized=False, seed=0)
    buf.extend(make_batch(range(6)))
    buf.sample(3)
    assert buf.state_dict()["priorities"] is None and buf.state_dict()["use_count"] is None
    assert math.isnan(buf.stats()["reuse_mean"])  # the plain uniform path does not count uses
    assert buf.evict(torch.tensor([1, 4])) == 2
    assert buf.stats()["reuse_mean"] == 0.0  # counted from the switch to tree sampling on
    seen = set()
    for _ in range(50):
        batch = buf.sample(4)
        seen.update(batch[keys.ACTION].tolist())
        assert torch.all(batch[keys.WEIGHT] == 1.0)
    assert seen == {0, 2, 3, 5}
    clone = PrioritizedBuffer(10, prioritized=False)
    clone.load_state_dict(buf.state_dict())
    assert clone.num_sampleable == 4 and (clone.sample(4) == buf.sample(4)).all()


@pytest.mark.parametrize("draw", [0.0, 1 - 1e-12])
def test_sampling_never_returns_evicted_items_at_fp32_edges(monkeypatch, draw):
    # draw 0 makes the first stratum's mass exactly 0: the scan's lower bound is leaf 0 (evicted);
    # draws at the top of the mass can run past the last live item. Constant draws defeat the redraws,
    # so the fallback (nearest live item) is exercised too.
    buf = PrioritizedBuffer(10, alpha=1.0, seed=0)
    buf.extend(make_batch(range(8)), priority=torch.tensor([3.0, 1e-3, 2.0, 0.5, 1.0, 7.0, 1e-4, 2.0]))
    buf.evict(torch.tensor([0, 7]))
    monkeypatch.setattr(
        torch, "rand", lambda n, generator=None, dtype=None: torch.full((n,), draw, dtype=dtype)
    )
    for batch_size in (1, 3, 6):
        index = buf.sample(batch_size)[keys.INDEX]
        assert not {0, 7} & set(index.tolist()), index


# ---------------------------------------------------------------------- stats
STATS = [
    "size",
    "capacity",
    "fill",
    "pushed",
    "sampled",
    "sample_insert_ratio",
    "sampleable",
    "evicted_max_use",
    "evicted_stale",
    "evicted_manual",
    "priority_mean",
    "priority_max",
    "reuse_mean",
    "reuse_max",
    "reuse_frac_0",
    "reuse_frac_1",
    "reuse_frac_2_3",
    "reuse_frac_4_7",
    "reuse_frac_8_plus",
    "staleness_mean",
    "staleness_max",
]  # every stats() entry, in order


def stats_with(**values: float) -> dict[str, float]:
    """Every stats() entry: ``values``, the others 0."""
    assert set(values) <= set(STATS)
    return {name: values.get(name, 0.0) for name in STATS}


def test_clear_and_stats():
    buf = PrioritizedBuffer(10, seed=0)
    buf.extend(make_batch(range(5)))
    buf.sample(3)
    # Equal priorities, 3 strata over 5 items: 3 distinct items drawn once each.
    assert buf.stats() == stats_with(
        size=5.0,
        capacity=10.0,
        fill=0.5,
        pushed=5.0,
        sampled=3.0,
        sample_insert_ratio=0.6,
        sampleable=5.0,
        priority_mean=1.0,
        priority_max=1.0,
        reuse_mean=0.6,
        reuse_max=1.0,
        reuse_frac_0=0.4,
        reuse_frac_1=0.6,
    )
    buf.clear()
    assert len(buf) == 0 and buf.stats()["pushed"] == 0 and buf.stats()["priority_mean"] == 0.0
    with pytest.raises(ValueError, match="no sampleable items"):
        buf.sample(1)
    buf.extend(TensorDict({"x": torch.zeros(2, 7)}, batch_size=[2]))  # a new schema after clear
    assert buf.sample(2)["x"].shape == (2, 7)


def test_stats_match_hand_computation():
    buf = PrioritizedBuffer(10, prioritized=False, max_staleness=10, seed=0)
    buf.extend(make_batch(range(4)))  # policy_iter 0
    buf.extend(make_batch([4, 5]), policy_iter=3)
    buf.sample(6)  # equal priorities, batch == live: each item once
    buf.sample(3)  # 3 strata of 2 items: 3 distinct items once more
    buf.evict(torch.tensor([0]))
    buf.train_iter = 4
    use = buf.state_dict()["use_count"].tolist()
    assert sorted(use) == [1, 1, 1, 2, 2, 2]
    assert buf.stats() == stats_with(
        size=6.0,
        capacity=10.0,
        fill=0.6,
        pushed=6.0,
        sampled=9.0,
        sample_insert_ratio=1.5,
        sampleable=5.0,
        evicted_manual=1.0,
        priority_mean=1.0,
        priority_max=1.0,
        reuse_mean=1.5,
        reuse_max=2.0,
        reuse_frac_1=0.5,
        reuse_frac_2_3=0.5,
        # live items 1..5 with policy_iter 0, 0, 0, 3, 3 at train_iter 4
        staleness_mean=pytest.approx((4 + 4 + 4 + 1 + 1) / 5),
        staleness_max=4.0,
    )


def test_stats_reuse_bins_and_priority_mean():
    buf = PrioritizedBuffer(16, alpha=0.5, eps=1e-6, seed=0)
    buf.extend(make_batch(range(5)), priority=torch.tensor([0.0, 1.0, 4.0, 9.0, 16.0]))
    # Set use counts directly through a state round trip: 0, 1, 3, 6, 12 uses.
    state = buf.state_dict()
    state["use_count"] = torch.tensor([0, 1, 3, 6, 12])
    buf.load_state_dict(state)
    s = buf.stats()
    assert (s["reuse_frac_0"], s["reuse_frac_1"], s["reuse_frac_2_3"]) == (0.2, 0.2, 0.2)
    assert (s["reuse_frac_4_7"], s["reuse_frac_8_plus"]) == (0.2, 0.2)
    assert s["reuse_mean"] == pytest.approx(22 / 5) and s["reuse_max"] == 12.0
    expected = [(p + 1e-6) ** 0.5 for p in (0.0, 1.0, 4.0, 9.0, 16.0)]
    assert s["priority_mean"] == pytest.approx(sum(expected) / 5, rel=1e-5)
    assert s["priority_max"] == pytest.approx(expected[-1], rel=1e-6)


# ---------------------------------------------------------------------- persistence
def feature_buffer(**kwargs) -> PrioritizedBuffer:
    config = dict(maxlen=24, alpha=0.6, max_use=4, max_staleness=3, compress_keys=[keys.OBS])
    config.update(kwargs)
    return PrioritizedBuffer(**config)


def assert_same_future(a: PrioritizedBuffer, b: PrioritizedBuffer, steps: int = 6) -> None:
    assert a.stats() == b.stats()
    g = torch.Generator().manual_seed(11)
    for step in range(steps):
        for buf in (a, b):
            buf.train_iter = buf.train_iter + 1
        new = make_batch([1000 + step, 2000 + step])
        assert torch.equal(a.extend(new), b.extend(new))
        x, y = a.sample(3, beta=0.5), b.sample(3, beta=0.5)
        assert (x == y).all(), step
        prio = torch.rand(3, generator=g)
        a.update_priority(x[keys.INDEX], prio)
        b.update_priority(y[keys.INDEX], prio)
    assert a.stats() == b.stats()


@pytest.mark.parametrize("prioritized", [True, False])
def test_save_load_roundtrip_gives_identical_sampling(tmp_path, prioritized):
    buf = feature_buffer(prioritized=prioritized, max_use=2, seed=7)
    exercise(buf, steps=14)  # 42 items into 24 slots, some used up and some stale
    s = buf.stats()
    assert s["evicted_max_use"] > 0 and s["evicted_stale"] > 0 and s["size"] == 24
    buf.evict(torch.tensor([5]))
    buf.save(tmp_path / "replay")
    assert sorted(os.listdir(tmp_path)) == ["replay"]  # no temp dirs left
    clone = feature_buffer(prioritized=prioritized, max_use=2, seed=999)
    clone.extend(make_batch([5]))  # replaced entirely by load
    clone.load(tmp_path / "replay")
    assert_same_future(buf, clone)


def test_state_dict_roundtrip_with_features_gives_identical_sampling():
    buf = feature_buffer(seed=3)
    exercise(buf, steps=12)
    clone = feature_buffer(seed=4)
    clone.load_state_dict(buf.state_dict())
    assert_same_future(buf, clone)


def test_save_load_empty_buffer(tmp_path):
    buf = feature_buffer(seed=0)
    buf.train_iter = 5
    buf.save(tmp_path / "r")
    assert sorted(os.listdir(tmp_path / "r")) == [MANIFEST_FILE, "state.pt"]
    clone = feature_buffer(seed=1)
    clone.load(tmp_path / "r")
    assert len(clone) == 0 and clone.train_iter == 5


def _saved(tmp_path) -> tuple[PrioritizedBuffer, os.PathLike]:
    buf = feature_buffer(seed=0)
    exercise(buf, steps=5)
    path = tmp_path / "replay"
    buf.save(path)
    return buf, path


def _legacy(path, damage):
    (path / MANIFEST_FILE).unlink()
    damage()


def _flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda p: None, "not a directory"),  # loads tmp_path / "missing"
        (lambda p: (p / "state.pt").unlink(), "state.pt is missing"),
        (lambda p: (p / "rows.bin").unlink(), "rows.bin is missing"),
        (lambda p: (p / "state.pt").write_bytes(b"not a torch file"), "state.pt has 16 bytes"),
        (lambda p: _flip_byte(p / "rows.bin"), "checksum mismatch in rows.bin"),
        (lambda p: _flip_byte(p / "state.pt"), "checksum mismatch in state.pt"),
        (lambda p: (p / "rows.bin").write_bytes(b"\0" * 10), "rows.bin has 10 bytes"),
        # a directory written before checksums.json existed: the loader's own checks
        (lambda p: _legacy(p, lambda: (p / "state.pt").write_bytes(b"not a torch file")), "a text file"),
        (lambda p: _legacy(p, lambda: _flip_byte(p / "rows.bin")), "CRC-32"),
    ],
    ids=[
        "no_dir",
        "no_state",
        "no_rows",
        "state_garbage",
        "rows_flipped",
        "state_flipped",
        "rows_truncated",
        "legacy_state_garbage",
        "legacy_rows_flipped",
    ],
)
def test_load_of_damaged_directory_raises_and_leaves_buffer_unchanged(tmp_path, damage, match):
    _, path = _saved(tmp_path)
    damage(path)
    target = feature_buffer(seed=1)
    target.extend(make_batch([42]))
    before = target.stats()
    with pytest.raises(CheckpointError, match=match):
        target.load(tmp_path / "missing" if match == "not a directory" else path)
    assert target.stats() == before and target.sample(1)[keys.ACTION].item() == 42


def test_load_into_mismatched_buffer_names_the_field(tmp_path):
    _, path = _saved(tmp_path)
    for kwargs, field in (
        ({"maxlen": 25}, "capacity"),
        ({"max_use": 5}, "max_use"),
        ({"alpha": 0.5}, "alpha"),
    ):
        with pytest.raises(ValueError, match=field):
            feature_buffer(**kwargs).load(path)


def test_inconsistent_state_is_rejected():
    buf = feature_buffer(seed=0)
    exercise(buf, steps=5)
    state = buf.state_dict()
    live = int(np.flatnonzero(state["priorities"].numpy() > 0)[0])
    state["use_count"][live] = 4  # used max_use times yet live
    with pytest.raises(ValueError, match="max_use=4"):
        feature_buffer().load_state_dict(state)
    state = buf.state_dict()
    state["policy_iter"][live] = 0  # stale yet live
    with pytest.raises(ValueError, match="max_staleness=3"):
        feature_buffer().load_state_dict(state)


def test_failed_save_leaves_previous_copy_intact(tmp_path, monkeypatch):
    old, path = _saved(tmp_path)
    newer = feature_buffer(seed=5)
    exercise(newer, steps=9)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(replay_module.torch, "save", boom)  # fails after rows.bin was written
    with pytest.raises(OSError, match="disk full"):
        newer.save(path)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["replay"]
    restored = feature_buffer(seed=1)
    restored.load(path)
    assert restored.stats() == old.stats()


def test_crash_mid_save_leaves_previous_copy_intact(tmp_path):
    old, path = _saved(tmp_path)
    newer = feature_buffer(seed=5)
    exercise(newer, steps=9)
    pid = os.fork()
    if pid == 0:  # child: die with rows.bin half written, no cleanup
        try:
            real_crc32 = zlib.crc32

            def crash(data, value=0):
                real_crc32(data, value)
                os._exit(3)

            replay_module.zlib.crc32 = crash
            newer.save(path)
        finally:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 3
    restored = feature_buffer(seed=1)
    restored.load(path)
    assert restored.stats() == old.stats()
    newer.save(path)  # a later save succeeds beside the crashed one's leftovers
    restored.load(path)
    assert restored.stats() == newer.stats()


def test_save_replaces_directory_without_rename_exchange(tmp_path, monkeypatch):
    _, path = _saved(tmp_path)
    newer = feature_buffer(seed=5)
    exercise(newer, steps=9)
    monkeypatch.setattr(io_module, "_exchange", lambda a, b: False)
    newer.save(path)
    assert sorted(os.listdir(tmp_path)) == ["replay"]
    restored = feature_buffer(seed=1)
    restored.load(path)
    assert_same_future(newer, restored, steps=2)


# ---------------------------------------------------------------------- memmap storage
def test_memmap_storage_matches_memory_and_roundtrips(tmp_path):
    mem = feature_buffer(seed=2)
    mm = feature_buffer(seed=2, storage="memmap", memmap_dir=tmp_path / "mm")
    a, b = exercise(mem, steps=10), exercise(mm, steps=10)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    assert os.listdir(tmp_path / "mm") == []  # the backing file is unlinked once mapped
    mm.save(tmp_path / "saved")
    into_memory = feature_buffer(seed=0)
    into_memory.load(tmp_path / "saved")
    into_memmap = feature_buffer(seed=0, storage="memmap", memmap_dir=tmp_path / "mm2")
    into_memmap.load(tmp_path / "saved")
    assert_same_future(mm, into_memory, steps=3)
    assert_same_future(mem, into_memmap, steps=3)


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_use": 0}, "max_use must be >= 1"),
        ({"max_use": 1.5}, "max_use must be an int"),
        ({"max_staleness": -1}, "max_staleness must be >= 0"),
        ({"storage": "disk"}, r"storage must be one of \('memory', 'memmap'\)"),
        ({"storage": "memmap"}, "memmap_dir must be a directory path"),
        ({"memmap_dir": "/tmp"}, "memmap_dir is only used with storage='memmap'"),
    ],
)
def test_new_constructor_errors_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PrioritizedBuffer(8, **kwargs)


def test_policy_iter_and_train_iter_validation():
    buf = PrioritizedBuffer(8, seed=0)
    with pytest.raises(ValueError, match="policy_iter must be >= 0"):
        buf.extend(make_batch([0, 1]), policy_iter=-1)
    with pytest.raises(ValueError, match="policy_iter must be >= 0"):
        buf.extend(make_batch([0, 1]), policy_iter=torch.tensor([0, -1]))
    with pytest.raises(ValueError, match="policy_iter must be an integer tensor"):
        buf.extend(make_batch([0, 1]), policy_iter=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"policy_iter must be an int or \(2,\) integers"):
        buf.extend(make_batch([0, 1]), policy_iter=torch.tensor([0]))
    with pytest.raises(ValueError, match="train_iter must be an int"):
        buf.train_iter = 1.0
    assert len(buf) == 0
