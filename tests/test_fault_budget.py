"""The env managers' fault budget: sporadic faults are survived however long the episodes, a broken env
stops with one line, and a broken evaluation env never costs a finished training run its result."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from cli_utils import short_run_args
from test_env_managers import MANAGERS, CountingEnv, markers

from lightning_rl.cli import RLCLI, main
from lightning_rl.datamodules import OffPolicyDataModule
from lightning_rl.envs import EnvManagerError
from lightning_rl.errors import ReportedError
from lightning_rl.utils.checks import ConfigError


def zeros(obs: torch.Tensor) -> torch.Tensor:
    return torch.zeros(len(obs), dtype=torch.int64)


@pytest.mark.parametrize("manager", MANAGERS)
def test_sporadic_faults_in_long_episodes_are_survived_and_counted(manager, tmp_path):
    """500-step episodes, 1% of steps raise: almost no episode ends (0.99^500 < 1%), yet 10k steps run
    through, and every fault is counted, per kind and per env."""
    cfg = {"length": 500, "p_error": 0.01, "marker_dir": str(tmp_path)}
    env = manager(CountingEnv, env_cfg=[cfg] * 4, max_retries=3)
    try:
        env.reset(seed=0)
        dropped = sum(int(env.step(np.zeros(4, dtype=np.int64))[4]["dropped"].sum()) for _ in range(2_500))
        stats = env.stats()
    finally:
        env.close()
    injected = markers(tmp_path, "error")
    assert injected > 50
    assert stats["faults/error"] == env.env_faults.sum() == dropped == injected
    assert stats["env_steps"] + dropped == 10_000


@pytest.mark.parametrize("vectorization", ["sync", "subprocess"])
def test_evaluation_of_long_episodes_with_sporadic_faults_succeeds(vectorization, tmp_path):
    """What ``validate`` runs: whole 500-step episodes although most attempts hit a fault (0.5% of steps)."""
    cfg = {"length": 500, "p_error": 0.005, "marker_dir": str(tmp_path)}
    dm = OffPolicyDataModule(
        env_id=None, env_fn=CountingEnv, env_kwargs={"cfg": cfg}, n_envs=2, vectorization=vectorization
    )
    policy = type("Zero", (), {"act": lambda self, obs, mode: zeros(obs)})()
    try:
        stats = dm.evaluate(policy, n_episodes=4, seed=10_000)
        faults = dm._eval_env.stats()["faults/error"]
    finally:
        dm.teardown("validate")
    assert stats.lengths.tolist() == [500] * 4
    assert faults == markers(tmp_path, "error") >= 4  # more than max_retries: no episode in between


class ScriptedFaults(CountingEnv):
    """Raises at the step calls in ``fail_at``, counted in the file ``counter`` over every instance the
    manager builds (also in rebuilt worker processes)."""

    def __init__(self, cfg: dict | None = None):
        super().__init__(cfg)
        self.fail_at, self.counter = set(cfg["fail_at"]), Path(cfg["counter"])

    def step(self, action):
        calls = int(self.counter.read_text() or 0) + 1 if self.counter.exists() else 1
        self.counter.write_text(str(calls))
        if calls in self.fail_at:
            raise RuntimeError(f"scripted fault at call {calls}")
        return super().step(action)


@pytest.mark.parametrize("manager", MANAGERS)
def test_one_successful_step_resets_the_count(manager, tmp_path):
    """Three faults, one good step, three faults, ...: never four in a row, so never broken, though no
    episode ever ends (the old budget counted faults per episode and gave up after four)."""
    fail_at = [call for call in range(1, 120) if call % 4]  # calls 4, 8, ... succeed
    cfg = {"length": 1000, "fail_at": fail_at, "counter": str(tmp_path / "calls")}
    env = manager(ScriptedFaults, env_cfg=[cfg], max_retries=3, max_fault_rate=None)
    try:
        env.reset(seed=0)
        for _ in range(120):
            env.step(np.zeros(1, dtype=np.int64))
        assert env.stats()["faults/error"] == len(fail_at) and env.stats()["episodes"] == 0
    finally:
        env.close()


class AlwaysFails(CountingEnv):
    """Raises on every step (``where="step"``) or every reset (``where="reset"``)."""

    def __init__(self, cfg: dict | None = None):
        super().__init__(cfg)
        self.where = cfg.get("where")

    def reset(self, *, seed=None, options=None):
        if self.where == "reset":
            raise OSError("simulator license expired")
        return super().reset(seed=seed, options=options)

    def step(self, action):
        if self.where == "step":
            raise OSError("simulator license expired")
        return super().step(action)


@pytest.mark.parametrize("where", ["step", "reset"])
@pytest.mark.parametrize("manager", MANAGERS)
def test_a_permanently_broken_env_stops_after_max_retries_plus_one_faults(manager, where):
    env = manager(AlwaysFails, env_cfg=[{"length": 5}, {"where": where}], max_retries=2, env_name="Sim-v0")
    try:
        with pytest.raises(EnvManagerError) as info:
            env.reset(seed=0)
            for _ in range(10):
                env.step(np.zeros(2, dtype=np.int64))
        assert env.stats()["faults/error"] == 3 and env.env_faults.tolist() == [0, 3]
    finally:
        env.close()
    assert isinstance(info.value, ReportedError) and info.value.exit_code == 1
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("env 1 (Sim-v0) is broken: 3 faults in a row without a successful step")
    assert "max_retries=2" in message and "OSError: simulator license expired" in message


@pytest.mark.parametrize("manager", MANAGERS)
def test_an_env_failing_at_the_rate_bound_is_broken(manager, tmp_path):
    """Never two faults in a row, but half of its steps: broken once its window is full (the faults in
    the last ``fault_window`` outcomes reach ``max_fault_rate``)."""
    cfg = {"length": 1000, "fail_at": range(1, 200, 2), "counter": str(tmp_path / "calls")}
    env = manager(ScriptedFaults, env_cfg=[cfg], max_retries=3, fault_window=20)
    try:
        env.reset(seed=0)
        with pytest.raises(EnvManagerError, match=r"10 faults in its last 20 steps \(max_fault_rate=0.5"):
            for _ in range(100):
                env.step(np.zeros(1, dtype=np.int64))
        assert env.stats()["faults/error"] == 10
    finally:
        env.close()


@pytest.mark.parametrize(
    ("knob", "value", "message"),
    [
        ("max_retries", -1, "env_manager.max_retries must be an int >= 0, got -1"),
        ("max_fault_rate", 1.5, r"env_manager.max_fault_rate must be in \(0, 1\], got 1.5"),
        ("fault_window", 0, "env_manager.fault_window must be an int >= 1, got 0"),
    ],
)
def test_fault_budget_knobs_are_checked_when_the_datamodule_is_built(knob, value, message):
    with pytest.raises(ConfigError, match=message):
        OffPolicyDataModule(env_manager={knob: value})


class FaultyCartPole(gym.Wrapper):
    """CartPole that raises on every step when ``broken`` (for a CLI run's evaluation envs only)."""

    def __init__(self, broken: bool = False):
        super().__init__(gym.make("CartPole-v1"))
        self.broken = broken

    def step(self, action):
        if self.broken:
            raise RuntimeError("eval simulator down")
        return self.env.step(action)


def faulty_run_args(root: Path, *extra: str, max_steps: int = 120) -> list[str]:
    return short_run_args(
        root,
        "--data.init_args.env_id=null",
        "--data.init_args.env_fn=test_fault_budget.FaultyCartPole",
        "--data.init_args.env_manager={max_retries: 1}",
        *extra,
        max_steps=max_steps,
    )


def test_a_broken_eval_env_costs_the_run_neither_its_result_nor_its_checkpoints(tmp_path, caplog):
    """Every evaluation (two periodic ones, the final one at 120 updates) hits a broken eval env: each
    fails with a warning, training runs to its end and writes result.json and last.ckpt."""
    cli = RLCLI(args=faulty_run_args(tmp_path, "--data.init_args.eval_env_kwargs={broken: true}"))
    result = json.loads((Path(cli.trainer.log_dir) / "result.json").read_text())
    assert result["train_iter"] == 120 and result["eval_return_mean"] is None
    assert result["eval_error"].startswith("env 0 (FaultyCartPole) is broken: 2 faults in a row")
    assert Path(result["ckpt_path"]).name == "last.ckpt" and Path(result["ckpt_path"]).exists()
    failed = [r.getMessage() for r in caplog.records if "evaluation at train_iter" in r.getMessage()]
    assert len(failed) == 3 and failed[-1].startswith("evaluation at train_iter 120 failed: env 0")


def test_a_broken_training_env_stops_the_run_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(faulty_run_args(tmp_path, "--data.init_args.env_kwargs={broken: true}"))
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("error: env 0 (FaultyCartPole) is broken: 2 faults in a row")
    assert "RuntimeError: eval simulator down" in lines[-1]
    assert not any(line.startswith("Traceback") for line in lines)
