"""OffPolicyDataModule: collection, n-step transitions into replay, warm-up, replay ratio, budgets, state."""

import itertools
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

from lightning_rl import keys
from lightning_rl.datamodules import OffPolicyDataModule


class ConstantPolicy:
    """Always the same action; records the env_steps it was asked at."""

    def __init__(self, action: int = 0):
        self.action = action
        self.calls: list[tuple[str, int]] = []
        self.train_iter = 0

    def act(self, obs, mode="eval", env_steps=0, generator=None):
        self.calls.append((mode, env_steps))
        return torch.full((obs.shape[0],), self.action, dtype=torch.int64)


def attach(dm: OffPolicyDataModule, policy, rank: int = 0, world_size: int = 1) -> OffPolicyDataModule:
    dm.trainer = SimpleNamespace(
        lightning_module=policy,
        global_rank=rank,
        world_size=world_size,
        should_stop=False,
        log_dir=None,  # replay directories go to data.replay_dir in these tests
        default_root_dir=None,
    )
    dm.setup("fit")
    return dm


def batches(dm: OffPolicyDataModule):
    """The stream's batches, one training step's after another."""
    for step in dm.train_dataloader():
        yield from step


def short_cartpole(max_episode_steps: int = 5, **kwargs) -> OffPolicyDataModule:
    """CartPole truncated after a few steps, so episode ends are frequent and predictable."""
    defaults = dict(
        n_envs=2, buffer_size=1000, batch_size=4, learning_starts=0, train_freq=2, gradient_steps=3
    )
    return OffPolicyDataModule(
        env_id=None,
        env_fn=gym.make,
        env_kwargs={"id": "CartPole-v1", "max_episode_steps": max_episode_steps},
        **{**defaults, **kwargs},
    )


def test_env_spec_is_linked_data():
    dm = OffPolicyDataModule(env_id="CartPole-v1")
    assert dm.env_spec["action_type"] == "discrete" and dm.env_spec["n_actions"] == 2
    assert dm.env_spec["obs_shape"] == [4]


def test_collect_counts_steps_and_fills_buffer_with_true_transitions():
    dm = attach(short_cartpole(), ConstantPolicy(action=1))
    dm.collect(vector_steps=5)  # 2 envs x 5 steps, every episode truncated at step 5
    assert dm.env_steps == 10 and dm.counters.episodes == 2
    assert len(dm.buffer) == 10
    batch = dm.buffer.get(torch.arange(10))
    assert batch[keys.REWARD].shape == (10, 1) and torch.all(batch[keys.REWARD] == 1.0)
    assert torch.all(batch[keys.ACTION] == 1)
    assert not batch[keys.TERMINATED].any()  # truncation is not termination: it bootstraps
    # CartPole's first state component is the cart position; pushing right moves it right
    assert torch.all(batch[keys.NEXT_OBS][:, 1] > batch[keys.OBS][:, 1])


def test_nstep_windows_flush_at_episode_end():
    dm = attach(short_cartpole(max_episode_steps=5, nstep=3), ConstantPolicy())
    dm.collect(vector_steps=5)
    # per env: windows emitted at steps 3, 4 (full, steps=3) and 3 flushed at the truncation (3, 2, 1)
    assert len(dm.buffer) == 2 * 5
    steps = dm.buffer.get(torch.arange(10))[keys.STEPS]
    assert sorted(steps.tolist()) == [1, 1, 2, 2, 3, 3, 3, 3, 3, 3]


def test_stream_warms_up_then_yields_gradient_steps_per_phase():
    dm = attach(short_cartpole(learning_starts=20, train_freq=4, gradient_steps=3), ConstantPolicy())
    stream = batches(dm)
    first = next(stream)
    assert dm.env_steps == 20  # warm-up: 10 vector steps of 2 envs, nothing sampled before
    assert first.batch_size == torch.Size([4]) and keys.INDEX in first
    next(stream), next(stream)
    assert dm.env_steps == 20  # 3 gradient steps per phase, no collection in between
    next(stream)
    assert dm.env_steps == 24  # next phase: train_freq=4 env steps = 2 vector steps


def test_env_step_budget_ends_the_stream_and_training():
    dm = attach(
        short_cartpole(max_env_steps=12, learning_starts=0, train_freq=4, gradient_steps=1), ConstantPolicy()
    )
    assert len(list(batches(dm))) == 3 and dm.env_steps == 12
    assert dm.trainer.should_stop


def test_a_training_step_never_straddles_a_collection_phase():
    """Phases of gradient_steps=5 batches are served in steps of at most updates_per_step=2: 2, 2, 1."""
    dm = attach(short_cartpole(train_freq=4, gradient_steps=5, updates_per_step=2), ConstantPolicy())
    sizes = []
    for step in itertools.islice(dm.train_dataloader(), 6):
        before = dm.env_steps  # the step's collection (if any) happened before it was handed out
        sizes.append(sum(1 for _ in step))
        assert dm.env_steps == before
    assert sizes == [2, 2, 1, 2, 2, 1]
    assert dm.env_steps == 2 * 4  # two phases of train_freq=4 env steps


def test_exploration_sees_global_env_steps_under_ddp():
    policy = ConstantPolicy()
    dm = attach(short_cartpole(), policy, rank=1, world_size=4)
    dm.collect(vector_steps=2)
    assert dm.env_steps == 2 * 2 * 4  # local steps x world size
    assert [step for _, step in policy.calls] == [0, 8] and {mode for mode, _ in policy.calls} == {"collect"}


def test_ranks_get_different_env_seeds():
    obs = []
    for rank in (0, 1):
        dm = attach(short_cartpole(seed=7), ConstantPolicy(), rank=rank, world_size=2)
        obs.append(dm.collector._obs.copy())
    assert not (obs[0] == obs[1]).all()


def test_priorities_are_written_back_only_when_prioritized():
    dm = attach(short_cartpole(prioritized=True, learning_starts=0), ConstantPolicy())
    dm.collect(vector_steps=5)
    batch = dm.sample()
    assert keys.WEIGHT in batch
    before = dm.buffer.stats()["priority_max"]
    dm.update_priority(batch[keys.INDEX], torch.full((4,), 100.0))
    assert dm.buffer.stats()["priority_max"] > before
    metrics = dm.metrics()
    assert metrics["buffer/size"] == 10.0 and "collect/return_mean" in metrics


def test_beta_anneals_over_env_steps():
    dm = attach(
        short_cartpole(prioritized=True, priority_beta=0.4, priority_beta_final=1.0, priority_beta_steps=20),
        ConstantPolicy(),
    )
    dm.collect(vector_steps=5)  # 10 of 20 annealing steps -> beta 0.7
    seen = {}
    original = dm.buffer.sample
    dm.buffer.sample = lambda n, beta: seen.setdefault("beta", beta) and original(n, beta)
    dm.sample()
    assert seen["beta"] == pytest.approx(0.7)


def test_state_dict_round_trip_restores_counters_buffer_and_rng():
    dm = attach(short_cartpole(), ConstantPolicy())
    dm.collect(vector_steps=5)
    state = dm.state_dict()
    expected = dm.sample()

    restored = attach(short_cartpole(), ConstantPolicy())
    restored.load_state_dict(state)
    assert (restored.env_steps, restored.counters.episodes) == (10, 2)
    assert len(restored.buffer) == 10
    got = restored.sample()
    assert torch.equal(got[keys.INDEX], expected[keys.INDEX]) and torch.equal(
        got[keys.OBS], expected[keys.OBS]
    )


def test_world_size_mismatch_on_resume_is_an_error():
    dm = attach(short_cartpole(), ConstantPolicy())
    state = {**dm.state_dict(), "world_size": 2}
    with pytest.raises(ValueError, match="written by 2 ranks but this run has 1"):
        attach(short_cartpole(), ConstantPolicy()).load_state_dict(state)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"buffer_size": 0}, "buffer_size must be > 0"),
        ({"batch_size": -1}, "batch_size must be > 0"),
        ({"n_envs": 0}, "n_envs must be > 0"),
        ({"nstep": 0}, "nstep must be > 0"),
        ({"learning_starts": -5}, "learning_starts must be >= 0"),
        ({"batch_size": 64, "buffer_size": 32}, r"batch_size \(64\) must be <= buffer_size \(32\)"),
        ({"priority_beta": 1.5}, r"priority_beta must be in \[0.0, 1.0\]"),
        ({"vectorization": "threads"}, r"vectorization must be one of \['subprocess', 'sync'\]"),
        ({"env_id": "NoSuchEnv-v0"}, "env_id: unknown gymnasium environment id 'NoSuchEnv-v0'"),
    ],
)
def test_bad_arguments_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OffPolicyDataModule(**kwargs)


class TinyFrames(gym.Env):
    """A stack of the last 4 image frames (uint8, mostly black like Atari's), shifted by one each step."""

    observation_space = gym.spaces.Box(0, 255, (4, 36, 36), dtype=np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.stack = np.repeat(self._frame()[None], 4, axis=0)  # reset padding repeats the first frame
        return self.stack.copy(), {}

    def step(self, action):
        self.t += 1
        self.stack = np.concatenate((self.stack[1:], self._frame()[None]))
        return self.stack.copy(), 1.0, self.t >= 10, False, {}

    def _frame(self):
        frame = np.zeros((36, 36), dtype=np.uint8)
        frame[self.t % 36, :] = self.np_random.integers(0, 255, size=36, dtype=np.uint8)
        return frame


def frames_datamodule(**kwargs) -> OffPolicyDataModule:
    return OffPolicyDataModule(env_id=None, env_fn=TinyFrames, n_envs=2, buffer_size=100, **kwargs)


def test_image_observations_are_lz4_compressed_in_checkpoints_and_restored_exactly():
    dm = attach(frames_datamodule(frame_store=False), ConstantPolicy())
    assert dm.env_spec["obs_dtype"] == "uint8"
    dm.collect(vector_steps=20)
    state = dm.state_dict()
    storage = state["buffer"]["storage"]
    obs_field = storage["keys"].index([keys.OBS])
    assert storage["data"][obs_field] is None  # stored as lz4 chunks, not raw
    compressed = sum(chunk.numel() for chunk in storage["lz4_chunks"][obs_field])
    assert compressed < 0.2 * 40 * 4 * 36 * 36  # mostly-black frames shrink > 5x

    restored = attach(frames_datamodule(frame_store=False), ConstantPolicy())
    restored.load_state_dict(state)
    everything = torch.arange(40)
    assert torch.equal(restored.buffer.get(everything)[keys.OBS], dm.buffer.get(everything)[keys.OBS])


def test_stacked_frames_are_stored_once_and_decoded_on_sample():
    raw = attach(frames_datamodule(frame_store=False, learning_starts=0, batch_size=8), ConstantPolicy())
    dm = attach(frames_datamodule(learning_starts=0, batch_size=8), ConstantPolicy())  # on by default
    assert dm.frames is not None
    for module in (raw, dm):
        module.collect(vector_steps=20)  # 2 envs x 2 episodes of 10 steps, same seeds
    # per episode: 1 reset frame + 10 new ones; the buffer holds (k,) frame ids
    assert dm.frames.stats()["frames_stored"] == 2 * 2 * 11
    assert dm.buffer.get(torch.arange(40))[keys.OBS].shape == (40, 4)
    batch = dm.sample()
    expected = raw.buffer.get(batch[keys.INDEX])  # the same transitions at the same storage slots
    assert batch[keys.OBS].dtype == torch.uint8 and batch[keys.OBS].shape == (8, 4, 36, 36)
    assert torch.equal(batch[keys.OBS], expected[keys.OBS])
    assert torch.equal(batch[keys.NEXT_OBS], expected[keys.NEXT_OBS])
    assert dm.metrics()["buffer/dedup_ratio"] == pytest.approx(2 * 4 * 40 / 44)

    restored = attach(frames_datamodule(learning_starts=0, batch_size=8), ConstantPolicy())
    restored.load_state_dict(dm.state_dict())
    again, restored_again = dm.sample(), restored.sample()
    assert torch.equal(again[keys.OBS], restored_again[keys.OBS])
    assert torch.equal(again[keys.NEXT_OBS], restored_again[keys.NEXT_OBS])


def test_items_whose_frames_were_overwritten_are_evicted_not_decoded():
    raw = attach(frames_datamodule(frame_store=False, learning_starts=0, batch_size=4), ConstantPolicy())
    dm = frames_datamodule(learning_starts=0, batch_size=4)
    dm._frame_store_capacity = 16  # a ring far smaller than the 40 transitions' 44 frames
    attach(dm, ConstantPolicy())
    for module in (raw, dm):
        module.collect(vector_steps=20)
    for _ in range(5):
        batch = dm.sample()
        assert torch.equal(batch[keys.OBS], raw.buffer.get(batch[keys.INDEX])[keys.OBS])
    assert dm.buffer.stats()["evicted_manual"] > 0


class RGBImage(TinyFrames):
    """An unstacked (H, W, C) image: not a frame stack."""

    observation_space = gym.spaces.Box(0, 255, (36, 36, 3), dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros((36, 36, 3), dtype=np.uint8), {}


def test_frame_store_is_for_stacked_uint8_images_only():
    with pytest.raises(ValueError, match="frame_store needs stacked uint8 image observations"):
        OffPolicyDataModule(env_id="CartPole-v1", frame_store=True)
    rgb = OffPolicyDataModule(env_id=None, env_fn=RGBImage)
    assert rgb._frame_store_capacity == 0 and rgb._compress_keys  # (H, W, C): lz4 in checkpoints instead


def sample_after_restore(make_dm, vector_steps: int):
    """Collect with one DataModule, checkpoint it, restore a fresh one: ``(state, its sample, the
    restored one's sample)`` (the replay RNG travels with the buffer, so the samples should match)."""
    dm = make_dm()
    dm.collect(vector_steps=vector_steps)
    state = dm.state_dict()
    expected = dm.sample()
    restored = make_dm()
    restored.load_state_dict(state)
    return state, expected, restored.sample()


def test_memmap_replay_is_checkpointed_as_a_directory_not_copied_into_memory(tmp_path):
    def memmap_dm():
        dm = short_cartpole(storage="memmap", memmap_dir=str(tmp_path / "mm"), replay_dir=str(tmp_path / "r"))
        return attach(dm, ConstantPolicy())

    state, expected, got = sample_after_restore(memmap_dm, vector_steps=5)
    assert "buffer" not in state and (tmp_path / "r" / "iter0" / "rank0" / "buffer").is_dir()
    assert torch.equal(got[keys.OBS], expected[keys.OBS])


def test_each_rank_saves_its_replay_to_a_directory_and_reloads_it(tmp_path):
    def rank1_of_2(**kwargs):
        dm = frames_datamodule(learning_starts=0, batch_size=8, replay_dir=str(tmp_path), **kwargs)
        return attach(dm, ConstantPolicy(), rank=1, world_size=2)

    state, expected, got = sample_after_restore(rank1_of_2, vector_steps=20)
    assert "buffer" not in state and (tmp_path / "iter0" / "rank1" / "buffer" / "state.pt").exists()
    assert torch.equal(got[keys.INDEX], expected[keys.INDEX]) and torch.equal(
        got[keys.OBS], expected[keys.OBS]
    )
    with pytest.raises(ValueError, match="saved with frame_store on"):
        rank1_of_2(frame_store=False).load_state_dict(state)


def test_max_use_starves_the_stream_until_more_is_collected():
    dm = attach(
        short_cartpole(max_use=1, learning_starts=0, train_freq=4, gradient_steps=10), ConstantPolicy()
    )
    stream = batches(dm)
    seen: set[int] = set()
    for _ in range(30):
        batch = next(stream)
        index = set(batch[keys.INDEX].tolist())
        assert not index & seen  # an item is never sampled again once used up
        seen |= index
    assert dm.buffer.stats()["evicted_max_use"] == len(seen)
    assert dm.env_steps >= len(seen)  # collection went on whenever fewer than a batch were left
