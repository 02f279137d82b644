"""Seeded learning tests: the default config and its main variants must actually solve CartPole."""

from __future__ import annotations

import pytest
from cli_utils import CONFIG, REPO

from lightning_rl.entry import serial_pipeline

QUIET = {"trainer.logger": False, "trainer.enable_progress_bar": False}


def solve(tmp_path, monkeypatch, seed: int = 0, **overrides) -> dict:
    monkeypatch.chdir(tmp_path)
    result = serial_pipeline(CONFIG, seed=seed, **QUIET, **overrides)
    assert result["stop_value_reached"], result
    assert result["eval_return_mean"] >= 475 and result["env_steps"] <= 50_000
    return result


@pytest.mark.learning
def test_default_dqn_config_solves_cartpole_within_50k_env_steps(tmp_path, monkeypatch):
    result = solve(tmp_path, monkeypatch)
    assert result["ckpt_path"].endswith("best.ckpt")


@pytest.mark.learning
def test_prioritized_dueling_dqn_solves_cartpole(tmp_path, monkeypatch):
    solve(
        tmp_path,
        monkeypatch,
        **{"data.init_args.prioritized": True, "model.init_args.dueling": True},
    )


@pytest.mark.learning
@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_default_config_solves_other_seeds(tmp_path, monkeypatch, seed):
    solve(tmp_path, monkeypatch, seed=seed)


def reaches(tmp_path, monkeypatch, config: str, seed: int, stop_value: float, budget: int) -> None:
    """``configs/<config>.yaml`` on ``seed`` reaches ``stop_value`` within ``budget`` env steps."""
    monkeypatch.chdir(tmp_path)
    result = serial_pipeline(str(REPO / "configs" / f"{config}.yaml"), seed=seed, **QUIET)
    assert result["stop_value_reached"] and result["eval_return_mean"] >= stop_value, result
    assert result["env_steps"] <= budget, result


@pytest.mark.learning
def test_rainbow_config_solves_cartpole(tmp_path, monkeypatch):
    # seed 2: 11k env steps to 475 (seeds 0 / 1: 21k / 28k, docs/benchmarks.md), to keep the suite short
    reaches(tmp_path, monkeypatch, "cartpole_rainbow", 2, 475, 50_000)


@pytest.mark.learning
def test_r2d2_solves_the_velocity_masked_cartpole(tmp_path, monkeypatch):
    # seed 1: 50k env steps to 475 (seeds 0 / 2: 122k / 70k, docs/benchmarks.md), to keep the suite short
    reaches(tmp_path, monkeypatch, "cartpole_masked_r2d2", 1, 475, 200_000)


def solve_pendulum(tmp_path, monkeypatch, algo: str, seed: int) -> None:
    # the bar: a 10-episode deterministic evaluation >= -200 within 20k env steps
    reaches(tmp_path, monkeypatch, f"pendulum_{algo}", seed, -200, 20_000)


@pytest.mark.learning
@pytest.mark.parametrize("algo", ["sac", "td3", "ddpg"])
def test_continuous_control_solves_pendulum(tmp_path, monkeypatch, algo):
    solve_pendulum(tmp_path, monkeypatch, algo, seed=0)


@pytest.mark.learning
@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("algo", ["sac", "td3", "ddpg"])
def test_continuous_control_solves_pendulum_on_other_seeds(tmp_path, monkeypatch, algo, seed):
    solve_pendulum(tmp_path, monkeypatch, algo, seed)
