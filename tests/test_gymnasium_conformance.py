"""gymnasium's own env checker passes on every app_zoo env and on a wrapped gymnasium id as they are,
spec recreation included (``gymnasium.make(env.spec)``)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from app_zoo.atari.envs import AtariEnv
from app_zoo.atari.envs.atari_wrappers import EpisodicLifeWrapper, FireResetWrapper
from app_zoo.classic_control.acrobot.envs import AcrobotEnv
from app_zoo.classic_control.cartpole.envs import CartPoleEnv
from app_zoo.classic_control.mountain_car.envs import MountainCarEnv
from app_zoo.classic_control.pendulum.envs import PendulumEnv
from app_zoo.mujoco.envs import HalfCheetahEnv, HopperEnv, Walker2dEnv
from lightning_rl.envs import GymEnv

ENVS = {
    "CartPoleEnv": lambda: CartPoleEnv(),
    "PendulumEnv": lambda: PendulumEnv(),
    "AcrobotEnv": lambda: AcrobotEnv(),
    "MountainCarEnv": lambda: MountainCarEnv(),
    "HopperEnv": lambda: HopperEnv(),
    "HalfCheetahEnv": lambda: HalfCheetahEnv(),
    "Walker2dEnv": lambda: Walker2dEnv(),
    "AtariEnv Pong": lambda: AtariEnv({"env_id": "ALE/Pong-v5"}),
    "AtariEnv Breakout": lambda: AtariEnv({"env_id": "ALE/Breakout-v5"}),
    "GymEnv Acrobot": lambda: GymEnv(cfg={"env_id": "Acrobot-v1", "env_kwargs": {"max_episode_steps": 50}}),
}


@pytest.mark.parametrize("name", list(ENVS))
def test_check_env_passes_as_is(name):
    env = ENVS[name]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checker's advice (unbounded Box, a seed() method) is no failure
        check_env(env, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("name", ["CartPoleEnv", "AtariEnv Breakout", "GymEnv Acrobot"])
def test_the_spec_recreates_the_same_env(name):
    env = ENVS[name]()
    again = gym.make(env.spec)
    assert type(again.unwrapped) is type(env.unwrapped) and again.unwrapped is not env.unwrapped
    assert again.observation_space == env.observation_space and again.action_space == env.action_space
    assert env.spec.kwargs["cfg"] == env.cfg  # the whole resolved config, so nothing reverts to a default
    first, _ = env.reset(seed=3)
    second, _ = again.reset(seed=3)
    np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
    assert env.info().env_id == again.get_wrapper_attr("info")().env_id  # the built env's id, not the spec's
    env.close()
    again.close()


def test_the_atari_wrappers_record_their_arguments():
    assert issubclass(EpisodicLifeWrapper, gym.utils.RecordConstructorArgs)
    assert issubclass(FireResetWrapper, gym.utils.RecordConstructorArgs)
