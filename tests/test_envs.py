import gymnasium as gym
import numpy as np
import pytest
import torch

from lightning_rl.envs import (
    EpisodeTracker,
    make_vector_env,
    probe_env_spec,
    resolve_env_factory,
    run_episodes,
    true_next_obs,
)
from lightning_rl.spec import EnvSpec


def test_cartpole_spec_is_discrete_with_primitive_dict():
    name, make = resolve_env_factory("CartPole-v1", None)
    spec = probe_env_spec(name, make)
    assert spec == EnvSpec("CartPole-v1", (4,), "float32", "discrete", n_actions=2)
    as_dict = spec.to_dict()
    assert as_dict["obs_shape"] == [4] and EnvSpec.from_dict(as_dict) == spec


def test_pendulum_spec_is_continuous_with_bounds():
    spec = probe_env_spec(*resolve_env_factory("Pendulum-v1", None))
    assert spec.action_type == "continuous"
    assert spec.action_shape == (1,) and spec.action_low == (-2.0,) and spec.action_high == (2.0,)


def test_unknown_env_id_names_field_and_suggests():
    with pytest.raises(
        ValueError, match=r"env_id: unknown gymnasium environment id 'CartPol-v1'.*CartPole-v1"
    ):
        resolve_env_factory("CartPol-v1", None)


def test_env_id_and_env_fn_are_exclusive():
    with pytest.raises(ValueError, match="exactly one of 'env_id'"):
        resolve_env_factory("CartPole-v1", lambda: gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="exactly one of 'env_id'"):
        resolve_env_factory(None, None)


def test_factory_with_kwargs():
    name, make = resolve_env_factory(None, gym.make, {"id": "CartPole-v1", "max_episode_steps": 7})
    env = make()
    env.reset(seed=0)
    steps = 0
    truncated = terminated = False
    while not (terminated or truncated):
        _, _, terminated, truncated, _ = env.step(0 if steps % 2 else 1)
        steps += 1
    assert steps <= 7 and name == "make"


def test_unsupported_spaces_are_rejected():
    with pytest.raises(ValueError, match="observation space .* not supported; allowed: gymnasium.spaces.Box"):
        EnvSpec.from_spaces("x", gym.spaces.Discrete(3), gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match="action space .* not supported"):
        EnvSpec.from_spaces("x", gym.spaces.Box(-1, 1, (2,)), gym.spaces.MultiBinary(3))
    with pytest.raises(ValueError, match="unknown keys"):
        EnvSpec.from_dict(
            {"env_id": "x", "obs_shape": [1], "obs_dtype": "float32", "action_type": "discrete", "bad": 1}
        )


def test_same_step_autoreset_gives_true_final_observation():
    name, make = resolve_env_factory(None, gym.make, {"id": "CartPole-v1", "max_episode_steps": 5})
    env = make_vector_env(make, 2)
    obs, _ = env.reset(seed=3)
    for _ in range(4):
        obs, *_ = env.step(np.zeros(2, dtype=np.int64))
    next_obs, _, terminated, truncated, info = env.step(np.zeros(2, dtype=np.int64))
    done = terminated | truncated
    assert done.all() and truncated.all()
    real = true_next_obs(next_obs, done, info)
    # the returned obs is already the reset obs of the next episode; the true successor is the final obs
    assert np.allclose(real, np.stack(info["final_obs"]))
    assert not np.allclose(real, next_obs)
    assert true_next_obs(obs, np.zeros(2, dtype=bool), {}) is obs


def test_run_episodes_counts_exactly_and_is_deterministic():
    name, make = resolve_env_factory("CartPole-v1", None)
    env = make_vector_env(make, 3)
    always_left = lambda obs: torch.zeros(obs.shape[0], dtype=torch.int64)  # noqa: E731
    first = run_episodes(always_left, env, n_episodes=7, seed=5)
    second = run_episodes(always_left, env, n_episodes=7, seed=5)
    assert len(first.returns) == 7 and len(first.lengths) == 7
    assert np.array_equal(first.returns, second.returns)
    # pushing left always falls within a few dozen steps; return == length for CartPole's +1 reward
    assert np.array_equal(first.returns, first.lengths) and first.length_mean < 30
    with pytest.raises(ValueError, match="n_episodes"):
        run_episodes(always_left, env, 0, seed=0)


def test_episode_tracker_reports_finished_episodes_and_restarts_them():
    tracker = EpisodeTracker(3)
    ended, returns, lengths = tracker.step(np.array([1.0, 2.0, 3.0]), np.array([False, False, False]))
    assert len(ended) == 0
    ended, returns, lengths = tracker.step(np.array([1.0, 0.5, 1.0]), np.array([True, False, True]))
    assert ended.tolist() == [0, 2] and returns.tolist() == [2.0, 4.0] and lengths.tolist() == [2, 2]
    ended, returns, lengths = tracker.step(np.array([5.0, 0.5, 1.0]), np.array([True, True, False]))
    # env 0 restarted after its episode ended: its next episode is one step long
    assert ended.tolist() == [0, 1] and returns.tolist() == [5.0, 3.0] and lengths.tolist() == [1, 3]
