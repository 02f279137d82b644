"""The league's matrix-game check (app_zoo.league_demo): the game as a PettingZoo AEC game behind
TwoPlayerEnv, its exploitability, and the main player of uniform self-play and of the league converging to
the Nash equilibrium [0.375, 0.625] over seeds 0-2."""

from __future__ import annotations

import numpy as np
import pytest

from app_zoo.league_demo import NASH, PAYOFF, exploitability
from app_zoo.league_demo.demo import run_league_demo
from lightning_rl.envs import TwoPlayerEnv


def test_the_equilibrium_makes_each_seat_indifferent_and_is_unexploitable():
    np.testing.assert_allclose(PAYOFF @ NASH, [-0.125, -0.125])  # the row player's value, either move
    np.testing.assert_allclose(NASH @ PAYOFF, [-0.125, -0.125])
    assert exploitability(NASH, NASH) == pytest.approx(0.0, abs=1e-12)
    # pure row 0 against pure column 0: the column's best response gains 5, the row's none: (3 + 2) / 2
    assert exploitability([1, 0], [1, 0]) == pytest.approx(2.5)


def test_the_game_runs_as_a_two_player_env_by_module_name():
    env = TwoPlayerEnv("app_zoo.league_demo.matrix_game")
    rewards = {0: [], 1: []}
    obs, _ = env.reset(seed=0)
    for _ in range(2000):
        assert obs[env.seat] == 1.0 and obs[2:].tolist() == [1.0, 1.0]  # its seat, both moves legal
        _, reward, terminated, _, _ = env.step(0)
        assert terminated
        rewards[env.seat].append(reward)
        obs, _ = env.reset()
    # move 0 against a uniformly random opponent: row earns (3 - 2) / 2, the column -(3 - 2) / 2
    assert np.mean(rewards[0]) == pytest.approx(0.5, abs=0.15)
    assert np.mean(rewards[1]) == pytest.approx(-0.5, abs=0.15)
    assert set(rewards[0]) == {3.0, -2.0} and set(rewards[1]) == {-3.0, 2.0}


@pytest.mark.parametrize("matchmaking", ["self_play", "league"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_main_player_converges_to_the_nash_equilibrium(matchmaking, seed):
    result = run_league_demo(matchmaking, seed)
    assert result.distance_to_nash <= 0.05, result.strategy
    assert result.exploitability < 0.1
    assert result.players == 101  # the main player and its 100 snapshots (one every 10 rounds)
