"""The multi-agent env layer: the packed layout, the PettingZoo and LBF adapters against the envs they
wrap, and both through the vectorized env managers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from lightning_rl import keys
from lightning_rl.envs import make_vector_env, resolve_env_factory
from lightning_rl.envs.multi_agent import LBForagingEnv, MultiAgentLayout, PettingZooEnv

mpe2 = pytest.importorskip("mpe2", reason="pip install 'lightning-rl[marl]'")
from mpe2 import simple_spread_v3  # noqa: E402

SPREAD = {"env": "mpe2.simple_spread_v3", "N": 3, "max_cycles": 25}


def test_layout_packs_and_unpacks_numpy_and_torch():
    layout = MultiAgentLayout(n_agents=2, obs_dim=3, state_dim=4, n_actions=5)
    agent_obs, state = np.arange(6.0).reshape(2, 3), np.arange(4.0) + 10
    mask = np.array([[1, 0, 1, 1, 0], [0, 0, 0, 0, 1]], bool)
    packed = layout.pack(agent_obs, state, mask)
    assert packed.shape == (layout.size,) == (20,) and packed.dtype == np.float32
    assert layout.observation_space().contains(packed)
    for batch in (np.stack([packed, packed]), torch.as_tensor(np.stack([packed, packed]))):
        parts = layout.unpack(batch)
        assert np.array_equal(np.asarray(parts[keys.AGENT_OBS][1]), agent_obs)
        assert np.array_equal(np.asarray(parts[keys.GLOBAL_STATE][0]), state)
        assert np.array_equal(np.asarray(parts[keys.ACTION_MASK][0]), mask)
    assert MultiAgentLayout.from_dict(layout.to_dict()) == layout
    assert layout.action_space() == gym.spaces.MultiDiscrete([5, 5])
    continuous = MultiAgentLayout(2, 3, 4, action_dim=2, action_low=(-1.0, 0.0), action_high=(1.0, 2.0))
    assert keys.ACTION_MASK not in continuous.unpack(np.zeros(continuous.size)) and continuous.size == 10
    assert continuous.action_space().shape == (2, 2)
    with pytest.raises(ValueError, match="exactly one of n_actions"):
        MultiAgentLayout(2, 3, 4)


@pytest.mark.parametrize("continuous", [False, True])
def test_simple_spread_matches_the_pettingzoo_env_it_wraps(continuous):
    ours = PettingZooEnv(**SPREAD, continuous_actions=continuous)
    theirs = simple_spread_v3.parallel_env(N=3, max_cycles=25, continuous_actions=continuous)
    obs, _ = ours.reset(seed=4)
    their_obs, _ = theirs.reset(seed=4)
    rng = np.random.default_rng(0)
    for t in range(25):
        parts = ours.layout.unpack(obs)
        assert np.allclose(parts[keys.AGENT_OBS], np.stack([their_obs[a] for a in theirs.possible_agents]))
        assert np.allclose(parts[keys.GLOBAL_STATE], theirs.state())
        action = ours.action_space.sample() if not continuous else rng.random((3, 5), dtype=np.float32)
        obs, reward, terminated, truncated, _ = ours.step(action)
        their_obs, rewards, *_ = theirs.step({a: action[i] for i, a in enumerate(theirs.possible_agents)})
        assert reward == pytest.approx(sum(rewards.values()))
        assert not terminated and truncated == (t == 24)  # max_cycles is a time limit
    assert ours.layout.discrete != continuous and ours.layout.n_agents == 3


def test_lbf_masks_are_the_valid_moves_and_the_time_limit_truncates():
    env = LBForagingEnv("Foraging-8x8-2p-2f-coop-v3")
    obs, _ = env.reset(seed=0)
    game = env.env.unwrapped
    for _ in range(50):
        mask = env.layout.unpack(obs)[keys.ACTION_MASK]
        for i, player in enumerate(game.players):
            assert set(np.flatnonzero(mask[i])) == {move.value for move in game._valid_actions[player]}
        valid = [np.flatnonzero(row)[0] for row in mask]  # always a valid move: NONE
        obs, reward, terminated, truncated, _ = env.step(np.array(valid))
        assert reward == 0.0 and not terminated  # standing still collects nothing
    assert truncated


def fake_parallel_env():
    """A PettingZoo-convention env: dict observations carrying the action mask, agents leaving early."""
    from pettingzoo.utils.env import ParallelEnv

    class Fake(ParallelEnv):
        possible_agents = ["a", "b"]
        metadata = {"name": "fake"}

        def observation_space(self, agent):
            return gym.spaces.Dict(
                {"observation": gym.spaces.Box(0, 9, (2,)), "action_mask": gym.spaces.MultiBinary(3)}
            )

        def action_space(self, agent):
            return gym.spaces.Discrete(3)

        def _obs(self):
            return {
                a: {"observation": np.full(2, self.t + i), "action_mask": np.array([1, self.t % 2, 1])}
                for i, a in enumerate(self.agents)
            }

        def reset(self, seed=None, options=None):
            self.t, self.agents = 0, list(self.possible_agents)
            return self._obs(), {}

        def step(self, actions):
            self.t += 1
            done_b = self.t == 2  # agent b terminates first
            term = {a: (a == "b" and done_b) or self.t == 3 for a in self.agents}
            rewards = {a: 1.0 for a in self.agents}
            self.agents = [a for a in self.agents if not term[a]]
            obs = self._obs()
            return obs, rewards, term, dict.fromkeys(term, False), {a: {} for a in term}

    return Fake()


def test_dict_observations_masks_and_agents_leaving_early():
    env = PettingZooEnv("test_multi_agent_envs:fake_parallel_env")
    assert env.layout == MultiAgentLayout(2, 2, 4, n_actions=3)
    obs, _ = env.reset(seed=0)
    parts = env.layout.unpack(obs)
    assert parts[keys.ACTION_MASK].tolist() == [[True, False, True]] * 2
    assert np.array_equal(parts[keys.GLOBAL_STATE], [0, 0, 1, 1])  # no state(): observations concatenated
    obs, reward, terminated, truncated, _ = env.step(np.array([0, 0]))
    assert reward == 2.0 and not (terminated or truncated)
    obs, reward, terminated, _, _ = env.step(np.array([0, 0]))  # b is gone: zeros, all actions allowed
    parts = env.layout.unpack(obs)
    assert np.array_equal(parts[keys.AGENT_OBS][1], [0, 0]) and parts[keys.ACTION_MASK][1].all()
    assert not terminated
    assert env.step(np.array([0, 0]))[2]  # the last agent terminates: the episode does


@pytest.mark.parametrize("vectorization", ["sync", "subprocess"])
@pytest.mark.parametrize(
    ("env_fn", "env_kwargs"),
    [(PettingZooEnv, SPREAD), (LBForagingEnv, {"env_id": "Foraging-8x8-2p-2f-coop-v3"})],
    ids=["simple_spread", "lbf"],
)
def test_multi_agent_envs_run_through_the_env_managers(vectorization, env_fn, env_kwargs):
    name, make = resolve_env_factory(None, env_fn, env_kwargs)
    env = make_vector_env(make, n_envs=3, vectorization=vectorization, env_name=name)
    try:
        obs, _ = env.reset(seed=0)
        layout = make().layout
        assert obs.shape == (3, layout.size)
        episodes = 0
        for _ in range(60):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            ended = terminated | truncated
            episodes += int(info.get("_episode", np.zeros(3, bool)).sum())
            if ended.any():
                final = info["final_obs"][ended]
                assert final.shape == (int(ended.sum()), layout.size)
        assert episodes >= 3  # 25- or 50-step episodes, reported by the manager
        assert layout.unpack(obs)[keys.AGENT_OBS].shape == (3, layout.n_agents, layout.obs_dim)
    finally:
        env.close()
