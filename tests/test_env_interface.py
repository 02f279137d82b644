"""The nerveX env interface: config-built envs, info(), seeding, and use from a DataModule."""

from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from cli_utils import CONFIG

from app_zoo.classic_control.cartpole.envs import CartPoleEnv
from lightning_rl.datamodules import OffPolicyDataModule
from lightning_rl.envs import ElementShape, EnvInfo, GymEnv
from lightning_rl.spec import EnvSpec


def test_cartpole_env_as_the_tutorial_writes_it():
    env = CartPoleEnv(cfg={})
    info = env.info()
    assert isinstance(env, gym.Env) and isinstance(info, EnvInfo)
    assert info.env_id == "CartPole-v1" and info.max_episode_steps == 500
    assert info.obs_space.shape == (4,) and info.obs_shape == (4,)
    assert info.act_space == gym.spaces.Discrete(2) and info.act_shape == (2,)
    assert (info.rew_space.low, info.rew_space.high) == (0.0, 1.0)
    assert info.to_spec() == EnvSpec("CartPole-v1", (4,), "float32", "discrete", n_actions=2)
    env.close()


def test_shapes_answer_nervex_shape():
    """``info.obs_shape`` is a tuple; its ``.shape`` is what nerveX's models took: a 1-D shape's size."""
    info = CartPoleEnv(cfg={}).info()
    assert info.obs_shape.shape == 4 and info.act_shape.shape == 2
    assert isinstance(info.obs_shape, tuple) and (*info.obs_shape, 1) == (4, 1)
    image = EnvInfo("frames", gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(6))
    assert image.obs_shape == (4, 84, 84) and image.obs_shape.shape == (4, 84, 84)
    assert pickle.loads(pickle.dumps(image.obs_shape)) == ElementShape((4, 84, 84))
    continuous = GymEnv(env_id="Pendulum-v1").info()
    assert continuous.act_shape == (1,) and continuous.act_shape.shape == 1


def test_config_overrides_and_unknown_keys():
    env = CartPoleEnv(cfg={"env_kwargs": {"max_episode_steps": 50}})
    assert env.info().max_episode_steps == 50 and env.cfg == {
        "env_id": "CartPole-v1",
        "env_kwargs": {"max_episode_steps": 50},
        "mask_velocity": False,
    }
    assert CartPoleEnv(env_id="CartPole-v0").info().max_episode_steps == 200  # keyword overrides
    with pytest.raises(
        ValueError, match=r"CartPoleEnv config: unknown keys \['lenght'\]; allowed: \['env_id', "
    ):
        CartPoleEnv(cfg={"lenght": 3})
    assert CartPoleEnv.default_config["env_kwargs"] == {}  # the defaults are never mutated


def test_any_gymnasium_id_without_code():
    env = GymEnv(cfg={"env_id": "Pendulum-v1"})
    info = env.info()
    assert info.env_id == "Pendulum-v1" and info.act_shape == (1,)
    assert info.to_spec().action_type == "continuous" and np.isinf(info.rew_space.low)
    with pytest.raises(ValueError, match="GymEnv config: env_id must be set"):
        GymEnv()
    with pytest.raises(ValueError, match="unknown gymnasium environment id 'Pendulm-v1'.*Pendulum-v1"):
        GymEnv(env_id="Pendulm-v1")


@pytest.mark.parametrize("dynamic_seed", [True, False])
def test_seed_sets_the_next_reset(dynamic_seed):
    env = CartPoleEnv(cfg={})
    env.seed(3, dynamic_seed=dynamic_seed)
    first, _ = env.reset()
    second, _ = env.reset()
    reference = gym.make("CartPole-v1")
    expected_first, _ = reference.reset(seed=3)
    expected_second, _ = reference.reset() if dynamic_seed else reference.reset(seed=3)
    np.testing.assert_array_equal(first, expected_first)
    np.testing.assert_array_equal(second, expected_second)
    assert dynamic_seed == (not np.array_equal(first, second))
    explicit, _ = env.reset(seed=11)  # an explicit seed wins
    np.testing.assert_array_equal(explicit, reference.reset(seed=11)[0])


def test_datamodule_builds_a_config_env_from_env_fn_and_kwargs():
    dm = OffPolicyDataModule(  # YAML: env_fn: app_zoo.classic_control.cartpole.envs.CartPoleEnv
        env_id=None, env_fn=CartPoleEnv, env_kwargs={"env_id": "CartPole-v0"}, n_envs=2
    )
    assert dm.env_spec["env_id"] == "CartPoleEnv" and dm.env_spec["n_actions"] == 2
    assert dm.make_env().info().env_id == "CartPole-v0"


def test_eval_env_kwargs_change_only_the_evaluation_envs():
    dm = OffPolicyDataModule(
        env_id=None,
        env_fn=CartPoleEnv,
        n_envs=2,
        eval_env_kwargs={"env_kwargs": {"max_episode_steps": 30}},
    )
    assert dm.make_env().info().max_episode_steps == 500
    assert dm.make_eval_env().info().max_episode_steps == 30
    policy = type("Always0", (), {"training": False, "act": lambda self, obs, mode: obs[:, 0].long() * 0})()
    policy.eval = policy.train = lambda *a: None
    stats = dm.evaluate(policy, n_episodes=3, seed=10_000)
    assert (stats.lengths <= 30).all()
    dm.teardown("fit")
    with pytest.raises(ValueError, match=r"eval_env_kwargs .* change the env's spaces"):
        OffPolicyDataModule(env_id=None, env_fn=CartPoleEnv, eval_env_kwargs={"env_id": "Acrobot-v1"})


def test_a_yaml_env_class_is_named_by_its_class(tmp_path):
    from lightning_rl.cli import RLCLI

    args = [
        f"--config={CONFIG}",
        "--data.init_args.env_id=null",
        "--data.init_args.env_fn=app_zoo.classic_control.cartpole.envs.CartPoleEnv",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    cli = RLCLI(args=args, run=False)
    assert cli.datamodule.env_spec["env_id"] == "CartPoleEnv"
    assert cli.model.hparams.env_spec["env_id"] == "CartPoleEnv"
