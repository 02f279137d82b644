"""gymnasium's own env checker passes on every app_zoo env and on a wrapped gymnasium id as they are,
spec recreation included (``gymnasium.make(env.spec)``); our env managers behave as gymnasium's SAME_STEP
vector env's ``call`` / ``get_attr`` / ``set_attr`` (their transitions, spaces and autoreset mode are
checked against gymnasium's in ``test_env_managers.py``)."""

from __future__ import annotations

import importlib.util
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
from lightning_rl.envs import (
    GymEnv,
    LBForagingEnv,
    PettingZooEnv,
    SubprocessEnvManager,
    SyncEnvManager,
    TwoPlayerEnv,
)


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """MuJoCo writes its warnings to MUJOCO_LOG.TXT in the working directory: keep them out of the repo."""
    monkeypatch.chdir(tmp_path)


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


def multi_agent_and_two_player_envs() -> dict:
    """Our gymnasium faces of PettingZoo games: the learner's seat of a two-player game, a team's joint
    step (MPE, discrete and continuous; Level-Based Foraging)."""
    envs = {
        "TwoPlayerEnv tictactoe": lambda: TwoPlayerEnv("tictactoe_v3"),
        "TwoPlayerEnv connect_four": lambda: TwoPlayerEnv("connect_four_v3"),
    }
    if importlib.util.find_spec("mpe2") is not None:
        spread = "mpe2.simple_spread_v3"
        envs["PettingZooEnv simple_spread"] = lambda: PettingZooEnv(env=spread, N=3)
        envs["PettingZooEnv simple_spread continuous"] = lambda: PettingZooEnv(
            env=spread, continuous_actions=True
        )
    if importlib.util.find_spec("lbforaging") is not None:
        envs["LBForagingEnv"] = lambda: LBForagingEnv()
    return envs


ALL_ENVS = {**ENVS, **multi_agent_and_two_player_envs()}


@pytest.mark.filterwarnings("ignore:.*Illegal move made")
@pytest.mark.parametrize("name", list(ALL_ENVS))
def test_check_env_passes_as_is(name):
    env = ALL_ENVS[name]()
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


# --- our env managers as gymnasium vector envs ------------------------------------------------------------
MANAGERS = {"sync": SyncEnvManager, "subprocess": SubprocessEnvManager}


@pytest.mark.parametrize("kind", list(MANAGERS))
def test_call_get_attr_and_set_attr_reach_every_env_through_its_wrappers(kind):
    manager = MANAGERS[kind]([lambda: gym.make("CartPole-v1")] * 3)
    manager.reset(seed=0)
    assert manager.get_attr("gravity") == (9.8, 9.8, 9.8)
    manager.set_attr("gravity", [1.0, 2.0, 3.0])
    assert manager.call("get_wrapper_attr", "gravity") == (1.0, 2.0, 3.0)  # a method, with its argument
    manager.set_attr("force_mag", 5.0)  # one value for every env
    assert manager.get_attr("force_mag") == (5.0, 5.0, 5.0)
    assert [spec.id for spec in manager.get_attr("spec")] == ["CartPole-v1"] * 3
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        manager.get_attr("nope")
    manager.step(np.zeros(3, dtype=np.int64))  # the envs still step after a failed access
    with pytest.raises(ValueError, match="2 values for 3 envs"):
        manager.set_attr("gravity", [1.0, 2.0])
    manager.close()
