"""PPO: collection interface, action bounds, schedules, the target-KL stop, and a seeded learning test."""

from __future__ import annotations

import pytest
import torch
from cli_utils import REPO

from lightning_rl.entry import serial_pipeline
from lightning_rl.policies import PPO
from lightning_rl.spec import EnvSpec

CARTPOLE = EnvSpec("CartPole-v1", (4,), "float32", "discrete", n_actions=2).to_dict()
PENDULUM = EnvSpec(
    "Pendulum-v1", (3,), "float32", "continuous", action_shape=(1,), action_low=(-2.0,), action_high=(2.0,)
).to_dict()
PPO_CONFIG = str(REPO / "configs" / "cartpole_ppo.yaml")


def test_collect_returns_what_the_rollout_stores():
    torch.manual_seed(0)
    policy = PPO(env_spec=CARTPOLE)
    out = policy.collect(torch.randn(5, 4))
    assert out["action"].shape == (5,) and out["action"].dtype == torch.int64
    assert out["log_prob"].shape == out["value"].shape == (5,)
    log_prob, _, value = policy.net.evaluate_actions(torch.randn(5, 4), out["action"])
    assert log_prob.shape == (5,)
    assert policy.predict_value(torch.zeros(3, 4)).shape == (3,)
    obs = torch.randn(7, 4)
    assert torch.equal(policy.act(obs, mode="eval"), policy.act(obs, mode="eval"))  # deterministic


def test_unsquashed_gaussian_actions_reach_the_env_clipped_but_are_stored_raw():
    torch.manual_seed(0)
    policy = PPO(env_spec=PENDULUM, log_std_init=2.0)  # std e^2: most samples fall outside [-2, 2]
    out = policy.collect(torch.randn(64, 3))
    assert out["action"].abs().max() > 2.0
    assert out["env_action"].abs().max() <= 2.0
    torch.testing.assert_close(out["env_action"], out["action"].clamp(-2.0, 2.0))
    squashed = PPO(env_spec=PENDULUM, squash=True, log_std_init=2.0)
    out = squashed.collect(torch.randn(64, 3))
    assert out["action"].abs().max() <= 2.0 and torch.equal(out["env_action"], out["action"])


def test_bad_schedule_and_clip_arguments():
    with pytest.raises(
        ValueError, match=r"lr_schedule must be one of \['constant', 'linear'\], got 'cosine'"
    ):
        PPO(env_spec=CARTPOLE, lr_schedule="cosine")
    with pytest.raises(ValueError, match="clip_ratio must be > 0"):
        PPO(env_spec=CARTPOLE, clip_ratio=0.0)


def test_target_kl_ends_the_rollout_epochs(tmp_path, monkeypatch):
    """A tiny target KL stops every rollout after its first minibatch: 1 update per rollout, not 20."""
    monkeypatch.chdir(tmp_path)
    result = serial_pipeline(
        PPO_CONFIG,
        **{
            "trainer.logger": False,
            "trainer.enable_progress_bar": False,
            "model.init_args.target_kl": 1e-9,
            "data.init_args.max_env_steps": 2560,
            "evaluator.eval_interval": 1000,
        },
    )
    assert result["env_steps"] == 2560 and result["train_iter"] == 10  # 10 rollouts of 256 env steps


@pytest.mark.learning
def test_ppo_config_solves_cartpole_within_100k_env_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = serial_pipeline(
        PPO_CONFIG, seed=0, **{"trainer.logger": False, "trainer.enable_progress_bar": False}
    )
    assert result["stop_value_reached"] and result["eval_return_mean"] == 500.0
    assert result["env_steps"] <= 100_000
