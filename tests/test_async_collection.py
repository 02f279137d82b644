"""OffPolicyDataModule with background collection: ratio band, actor refresh, staleness stamps, budget,
errors, checkpoints, and a real fit through the CLI."""

from __future__ import annotations

import json
from types import SimpleNamespace

import gymnasium as gym
import pytest
import torch
from cli_utils import CONFIG, short_run_args
from torch import nn

from lightning_rl import keys
from lightning_rl.cli import RLCLI
from lightning_rl.datamodules import OffPolicyDataModule
from lightning_rl.entry import serial_pipeline
from lightning_rl.envs import EnvManagerError


class TinyPolicy(nn.Module):
    """Acts with the sign of one weight; stands in for an RLPolicy (act + train_iter + state_dict)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))
        self.train_iter = 0

    def act(self, obs, mode="eval", env_steps=0, generator=None):
        return torch.full((obs.shape[0],), int(self.weight.item() > 0), dtype=torch.int64)


def async_cartpole(**kwargs) -> OffPolicyDataModule:
    defaults = dict(
        n_envs=2,
        buffer_size=2000,
        batch_size=4,
        learning_starts=8,
        async_collection=True,
        max_env_steps=400,
        updates_per_step=1,
    )
    dm = OffPolicyDataModule(
        env_id=None, env_fn=gym.make, env_kwargs={"id": "CartPole-v1"}, **{**defaults, **kwargs}
    )
    return dm


def attach(dm: OffPolicyDataModule, policy: nn.Module) -> OffPolicyDataModule:
    dm.trainer = SimpleNamespace(lightning_module=policy, global_rank=0, world_size=1, should_stop=False)
    dm.setup("fit")
    return dm


def batches(dm: OffPolicyDataModule):
    """The stream's batches, one training step's after another."""
    for step in dm.train_dataloader():
        yield from step


def test_ratio_band_holds_and_the_budget_ends_the_stream():
    dm = attach(async_cartpole(sample_insert_ratio=[1.0, 2.0]), TinyPolicy())
    try:
        sampled = 0
        for batch in batches(dm):
            assert batch.batch_size == torch.Size([4])
            sampled += 4
            inserted = dm.buffer.pushed
            # the learner may overshoot the band by one batch, never more
            assert sampled <= 2.0 * inserted + 4
        assert dm.trainer.should_stop and dm.env_steps >= 400
        # the collector was held back whenever the learner fell below the band
        assert dm.buffer.sampled >= 1.0 * (dm.buffer.pushed - 2) - 4
    finally:
        dm.teardown("fit")
    assert dm._background is None


def test_actor_copy_is_refreshed_and_items_record_its_iteration():
    policy = TinyPolicy()
    dm = attach(async_cartpole(actor_refresh_interval=3, sample_insert_ratio=[0.5, 1.0]), policy)
    stream = batches(dm)
    try:
        next(stream)
        actor = dm._mirror.actor
        assert actor is not policy and actor.weight.item() == 1.0
        with torch.no_grad():
            policy.weight.fill_(-1.0)  # an "update" the actor must not see until refreshed
        policy.train_iter = 2
        next(stream)
        assert dm._mirror.published_version == 0  # 2 updates since the copy: not published yet
        policy.train_iter = 3
        next(stream)  # published after this batch's update; the collector loads it before its next step
        assert dm._mirror.published_version == 3
        pushed_before = dm.buffer.pushed
        while dm.buffer.pushed < pushed_before + 40:
            next(stream)
        assert actor.weight.item() == -1.0 and dm._mirror.version == 3  # the actor now pushes left
        with dm._cond:
            newest = dm.buffer.get(torch.arange(len(dm.buffer)))[-10:]
        assert (newest[keys.ACTION] == 0).all()
    finally:
        dm.teardown("fit")


def test_env_failure_in_the_thread_reaches_the_learner():
    class Crashing(gym.Wrapper):
        steps = 0  # over all instances: a rebuilt env fails too, so the manager's retries run out

        def step(self, action):
            Crashing.steps += 1
            if Crashing.steps > 50:
                raise OSError("simulator died")
            return self.env.step(action)

    dm = OffPolicyDataModule(
        env_id=None,
        env_fn=lambda: Crashing(gym.make("CartPole-v1")),
        n_envs=2,
        batch_size=4,
        learning_starts=8,
        async_collection=True,
    )
    attach(dm, TinyPolicy())
    try:
        with pytest.raises(EnvManagerError) as info:  # a ReportedError comes through as it is: one line
            for _ in dm.train_dataloader():
                pass
        assert "max_retries=3" in str(info.value) and "simulator died" in str(info.value)
    finally:
        dm.teardown("fit")


def test_a_failed_fit_stops_the_collector_thread():
    dm = attach(async_cartpole(max_env_steps=None), TinyPolicy())
    next(iter(dm.train_dataloader()))
    thread = dm._background._thread
    dm.on_exception(RuntimeError("the training step failed"))  # Lightning calls this, not teardown
    assert not thread.is_alive() and dm._background is None and dm.collector is None


def test_ratio_band_needs_async_collection():
    with pytest.raises(ValueError, match="sample_insert_ratio only applies with async_collection"):
        OffPolicyDataModule(sample_insert_ratio=[1.0, 2.0])


def test_async_fit_resumes_from_its_checkpoint(tmp_path):
    args = ["--data.init_args.async_collection=true", "--data.init_args.sample_insert_ratio=[32, 96]"]
    RLCLI(args=short_run_args(tmp_path, *args, max_steps=120))
    run_dir = tmp_path / "csv" / "version_0"
    result = json.loads((run_dir / "result.json").read_text())
    assert result["train_iter"] == 120
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    state = next(v for k, v in ckpt.items() if k.endswith("OffPolicyDataModule"))
    sampled, pushed = state["buffer"]["sampled"], state["buffer"]["pushed"]
    assert sampled == 120 * 256 and sampled <= 96 * pushed + 256  # the band's upper edge held

    resumed = RLCLI(
        args=short_run_args(
            tmp_path, *args, f"--ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}", max_steps=200
        )
    )
    assert resumed.result["train_iter"] == 200
    assert resumed.datamodule.buffer.pushed > state["buffer"]["pushed"]


@pytest.mark.learning
def test_async_dqn_solves_cartpole(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the default config's replay ratio (8 x 256 samples per 32 inserts = 64) held in a +-20% band
    result = serial_pipeline(
        CONFIG,
        seed=0,
        **{
            "trainer.logger": False,
            "trainer.enable_progress_bar": False,
            "data.init_args.async_collection": True,
            "data.init_args.sample_insert_ratio": [51.2, 76.8],
        },
    )
    assert result["stop_value_reached"] and result["env_steps"] <= 50_000, result
