"""lightning_rl.league: the payoff table, PFSP, Elo and TrueSkill ratings by hand, the AlphaStar
matchmaking per role, snapshot rules and exploiter resets, and an exact state round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lightning_rl.league import EloRatings, League, Payoff, TrueSkillRatings, pfsp_probabilities


def test_payoff_decays_each_pairs_record_and_keeps_both_sides():
    payoff = Payoff(decay=0.5, min_games=0)
    payoff.update("a", "b", "win")
    payoff.update("a", "b", "win")
    payoff.update("a", "b", "loss")
    # wins 1 -> 0.5 + 1 = 1.5 -> 0.75; losses 0 -> 1; games 0.75 + 1 = 1.75
    assert payoff.games("a", "b") == pytest.approx(1.75)
    assert payoff.win_rate("a", "b") == pytest.approx(0.75 / 1.75)
    assert payoff.win_rate("b", "a") == pytest.approx(1.0 / 1.75)
    payoff.update("a", "c", "draw")
    assert payoff.win_rate("a", "c") == pytest.approx(0.5) and payoff.games("a", "b") == pytest.approx(1.75)


def test_payoff_needs_its_minimum_of_games_before_a_win_rate_counts():
    payoff = Payoff(decay=1.0, min_games=3)
    for _ in range(2):
        payoff.update("a", "b", "win")
    assert payoff.win_rate("a", "b") == 0.5  # the prior, two games only
    payoff.update("a", "b", "win")
    assert payoff.win_rate("a", "b") == 1.0 and payoff.win_rate("b", "a") == 0.0
    with pytest.raises(ValueError, match="outcome"):
        payoff.update("a", "b", "victory")
    with pytest.raises(ValueError, match="itself"):
        payoff.update("a", "a", "win")


def test_pfsp_weightings_by_hand():
    x = np.array([0.2, 0.5, 0.9])
    np.testing.assert_allclose(pfsp_probabilities(x, "squared"), np.array([0.64, 0.25, 0.01]) / 0.9)
    np.testing.assert_allclose(pfsp_probabilities(x, "variance"), np.array([0.16, 0.25, 0.09]) / 0.5)
    np.testing.assert_allclose(pfsp_probabilities(x, "linear"), np.array([0.8, 0.5, 0.1]) / 1.4)
    np.testing.assert_allclose(pfsp_probabilities(x, "uniform"), np.full(3, 1 / 3))
    np.testing.assert_allclose(pfsp_probabilities(np.ones(2), "squared"), [0.5, 0.5])  # all beaten
    with pytest.raises(ValueError, match="weighting"):
        pfsp_probabilities(x, "cubic")
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        pfsp_probabilities(np.array([1.5]))


def test_elo_by_hand():
    elo = EloRatings(k=32, initial=1000)
    elo.update("a", "b", "win")  # expected 0.5: +16 / -16
    assert elo.rating("a") == 1016 and elo.rating("b") == 984
    expected = 1 / (1 + 10 ** ((984 - 1016) / 400))
    elo.update("a", "b", "draw")
    assert elo.rating("a") == pytest.approx(1016 + 32 * (0.5 - expected))


def test_trueskill_moves_the_winner_up_and_shrinks_uncertainty():
    ratings = TrueSkillRatings()
    ratings.update("a", "b", "win")
    (mu_a, sigma_a), (mu_b, sigma_b) = ratings.rating("a"), ratings.rating("b")
    assert mu_a > 25 > mu_b and sigma_a < 25 / 3 and sigma_b < 25 / 3 and mu_a + mu_b == pytest.approx(50)
    assert ratings.conservative("a") == pytest.approx(mu_a - 3 * sigma_a)
    ratings.update("c", "d", "draw")
    assert ratings.rating("c")[0] == pytest.approx(25.0)


def league_with_history() -> League:
    league = League(min_games=0, payoff_decay=1.0, seed=0)
    league.add_player("main", {"w": 0})
    league.add_player("main_exploiter", {"w": 10})
    league.add_player("league_exploiter", {"w": 20})
    for parent in ("main_0", "main_0", "main_exploiter_0"):
        league.snapshot(parent, {"w": len(league.players)})
    return league


def test_a_main_player_plays_pfsp_self_play_and_verification_in_the_alphastar_mix():
    league = league_with_history()  # historical_0, _1 of main_0, historical_2 of main_exploiter_0
    for _ in range(3):
        league.record("main_0", "historical_0", "win")
    for _ in range(3):
        league.record("main_0", "historical_1", "loss")
    league.record("main_0", "historical_2", "win")
    picks = [league.choose_opponent("main_0") for _ in range(4000)]
    share = {name: picks.count(name) / len(picks) for name in set(picks)}
    # PFSP squared (half the games) over win rates (1, 0, 1): historical_1 only. Verification (15%): no
    # losing exploiter snapshot, so main_0's own snapshots it wins < 70% against: historical_1 again.
    # Self-play (35%): main_0 against itself (it is the only main player).
    assert share["main_0"] == pytest.approx(0.35, abs=0.03)
    assert share["historical_1"] == pytest.approx(0.65, abs=0.03)


def test_a_fixed_share_of_a_main_players_games_goes_to_the_opponents_without_a_parent():
    league = League(fixed_opponent_prob=0.2, pfsp_prob=0.5, verification_prob=0.0, min_games=0, seed=0)
    league.add_player("main", {"w": 0})
    league.add_player("historical", player_id="random")  # a fixed opponent: no parent
    league.snapshot("main_0", {"w": 1})  # historical_0, a snapshot of main_0
    for _ in range(20):
        league.record("main_0", "random", "win")  # beaten: PFSP squared gives it weight 0
    league.record("main_0", "historical_0", "loss")
    picks = [league.choose_opponent("main_0") for _ in range(4000)]
    share = {name: picks.count(name) / len(picks) for name in set(picks)}
    # 20% the fixed opponent; PFSP (50%) all on historical_0; self-play the remaining 30%
    assert share["random"] == pytest.approx(0.2, abs=0.02)
    assert share["historical_0"] == pytest.approx(0.5, abs=0.03)
    assert share["main_0"] == pytest.approx(0.3, abs=0.03)
    assert [p.player_id for p in league.fixed_opponents()] == ["random"]
    with pytest.raises(ValueError, match="summing to at most 1"):
        League(fixed_opponent_prob=0.5, pfsp_prob=0.5, verification_prob=0.15)


def test_exploiters_aim_at_the_main_players_and_the_league():
    league = league_with_history()
    assert {league.choose_opponent("main_exploiter_0") for _ in range(50)} == {"main_0"}
    for _ in range(3):
        league.record("main_exploiter_0", "main_0", "loss")  # win rate 0 <= 0.1: the main's snapshots
    assert {league.choose_opponent("main_exploiter_0") for _ in range(50)} <= {"historical_0", "historical_1"}
    league.add_player("historical", {"w": "fixed"})  # an opponent without a parent: part of the history
    league.record("league_exploiter_0", "historical_0", "win")
    picks = {league.choose_opponent("league_exploiter_0") for _ in range(200)}
    assert picks <= {"historical_0", "historical_1", "historical_2", "historical_3"} and len(picks) > 1


def test_snapshots_freeze_a_copy_with_its_parent_and_reset_exploiters():
    league = League(min_snapshot_steps=100, max_snapshot_steps=1000, min_games=0, seed=0)
    main = league.add_player("main", {"w": 0})
    exploiter = league.add_player("main_exploiter", {"w": 0})
    assert not league.ready_to_snapshot(main.player_id)  # below min_snapshot_steps
    league.add_steps(main.player_id, 100)
    assert league.ready_to_snapshot(main.player_id)  # no history yet: the first snapshot starts it
    frozen = league.snapshot(main.player_id, {"w": 1})
    assert (frozen.role, frozen.parent_id, frozen.weights, main.steps) == (
        "historical",
        "main_0",
        {"w": 1},
        0,
    )
    league.add_steps(exploiter.player_id, 150)
    league.record(exploiter.player_id, main.player_id, "win")
    assert league.ready_to_snapshot(exploiter.player_id)  # beats the main player: win rate 1 >= 0.7
    league.snapshot(exploiter.player_id, {"w": 5})
    assert exploiter.weights == {"w": 0} and league.players["historical_1"].weights == {"w": 5}  # reset
    league.add_steps(main.player_id, 1000)
    league.record(main.player_id, "historical_0", "loss")
    assert league.ready_to_snapshot(main.player_id)  # losing, but past max_snapshot_steps


def test_the_league_state_round_trips_exactly_including_its_random_generator():
    league = league_with_history()
    league.record("main_0", "historical_1", "win")
    state = league.state_dict()
    restored = League(seed=123)
    restored.load_state_dict(state)
    assert restored.state_dict()["players"] == state["players"]
    assert [league.choose_opponent("main_0") for _ in range(50)] == [
        restored.choose_opponent("main_0") for _ in range(50)
    ]
    assert restored.elo.rating("main_0") == league.elo.rating("main_0")
    assert restored.trueskill.rating("main_0") == league.trueskill.rating("main_0")
    assert not math.isnan(restored.payoff.win_rate("main_0", "historical_1"))


def test_uniform_self_play_mixes_its_current_weights_and_every_snapshot_alike():
    league = League.uniform_self_play(snapshot_interval=100, self_play_prob=0.25, seed=0)
    league.add_player("main", weights=0, player_id="main_0")
    assert league.choose_opponent("main_0") == "main_0"  # no snapshot yet: itself
    league.add_steps("main_0", 99)
    assert not league.ready_to_snapshot("main_0")
    for version in range(3):
        league.add_steps("main_0", 100)
        assert league.ready_to_snapshot("main_0")
        league.snapshot("main_0", weights=version)
    picks = [league.choose_opponent("main_0") for _ in range(4000)]
    counts = {p: picks.count(p) for p in set(picks)}
    assert counts["main_0"] == pytest.approx(1000, abs=100)
    for snapshot in ("historical_0", "historical_1", "historical_2"):
        assert counts[snapshot] == pytest.approx(1000, abs=100)
    with pytest.raises(ValueError, match="self_play_prob"):
        League.uniform_self_play(10, self_play_prob=1.5)
