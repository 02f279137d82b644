"""Two "nodes" x 1 process, each started by its own ``torchrun --nnodes 2`` on 127.0.0.1 (gloo), as the
multi-node launch in docs/distributed.md: DQN and PPO keep their replicas in sync and a 2-node run resumes
under DDP (remote actors of a shared Ray cluster feeding a 2-rank learner: tests/test_remote_actors.py, the
home of every Ray test)."""

from __future__ import annotations

import pytest
from cli_utils import REPO, short_run_args
from ddp_probe import RANK_REPORT, run_two_nodes

PPO = str(REPO / "configs" / "cartpole_ppo.yaml")
REPORT = ["--trainer.logger=false", RANK_REPORT]


def assert_in_sync(reports: list[dict], train_iter: int) -> None:
    assert [r["world_size"] for r in reports] == [2, 2]
    assert reports[0]["param_sum"] == reports[1]["param_sum"]  # all-reduced gradients
    assert reports[0]["train_iter"] == reports[1]["train_iter"] == train_iter
    assert reports[0]["env_steps"] == reports[1]["env_steps"]  # global env steps, counted alike


@pytest.mark.ddp
def test_dqn_on_two_nodes_keeps_its_replicas_in_sync_and_resumes(tmp_path):
    reports = run_two_nodes(short_run_args(tmp_path, *REPORT, max_steps=40), tmp_path)
    assert_in_sync(reports, 40)
    assert reports[0]["first_obs"] != reports[1]["first_obs"]  # each node's own envs
    last = next(tmp_path.rglob("last.ckpt"))
    resumed = run_two_nodes(short_run_args(tmp_path, *REPORT, f"--ckpt_path={last}", max_steps=60), tmp_path)
    assert_in_sync(resumed, 60)
    assert resumed[0]["env_steps"] > reports[0]["env_steps"]


@pytest.mark.ddp
def test_ppo_on_two_nodes_keeps_its_replicas_in_sync(tmp_path):
    args = [
        "fit",
        f"--config={PPO}",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.max_steps=40",
        "--trainer.enable_progress_bar=false",
        "--data.init_args.normalize_obs=true",  # each rank's statistics from its own envs
        "--evaluator.eval_interval=20",
        "--evaluator.n_episodes=2",
        "--evaluator.stop_value=null",
        *REPORT,
    ]
    reports = run_two_nodes(args, tmp_path)
    assert_in_sync(reports, 40)
    assert reports[0]["rollouts"] == reports[1]["rollouts"] > 0
    assert reports[0]["obs_mean"] != reports[1]["obs_mean"]
