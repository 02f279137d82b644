"""app_zoo.mujoco: Hopper, HalfCheetah and Walker2d (info(), float32 observations, rollouts through the env
managers) and their env-only data sections."""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np
import pytest
import yaml
from cli_utils import REPO
from env_utils import random_rollout

from app_zoo.mujoco.envs import HalfCheetahEnv, HopperEnv, MujocoEnv, Walker2dEnv
from lightning_rl.envs import SubprocessEnvManager, SyncEnvManager

HAVE_MUJOCO = all(importlib.util.find_spec(name) is not None for name in ("mujoco", "imageio"))
requires_mujoco = pytest.mark.skipif(
    not HAVE_MUJOCO, reason="mujoco / imageio not installed: pip install 'lightning-rl[mujoco]'"
)
CONFIGS = REPO / "app_zoo" / "mujoco" / "configs"


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """MuJoCo writes its warnings to MUJOCO_LOG.TXT in the working directory: keep them out of the repo."""
    monkeypatch.chdir(tmp_path)


# env class, gymnasium id, obs dim, action dim
ENVS = [
    (HopperEnv, "Hopper-v5", 11, 3),
    (HalfCheetahEnv, "HalfCheetah-v5", 17, 6),
    (Walker2dEnv, "Walker2d-v5", 17, 6),
]


@requires_mujoco
@pytest.mark.parametrize(("env_cls", "env_id", "obs_dim", "act_dim"), ENVS)
def test_info_shapes_and_bounds(env_cls, env_id, obs_dim, act_dim):
    env = env_cls(cfg={})
    info = env.info()
    assert info.env_id == env_id and info.max_episode_steps == 1000
    assert info.obs_space == gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    assert info.act_space == gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)
    assert info.rew_space.low == -np.inf and info.rew_space.high == np.inf
    spec = info.to_spec()
    assert spec.obs_dtype == "float32" and spec.action_type == "continuous"
    assert spec.action_low == (-1.0,) * act_dim and spec.action_high == (1.0,) * act_dim
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (obs_dim,)
    # the cast keeps the simulator's values (to float32 precision)
    raw_obs, _ = gym.make(env_id).reset(seed=0)
    assert raw_obs.dtype == np.float64 and np.array_equal(obs, raw_obs.astype(np.float32))
    env.close()


def test_a_missing_mujoco_names_the_extra_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mujoco" else real_find_spec(name, *a)
    )
    with pytest.raises(
        ImportError, match=r"HopperEnv needs \['mujoco'\].*pip install 'lightning-rl\[mujoco\]'"
    ):
        HopperEnv(cfg={})


@requires_mujoco
def test_mujoco_env_takes_any_mujoco_id_and_rejects_others():
    assert MujocoEnv(cfg={}).info().env_id == "Hopper-v5"
    assert MujocoEnv(env_id="InvertedPendulum-v5").info().obs_space.dtype == np.float32
    with pytest.raises(
        ValueError, match=r"env_id 'Hoper-v5' is not a gymnasium MuJoCo env; did you mean \['Hopper-v5'"
    ):
        MujocoEnv(env_id="Hoper-v5")
    with pytest.raises(
        ValueError, match=r"env_id 'CartPole-v1' is not a gymnasium MuJoCo env; allowed: \[.*'Walker2d-v5'\]"
    ):
        MujocoEnv(env_id="CartPole-v1")


@requires_mujoco
@pytest.mark.parametrize("manager", [SyncEnvManager, SubprocessEnvManager])
def test_random_rollout_through_the_env_managers(manager):
    """Hopper and Walker2d fall under a random policy (terminated), so episodes end within 300 steps."""
    envs = manager(MujocoEnv, env_cfg=[{"env_id": "Hopper-v5"}, {"env_id": "Hopper-v5"}], n_envs=2)
    rollout = random_rollout(envs, 300)
    assert rollout.obs.shape == (300, 2, 11) and rollout.obs.dtype == np.float32
    assert np.isfinite(rollout.obs).all() and np.isfinite(rollout.reward).all()
    assert rollout.terminated.sum() >= 2


@requires_mujoco
@pytest.mark.parametrize("env_cls", [HalfCheetahEnv, Walker2dEnv])
def test_random_rollout_of_the_other_envs(env_cls):
    rollout = random_rollout(SyncEnvManager(env_cls, n_envs=2), 200, seed=1)
    assert rollout.obs.dtype == np.float32 and np.isfinite(rollout.obs).all()
    assert np.isfinite(rollout.reward).all()


@requires_mujoco
@pytest.mark.parametrize(
    ("name", "env_cls"), [("hopper", HopperEnv), ("halfcheetah", HalfCheetahEnv), ("walker2d", Walker2dEnv)]
)
def test_data_sections_build_an_off_policy_datamodule(name, env_cls):
    """The ``--data`` files name a DataModule class and its arguments; they build one with our env."""
    from lightning_rl.datamodules import OffPolicyDataModule

    section = yaml.safe_load((CONFIGS / f"{name}_env.yaml").read_text())
    assert section["class_path"] == "lightning_rl.datamodules.OffPolicyDataModule"
    args = section["init_args"]
    assert args["env_fn"] == f"app_zoo.mujoco.envs.{env_cls.__name__}" and args["env_id"] is None
    dm = OffPolicyDataModule(**{**args, "env_fn": env_cls, "buffer_size": 1000})
    assert dm.env_spec["action_type"] == "continuous" and dm.env_spec["obs_dtype"] == "float32"
    assert dm.hparams.learning_starts == 10_000 and dm.hparams.batch_size == 256


@requires_mujoco
@pytest.mark.parametrize("algo", ["sac", "td3"])
@pytest.mark.parametrize("name", ["hopper", "halfcheetah", "walker2d"])
def test_full_configs_train_here(tmp_path, name, algo):
    """Each published-hyperparameter config runs as written, cut to a few updates (its budget is 1M)."""
    from lightning_rl.cli import RLCLI

    config = CONFIGS / f"{name}_{algo}.yaml"
    published = yaml.safe_load(config.read_text())
    assert published["data"]["init_args"]["max_env_steps"] == 1_000_000
    assert (
        published["model"]["init_args"]["random_steps"] == published["data"]["init_args"]["learning_starts"]
    )
    cli = RLCLI(
        args=[
            "fit",
            "--config",
            str(config),
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            "--trainer.max_steps=8",
            "--data.init_args.learning_starts=300",
            "--model.init_args.random_steps=300",
            "--evaluator.eval_interval=8",
            "--evaluator.n_episodes=1",
        ]
    )
    assert cli.model.train_iter == 8 and cli.datamodule.env_steps >= 300
    assert type(cli.model).__name__ == algo.upper()
