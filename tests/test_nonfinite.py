"""Non-finite losses, gradients and parameters (RLPolicy.on_nonfinite): a diverged run stops with one line
naming the update, the policy and the term, keeps its last good checkpoints and exits non-zero; with
``skip_step`` the bad update is dropped and the run goes on."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from cli_utils import REPO, short_run_args
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from tensordict import TensorDict
from test_on_policy_family import ppo_args
from test_optimizer_update import SPEC, ReplayOnly

from lightning_rl import keys
from lightning_rl.cli import main
from lightning_rl.policies import A2C, DQN, PPO
from lightning_rl.policies.nonfinite import NonFinite, NonFiniteError, NonFiniteGuard

NAN = float("nan")


class NaNAt:
    """The ``nan_at``-th ``training_update`` call gets NaN in its batch's ``nan_key`` (0: never)."""

    nan_key: str

    def __init__(self, nan_at: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.calls = 0

    def training_update(self, batch: TensorDict) -> None:
        self.calls += 1
        if self.calls == self.hparams.nan_at:
            batch = batch.clone()
            batch[self.nan_key] = torch.full_like(batch[self.nan_key], NAN)
        super().training_update(batch)


class NaNRewardDQN(NaNAt, DQN):
    nan_key = keys.REWARD


class NaNReturnsPPO(NaNAt, PPO):
    nan_key = keys.RETURNS


class Deferred:
    """Leaves the checked values unread, as on an accelerator (read every ``log_interval`` updates and
    before saves, evaluations and rollouts)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.nonfinite = NonFiniteGuard(defer=True)


class DeferredNaNRewardDQN(Deferred, NaNRewardDQN):
    pass


class DeferredNaNReturnsPPO(Deferred, NaNReturnsPPO):
    pass


class NaNAdvantageA2C(NaNAt, A2C):
    nan_key = keys.ADVANTAGE


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """``lightning-rl`` in-process: its exit status and its ``error:`` lines on stderr."""
    try:
        main(args)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    return code, errors


def checkpoint_every(n: int) -> str:
    """A ``--trainer.callbacks`` ModelCheckpoint saving ``last.ckpt`` every ``n`` updates."""
    checkpoint = {
        "class_path": "pytorch_lightning.callbacks.ModelCheckpoint",
        "init_args": {"save_last": True, "save_top_k": 0, "every_n_train_steps": n},
    }
    return f"--trainer.callbacks=[{json.dumps(checkpoint)}]"


def finite_checkpoint(path: Path) -> dict[str, Any]:
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    for name, value in checkpoint["state_dict"].items():
        assert torch.isfinite(value).all(), f"{path.name}: {name}"
    return checkpoint


def run_dirs(root: Path) -> list[Path]:
    return sorted((root / "csv").glob("version_*"))


def test_dqn_with_a_huge_learning_rate_stops_at_once_with_one_line(tmp_path, capsys):
    code, errors = run_main(short_run_args(tmp_path, "--model.init_args.lr=1e30"), capsys)
    assert code == 1
    # Adam's first step moves every weight by ~lr: the TD loss of update 2 overflows
    assert errors == ["error: DQN: non-finite loss/td (nan) at update 2; no checkpoint was written before it"]
    (run,) = run_dirs(tmp_path)
    assert not (run / "result.json").exists()
    assert not list(run.glob("checkpoints/*.ckpt"))


@pytest.mark.parametrize("policy", ["NaNRewardDQN", "DeferredNaNRewardDQN"])
def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoints(tmp_path, capsys, policy):
    # last.ckpt every 20 updates, best.ckpt at the first evaluation (update 52: 4 updates a step), NaN TD
    # targets at update 90. On the CPU the run stops at update 90; with the values left on the device (as
    # on a GPU) at the next read, at update 100 (log_interval), before last.ckpt would be saved again.
    args = short_run_args(
        tmp_path,
        f"--model=test_nonfinite.{policy}",
        "--model.init_args.nan_at=90",
        checkpoint_every(20),
        max_steps=200,
    )
    code, errors = run_main(args, capsys)
    run = run_dirs(tmp_path)[0]
    last, best = run / "checkpoints" / "last.ckpt", run / "checkpoints" / "best.ckpt"
    assert code == 1
    assert errors == [f"error: {policy}: non-finite loss/td (nan) at update 90; last good checkpoint: {last}"]
    assert finite_checkpoint(last)["train_iter"] == 80
    assert finite_checkpoint(best)["train_iter"] == 52
    assert not (run / "result.json").exists()


def test_the_deferred_check_reads_before_an_evaluation(tmp_path, capsys):
    # no checkpoint save and no log_interval read before the evaluation of update 50: it reads first
    args = short_run_args(
        tmp_path, "--model=test_nonfinite.DeferredNaNRewardDQN", "--model.init_args.nan_at=42", max_steps=200
    )
    code, errors = run_main(args, capsys)
    assert code == 1
    assert errors == [
        "error: DeferredNaNRewardDQN: non-finite loss/td (nan) at update 42; no checkpoint was "
        "written before it"
    ]
    assert not list(run_dirs(tmp_path)[0].glob("checkpoints/*.ckpt"))


@pytest.mark.parametrize(
    "policy, extra, best_iter",
    [
        ("NaNReturnsPPO", [], 20),  # stops at update 33, before the evaluation of update 40
        # unread until the next rollout (update 40's minibatches were the rollout's last): no evaluation
        ("DeferredNaNReturnsPPO", ["--evaluator.eval_interval=1000"], None),
    ],
)
def test_ppo_stops_at_a_nan_value_loss(tmp_path, capsys, policy, extra, best_iter):
    args = [
        *ppo_args(tmp_path, max_steps=60),
        *extra,
        f"--model=test_nonfinite.{policy}",
        "--model.init_args.nan_at=33",
    ]
    code, errors = run_main(args, capsys)
    assert code == 1
    assert len(errors) == 1 and errors[0].startswith(
        f"error: {policy}: non-finite loss/value (nan) at update 33;"
    )
    run = run_dirs(tmp_path)[0]
    if best_iter is None:
        assert not (run / "checkpoints" / "best.ckpt").exists()
    else:
        assert finite_checkpoint(run / "checkpoints" / "best.ckpt")["train_iter"] == best_iter
    assert not (run / "result.json").exists()


def test_a2c_skip_step_drops_the_nan_update_and_finishes(tmp_path, capsys):
    args = [
        "fit",
        f"--config={REPO / 'configs' / 'cartpole_a2c.yaml'}",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.max_steps=40",
        "--trainer.enable_progress_bar=false",
        "--evaluator.eval_interval=20",
        "--evaluator.n_episodes=2",
        "--model=test_nonfinite.NaNAdvantageA2C",
        "--model.init_args.nan_at=10",
        "--model.init_args.on_nonfinite=skip_step",
        "--model.init_args.log_interval=5",
    ]
    code, errors = run_main(args, capsys)
    assert (code, errors) == (0, [])
    run = run_dirs(tmp_path)[0]
    result = json.loads((run / "result.json").read_text())
    assert result["train_iter"] == 40  # 41 updates taken, one of them skipped
    with open(run / "metrics.csv") as f:
        skipped = [
            row["train/skipped_nonfinite"] for row in csv.DictReader(f) if row["train/skipped_nonfinite"]
        ]
    assert skipped[0] == "0.0" and skipped[-1] == "1.0"
    assert finite_checkpoint(run / "checkpoints" / "last.ckpt")["skipped_nonfinite"] == 1


class SnapshotNaNRewardDQN(NaNRewardDQN):
    """Records the weights, optimizer state and counters around the NaN update."""

    def training_update(self, batch: TensorDict) -> None:
        if self.calls + 1 != self.hparams.nan_at:
            return super().training_update(batch)
        before = self.snapshot()
        super().training_update(batch)
        self.around_nan = before, self.snapshot()
        self.grads_after_nan = [param.grad for param in self.net.parameters()]

    def snapshot(self) -> tuple[dict[str, torch.Tensor], dict[str, Any], int, int]:
        state = {name: value.clone() for name, value in self.state_dict().items()}
        optimizer = self.optimizers().optimizer.state_dict()
        optimizer_state = {
            (index, key): value.clone()
            for index, entry in optimizer["state"].items()
            for key, value in entry.items()
        }
        return state, optimizer_state, self.train_iter, self.trainer.global_step


def fit_replay(
    root: Path, policy: DQN, max_steps: int = 40, checkpoint: ModelCheckpoint | None = None
) -> pl.Trainer:
    trainer = pl.Trainer(
        callbacks=[] if checkpoint is None else [checkpoint],
        accelerator="cpu",
        max_steps=max_steps,
        max_epochs=-1,
        logger=CSVLogger(root, name="csv"),
        enable_checkpointing=checkpoint is not None,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(policy, datamodule=ReplayOnly())
    return trainer


def replay_dqn(cls: type[DQN] = SnapshotNaNRewardDQN, **kwargs: Any) -> DQN:
    torch.manual_seed(0)
    return cls(env_spec=SPEC, hidden_sizes=(32, 32), lr=1e-2, target_update_interval=8, **kwargs)


def test_skip_step_leaves_weights_and_optimizer_state_untouched(tmp_path):
    policy = replay_dqn(nan_at=7, on_nonfinite="skip_step", log_interval=4)
    trainer = fit_replay(tmp_path, policy, max_steps=40)
    (state, optimizer, train_iter, step), after = policy.around_nan
    assert after[2:] == (train_iter, step) == (6, 6)  # neither counter moved
    for name, value in state.items():  # online and target nets
        assert torch.equal(after[0][name], value), name
    assert after[1].keys() == optimizer.keys()
    assert all(torch.equal(after[1][key], value) for key, value in optimizer.items())
    assert policy.grads_after_nan == [None] * len(policy.grads_after_nan)
    # the run went on to its budget of applied updates (4 per step: 44 calls, one skipped -> 43 updates)
    assert policy.skipped_nonfinite == 1 and trainer.global_step == policy.train_iter == 43
    assert all(torch.isfinite(value).all() for value in policy.state_dict().values())
    with open(Path(trainer.logger.log_dir) / "metrics.csv") as f:
        rows = [row for row in csv.DictReader(f) if row["train/skipped_nonfinite"]]
    assert [(row["train_iter"], row["train/skipped_nonfinite"]) for row in rows][:3] == [
        ("4.0", "0.0"),
        ("8.0", "1.0"),
        ("12.0", "1.0"),
    ]


def test_skip_step_still_stops_on_non_finite_parameters(tmp_path):
    # finite loss and gradients, but an SGD step of 1e38 * grad overflows the weights
    class HugeStepDQN(DQN):
        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.net.parameters(), lr=1e38)

    policy = replay_dqn(HugeStepDQN, on_nonfinite="skip_step", max_grad_norm=None)
    with pytest.raises(
        NonFiniteError,
        match=r"HugeStepDQN: non-finite parameters of net\.\S+ \(norm (inf|nan)\) at update 1;",
    ):
        fit_replay(tmp_path, policy)


class CorruptedParameterDQN(DQN):
    """A parameter no loss uses is set to inf after update 6 (as by a buggy in-place edit)."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.unused = torch.nn.Parameter(torch.zeros(3))

    def training_update(self, batch: TensorDict) -> None:
        super().training_update(batch)
        if self.train_iter == 6:
            with torch.no_grad():
                self.unused.fill_(math.inf)


@pytest.mark.parametrize("log_interval, save_every", [(4, None), (1000, 8)])
def test_parameters_are_scanned_at_the_periodic_read_and_before_a_save(tmp_path, log_interval, save_every):
    checkpoint = (
        None if save_every is None else ModelCheckpoint(tmp_path / "ckpt", every_n_train_steps=save_every)
    )
    policy = replay_dqn(CorruptedParameterDQN, log_interval=log_interval)
    with pytest.raises(
        NonFiniteError,
        match=r"^CorruptedParameterDQN: non-finite parameters of unused \(norm inf\) "
        r"at update 8; no checkpoint was written before it$",
    ):
        fit_replay(tmp_path, policy, checkpoint=checkpoint)
    assert not list(tmp_path.glob("ckpt/*"))


def test_a_refused_nan_priority_is_reported_as_the_nan_update(tmp_path):
    # values unread (as on an accelerator) when the prioritized buffer refuses the NaN TD errors
    policy = replay_dqn(DeferredNaNRewardDQN, nan_at=7, log_interval=1000)
    with pytest.raises(NonFiniteError, match=r"non-finite loss/td \(nan\) at update 7;") as caught:
        fit_replay(tmp_path, policy)
    assert "priority must be finite" in str(caught.value.__context__)


def test_an_unknown_mode_is_a_config_error(tmp_path, capsys):
    with pytest.raises(
        ValueError, match=r"on_nonfinite must be one of \['skip_step', 'stop'\], got 'ignore'"
    ):
        DQN(env_spec=SPEC, on_nonfinite="ignore")
    code, _ = run_main(short_run_args(tmp_path, "--model.init_args.on_nonfinite=ignore"), capsys)
    assert code == 2
    assert not tmp_path.joinpath("csv").exists()


def test_the_guard_names_the_first_bad_value_of_deferred_records():
    guard = NonFiniteGuard(max_pending=3, defer=True)
    guard.record(1, ("a", "b"), torch.tensor([1.0, 2.0]))
    guard.record(2, ("a", "b", "c"), torch.tensor([1.0, 3e38, 3e38]))  # the sum overflows: finite values
    assert guard.first_bad() is None and guard.records == 2
    guard.record(3, ("a", "b"), torch.tensor([1.0, -math.inf]))
    guard.record(4, ("a",), torch.tensor([NAN]))
    guard.record(5, ("a",), torch.tensor([NAN]))  # the third pending record: read now
    assert guard._pending == []
    assert guard.first_bad() == NonFinite(3, "b", -math.inf)
    at_once = NonFiniteGuard()
    at_once.record(1, ("a", "b"), torch.tensor([NAN, 2.0]))
    found = at_once.first_bad()
    assert (found.update, found.term) == (1, "a") and math.isnan(found.value)
