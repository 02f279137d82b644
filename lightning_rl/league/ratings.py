"""Ratings of league players from their games: Elo, and TrueSkill-style Bayesian ratings (openskill)."""

from __future__ import annotations

from typing import Any

from lightning_rl.league.payoff import Outcome

__all__ = ["EloRatings", "TrueSkillRatings"]

_SCORE = {"win": 1.0, "draw": 0.5, "loss": 0.0}


class EloRatings:
    """Elo: ``E = 1 / (1 + 10^((R_away - R_home) / 400))``, then ``R_home += k (S - E)`` and the
    opposite for ``away`` (``S``: 1 win, 0.5 draw, 0 loss). A new player starts at ``initial``."""

    def __init__(self, k: float = 32.0, initial: float = 1000.0):
        self.k, self.initial = k, initial
        self._ratings: dict[str, float] = {}

    def rating(self, player: str) -> float:
        return self._ratings.get(player, self.initial)

    def expected(self, home: str, away: str) -> float:
        """``home``'s expected score against ``away``."""
        return 1.0 / (1.0 + 10.0 ** ((self.rating(away) - self.rating(home)) / 400.0))

    def update(self, home: str, away: str, outcome: Outcome) -> None:
        delta = self.k * (_SCORE[outcome] - self.expected(home, away))
        self._ratings[home] = self.rating(home) + delta
        self._ratings[away] = self.rating(away) - delta

    def state_dict(self) -> dict[str, Any]:
        return {"k": self.k, "initial": self.initial, "ratings": dict(self._ratings)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.k, self.initial, self._ratings = state["k"], state["initial"], dict(state["ratings"])


class TrueSkillRatings:
    """Bayesian skill ratings ``(mu, sigma)`` per player, TrueSkill's model as openskill implements it
    (Thurstone-Mosteller with full pairing; mu 25, sigma 25/3 at the start). :meth:`conservative` is
    ``mu - 3 sigma``, the rating a leaderboard sorts by."""

    def __init__(self) -> None:
        from openskill.models import ThurstoneMostellerFull

        self.model = ThurstoneMostellerFull()
        self._ratings: dict[str, tuple[float, float]] = {}

    def rating(self, player: str) -> tuple[float, float]:
        """``(mu, sigma)``."""
        if player not in self._ratings:
            default = self.model.rating()
            return default.mu, default.sigma
        return self._ratings[player]

    def conservative(self, player: str) -> float:
        mu, sigma = self.rating(player)
        return mu - 3.0 * sigma

    def update(self, home: str, away: str, outcome: Outcome) -> None:
        ranks = {"win": [0, 1], "draw": [0, 0], "loss": [1, 0]}[outcome]
        teams = [[self.model.rating(*self.rating(player), name=player)] for player in (home, away)]
        (new_home,), (new_away,) = self.model.rate(teams, ranks=ranks)
        self._ratings[home] = (new_home.mu, new_home.sigma)
        self._ratings[away] = (new_away.mu, new_away.sigma)

    def state_dict(self) -> dict[str, Any]:
        return {"ratings": {player: list(value) for player, value in self._ratings.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._ratings = {
            player: (float(mu), float(sigma)) for player, (mu, sigma) in state["ratings"].items()
        }
