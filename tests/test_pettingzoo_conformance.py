"""PettingZoo's own API and seed tests on the AEC env we ship (the league demo's matrix game) and on the
classic games our two-player layer plays by id."""

from __future__ import annotations

import pytest
from pettingzoo.test import api_test, seed_test

from lightning_rl.envs.two_player import aec_game_factory


@pytest.mark.filterwarnings("ignore:Environment has not defined a render")
@pytest.mark.parametrize("game", ["app_zoo.league_demo.matrix_game:env", "tictactoe_v3", "connect_four_v3"])
def test_api_and_seed_tests_pass(game):
    make = aec_game_factory(game)  # as a config's env_id resolves it
    api_test(make(), num_cycles=50)
    seed_test(make, num_cycles=20)
