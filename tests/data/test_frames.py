"""FrameStore: exact round trips, exact stored-frame counts, ring eviction, checkpoints, validation."""

from __future__ import annotations

import io

import pytest
import torch

from lightning_rl.data import frames as frames_module
from lightning_rl.data.frames import FrameStore


def random_frames(n: int, shape: tuple[int, ...] = (6, 8), seed: int = 0) -> torch.Tensor:
    """``(n, *shape)`` distinct random uint8 frames."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=gen)


def shifted_stacks(stream: torch.Tensor, k: int) -> torch.Tensor:
    """``(E, T, ...)`` frame streams -> ``(T - k + 1, E, k, ...)``: stack ``t`` holds frames ``t..t+k-1``."""
    n_stacks = stream.shape[1] - k + 1
    return torch.stack([stream[:, t : t + k] for t in range(n_stacks)])


def encode_steps(store: FrameStore, stacks: torch.Tensor) -> list[torch.Tensor]:
    """Feeds consecutive stacks the way the DataModule does: obs of step t, then next_obs of step t
    (= obs of step t + 1). Checks every round trip; returns the ids of each encode."""
    out = []
    for t in range(stacks.shape[0] - 1):
        for obs in (stacks[t], stacks[t + 1]):
            ids = store.encode(obs)
            assert ids.shape == obs.shape[:2] and ids.dtype == torch.int64
            assert torch.equal(store.decode(ids), obs)
            out.append(ids)
    return out


@pytest.mark.parametrize("compress", [True, False])
def test_shifted_stacks_store_each_frame_once(compress):
    n_envs, k, steps = 3, 4, 10
    stream = random_frames(n_envs * (k + steps)).view(n_envs, k + steps, 6, 8)
    store = FrameStore(capacity=100, n_envs=n_envs, compress=compress)
    ids = encode_steps(store, shifted_stacks(stream, k))
    assert store.next_id == n_envs * (k + steps)
    # obs of step t + 1 reuses the ids of next_obs of step t; one new id per env and step
    for t in range(1, len(ids) - 1, 2):
        assert torch.equal(ids[t], ids[t + 1])
        assert torch.equal(ids[t][:, :-1], ids[t - 1][:, 1:])
    stats = store.stats()
    assert stats["frames_encoded"] == 2 * steps * n_envs * k
    assert stats["frames_stored"] == stats["frames_held"] == n_envs * (k + steps)
    assert stats["dedup_ratio"] == pytest.approx(2 * steps * k / (k + steps))
    assert stats["raw_bytes"] == n_envs * (k + steps) * 48


def test_same_stack_again_stores_nothing():
    obs = random_frames(2 * 4).view(2, 4, 6, 8)
    store = FrameStore(capacity=16, n_envs=2)
    first = store.encode(obs)
    assert torch.equal(store.encode(obs.clone()), first)
    assert store.next_id == 8


def test_reset_padding_and_zero_padding_store_distinct_frames_only():
    k = 4
    r, s, z = random_frames(3)
    z.zero_()
    store = FrameStore(capacity=32, n_envs=2)
    # env 0: gymnasium's reset padding [r, r, r, r]; env 1: zero padding [0, 0, 0, r]
    reset_obs = torch.stack([r.expand(k, 6, 8), torch.stack([z, z, z, r])])
    ids = store.encode(reset_obs)
    assert store.next_id == 1 + 2
    assert ids[0].tolist() == [0, 0, 0, 0] and ids[1].tolist() == [1, 1, 1, 2]
    assert torch.equal(store.decode(ids), reset_obs)
    next_obs = torch.stack([torch.stack([r, r, r, s]), torch.stack([z, z, r, s])])
    next_ids = store.encode(next_obs)
    assert store.next_id == 3 + 2  # s is new in each env (no sharing across envs)
    assert next_ids[0].tolist() == [0, 0, 0, 3] and next_ids[1].tolist() == [1, 1, 2, 4]
    assert torch.equal(store.decode(next_ids), next_obs)


def test_reset_of_one_env_while_others_shift():
    n_envs, k = 3, 4
    stream = random_frames(n_envs * (k + 1)).view(n_envs, k + 1, 6, 8)
    new_episode = random_frames(1, seed=1)[0]
    store = FrameStore(capacity=64, n_envs=n_envs)
    store.encode(stream[:, :k])
    next_obs = stream[:, 1:].clone()
    store.encode(next_obs)  # final obs of env 0's episode (true next_obs), next step of the others
    obs = next_obs.clone()
    obs[0] = new_episode  # autoreset: env 0 starts over with a padded reset stack
    before = store.next_id
    ids = store.encode(obs)
    assert store.next_id == before + 1
    assert torch.equal(store.decode(ids), obs)


def test_k1_reuses_next_obs_as_next_obs():
    n_envs, steps = 2, 6
    stream = random_frames(n_envs * (steps + 1), shape=(5, 5)).view(n_envs, steps + 1, 5, 5)
    store = FrameStore(capacity=50, n_envs=n_envs)
    encode_steps(store, shifted_stacks(stream, 1))
    assert store.next_id == n_envs * (steps + 1)


@pytest.mark.parametrize("frame_shape", [(5, 7, 3), (4, 4, 3), (2, 3)])  # 105 B (byte compares), 48 B, 6 B
@pytest.mark.parametrize("compress", [True, False])
def test_any_frame_shape_round_trips(frame_shape, compress):
    n_envs, k, steps = 2, 3, 5
    stream = random_frames(n_envs * (k + steps), shape=frame_shape).view(n_envs, k + steps, *frame_shape)
    store = FrameStore(capacity=64, n_envs=n_envs, compress=compress)
    ids = encode_steps(store, shifted_stacks(stream, k))
    assert store.next_id == n_envs * (k + steps)
    assert store.frame_shape == frame_shape
    batch = torch.stack(ids)  # (2 * steps, E, k)
    decoded = store.decode(batch)
    assert decoded.shape == (*batch.shape, *frame_shape)
    assert torch.equal(store.decode(batch.transpose(0, 2)), decoded.transpose(0, 2))  # strided ids


def test_compress_false_gives_identical_ids_and_frames():
    n_envs, k = 2, 4
    stream = random_frames(n_envs * 30, shape=(8, 8)).view(n_envs, 30, 8, 8)
    stream[:, 10:14] = stream[:, 9:10]  # a static screen
    stacks = shifted_stacks(stream, k)
    packed, raw = FrameStore(24, n_envs), FrameStore(24, n_envs, compress=False)
    for a, b in zip(encode_steps(packed, stacks), encode_steps(raw, stacks), strict=True):
        assert torch.equal(a, b)
    assert packed.next_id == raw.next_id
    held = torch.arange(packed.oldest_id, packed.next_id)
    assert torch.equal(packed.decode(held), raw.decode(held))


def test_compressible_frames_report_compression():
    frames = torch.zeros(2, 5, 32, 32, dtype=torch.uint8)
    frames[:, :, 3:6, 4:9] = torch.arange(5, dtype=torch.uint8)[None, :, None, None] + 1
    store = FrameStore(capacity=16, n_envs=2)
    store.encode(frames[:, :4])
    store.encode(frames[:, 1:])
    stats = store.stats()
    assert stats["frames_stored"] == 10  # frame 0 of both envs is the same content, but envs never share
    assert stats["compression_ratio"] > 10
    assert stats["stored_bytes"] * stats["compression_ratio"] == stats["raw_bytes"]


# ---------------------------------------------------------------------- ring eviction
@pytest.mark.parametrize("compress", [True, False])
def test_ring_overwrite_makes_old_ids_unavailable(compress, monkeypatch):
    monkeypatch.setattr(frames_module, "_BLOCK_RAW_BYTES", 3 * 48)  # 3-frame blocks: several per ring
    n_envs, k, steps = 2, 2, 12
    stream = random_frames(n_envs * (k + steps)).view(n_envs, k + steps, 6, 8)
    store = FrameStore(capacity=10, n_envs=n_envs, compress=compress)
    ids = encode_steps(store, shifted_stacks(stream, k))
    assert store.next_id == n_envs * (k + steps) == 28
    assert store.oldest_id == 18
    first, newest = ids[0], ids[-1]
    assert store.available(first).tolist() == [False, False]
    assert store.available(newest).tolist() == [True, True]
    assert store.available(torch.tensor([[17, 18], [18, 27], [27, 28]])).tolist() == [False, True, False]
    with pytest.raises(ValueError, match=r"ids \[0, 1.*not held.*\[18, 28\)"):
        store.decode(first)
    assert store.stats()["frames_held"] == 10
    held = torch.arange(18, 28)
    assert torch.equal(
        store.decode(held).view(10, -1), stream.reshape(28, 48)[_stream_order(n_envs, k, steps)][18:]
    )


def _stream_order(n_envs: int, k: int, steps: int) -> torch.Tensor:
    """Row of ``stream.reshape(E * (k + steps), ...)`` that each frame id holds: first every env's
    initial stack (env-major), then one frame per env and step."""
    order = [e * (k + steps) + j for e in range(n_envs) for j in range(k)]
    order += [e * (k + steps) + k + t for t in range(steps) for e in range(n_envs)]
    return torch.tensor(order)


def test_static_env_restores_frames_before_they_leave_the_ring():
    """An env whose stack never changes must not keep handing out ids that other envs' writes evict."""
    k = 2
    store = FrameStore(capacity=6, n_envs=2)
    static = random_frames(k, seed=1)
    moving = random_frames(40, seed=2)
    for t in range(30):
        obs = torch.stack([static, moving[t : t + k]])
        ids = store.encode(obs)
        assert bool(store.available(ids).all())
        assert torch.equal(store.decode(ids), obs)


# ---------------------------------------------------------------------- history reset
def test_reset_forgets_history():
    obs = random_frames(2 * 3).view(2, 3, 6, 8)
    store = FrameStore(capacity=32, n_envs=2)
    store.encode(obs)
    store.reset(torch.tensor([True, False]))
    ids = store.encode(obs)
    assert store.next_id == 9 and ids[0].tolist() == [6, 7, 8] and ids[1].tolist() == [3, 4, 5]
    store.reset()
    store.encode(obs)
    assert store.next_id == 15
    with pytest.raises(ValueError, match=r"env_mask must be a bool tensor of shape \(2,\)"):
        store.reset(torch.tensor([1, 0]))


# ---------------------------------------------------------------------- checkpoints
def roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("compress", [True, False])
def test_state_dict_round_trip_continues_identically(compress, monkeypatch):
    monkeypatch.setattr(frames_module, "_BLOCK_RAW_BYTES", 4 * 48)
    n_envs, k = 2, 3
    stream = random_frames(n_envs * 40).view(n_envs, 40, 6, 8)
    stream[:, 20:24] = stream[:, 19:20]  # a static screen
    stacks = shifted_stacks(stream, k)
    store = FrameStore(capacity=13, n_envs=n_envs, compress=compress)
    encode_steps(store, stacks[:15])  # wrapped around: the oldest block is partly evicted
    store.reset(torch.tensor([False, True]))
    state = roundtrip(store.state_dict())
    restored = FrameStore(capacity=13, n_envs=n_envs, compress=compress)
    restored.load_state_dict(state)
    assert same_stats(restored, store)
    held = torch.arange(store.oldest_id, store.next_id)
    assert torch.equal(restored.decode(held), store.decode(held))
    for a, b in zip(encode_steps(store, stacks[14:]), encode_steps(restored, stacks[14:]), strict=True):
        assert torch.equal(a, b)
    assert same_stats(restored, store)


def same_stats(a: FrameStore, b: FrameStore) -> bool:
    """Stats equal except ``memory_bytes`` (a loaded store drops the evicted frames of its oldest block)."""
    sa, sb = a.stats(), b.stats()
    return sa.pop("memory_bytes") <= sb.pop("memory_bytes") and sa == sb


def test_state_dict_of_an_empty_store():
    store = FrameStore(capacity=8, n_envs=2)
    restored = FrameStore(capacity=8, n_envs=2)
    restored.load_state_dict(roundtrip(store.state_dict()))
    assert restored.frame_shape is None and restored.next_id == 0
    state = store.state_dict()
    state["payload"] = torch.zeros(3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="'payload' must be None when .* 'frame_shape' is None"):
        restored.load_state_dict(state)
    obs = random_frames(4).view(2, 2, 6, 8)
    assert torch.equal(restored.decode(restored.encode(obs)), obs)


def _filled_store() -> FrameStore:
    store = FrameStore(capacity=16, n_envs=2)
    encode_steps(store, shifted_stacks(random_frames(2 * 10).view(2, 10, 6, 8), 4))
    return store


def _corrupt_payload(state: dict) -> None:
    state["payload"] = torch.full_like(state["payload"], 0xFF)


def _swap_last(state: dict) -> None:
    state["last"] = state["last"].flip(0).clone()


@pytest.mark.parametrize(
    ("corrupt", "match"),
    [
        (lambda s: s.update(format="other"), "'format' must be"),
        (lambda s: s.update(version=99), "unsupported 'version'"),
        (lambda s: s.update(capacity=13), "'capacity' is 13 but this store has 16"),
        (lambda s: s.update(compress=False), "'compress' is False but this store has True"),
        (lambda s: s.update(next_id=-1), "'next_id' must be an int >= 0"),
        (lambda s: s.update(frames_encoded=s["next_id"] - 1), "'frames_encoded' must be an int >= 20"),
        (
            lambda s: s.update(frames_encoded=s["frames_encoded"] + 1),
            "'frames_encoded' 97 must be a multiple",
        ),
        (lambda s: s.update(frame_shape=[6, 0]), "'frame_shape' must be a non-empty list of ints > 0"),
        (
            lambda s: s.update(nbytes=s["nbytes"][1:]),
            r"'nbytes' must be a torch.int64 tensor of shape \(16,\)",
        ),
        (lambda s: s.update(payload=s["payload"][:-1]), "'payload' holds .* bytes but 'nbytes' sums to"),
        (_corrupt_payload, "'payload': frame .*corrupt"),
        (lambda s: s.update(last_ids=s["last_ids"] - 20), "'last_ids' of envs with 'has_last' must lie in"),
        (_swap_last, "'last' does not match the stored frames of 'last_ids'"),
        (lambda s: s.update(has_last=s["has_last"].long()), "'has_last' must be a torch.bool tensor"),
        (lambda s: s.update(frames=s["last"]), "'frames' must be None when 'compress' is True"),
    ],
)
def test_corrupt_state_is_rejected_and_store_unchanged(corrupt, match):
    state = _filled_store().state_dict()
    corrupt(state)
    store = _filled_store()
    before = store.state_dict()
    with pytest.raises(ValueError, match=match):
        store.load_state_dict(state)
    after = store.state_dict()
    assert after.keys() == before.keys()
    for key, value in before.items():
        assert torch.equal(after[key], value) if isinstance(value, torch.Tensor) else after[key] == value


def test_raw_state_needs_frames_of_the_held_shape():
    store = FrameStore(capacity=12, n_envs=2, compress=False)
    encode_steps(store, shifted_stacks(random_frames(2 * 10).view(2, 10, 6, 8), 4))
    state = store.state_dict()
    state["frames"] = state["frames"][:, :5]
    with pytest.raises(ValueError, match=r"'frames' must be a torch.uint8 tensor of shape \(12, 6, 8\)"):
        FrameStore(capacity=12, n_envs=2, compress=False).load_state_dict(state)


# ---------------------------------------------------------------------- argument validation
def test_invalid_arguments_name_the_field():
    with pytest.raises(ValueError, match="capacity must be an int >= 1"):
        FrameStore(capacity=0, n_envs=1)
    with pytest.raises(ValueError, match="n_envs must be an int >= 1"):
        FrameStore(capacity=4, n_envs=True)
    with pytest.raises(ValueError, match="compress must be a bool"):
        FrameStore(capacity=4, n_envs=1, compress=1)
    store = FrameStore(capacity=8, n_envs=2)
    with pytest.raises(ValueError, match="decode.. called before the first encode"):
        store.decode(torch.zeros(1, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="obs must be a uint8 CPU tensor"):
        store.encode(torch.zeros(2, 4, 6, 8))
    with pytest.raises(ValueError, match=r"obs must have shape \(n_envs=2, k >= 1, \*frame_shape\)"):
        store.encode(torch.zeros(3, 4, 6, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"capacity must be >= n_envs \* k = 2 \* 5"):
        store.encode(torch.zeros(2, 5, 6, 8, dtype=torch.uint8))
    store.encode(torch.zeros(2, 4, 6, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"obs must have shape \(n_envs, k=4, \*frame_shape=\(6, 8\)\)"):
        store.encode(torch.zeros(2, 4, 8, 6, dtype=torch.uint8))
    with pytest.raises(ValueError, match="ids must be an int64 CPU tensor"):
        store.decode(torch.zeros(1, 4, dtype=torch.int32))
