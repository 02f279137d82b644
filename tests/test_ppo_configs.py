"""The PPO configs beyond CartPole: Pendulum (continuous actions, clipped to the bounds) learns to -250, and
the Atari Pong config trains a few updates through the CLI."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import yaml
from cli_utils import REPO
from gymnasium.envs.classic_control.pendulum import PendulumEnv

from lightning_rl.cli import RLCLI
from lightning_rl.entry import serial_pipeline

PENDULUM_CONFIG = str(REPO / "configs" / "pendulum_ppo.yaml")
PONG_CONFIG = str(REPO / "configs" / "pong_ppo.yaml")
QUIET = {"trainer.logger": False, "trainer.enable_progress_bar": False}
HAVE_ALE = all(importlib.util.find_spec(name) is not None for name in ("ale_py", "cv2"))


def test_pendulum_config_runs_a_few_updates_and_the_env_gets_clipped_actions(tmp_path, monkeypatch):
    """Wide Gaussian samples (std e^1) often fall outside [-2, 2]: every action the env sees is inside."""
    monkeypatch.chdir(tmp_path)
    seen: list[np.ndarray] = []
    step = PendulumEnv.step

    def recording_step(self, action):
        seen.append(np.array(action, dtype=np.float64))
        return step(self, action)

    monkeypatch.setattr(PendulumEnv, "step", recording_step)
    result = serial_pipeline(
        PENDULUM_CONFIG,
        **QUIET,
        **{
            "model.init_args.log_std_init": 1.0,
            "data.init_args.n_envs": 2,
            "data.init_args.n_steps": 32,
            "data.init_args.batch_size": 32,
            "data.init_args.n_epochs": 2,
            "data.init_args.max_env_steps": 128,
            "evaluator.n_episodes": 1,
        },
    )
    assert result["env_steps"] == 128 and result["train_iter"] == 8  # 2 rollouts x 2 epochs x 2 minibatches
    assert isinstance(result["eval_return_mean"], float) and not result["stop_value_reached"]
    actions = np.concatenate([a.reshape(-1) for a in seen])
    assert len(actions) == 128 + 200  # the training steps, then one 200-step evaluation episode
    assert np.abs(actions).max() <= 2.0
    assert (np.abs(actions[:128]) == 2.0).sum() >= 10  # many samples were out of bounds: clipped


@pytest.mark.learning
def test_pendulum_config_reaches_minus_250(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(PENDULUM_CONFIG) as f:
        budget = yaml.safe_load(f)["data"]["init_args"]["max_env_steps"]
    result = serial_pipeline(PENDULUM_CONFIG, seed=0, **QUIET)
    assert result["stop_value_reached"] and result["eval_return_mean"] >= -250, result
    assert result["env_steps"] <= budget


@pytest.mark.skipif(not HAVE_ALE, reason="ale-py / opencv not installed: pip install 'lightning-rl[atari]'")
def test_pong_config_trains_a_few_updates(tmp_path):
    cli = RLCLI(
        args=[
            "fit",
            "--config",
            PONG_CONFIG,
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            "--data.init_args.env_kwargs={env_id: ALE/Pong-v5, max_episode_frames: 200}",
            "--data.init_args.n_envs=2",
            "--data.init_args.n_steps=8",
            "--data.init_args.batch_size=16",
            "--data.init_args.n_epochs=1",
            "--data.init_args.max_env_steps=32",
            "--evaluator.n_episodes=1",
        ]
    )
    assert cli.result["train_iter"] == 2 and cli.result["env_steps"] == 32  # 2 rollouts of 16 samples
    assert isinstance(cli.result["eval_return_mean"], float)
    assert cli.model.spec.obs_shape == (4, 84, 84) and cli.model.spec.n_actions == 6
    assert type(cli.model.net.encoder).__name__ == "NatureCNNEncoder" and cli.model.net.shared_encoder
    hp = cli.model.hparams
    assert (hp.lr, hp.lr_schedule, hp.clip_ratio, hp.clip_schedule) == (2.5e-4, "linear", 0.1, "linear")
    assert (hp.ent_coef, hp.vf_coef, hp.gamma, hp.gae_lambda) == (0.01, 0.5, 0.99, 0.95)
    assert cli.datamodule.make_env().cfg["episodic_life"]
    assert not cli.datamodule.make_eval_env().cfg["episodic_life"]  # is_train false: whole games
