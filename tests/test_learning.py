"""Seeded learning tests: the default config must actually solve CartPole."""

from __future__ import annotations

import pytest
from cli_utils import CONFIG

from lightning_rl.entry import serial_pipeline


@pytest.mark.learning
def test_default_dqn_config_solves_cartpole_within_50k_env_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = serial_pipeline(
        CONFIG, seed=0, **{"trainer.logger": False, "trainer.enable_progress_bar": False}
    )
    assert result["stop_value_reached"], result
    assert result["eval_return_mean"] >= 475 and result["env_steps"] <= 50_000
    assert result["ckpt_path"].endswith("best.ckpt")
