"""Two DDP processes on CPU (gloo on loopback) through the real CLI launch path."""

from __future__ import annotations

import pytest
import torch
from cli_utils import PENDULUM_SAC, short_run_args
from ddp_probe import RANK_REPORT, run_two_ranks


@pytest.mark.ddp
def test_two_rank_ddp_keeps_replicas_in_sync_with_separate_collectors(tmp_path):
    args = short_run_args(
        tmp_path,
        "--trainer.logger=false",
        RANK_REPORT,
        "--data.init_args.nstep=1",  # every local step then lands in the buffer at once (checked below)
        max_steps=40,
    )
    reports = run_two_ranks(args, tmp_path)
    assert [r["world_size"] for r in reports] == [2, 2]
    # gradients are all-reduced: both replicas end with identical weights after 40 updates
    assert reports[0]["param_sum"] == reports[1]["param_sum"]
    assert reports[0]["param_abs_sum"] == reports[1]["param_abs_sum"]
    assert (
        reports[0]["direct_update"] and reports[1]["direct_update"]
    )  # RLPolicy.optimizer_update's fast path
    # every rank took the same number of updates and counts global env steps
    assert reports[0]["train_iter"] == reports[1]["train_iter"] == 40
    assert reports[0]["env_steps"] == reports[1]["env_steps"]
    assert reports[0]["env_steps"] == 2 * reports[0]["buffer_size"]  # nstep=1: one transition per local step
    # ... but each rank collected its own data from differently seeded envs
    assert reports[0]["first_obs"] != reports[1]["first_obs"]
    # the checkpoint is written once; each rank's replay buffer beside it
    last = next(tmp_path.rglob("last.ckpt"))
    state = torch.load(last, weights_only=True)["datamodule_hyper_parameters"]
    assert state["n_envs"] == 8
    rank_dirs = sorted(p.name for p in (tmp_path / "replay").glob("iter*/rank*"))
    assert "rank0" in rank_dirs and "rank1" in rank_dirs
    assert all((p / "buffer" / "state.pt").exists() for p in (tmp_path / "replay").glob("iter*/rank*"))


@pytest.mark.ddp
def test_two_rank_sac_keeps_actor_critics_and_temperature_in_sync(tmp_path):
    args = short_run_args(
        tmp_path,
        "--trainer.logger=false",
        RANK_REPORT,
        "--model.init_args.random_steps=200",
        max_steps=48,
        config=PENDULUM_SAC,
    )
    reports = run_two_ranks(args, tmp_path)
    # one all-reduced backward per update covers the critics, the actor and log_alpha
    assert reports[0]["param_sum"] == reports[1]["param_sum"]
    assert reports[0]["param_abs_sum"] == reports[1]["param_abs_sum"]
    assert reports[0]["direct_update"] and reports[1]["direct_update"]
    assert reports[0]["train_iter"] == reports[1]["train_iter"] == 48
    assert reports[0]["first_obs"] != reports[1]["first_obs"]  # each rank's own envs
