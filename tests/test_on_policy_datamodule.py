"""OnPolicyDataModule: rollouts, bootstrapped GAE, minibatch epochs, normalizers and their checkpoints."""

from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

from lightning_rl import keys
from lightning_rl.data.collector import VectorCollector
from lightning_rl.data.normalizer import RewardScaler, RunningMeanStd
from lightning_rl.data.rollout import RolloutCollector
from lightning_rl.datamodules import OnPolicyDataModule
from lightning_rl.envs import SyncEnvManager


class TimerEnv(gym.Env):
    """obs = [t, length]; reward 1 per step; terminates at ``length`` steps, or is truncated by a
    ``TimeLimit`` when ``limit`` < ``length``."""

    observation_space = gym.spaces.Box(0, np.inf, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int = 4):
        self.length, self.t = length, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0, self.length], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t, self.length], np.float32), 1.0, self.t >= self.length, False, {}


def timer(length: int = 4, limit: int | None = None) -> gym.Env:
    env = TimerEnv(length)
    return env if limit is None else gym.wrappers.TimeLimit(env, limit)


class TimeValuePolicy:
    """Action 0; log-prob -0.5; value = 10 * t (so a bootstrap on a final observation is visible)."""

    train_iter = 0

    def __init__(self, gamma: float = 0.99, gae_lambda: float = 0.95):
        self.gamma, self.gae_lambda = gamma, gae_lambda

    def act(self, obs, mode="eval", env_steps=0, generator=None):
        return torch.zeros(len(obs), dtype=torch.int64)

    def reset_recurrent_state(self, done):
        pass

    def collect(self, obs):
        return {
            keys.ACTION: torch.zeros(len(obs), dtype=torch.int64),
            keys.LOG_PROB: torch.full((len(obs),), -0.5),
            keys.VALUE: self.predict_value(obs),
        }

    def predict_value(self, obs):
        return 10.0 * obs[:, 0]


def attach(dm: OnPolicyDataModule, policy) -> OnPolicyDataModule:
    dm.trainer = SimpleNamespace(lightning_module=policy, global_rank=0, world_size=1, should_stop=False)
    dm.setup("fit")
    return dm


def reference_gae(reward, value, next_value, terminated, truncated, gamma, lam):
    advantage = torch.zeros_like(reward)
    running = torch.zeros(reward.shape[1])
    for t in reversed(range(reward.shape[0])):
        delta = reward[t] + gamma * (~terminated[t]) * next_value[t] - value[t]
        running = delta + gamma * lam * (~(terminated[t] | truncated[t])) * running
        advantage[t] = running
    return advantage


def test_rollout_bootstraps_truncations_from_the_final_observation():
    """env 0 terminates every 3 steps; env 1 is truncated by a time limit every 2 steps."""
    collector = VectorCollector(SyncEnvManager([lambda: timer(3), lambda: timer(9, limit=2)]))
    collector.reset(seed=0)
    rollout = RolloutCollector(collector).collect(TimeValuePolicy(gamma=0.9, gae_lambda=0.8), n_steps=5)
    assert rollout.batch_size == (5, 2) and collector.counters.env_steps == 10
    t = rollout[keys.OBS][..., 0]
    assert t[:, 0].tolist() == [0, 1, 2, 0, 1] and t[:, 1].tolist() == [0, 1, 0, 1, 0]
    assert rollout[keys.TERMINATED][:, 0].tolist() == [False, False, True, False, False]
    assert rollout[keys.TRUNCATED][:, 1].tolist() == [False, True, False, True, False]
    # next values: inside an episode the next step's value; at a truncation V(final obs t=2) = 20; at
    # the rollout's end V(next obs); at a termination not used (masked by terminated)
    reward = torch.ones(5, 2)
    value = 10.0 * t
    next_value = 10.0 * (t + 1)
    expected = reference_gae(
        reward, value, next_value, rollout[keys.TERMINATED], rollout[keys.TRUNCATED], 0.9, 0.8
    )
    torch.testing.assert_close(rollout[keys.ADVANTAGE], expected)
    torch.testing.assert_close(rollout[keys.RETURNS], expected + value)
    # by hand, env 1 at t=1 (truncated, final obs t=2): 1 + 0.9 * 20 - 10 = 9
    assert rollout[keys.ADVANTAGE][1, 1].item() == pytest.approx(9.0)
    assert rollout[keys.MASK].all()
    collector.env.close()


def test_epochs_of_shuffled_minibatches_cover_every_sample_once_per_epoch():
    dm = attach(
        OnPolicyDataModule(env_id=None, env_fn=timer, n_envs=2, n_steps=6, n_epochs=3, batch_size=4),
        TimeValuePolicy(),
    )
    stream = iter(dm.train_dataloader())
    batches = [next(stream)[0] for _ in range(9)]  # 3 epochs x 12 samples / 4; one per step
    assert dm.rollouts == 1 and all(b.batch_size == (4,) for b in batches)
    expected = sorted(
        [(float(t), 4.0) for t in (0, 1, 2, 3, 0, 1)] * 2
    )  # 2 envs x 6 steps of 4-step episodes
    for epoch in range(3):
        seen = torch.cat([b[keys.OBS] for b in batches[3 * epoch : 3 * epoch + 3]])
        assert sorted(map(tuple, seen.tolist())) == expected
        for b in batches[3 * epoch : 3 * epoch + 3]:
            assert b[keys.ADVANTAGE].mean().abs() < 1e-5  # normalized per minibatch
    next(stream)
    assert dm.rollouts == 2
    dm.stop_epochs()
    next(stream)
    assert dm.rollouts == 3  # the stop ended rollout 2's epochs after that minibatch
    dm.teardown("fit")


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match=r"batch_size must divide n_envs \* n_steps = 16"):
        OnPolicyDataModule(n_envs=2, n_steps=8, batch_size=5)


def test_running_mean_std_matches_numpy_over_all_batches():
    rng = np.random.default_rng(0)
    stats = RunningMeanStd((3,), epsilon=1e-12)
    data = [rng.normal(2.0, 3.0, (n, 3)) for n in (5, 1, 17)]
    for batch in data:
        stats.update(torch.as_tensor(batch))
    allx = np.concatenate(data)
    np.testing.assert_allclose(stats.mean.numpy(), allx.mean(0), rtol=1e-9)
    np.testing.assert_allclose(stats.var.numpy(), allx.var(0), rtol=1e-9)


def test_reward_scaler_divides_by_the_std_of_the_discounted_return():
    scaler = RewardScaler(n_envs=1, gamma=0.5, clip=None)
    scaler.stats.count = 1e-12
    out1 = scaler(torch.tensor([2.0]), torch.tensor([False]))  # G = 2
    out2 = scaler(torch.tensor([2.0]), torch.tensor([True]))  # G = 3, then the episode ends
    returns = np.array([2.0, 3.0])
    assert out2.item() == pytest.approx(2.0 / np.sqrt(returns.var() + 1e-8))
    assert out1.item() == pytest.approx(2.0 / np.sqrt(0.0 + 1e-8), rel=1e-3)
    assert scaler.returns.item() == 0.0


def timer_module(**kwargs) -> OnPolicyDataModule:
    """Two 4-step timer envs, rollouts of 4 steps, attached to the time-value policy."""
    dm = OnPolicyDataModule(env_id=None, env_fn=timer, n_envs=2, n_steps=4, batch_size=8, **kwargs)
    return attach(dm, TimeValuePolicy())


def test_normalizer_statistics_travel_with_the_checkpoint():
    dm = timer_module(normalize_obs=True, normalize_reward=True)
    dm.collect_rollout(TimeValuePolicy())
    state = dm.state_dict()
    fresh = timer_module(normalize_obs=True, normalize_reward=True)
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.obs_stats.mean, dm.obs_stats.mean)
    torch.testing.assert_close(fresh.reward_scaler.stats.var, dm.reward_scaler.stats.var)
    assert fresh.env_steps == 8
    obs = torch.tensor([[1.0, 4.0]])
    torch.testing.assert_close(fresh.preprocess_obs(obs), dm.preprocess_obs(obs))
    plain = timer_module()
    with pytest.raises(ValueError, match="written with normalize_obs on; set data.normalize_obs"):
        plain.load_state_dict(state)
    for module in (dm, fresh, plain):
        module.teardown("fit")


class FailsOnceEnv(TimerEnv):
    """Raises at its 3rd step, once over all instances (a simulator crash the manager recovers)."""

    failed = False

    def step(self, action):
        if self.t == 2 and not FailsOnceEnv.failed:
            FailsOnceEnv.failed = True
            raise RuntimeError("simulator crashed")
        return super().step(action)


def test_a_dropped_step_is_no_sample_and_ends_the_trace_before_it():
    collector = VectorCollector(SyncEnvManager([lambda: FailsOnceEnv(9)]))
    collector.reset(seed=0)
    rollout = RolloutCollector(collector).collect(TimeValuePolicy(gae_lambda=1.0), n_steps=6)
    t = rollout[keys.OBS][:, 0, 0]
    assert t.tolist() == [0, 1, 2, 0, 1, 2]  # the env was rebuilt after the failed step at t=2
    assert rollout[keys.MASK][:, 0].tolist() == [True, True, False, True, True, True]
    assert rollout[keys.TRUNCATED][:, 0].tolist() == [False, True, True, False, False, False]
    # step 1 bootstraps from t=2 (value 20) and is not traced into the failed step: 1 + 0.99 * 20 - 10
    assert rollout[keys.ADVANTAGE][1, 0].item() == pytest.approx(1 + 0.99 * 20 - 10)
    assert collector.env.stats()["faults/error"] == 1
    collector.env.close()


class RecurrentTimeValuePolicy(TimeValuePolicy):
    """Carries a per-env step counter as its 'hidden state', returned with each step and reset on done."""

    def __init__(self, n_envs: int):
        super().__init__()
        self.hidden = torch.zeros(n_envs)

    def collect(self, obs):
        out = {**super().collect(obs), "hidden": self.hidden.clone()}
        self.hidden += 1
        return out

    def reset_recurrent_state(self, done):
        self.hidden[done] = 0


def test_recurrent_state_is_stored_per_step_and_reset_at_episode_starts():
    policy = RecurrentTimeValuePolicy(n_envs=2)
    dm = attach(OnPolicyDataModule(env_id=None, env_fn=timer, n_envs=2, n_steps=6, batch_size=12), policy)
    rollout = dm.collect_rollout(policy)
    # the hidden state each step started from counts the steps of its episode: it equals obs t
    torch.testing.assert_close(rollout["hidden"], rollout[keys.OBS][..., 0])
    dm.teardown("fit")
