import gymnasium as gym
import numpy as np
import pytest
import torch

from lightning_rl.envs import (
    SyncEnvManager,
    finished_episodes,
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


def test_gymnasiums_module_colon_id_registers_the_env_by_importing_its_module(tmp_path, monkeypatch):
    (tmp_path / "chase_envs.py").write_text(
        "import gymnasium\n"
        "gymnasium.register('Chase-v0', entry_point='gymnasium.envs.classic_control:CartPoleEnv')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    name, make = resolve_env_factory("chase_envs:Chase-v0", None)
    env = make()
    try:
        assert name == "chase_envs:Chase-v0" and env.spec.id == "Chase-v0"
    finally:
        env.close()
        gym.registry.pop("Chase-v0")
    with pytest.raises(ValueError, match="unknown gymnasium environment id 'chase_envs:Missing-v0'"):
        resolve_env_factory("chase_envs:Missing-v0", None)
    with pytest.raises(ValueError, match="unknown gymnasium environment id 'no_such_module:Chase-v0'"):
        resolve_env_factory("no_such_module:Chase-v0", None)
    # its own missing import, though that name begins its name, is its error: not "no such module"
    (tmp_path / "chase_envs_extra.py").write_text("import chase_env\n")
    with pytest.raises(ModuleNotFoundError, match="'chase_env'"):
        resolve_env_factory("chase_envs_extra:Chase-v0", None)


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


class ScriptedErrorEnv(gym.Env):
    """``length``-step episodes with reward ``t`` at step ``t``; raises at the step calls in ``fail_at``,
    counted in ``calls`` over every instance the manager builds (a rebuilt env starts a fresh episode)."""

    observation_space = gym.spaces.Box(0, np.inf, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int, fail_at: set[int], calls: list[int]):
        self.length, self.fail_at, self.calls, self.t = length, fail_at, calls, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.calls[0] += 1
        if self.calls[0] in self.fail_at:
            raise RuntimeError("scripted simulator error")
        self.t += 1
        return np.array([self.t], np.float32), float(self.t), self.t >= self.length, False, {}


def test_run_episodes_skips_episodes_an_env_manager_dropped():
    """A dropped step is no episode end: env 0's broken episode is not counted and its quota of 2 is
    filled by its next two (fresh) episodes, of return 1 + 2 + 3 and length 3."""
    calls = [[0], [0]]
    env = SyncEnvManager(
        [
            lambda: ScriptedErrorEnv(3, fail_at={2}, calls=calls[0]),
            lambda: ScriptedErrorEnv(4, fail_at={8}, calls=calls[1]),
        ]
    )
    stats = run_episodes(lambda obs: torch.zeros(obs.shape[0], dtype=torch.int64), env, n_episodes=4, seed=0)
    # env 1: an episode ends at call 4; its second episode drops at call 8 and restarts, ending at call 12
    # env 0: call 1 real, call 2 dropped, calls 3-5 and 6-8 its two episodes
    assert stats.returns.tolist() == [10.0, 6.0, 6.0, 10.0]
    assert stats.lengths.tolist() == [4, 3, 3, 4]
    assert calls == [[12], [12]] and env.stats()["dropped_episodes"] == 2  # env 0 runs on past its quota


def test_finished_episodes_reads_gymnasium_episode_statistics():
    episode = {"r": np.array([2.0, 5.0, 4.0]), "l": np.array([2, 9, 3])}
    index, returns, lengths = finished_episodes({"episode": episode, "_episode": np.array([1, 0, 1], bool)})
    assert index.tolist() == [0, 2] and returns.tolist() == [2.0, 4.0] and lengths.tolist() == [2, 3]
    assert [a.tolist() for a in finished_episodes({})] == [[], [], []]


def test_episodes_are_read_from_envs_that_report_them_only():
    plain = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")])
    with pytest.raises(ValueError, match="RecordEpisodeStatistics"):
        run_episodes(lambda obs: torch.zeros(1, dtype=torch.int64), plain, n_episodes=1, seed=0)
    wrapped = gym.wrappers.vector.RecordEpisodeStatistics(plain)
    stats = run_episodes(lambda obs: torch.zeros(1, dtype=torch.int64), wrapped, n_episodes=2, seed=0)
    assert len(stats.returns) == 2 and np.array_equal(stats.returns, stats.lengths)
    wrapped.close()
