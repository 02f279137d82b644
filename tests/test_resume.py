"""`fit --ckpt_path last.ckpt` continues the same run: counters, replay contents, RNG, evaluator state."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from cli_utils import CARTPOLE_RAINBOW, MASKED_R2D2, PENDULUM_SAC, short_run_args

from lightning_rl import keys
from lightning_rl.cli import RLCLI

MPE_CONFIGS = Path(__file__).resolve().parents[1] / "app_zoo" / "mpe" / "configs"


class CaptureAtStart(pl.Callback):
    """Snapshot what the resumed run starts from (after Lightning restored the checkpoint)."""

    def on_train_start(self, trainer, pl_module):
        dm = trainer.datamodule
        self.env_steps, self.episodes, self.train_iter = (
            dm.env_steps,
            dm.counters.episodes,
            pl_module.train_iter,
        )
        self.global_step = trainer.global_step
        self.buffer = dm.buffer.get(torch.arange(len(dm.buffer))).to_dict()
        self.weights = {k: v.clone() for k, v in pl_module.state_dict().items()}  # targets' too
        self.optimizer = deepcopy(pl_module.optimizers().optimizer.state_dict())  # Adam updates in place
        self.best_return = next(
            cb for cb in trainer.callbacks if type(cb).__name__ == "Evaluator"
        ).best_return


def test_resume_continues_with_the_same_counters_and_replay(tmp_path):
    # eval_interval 20: the last evaluation (at update 100) comes before last.ckpt is written
    first = RLCLI(
        args=short_run_args(
            tmp_path, "--data.init_args.prioritized=true", "--evaluator.eval_interval=20", max_steps=100
        )
    )
    dm, policy = first.datamodule, first.model
    saved = {
        "env_steps": dm.env_steps,
        "episodes": dm.counters.episodes,
        "buffer": dm.buffer.get(torch.arange(len(dm.buffer))).to_dict(),
        "weights": policy.state_dict(),
        "best_return": next(
            cb for cb in first.trainer.callbacks if type(cb).__name__ == "Evaluator"
        ).best_return,
    }
    last = Path(first.trainer.checkpoint_callback.last_model_path)
    assert last.name == "last.ckpt" and last.exists()
    # the checkpoint loads with torch's safe loader: tensors and primitives only
    assert torch.load(last, weights_only=True)["train_iter"] == 100

    resumed = RLCLI(
        args=short_run_args(tmp_path, "--data.init_args.prioritized=true", max_steps=200, run=False),
        run=False,
    )
    capture = CaptureAtStart()
    resumed.trainer.callbacks.append(capture)
    resumed.trainer.fit(resumed.model, datamodule=resumed.datamodule, ckpt_path=str(last))

    assert (capture.env_steps, capture.episodes) == (saved["env_steps"], saved["episodes"])
    assert capture.train_iter == 100 and capture.global_step == 100
    assert capture.best_return == saved["best_return"]
    assert capture.buffer.keys() == saved["buffer"].keys()
    for key, value in saved["buffer"].items():
        assert torch.equal(capture.buffer[key], value), key
    assert all(torch.equal(capture.weights[k], v) for k, v in saved["weights"].items())
    assert any(k.startswith("target_net.") for k in capture.weights)
    # ... and then it keeps going from there
    assert resumed.model.train_iter == 200 and resumed.datamodule.env_steps > saved["env_steps"]
    assert keys.WEIGHT in resumed.datamodule.sample()


def test_best_checkpoint_leaves_the_replay_out_and_cannot_be_resumed_from(tmp_path):
    first = RLCLI(args=short_run_args(tmp_path, max_steps=60))
    best = first.result["ckpt_path"]
    assert best.endswith("best.ckpt")
    datamodule_state = torch.load(best, weights_only=True)["OffPolicyDataModule"]
    assert "buffer" not in datamodule_state and datamodule_state["env_steps"] > 0
    last = torch.load(Path(best).parent / "last.ckpt", weights_only=True)["OffPolicyDataModule"]
    assert last["buffer"]["size"] > 0  # last.ckpt is the resume point: it carries the replay

    resumed = RLCLI(args=short_run_args(tmp_path, max_steps=120, run=False), run=False)
    with pytest.raises(ValueError, match="holds no replay buffer .* resume from last.ckpt"):
        resumed.trainer.fit(resumed.model, datamodule=resumed.datamodule, ckpt_path=best)


def test_sac_resumes_with_its_replay_temperature_targets_and_optimizer(tmp_path):
    args = ("--data.init_args.prioritized=true", "--model.init_args.random_steps=200")
    first = RLCLI(args=short_run_args(tmp_path, *args, max_steps=64, config=PENDULUM_SAC))
    dm, policy = first.datamodule, first.model
    saved_weights = {k: v.clone() for k, v in policy.state_dict().items()}
    saved_buffer = dm.buffer.get(torch.arange(len(dm.buffer))).to_dict()
    saved_counters = (dm.env_steps, dm.counters.episodes)
    saved_optimizer = policy.optimizers().optimizer.state_dict()
    assert policy.log_alpha.item() != 0.0  # the temperature moved from its initial log(1)
    last = Path(first.trainer.checkpoint_callback.last_model_path)

    resumed = RLCLI(
        args=short_run_args(tmp_path, *args, max_steps=96, run=False, config=PENDULUM_SAC), run=False
    )
    capture = CaptureAtStart()
    resumed.trainer.callbacks.append(capture)
    resumed.trainer.fit(resumed.model, datamodule=resumed.datamodule, ckpt_path=str(last))

    assert (capture.env_steps, capture.episodes) == saved_counters
    assert capture.train_iter == 64 and capture.global_step == 64
    for key, value in saved_buffer.items():
        assert torch.equal(capture.buffer[key], value), key
    assert capture.weights.keys() == saved_weights.keys()
    for key in ("log_alpha", "target_critics.members.weights.0", "target_critics.members.weights.1"):
        assert key in saved_weights
    assert all(torch.equal(capture.weights[k], v) for k, v in saved_weights.items())
    # the optimizer's moments of all three parts (critics, actor, temperature) come back too
    assert [g["name"] for g in capture.optimizer["param_groups"]] == ["critic", "actor", "alpha"]
    for index, state in saved_optimizer["state"].items():
        assert torch.equal(capture.optimizer["state"][index]["exp_avg"], state["exp_avg"])
    assert resumed.model.train_iter == 96 and resumed.datamodule.env_steps > saved_counters[0]


def test_rainbow_resumes_with_its_noise_and_prioritized_distributional_replay(tmp_path):
    first = RLCLI(args=short_run_args(tmp_path, max_steps=40, config=CARTPOLE_RAINBOW))
    dm, policy = first.datamodule, first.model
    saved_weights = {k: v.clone() for k, v in policy.state_dict().items()}
    saved_buffer = dm.buffer.get(torch.arange(len(dm.buffer))).to_dict()
    noise = [k for k in saved_weights if k.endswith("weight_epsilon")]
    assert any(k.startswith("net.") for k in noise) and any(k.startswith("target_net.") for k in noise)
    last = Path(first.trainer.checkpoint_callback.last_model_path)

    resumed = RLCLI(
        args=short_run_args(tmp_path, max_steps=60, run=False, config=CARTPOLE_RAINBOW), run=False
    )
    capture = CaptureAtStart()
    resumed.trainer.callbacks.append(capture)
    resumed.trainer.fit(resumed.model, datamodule=resumed.datamodule, ckpt_path=str(last))

    assert capture.train_iter == 40 and capture.env_steps == dm.env_steps
    assert capture.weights.keys() == saved_weights.keys()
    assert all(torch.equal(capture.weights[k], v) for k, v in saved_weights.items())  # noise included
    for key, value in saved_buffer.items():
        assert torch.equal(capture.buffer[key], value), key
    assert resumed.model.train_iter == 60


def test_r2d2_resumes_with_its_sequences_and_their_recurrent_states(tmp_path):
    args = ("--data.init_args.learning_starts=600",)
    first = RLCLI(args=short_run_args(tmp_path, *args, max_steps=30, config=MASKED_R2D2))
    dm, policy = first.datamodule, first.model
    saved_weights = {k: v.clone() for k, v in policy.state_dict().items()}
    saved_buffer = dm.buffer.get(torch.arange(len(dm.buffer))).to_dict()
    assert saved_buffer[keys.RECURRENT_STATE].abs().sum() > 0  # states of mid-episode sequences
    saved_priorities = dm.buffer.stats()["priority_max"]
    last = Path(first.trainer.checkpoint_callback.last_model_path)

    resumed = RLCLI(
        args=short_run_args(tmp_path, *args, max_steps=50, run=False, config=MASKED_R2D2), run=False
    )
    capture = CaptureAtStart()
    resumed.trainer.callbacks.append(capture)
    resumed.trainer.fit(resumed.model, datamodule=resumed.datamodule, ckpt_path=str(last))

    assert capture.train_iter == 30 and capture.env_steps == dm.env_steps
    assert capture.buffer.keys() == saved_buffer.keys()
    for key, value in saved_buffer.items():  # recurrent states, final observations, masks included
        assert torch.equal(capture.buffer[key], value), key
    assert all(torch.equal(capture.weights[k], v) for k, v in saved_weights.items())
    assert saved_priorities > 0 and resumed.model.train_iter == 50


def test_qmix_resumes_with_its_episode_replay_recurrent_states_and_mixer(tmp_path):
    pytest.importorskip("mpe2", reason="pip install 'lightning-rl[marl]'")
    config = str(MPE_CONFIGS / "simple_spread_qmix.yaml")
    args = ("--data.init_args.learning_starts=400", "--data.init_args.n_envs=2")
    first = RLCLI(args=short_run_args(tmp_path, *args, max_steps=8, config=config))
    dm, policy = first.datamodule, first.model
    saved_weights = {k: v.clone() for k, v in policy.state_dict().items()}
    saved_buffer = dm.buffer.get(torch.arange(len(dm.buffer))).to_dict()
    assert any(k.startswith("net.mixer.") for k in saved_weights)
    assert any(k.startswith("target_net.mixer.") for k in saved_weights)
    last = Path(first.trainer.checkpoint_callback.last_model_path)

    resumed = RLCLI(args=short_run_args(tmp_path, *args, max_steps=12, run=False, config=config), run=False)
    capture = CaptureAtStart()
    resumed.trainer.callbacks.append(capture)
    resumed.trainer.fit(resumed.model, datamodule=resumed.datamodule, ckpt_path=str(last))

    assert capture.train_iter == 8 and capture.env_steps == dm.env_steps
    for key, value in saved_buffer.items():  # whole episodes: joint actions, packed obs, agents' states
        assert torch.equal(capture.buffer[key], value), key
    assert all(torch.equal(capture.weights[k], v) for k, v in saved_weights.items())
    assert resumed.model.train_iter == 12


def test_atoc_resumes_with_its_prioritized_replay_channel_attention_and_targets(tmp_path):
    pytest.importorskip("mpe2", reason="pip install 'lightning-rl[marl]'")
    config = str(MPE_CONFIGS / "simple_spread_continuous_atoc.yaml")
    args = (
        "--data.init_args.prioritized=true",
        "--data.init_args.n_envs=2",
        "--model.init_args.random_steps=200",
        "--evaluator.eval_interval=24",
    )
    first = RLCLI(args=short_run_args(tmp_path, *args, max_steps=48, config=config))
    dm, policy = first.datamodule, first.model
    saved_weights = {k: v.clone() for k, v in policy.state_dict().items()}
    saved_buffer = dm.buffer.get(torch.arange(len(dm.buffer))).to_dict()
    saved_optimizer = policy.optimizers().optimizer.state_dict()
    for part in (
        "model.actor.attention.",
        "model.actor.channel.",
        "target_actor.channel.",
        "target_critics.",
    ):
        assert any(k.startswith(part) for k in saved_weights), part
    last = Path(first.trainer.checkpoint_callback.last_model_path)

    resumed = RLCLI(args=short_run_args(tmp_path, *args, max_steps=72, run=False, config=config), run=False)
    capture = CaptureAtStart()
    resumed.trainer.callbacks.append(capture)
    resumed.trainer.fit(resumed.model, datamodule=resumed.datamodule, ckpt_path=str(last))

    assert capture.train_iter == 48 and capture.env_steps == dm.env_steps
    for key, value in saved_buffer.items():  # joint actions (N, d), packed obs, per-item priorities
        assert torch.equal(capture.buffer[key], value), key
    assert all(torch.equal(capture.weights[k], v) for k, v in saved_weights.items())
    for index, state in saved_optimizer["state"].items():
        assert torch.equal(capture.optimizer["state"][index]["exp_avg"], state["exp_avg"])
    assert resumed.model.train_iter == 72


class CaptureOnPolicyStart(pl.Callback):
    """What an on-policy run resumes with: counters, weights, optimizer moments."""

    def on_train_start(self, trainer, pl_module):
        dm = trainer.datamodule
        self.counters = (dm.env_steps, dm.counters.episodes, dm.rollouts, pl_module.train_iter)
        self.weights = {k: v.clone() for k, v in pl_module.state_dict().items()}
        self.optimizer = deepcopy(pl_module.optimizers().optimizer.state_dict())


def test_coma_resumes_with_its_counters_critic_and_optimizer(tmp_path):
    pytest.importorskip("mpe2", reason="pip install 'lightning-rl[marl]'")

    def args(max_env_steps: int, run: bool = True) -> list[str]:
        return [
            *(["fit"] if run else []),
            "--config",
            str(MPE_CONFIGS / "simple_spread_coma.yaml"),
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
            "--data.init_args.n_envs=2",
            f"--data.init_args.max_env_steps={max_env_steps}",
            "--data.init_args.batch_size=50",
            "--evaluator.n_episodes=2",
        ]

    first = RLCLI(args=args(300))
    dm, policy = first.datamodule, first.model
    saved = (dm.env_steps, dm.counters.episodes, dm.rollouts, policy.train_iter)
    saved_weights = {k: v.clone() for k, v in policy.state_dict().items()}
    saved_optimizer = deepcopy(policy.optimizers().optimizer.state_dict())
    assert any(k.startswith("net.critic.") for k in saved_weights)
    last = Path(first.trainer.checkpoint_callback.last_model_path)

    resumed = RLCLI(args=args(500, run=False), run=False)
    capture = CaptureOnPolicyStart()
    resumed.trainer.callbacks.append(capture)
    resumed.trainer.fit(resumed.model, datamodule=resumed.datamodule, ckpt_path=str(last))

    assert capture.counters == saved and saved[3] == 6
    assert all(torch.equal(capture.weights[k], v) for k, v in saved_weights.items())
    for index, state in saved_optimizer["state"].items():
        assert torch.equal(capture.optimizer["state"][index]["exp_avg"], state["exp_avg"])
    assert resumed.datamodule.env_steps == 500 and resumed.model.train_iter == 10
