"""PrioritizedBuffer with plain dict items: tensor values packed, other values in object columns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.data import PrioritizedBuffer


def item(i: int) -> dict:
    """Item ``i``: tensor values derived from ``i`` mixed with a string, a nested dict and a None."""
    return {
        "obs": torch.full((3,), float(i)),
        "action": torch.tensor(i),
        "note": f"step {i}",
        "info": {"episode": i // 4, "tags": ["a", i]},
        "extra": None,
    }


def assert_is_item(got: dict, i: int) -> None:
    want = item(i)
    assert list(got) == [*want, keys.INDEX, keys.WEIGHT]
    assert torch.equal(got["obs"], want["obs"]) and got["obs"].dtype == torch.float32
    assert torch.equal(got["action"], want["action"]) and got["action"].shape == ()
    assert (got["note"], got["info"], got["extra"]) == (want["note"], want["info"], None)


def test_mixed_values_round_trip_with_index_and_weight():
    buf = PrioritizedBuffer(8, seed=0)
    assert buf.append(item(0)) == 0
    assert buf.extend([item(i) for i in range(1, 5)]).tolist() == [1, 2, 3, 4]
    batch = buf.sample(5, beta=0.5)
    assert sorted(d[keys.INDEX] for d in batch) == [0, 1, 2, 3, 4]  # equal priorities: each once
    for d in batch:
        assert_is_item(d, d[keys.INDEX])
        assert d[keys.WEIGHT] == 1.0
    got = buf.get(torch.tensor([3, 1]))
    assert [d[keys.INDEX] for d in got] == [3, 1]
    assert_is_item(got[0], 3)


def test_priorities_are_updated_from_sampled_dicts():
    buf = PrioritizedBuffer(4, alpha=1.0, eps=1e-6, seed=0)
    buf.extend([item(i) for i in range(4)])
    batch = buf.sample(4)
    td_error = [0.5, 1.0, 2.0, 9.0]
    buf.update_priority([d[keys.INDEX] for d in batch], [td_error[d[keys.INDEX]] for d in batch])
    prios = buf.state_dict()["priorities"]
    assert torch.allclose(prios, torch.tensor(td_error) + 1e-6)
    counts = np.zeros(4)
    for _ in range(300):
        for d in buf.sample(4, beta=1.0):
            counts[d[keys.INDEX]] += 1
            # w_i = (p_i / p_min) ** -beta: the least likely item has weight 1
            assert d[keys.WEIGHT] == pytest.approx(td_error[0] / td_error[d[keys.INDEX]], rel=1e-4)
    assert counts[3] > counts[2] > counts[1] > counts[0] > 0


def test_ring_overwrites_objects_and_keeps_the_last_items():
    buf = PrioritizedBuffer(3, prioritized=False, seed=0)
    for i in range(5):
        buf.append(item(i))
    notes = {d["note"] for _ in range(50) for d in buf.sample(3)}
    assert notes == {"step 2", "step 3", "step 4"}
    idx = buf.extend([item(i) for i in range(10, 17)])  # more than maxlen in one call
    assert idx.shape == (7,)
    assert sorted(d["note"] for d in buf.get(torch.arange(3))) == ["step 14", "step 15", "step 16"]


def test_eviction_of_dict_items():
    buf = PrioritizedBuffer(8, max_use=1, seed=0)
    buf.extend([item(i) for i in range(4)])
    assert sorted(d[keys.INDEX] for d in buf.sample(4)) == [0, 1, 2, 3]
    assert buf.num_sampleable == 0
    assert buf.get(torch.tensor([2]))[0]["note"] == "step 2"  # evicted, still stored
    buf.extend([item(4), item(5)])
    assert buf.evict([4]) == 1
    assert [d["note"] for d in buf.sample(1)] == ["step 5"]


def test_items_with_only_non_tensor_values_and_empty_extend():
    buf = PrioritizedBuffer(4, seed=0)
    assert buf.extend([]).tolist() == []
    buf.extend([{"x": 1}, {"x": "two"}, {"x": [3]}])
    assert sorted(map(str, (d["x"] for d in buf.get(torch.arange(3))))) == ["1", "[3]", "two"]


@pytest.mark.parametrize(
    ("first", "bad", "match"),
    [
        ({"a": 1}, {"b": 1}, r"dict item 0 has keys \['b'\]; items have \['a'\]"),
        ({"a": 1}, {"a": 1, "b": 2}, "has keys"),
        ({"a": 1}, {"a": torch.zeros(2)}, "dict item 0 key 'a' is a tensor"),
        ({"a": torch.zeros(2)}, {"a": "x"}, "dict item 0 key 'a' must be a tensor"),
        ({"a": torch.zeros(2)}, {"a": torch.zeros(3)}, r"batch key 'a' has per-item shape \(3,\)"),
        ({"a": torch.zeros(2)}, {"a": torch.zeros(2, dtype=torch.int64)}, "batch key 'a'"),
    ],
)
def test_mismatched_dict_items_are_refused_naming_the_key(first, bad, match):
    buf = PrioritizedBuffer(8, seed=0)
    buf.append(first)
    with pytest.raises(ValueError, match=match):
        buf.append(bad)
    assert len(buf) == 1 and buf.sample(1)[0].keys() == {*first, keys.INDEX, keys.WEIGHT}


def test_dict_batch_errors():
    buf = PrioritizedBuffer(8, seed=0)
    with pytest.raises(ValueError, match="dict item 1 key 'a' is"):
        buf.extend([{"a": torch.zeros(2)}, {"a": torch.zeros(3)}])
    with pytest.raises(ValueError, match="batch item 1 must be a dict"):
        buf.extend([{"a": 1}, 2])
    with pytest.raises(ValueError, match="must not contain the key 'index'"):
        buf.append({"index": 1})
    with pytest.raises(ValueError, match="keys must be str"):
        buf.append({3: 1})
    with pytest.raises(ValueError, match="list of dicts"):
        buf.extend({"a": torch.zeros(2)})  # one dict is append's, not extend's
    assert len(buf) == 0


def test_a_buffer_holds_dicts_or_tensordicts_until_cleared():
    buf = PrioritizedBuffer(8, seed=0)
    buf.append({"obs": torch.zeros(2)})
    with pytest.raises(ValueError, match="stores dict items"):
        buf.extend(TensorDict({"obs": torch.zeros(1, 2)}, [1]))
    buf.clear()
    buf.extend(TensorDict({"obs": torch.zeros(1, 2)}, [1]))
    with pytest.raises(ValueError, match="stores TensorDict batches"):
        buf.append({"obs": torch.zeros(2)})
    assert isinstance(buf.sample(1), TensorDict)


def _filled(**kwargs) -> PrioritizedBuffer:
    buf = PrioritizedBuffer(6, seed=3, max_use=3, **kwargs)
    g = torch.Generator().manual_seed(0)
    for t in range(4):
        buf.extend([item(3 * t + i) for i in range(3)])
        batch = buf.sample(3)
        buf.update_priority([d[keys.INDEX] for d in batch], torch.rand(3, generator=g))
    return buf


def _assert_same_future(a: PrioritizedBuffer, b: PrioritizedBuffer) -> None:
    assert a.stats() == b.stats()
    for _ in range(3):
        x, y = a.sample(2), b.sample(2)
        assert [d[keys.INDEX] for d in x] == [d[keys.INDEX] for d in y]
        for d, e in zip(x, y, strict=True):
            assert_is_item(e, int(d["action"]))


def test_state_dict_round_trip_through_weights_only_load(tmp_path):
    buf = _filled()
    torch.save(buf.state_dict(), tmp_path / "replay.pt")
    clone = PrioritizedBuffer(6, seed=0, max_use=3)
    clone.load_state_dict(torch.load(tmp_path / "replay.pt", weights_only=True))
    _assert_same_future(buf, clone)


@pytest.mark.parametrize("storage", ["memory", "memmap"])
def test_save_load_round_trip(tmp_path, storage):
    kwargs = {"storage": "memmap", "memmap_dir": tmp_path / "mm"} if storage == "memmap" else {}
    buf = _filled(**kwargs)
    buf.save(tmp_path / "saved")
    clone = PrioritizedBuffer(6, seed=0, max_use=3)
    clone.load(tmp_path / "saved")
    _assert_same_future(buf, clone)


def test_only_object_values_save_and_load(tmp_path):
    buf = PrioritizedBuffer(4, seed=0)
    buf.extend([{"data": "placeholder", "n": i} for i in range(6)])
    buf.save(tmp_path / "saved")
    clone = PrioritizedBuffer(4, seed=1)
    clone.load(tmp_path / "saved")
    assert sorted(d["n"] for d in clone.get(torch.arange(4))) == [2, 3, 4, 5]


@pytest.mark.parametrize("value", [np.zeros(2), np.float64(1.0), object(), {1: "int key"}])
def test_checkpoints_refuse_values_weights_only_cannot_load(tmp_path, value):
    buf = PrioritizedBuffer(4, seed=0)
    buf.extend([{"obs": torch.zeros(2), "payload": "ok"}, {"obs": torch.ones(2), "payload": value}])
    with pytest.raises(ValueError, match="key 'payload' at storage index 1 holds a"):
        buf.state_dict()
    with pytest.raises(ValueError, match="key 'payload'"):
        buf.save(tmp_path / "saved")
    assert not (tmp_path / "saved").exists()


def test_corrupt_object_columns_are_refused():
    buf = _filled()
    state = buf.state_dict()
    state["storage"]["objects"]["columns"]["note"] = ["x"]  # wrong length
    target = PrioritizedBuffer(6, seed=0, max_use=3)
    with pytest.raises(ValueError, match="'storage.objects.columns' 'note' must be a list of 6 values"):
        target.load_state_dict(state)
    state = buf.state_dict()
    state["storage"]["objects"]["names"] = ["obs", "action"]
    with pytest.raises(ValueError, match="storage.objects.names"):
        target.load_state_dict(state)
    assert len(target) == 0


def test_a_version_2_state_without_dict_items_still_loads():
    buf = PrioritizedBuffer(8, seed=0)
    buf.extend(TensorDict({"obs": torch.arange(5.0)[:, None]}, [5]))
    state = buf.state_dict()
    assert state["version"] == 3 and state["storage"]["objects"] is None
    state["version"] = 2
    del state["storage"]["objects"]
    clone = PrioritizedBuffer(8, seed=1)
    clone.load_state_dict(state)
    assert (clone.sample(5) == buf.sample(5)).all()
