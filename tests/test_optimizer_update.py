"""RLPolicy.optimizer_update: the direct path (no Lightning hook dispatch) gives the same updates,
optimizer state, global_step and checkpoints as Lightning's manual_backward / clip_gradients /
optimizer.step, and Lightning's path is taken whenever the direct one would skip something."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import pytorch_lightning as pl
import torch
from cli_utils import short_run_args
from ddp_probe import RANK_REPORT, run_two_ranks
from pytorch_lightning.callbacks import ModelCheckpoint
from tensordict import TensorDict
from test_on_policy_family import ppo_args

from lightning_rl import keys
from lightning_rl.cli import RLCLI
from lightning_rl.data import PrioritizedBuffer
from lightning_rl.policies import DQN
from lightning_rl.policies.base import RLPolicy

SPEC = {"env_id": "test", "obs_shape": [4], "obs_dtype": "float32", "action_type": "discrete", "n_actions": 2}


class ReplayOnly(pl.LightningDataModule):
    """Seeded samples of a fixed prioritized buffer, priorities written back (no env collection)."""

    def __init__(self, size: int = 512):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.buffer = PrioritizedBuffer(size, alpha=0.6, prioritized=True, seed=0)
        self.buffer.extend(
            TensorDict(
                {
                    keys.OBS: torch.randn(size, 4, generator=generator),
                    keys.ACTION: torch.randint(0, 2, (size,), generator=generator),
                    keys.REWARD: torch.randn(size, 1, generator=generator),
                    keys.NEXT_OBS: torch.randn(size, 4, generator=generator),
                    keys.TERMINATED: torch.rand(size, generator=generator) < 0.1,
                    keys.STEPS: torch.ones(size, dtype=torch.int64),
                },
                batch_size=[size],
            )
        )
        self.env_steps = 0
        self.max_env_steps = None

    def train_dataloader(self) -> Iterator[Iterator[TensorDict]]:
        """Training steps of 4 batches, each sampled when the policy asks for it."""
        return ((self.buffer.sample(32, beta=0.4) for _ in range(4)) for _ in iter(int, 1))

    def update_priority(self, index: torch.Tensor, priority: torch.Tensor) -> None:
        self.buffer.update_priority(index, priority)

    def metrics(self) -> dict[str, float]:
        return {}


class CountBackward(pl.Callback):
    """Counts the updates that went through Lightning's manual_backward."""

    def __init__(self) -> None:
        self.calls = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        manual_backward = pl_module.manual_backward

        def counted(loss: torch.Tensor, *args, **kwargs) -> None:
            self.calls += 1
            manual_backward(loss, *args, **kwargs)

        pl_module.manual_backward = counted


def fit_dqn(root, direct: bool, max_steps: int = 40, policy_cls=DQN, callbacks=(), **trainer_kwargs):
    torch.manual_seed(0)
    policy = policy_cls(
        env_spec=SPEC,
        hidden_sizes=(32, 32),
        lr=1e-2,
        target_update_interval=8,
        max_grad_norm=trainer_kwargs.pop("max_grad_norm", 0.5),
        log_interval=10**9,
    )
    policy.direct_optimizer_update = direct
    count = CountBackward()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        max_epochs=-1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        callbacks=[count, *callbacks],
        **trainer_kwargs,
    )
    trainer.fit(policy, datamodule=ReplayOnly())
    return policy, trainer, count.calls


@pytest.mark.parametrize("max_grad_norm", [0.5, None])
def test_direct_path_is_bit_identical_to_lightnings(tmp_path, max_grad_norm):
    runs = {}
    for direct in (True, False):
        checkpoints = ModelCheckpoint(
            dirpath=tmp_path / str(direct), every_n_train_steps=8, save_top_k=-1, filename="{step}"
        )
        runs[direct] = fit_dqn(
            tmp_path, direct, max_steps=42, callbacks=[checkpoints], max_grad_norm=max_grad_norm
        )
    (fast, fast_trainer, fast_calls), (slow, slow_trainer, slow_calls) = runs[True], runs[False]
    assert (fast_calls, slow_calls) == (0, 44)  # the direct path really was taken (and not on the other)
    for name, value in slow.state_dict().items():  # online and target nets
        assert torch.equal(fast.state_dict()[name], value), name
    fast_state, slow_state = fast_trainer.optimizers[0].state_dict(), slow_trainer.optimizers[0].state_dict()
    for param_id, state in slow_state["state"].items():
        for key, value in state.items():
            assert torch.equal(fast_state["state"][param_id][key], value), (param_id, key)
    # max_steps=42 at 4 updates per training_step stops after 44 updates on both paths
    assert fast_trainer.global_step == slow_trainer.global_step == fast.train_iter == 44
    progress = [
        t.fit_loop.epoch_loop.manual_optimization.optim_step_progress for t in (fast_trainer, slow_trainer)
    ]
    assert progress[0].total.ready == progress[0].total.completed == progress[1].total.completed == 44
    # ModelCheckpoint(every_n_train_steps) sees the same global_step
    saved = [sorted(p.name for p in (tmp_path / str(direct)).iterdir()) for direct in (True, False)]
    assert saved[0] == saved[1] == [f"step={n}.ckpt" for n in (16, 24, 32, 40, 8)]


def test_non_32_bit_precision_takes_lightnings_path(tmp_path):
    # (no clipping: Lightning's AMP plugin refuses to clip for a fused optimizer, which DQN's Adam is)
    policy, trainer, calls = fit_dqn(tmp_path, True, max_steps=8, precision="bf16-mixed", max_grad_norm=None)
    assert type(trainer.precision_plugin).__name__ == "MixedPrecision"
    assert calls == 8 and trainer.global_step == policy.train_iter == 8
    assert not policy._direct_update_applies(policy.optimizers())


class AfterBackward(pl.Callback):
    def __init__(self) -> None:
        self.calls = 0

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.calls += 1


class DQNWithStepHook(DQN):
    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.hook_calls = getattr(self, "hook_calls", 0) + 1


def test_an_overridden_update_hook_takes_lightnings_path_and_runs(tmp_path):
    hook = AfterBackward()
    policy, trainer, calls = fit_dqn(tmp_path, direct=True, max_steps=8, callbacks=[hook])
    assert calls == hook.calls == trainer.global_step == 8
    policy, trainer, calls = fit_dqn(tmp_path, direct=True, max_steps=8, policy_cls=DQNWithStepHook)
    assert calls == policy.hook_calls == trainer.global_step == 8


def test_the_default_trainer_takes_the_direct_path(tmp_path):
    policy, trainer, calls = fit_dqn(tmp_path, direct=True, max_steps=4)
    assert calls == 0 and policy._direct_update_applies(policy.optimizers())


def test_ppo_updates_are_bit_identical_on_both_paths(tmp_path, monkeypatch):
    nets = []
    for direct in (True, False):
        monkeypatch.setattr(RLPolicy, "direct_optimizer_update", direct)
        cli = RLCLI(args=[*ppo_args(tmp_path / str(direct), max_steps=30), "--trainer.logger=false"])
        assert cli.trainer.global_step == cli.model.train_iter == 30
        nets.append(cli.model.net.state_dict())
    for name, value in nets[1].items():
        assert torch.equal(nets[0][name], value), name


@pytest.mark.ddp
def test_two_rank_ddp_direct_path_gives_lightnings_replicas(tmp_path):
    reports = {}
    for direct in (True, False):
        root = tmp_path / str(direct)
        args = short_run_args(
            root,
            "--trainer.logger=false",
            RANK_REPORT,
            *([] if direct else ["--trainer.callbacks+=tests.ddp_probe.LightningUpdatePath"]),
            max_steps=24,
        )
        reports[direct] = run_two_ranks(args, root)
        assert [r["direct_update"] for r in reports[direct]] == [direct, direct]
    sums = {
        (direct, r["rank"]): (r["param_sum"], r["param_abs_sum"])
        for direct in reports
        for r in reports[direct]
    }
    assert len(set(sums.values())) == 1, sums  # all-reduced on both paths, and the same updates
    assert all(r["train_iter"] == 24 for direct in reports for r in reports[direct])
