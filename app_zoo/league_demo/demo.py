"""The league's matrix-game check: does the main player of uniform self-play or of the AlphaStar league
converge to the equilibrium of :data:`~app_zoo.league_demo.matrix_game.PAYOFF` ([0.375, 0.625])?

Every active player is a seat-conditioned softmax strategy (logits ``(2 seats, 2 actions)``) that learns by
entropy-regularized natural policy gradient (multiplicative weights): after each batch of games against
the opponents :class:`~lightning_rl.league.League` matched it with, ``logits <- (1 - lr * temperature) *
logits + lr * values``, ``values`` its expected payoff per action against those opponents' strategies.
Without opponents' changes this converges to the entropy-regularized best response (quantal response);
together the players approach the game's logit equilibrium, within 0.015 of the Nash equilibrium at
``temperature=0.2``. The sampled games feed the payoff table and the ratings, so PFSP, the snapshot rule
and the exploiters' resets work on real results.

Run ``python -m app_zoo.league_demo.demo`` for the table of both modes over seeds 0-2.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal

import numpy as np

from app_zoo.league_demo.matrix_game import NASH, PAYOFF, exploitability
from lightning_rl.league import League

__all__ = ["DemoResult", "Matchmaking", "run_league_demo"]

Matchmaking = Literal["self_play", "league"]
MAIN = "main_0"


@dataclass(frozen=True)
class DemoResult:
    """What a run ends with: the main player's strategy per seat ``(2, 2)`` (row: seat), its
    exploitability, and how many players the league grew to."""

    strategy: np.ndarray
    exploitability: float
    players: int

    @property
    def distance_to_nash(self) -> float:
        """The largest deviation of either seat's probabilities from :data:`NASH`."""
        return float(np.abs(self.strategy - NASH).max())


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _league(matchmaking: Matchmaking, snapshot_games: int, seed: int) -> League:
    if matchmaking == "self_play":
        return League.uniform_self_play(snapshot_games, self_play_prob=0.5, seed=seed)
    if matchmaking == "league":
        # the win rates of a game this close to a coin flip never reach the usual 0.7: snapshot on time
        return League(min_snapshot_steps=snapshot_games, max_snapshot_steps=snapshot_games, seed=seed)
    raise ValueError(f"matchmaking must be 'self_play' or 'league', got {matchmaking!r}")


def run_league_demo(
    matchmaking: Matchmaking = "league",
    seed: int = 0,
    iterations: int = 1000,
    games: int = 64,
    temperature: float = 0.2,
    lr: float = 0.1,
    snapshot_interval: int = 10,
    exploiters: bool = False,
) -> DemoResult:
    """Train the league for ``iterations`` rounds of ``games`` games per active player.

    Args:
        matchmaking: ``"self_play"`` (:meth:`League.uniform_self_play`) or ``"league"`` (the AlphaStar
            main player's mix: PFSP, verification and self-play).
        exploiters: a main exploiter and a league exploiter learn beside the main player (``"league"``
            only); their snapshots are best responses the main player then faces, which pull it off the
            equilibrium by up to 0.065 in 1000 rounds (0.03 without).
        seed: the matchmaking's, seats' and moves' random source.
        temperature, lr: the entropy weight and step size of the learners' update.
        snapshot_interval: rounds between snapshots.
    """
    rng = np.random.default_rng(seed)
    league = _league(matchmaking, snapshot_interval * games, seed)
    league.add_player("main", np.zeros((2, 2)), player_id=MAIN)
    if matchmaking == "league" and exploiters:
        league.add_player("main_exploiter", np.zeros((2, 2)))
        league.add_player("league_exploiter", np.zeros((2, 2)))
    for _ in range(iterations):
        for learner in league.of_role("main", "main_exploiter", "league_exploiter"):
            mine = _softmax(learner.weights)
            seats = np.arange(games) % 2
            opponents = [league.choose_opponent(learner.player_id) for _ in range(games)]
            strategies = [_softmax(league.players[o].weights) for o in opponents]
            theirs = np.stack([strategy[1 - seat] for strategy, seat in zip(strategies, seats, strict=True)])
            # expected payoff per action of mine against each game's opponent strategy: (games, 2)
            values = np.where(seats[:, None] == 0, theirs @ PAYOFF.T, -(theirs @ PAYOFF))
            my_moves = (rng.random(games) > mine[seats, 0]).astype(int)
            their_moves = (rng.random(games) > theirs[:, 0]).astype(int)
            payoffs = np.where(seats == 0, PAYOFF[my_moves, their_moves], -PAYOFF[their_moves, my_moves])
            for opponent, payoff in zip(opponents, payoffs, strict=True):
                league.record(learner.player_id, opponent, "win" if payoff > 0 else "loss")
            values = np.stack([values[seats == seat].mean(0) for seat in (0, 1)])
            learner.weights = (1 - lr * temperature) * learner.weights + lr * values
            league.add_steps(learner.player_id, games)
            if league.ready_to_snapshot(learner.player_id):
                league.snapshot(learner.player_id, learner.weights)
    strategy = _softmax(league.players[MAIN].weights)
    return DemoResult(strategy, exploitability(strategy[0], strategy[1]), len(league.players))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--exploiters", action="store_true", help="the league with both exploiters too")
    args = parser.parse_args()
    print(f"Nash: {NASH.tolist()} for both seats")
    print(
        "| matchmaking | seed | row P(a=0) | column P(a=0) | max distance to Nash | exploitability "
        "| players |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for matchmaking in ("self_play", "league"):
        for seed in args.seeds:
            result = run_league_demo(
                matchmaking, seed, iterations=args.iterations, exploiters=args.exploiters
            )
            row, col = result.strategy[:, 0]
            print(
                f"| {matchmaking} | {seed} | {row:.3f} | {col:.3f} | {result.distance_to_nash:.3f} "
                f"| {result.exploitability:.3f} | {result.players} |"
            )


if __name__ == "__main__":
    main()
