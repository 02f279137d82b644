"""Seeded learning tests of the multi-agent policies: each must clearly beat its untrained team within a
short budget (the full comparisons at equal env steps are benchmarks/marl.py's).

Untrained (the same configs, no updates): simple_spread about -105 (discrete actions) and -80 to -91
(continuous); cooperative LBF 5x5, 2 players, 1 food: 0.0-0.1.
"""

from __future__ import annotations

import pytest
from cli_utils import REPO

from lightning_rl.entry import serial_pipeline

pytest.importorskip("mpe2", reason="pip install 'lightning-rl[marl]'")
pytest.importorskip("lbforaging", reason="pip install 'lightning-rl[marl]'")

MPE = REPO / "app_zoo" / "mpe" / "configs"
LBF = REPO / "app_zoo" / "lbforaging" / "configs"
QUIET = {"trainer.logger": False, "trainer.enable_progress_bar": False}
SMALL_LBF = {"data.init_args.env_kwargs": {"env_id": "Foraging-5x5-2p-1f-coop-v3"}}


def reaches(tmp_path, monkeypatch, config, stop_value: float, budget: int, **overrides) -> dict:
    """``config`` on seed 0 reaches ``stop_value`` (the 20-episode eval) within ``budget`` env steps."""
    monkeypatch.chdir(tmp_path)
    overrides = {"evaluator.stop_value": stop_value, "data.init_args.max_env_steps": budget, **overrides}
    result = serial_pipeline(str(config), seed=0, **QUIET, **overrides)
    assert result["stop_value_reached"] and result["eval_return_mean"] >= stop_value, result
    return result


@pytest.mark.learning
@pytest.mark.parametrize("policy", ["qmix", "iql"])
def test_value_decomposition_and_independent_q_learners_spread_out(tmp_path, monkeypatch, policy):
    reaches(
        tmp_path,
        monkeypatch,
        MPE / f"simple_spread_{policy}.yaml",
        -85.0,
        40_000,
        **{"model.init_args.eps_decay_steps": 20_000, "evaluator.eval_interval": 100},
    )


@pytest.mark.learning
@pytest.mark.parametrize(("policy", "stop_value", "eval_interval"), [("ippo", 0.5, 100), ("ia2c", 0.3, 10)])
def test_independent_actor_critics_learn_to_forage_together(
    tmp_path, monkeypatch, policy, stop_value, eval_interval
):
    # eval_interval: updates in 4k env steps (IPPO: 20 per 800-step rollout; IA2C: 1 per 400)
    overrides = {**SMALL_LBF, "evaluator.eval_interval": eval_interval}
    reaches(tmp_path, monkeypatch, LBF / f"lbf_8x8_2p_2f_coop_{policy}.yaml", stop_value, 60_000, **overrides)


@pytest.mark.learning
def test_coma_spreads_out(tmp_path, monkeypatch):
    # COMA learns cooperative LBF too slowly for a test (0.1 at 60k env steps), so its test is MPE's
    reaches(
        tmp_path,
        monkeypatch,
        MPE / "simple_spread_coma.yaml",
        -90.0,
        60_000,
        **{"evaluator.eval_interval": 20},
    )


@pytest.mark.learning
@pytest.mark.parametrize("policy", ["atoc", "iddpg"])
def test_ddpg_teams_with_and_without_communication_spread_out(tmp_path, monkeypatch, policy):
    reaches(
        tmp_path,
        monkeypatch,
        MPE / f"simple_spread_continuous_{policy}.yaml",
        -70.0,
        12_000,
        **{
            "data.init_args.batch_size": 32,
            "data.init_args.learning_starts": 2000,
            "model.init_args.random_steps": 2000,
            "evaluator.eval_interval": 600,
        },
    )
