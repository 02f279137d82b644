"""A2C and IMPALA, trajectory minibatches, resuming an on-policy run, and on-policy DDP."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from cli_utils import REPO
from ddp_probe import RANK_REPORT, run_two_ranks
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.cli import RLCLI
from lightning_rl.datamodules import OnPolicyDataModule
from lightning_rl.entry import serial_pipeline
from lightning_rl.policies import IMPALA
from lightning_rl.rl_utils.bootstrap import next_state_values
from lightning_rl.spec import EnvSpec

CONFIGS = REPO / "configs"
QUIET = {"trainer.logger": False, "trainer.enable_progress_bar": False}
CARTPOLE = EnvSpec("CartPole-v1", (4,), "float32", "discrete", n_actions=2).to_dict()


@pytest.mark.learning
@pytest.mark.parametrize("config", ["cartpole_a2c.yaml", "cartpole_impala.yaml"])
def test_a2c_and_impala_configs_solve_cartpole(tmp_path, monkeypatch, config):
    monkeypatch.chdir(tmp_path)
    result = serial_pipeline(str(CONFIGS / config), seed=0, **QUIET)
    assert result["stop_value_reached"] and result["eval_return_mean"] >= 475


def test_trajectory_minibatches_are_whole_time_major_env_trajectories():
    from test_on_policy_datamodule import TimeValuePolicy, attach, timer

    dm = OnPolicyDataModule(
        env_id=None, env_fn=timer, n_envs=4, n_steps=5, n_epochs=2, batch_size=10, minibatch="trajectories"
    )
    attach(dm, TimeValuePolicy())
    stream = iter(dm.train_dataloader())
    batches = [next(stream)[0] for _ in range(4)]  # 2 epochs x 2 minibatches of 2 envs
    for batch in batches:
        assert batch.batch_size == (5, 2) and keys.NEXT_OBS in batch
        assert (batch[keys.OBS][1:, :, 0] == (batch[keys.OBS][:-1, :, 0] + 1) % 4).all()  # consecutive steps
    assert dm.rollouts == 1
    with pytest.raises(ValueError, match=r"batch_size must be a multiple of n_steps = 5 with minibatch"):
        OnPolicyDataModule(n_envs=4, n_steps=5, batch_size=4, minibatch="trajectories")
    dm.teardown("fit")


def test_impala_bootstraps_with_its_own_critic_at_episode_and_chunk_ends():
    torch.manual_seed(0)
    policy = IMPALA(env_spec=CARTPOLE)
    obs, next_obs = torch.randn(3, 1, 4), torch.randn(3, 1, 4)
    batch = TensorDict(
        {
            keys.OBS: obs,
            keys.NEXT_OBS: next_obs,
            keys.TERMINATED: torch.tensor([[False], [True], [False]]),
            keys.TRUNCATED: torch.tensor([[False], [False], [False]]),
        },
        [3, 1],
    )
    value = policy.net.value(obs)
    with torch.no_grad():  # as in IMPALA.training_update
        ended = batch[keys.TERMINATED] | batch[keys.TRUNCATED]
        next_value = next_state_values(value, ended, batch[keys.NEXT_OBS], policy.net.value)
    assert next_value[0, 0] == value[1, 0]  # inside the episode: the next step's value
    torch.testing.assert_close(next_value[1:, 0], policy.net.value(next_obs[1:, 0]))  # end, chunk end
    assert not next_value.requires_grad


def test_impala_refuses_shuffled_step_minibatches(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ValueError, match=r"^data\.init_args\.minibatch: got 'steps' .*; allowed: 'trajectories'$"
    ):
        serial_pipeline(
            str(CONFIGS / "cartpole_impala.yaml"), **QUIET, **{"data.init_args.minibatch": "steps"}
        )


class CaptureAtStart(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        dm = trainer.datamodule
        self.env_steps, self.rollouts, self.train_iter = dm.env_steps, dm.rollouts, pl_module.train_iter
        self.obs_mean = dm.obs_stats.mean.clone()
        self.reward_var = dm.reward_scaler.stats.var.clone()
        self.net = {k: v.clone() for k, v in pl_module.net.state_dict().items()}


def ppo_args(root: Path, max_steps: int, run: bool = True) -> list[str]:
    return [
        *(["fit"] if run else []),
        f"--config={CONFIGS / 'cartpole_ppo.yaml'}",
        f"--trainer.default_root_dir={root}",
        f"--trainer.max_steps={max_steps}",
        "--trainer.enable_progress_bar=false",
        "--data.init_args.normalize_obs=true",
        "--data.init_args.normalize_reward=true",
        "--evaluator.eval_interval=20",
        "--evaluator.n_episodes=2",
        "--evaluator.stop_value=null",
    ]


def test_resumed_ppo_continues_with_its_normalizer_statistics(tmp_path):
    first = RLCLI(args=ppo_args(tmp_path, max_steps=60))
    dm = first.datamodule
    saved = (dm.env_steps, dm.rollouts, dm.obs_stats.mean.clone(), dm.reward_scaler.stats.var.clone())
    net = {k: v.clone() for k, v in first.model.net.state_dict().items()}
    last = Path(first.trainer.checkpoint_callback.last_model_path)
    resumed = RLCLI(args=ppo_args(tmp_path, max_steps=100, run=False), run=False)
    capture = CaptureAtStart()
    resumed.trainer.callbacks.append(capture)
    resumed.trainer.fit(resumed.model, datamodule=resumed.datamodule, ckpt_path=str(last))
    assert (capture.env_steps, capture.rollouts, capture.train_iter) == (saved[0], saved[1], 60)
    torch.testing.assert_close(capture.obs_mean, saved[2])
    torch.testing.assert_close(capture.reward_var, saved[3])
    assert all(torch.equal(capture.net[k], v) for k, v in net.items())
    assert resumed.model.train_iter == 100 and resumed.datamodule.env_steps > saved[0]


@pytest.mark.ddp
def test_two_rank_ppo_keeps_replicas_in_sync(tmp_path):
    args = [
        *ppo_args(tmp_path, max_steps=40),
        "--trainer.logger=false",
        RANK_REPORT,
        "--model.init_args.target_kl=0.01",  # the early stop is a decision of both ranks
    ]
    reports = run_two_ranks(args, tmp_path)
    assert reports[0]["param_sum"] == reports[1]["param_sum"]  # all-reduced gradients: identical replicas
    assert reports[0]["train_iter"] == reports[1]["train_iter"] == 40
    assert reports[0]["rollouts"] == reports[1]["rollouts"]  # the KL stops were taken together
    assert reports[0]["env_steps"] == reports[1]["env_steps"] == 2 * 256 * reports[0]["rollouts"]
    assert reports[0]["obs_mean"] != reports[1]["obs_mean"]  # each rank normalizes with its own envs' stats


@pytest.mark.learning
def test_impala_with_async_actors_solves_cartpole(tmp_path, monkeypatch):
    """Rollouts come from an actor one rollout behind the learner; V-trace corrects for the lag."""
    monkeypatch.chdir(tmp_path)
    overrides = {"data.init_args.async_collection": True, **QUIET}
    result = serial_pipeline(str(CONFIGS / "cartpole_impala.yaml"), seed=0, **overrides)
    assert result["stop_value_reached"] and result["eval_return_mean"] >= 475


def test_async_rollouts_come_from_the_weights_published_one_rollout_earlier():
    from test_on_policy_datamodule import TimeValuePolicy, attach, timer

    class Versioned(TimeValuePolicy):
        """Its 'weights' are a version number; collect stamps every step with the version it acted with."""

        def __init__(self):
            super().__init__()
            self.version = torch.zeros(())

        def state_dict(self):
            return {"version": self.version}

        def load_state_dict(self, state):
            self.version = state["version"].clone()

        def requires_grad_(self, flag):
            return self

        def cpu(self):
            return self

        def collect(self, obs):
            return {**super().collect(obs), "version": self.version.expand(len(obs)).clone()}

    learner = Versioned()
    dm = OnPolicyDataModule(
        env_id=None, env_fn=timer, n_envs=2, n_steps=4, batch_size=8, async_collection=True
    )
    attach(dm, learner)
    stream = iter(dm.train_dataloader())
    versions = []
    for version in range(1, 5):
        versions.append(next(stream)[0]["version"].unique().tolist())
        for _ in range(3):  # the rest of this rollout's 4 epochs
            next(stream)
        learner.version = torch.tensor(float(version))  # the learner "trains"
    # rollout k+1 is collected while the learner trains on rollout k, with the weights it published when
    # it took rollout k: the actor is one rollout behind
    assert versions == [[0.0], [0.0], [1.0], [2.0]]
    dm.teardown("fit")
    assert dm._background is None
