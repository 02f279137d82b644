"""app_zoo.classic_control: Acrobot, MountainCar and Pendulum env classes (info(), rollouts through the env
managers) and their configs through the CLI."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import yaml
from cli_utils import CONFIG, REPO
from env_utils import random_rollout

from app_zoo.classic_control.acrobot.envs import AcrobotEnv
from app_zoo.classic_control.cartpole.envs import CartPoleEnv
from app_zoo.classic_control.mountain_car.envs import MountainCarEnv
from app_zoo.classic_control.pendulum.envs import PendulumEnv
from lightning_rl.cli import RLCLI, main
from lightning_rl.envs import SubprocessEnvManager, SyncEnvManager

ZOO = REPO / "app_zoo" / "classic_control"
DQN_CONFIGS = {
    "acrobot": ZOO / "acrobot" / "configs" / "acrobot_dqn.yaml",
    "mountain_car": ZOO / "mountain_car" / "configs" / "mountain_car_dqn.yaml",
}
PENDULUM_DATA = ZOO / "pendulum" / "configs" / "pendulum_env.yaml"


def test_acrobot_info():
    info = AcrobotEnv(cfg={}).info()
    assert info.env_id == "Acrobot-v1" and info.max_episode_steps == 500
    assert info.obs_space.shape == (6,) and info.obs_space.dtype == np.float32
    assert info.act_space == gym.spaces.Discrete(3) and info.act_shape == (3,)
    assert (info.rew_space.low, info.rew_space.high) == (-1.0, 0.0)


def test_mountain_car_info():
    info = MountainCarEnv(cfg={}).info()
    assert info.env_id == "MountainCar-v0" and info.max_episode_steps == 200
    assert info.obs_space.shape == (2,) and info.obs_space.dtype == np.float32
    np.testing.assert_allclose(info.obs_space.low, [-1.2, -0.07])
    np.testing.assert_allclose(info.obs_space.high, [0.6, 0.07])
    assert info.act_space == gym.spaces.Discrete(3)
    assert (info.rew_space.low, info.rew_space.high) == (-1.0, 0.0)


def test_pendulum_info():
    info = PendulumEnv(cfg={}).info()
    assert info.env_id == "Pendulum-v1" and info.max_episode_steps == 200
    assert info.obs_space.shape == (3,) and info.obs_space.dtype == np.float32
    assert info.act_space == gym.spaces.Box(-2.0, 2.0, (1,), np.float32) and info.act_shape == (1,)
    assert info.rew_space.high == 0.0
    assert info.rew_space.low == pytest.approx(-(math.pi**2 + 0.1 * 64 + 0.001 * 4), rel=1e-6)
    assert info.to_spec().action_type == "continuous"


def test_env_kwargs_reach_gymnasium():
    env = PendulumEnv(env_kwargs={"g": 9.81, "max_episode_steps": 50})
    assert env.unwrapped.g == 9.81 and env.info().max_episode_steps == 50


@pytest.mark.parametrize("manager", [SyncEnvManager, SubprocessEnvManager])
@pytest.mark.parametrize(
    ("env_fn", "rewards_in", "steps"),
    [
        (AcrobotEnv, {-1.0, 0.0}, 520),  # random play rarely swings up: episodes truncate at 500
        (MountainCarEnv, {-1.0}, 220),  # truncated at 200
        (PendulumEnv, None, 220),  # truncated at 200
    ],
)
def test_random_rollout_through_the_env_managers(manager, env_fn, rewards_in, steps):
    rollout = random_rollout(manager(env_fn, env_cfg=[{}, {}], n_envs=2), steps)
    assert rollout.obs.shape == (steps, 2, *env_fn(cfg={}).observation_space.shape)
    assert rollout.obs.dtype == np.float32
    assert rollout.episodes_ended >= 2 and np.isfinite(rollout.reward).all()
    if rewards_in is not None:
        assert set(rollout.reward.flat) <= rewards_in
    else:
        assert rollout.reward.min() >= PendulumEnv(cfg={}).reward_space().low and rollout.reward.max() <= 0.0


@pytest.mark.parametrize("name", ["acrobot", "mountain_car"])
def test_dqn_config_trains_a_few_updates(tmp_path, name):
    cli = RLCLI(
        args=[
            "fit",
            "--config",
            str(DQN_CONFIGS[name]),
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.max_steps=8",
            "--trainer.enable_progress_bar=false",
            "--trainer.logger=false",
            "--data.init_args.learning_starts=256",
            "--evaluator.n_episodes=2",
        ]
    )
    assert cli.result["train_iter"] == 8 and cli.result["env_steps"] >= 256
    expected = {"acrobot": ("AcrobotEnv", 3, 0.00063), "mountain_car": ("MountainCarEnv", 3, 0.004)}[name]
    assert type(cli.datamodule.make_env()).__name__ == expected[0]
    assert cli.model.spec.n_actions == expected[1] and cli.model.hparams.lr == expected[2]


def test_pendulum_data_section_replaces_a_configs_data(tmp_path, capsys):
    """``--data <file>`` swaps in the env-only section; DQN then refuses Pendulum's continuous actions."""
    assert set(yaml.safe_load(PENDULUM_DATA.read_text())) == {"class_path", "init_args"}
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", CONFIG, "--data", str(PENDULUM_DATA), "--print_config"])
    assert exit_info.value.code == 0
    data = yaml.safe_load(capsys.readouterr().out)["data"]
    assert data["init_args"]["env_fn"] == {"class_path": "app_zoo.classic_control.pendulum.envs.PendulumEnv"}
    assert data["init_args"]["env_id"] is None and data["init_args"]["max_env_steps"] == 20_000
    with pytest.raises(ValueError, match="DQN needs discrete ones"):
        RLCLI(
            args=["--config", CONFIG, "--data", str(PENDULUM_DATA), f"--trainer.default_root_dir={tmp_path}"],
            run=False,
        )


def test_masked_cartpole_observes_only_position_and_angle():
    full, masked = CartPoleEnv(), CartPoleEnv(mask_velocity=True)
    assert masked.observation_space.shape == (2,) and masked.info().env_id == "CartPole-v1"
    obs_full, _ = full.reset(seed=3)
    obs_masked, _ = masked.reset(seed=3)
    for action in [0, 1, 1, 0, 1]:
        assert np.array_equal(obs_masked, obs_full[[0, 2]]) and obs_masked.dtype == np.float32
        obs_full, *_ = full.step(action)
        obs_masked, *_ = masked.step(action)
    assert masked.observation_space.contains(obs_masked)
