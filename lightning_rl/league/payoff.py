"""The payoff table of a league: decayed win / draw / loss counts between players (AlphaStar's payoff)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

__all__ = ["Outcome", "Payoff"]

Outcome = Literal["win", "draw", "loss"]  # a game's result from the home player's side
_FLIP: dict[str, Outcome] = {"win": "loss", "draw": "draw", "loss": "win"}


class Payoff:
    """Decayed results between every pair of players, kept from both sides.

    Each new game between ``home`` and ``away`` first multiplies that pair's counts by ``decay`` (recent
    games weigh more, so the table follows players that keep learning), then adds the game.
    :meth:`win_rate` is ``(wins + draws / 2) / games``; below ``min_games`` (decayed) games it is the
    prior 0.5, so a new opponent is neither avoided nor preferred.

    Args:
        decay: in (0, 1]; 1 keeps plain counts.
        min_games: decayed games a win rate needs before it counts.
    """

    def __init__(self, decay: float = 0.99, min_games: float = 8.0):
        if not 0.0 < decay <= 1.0:
            raise ValueError(f"decay must be in (0, 1], got {decay}")
        if min_games < 0:
            raise ValueError(f"min_games must be >= 0, got {min_games}")
        self.decay, self.min_games = decay, min_games
        self._records: dict[tuple[str, str], dict[str, float]] = {}

    def _record(self, home: str, away: str) -> dict[str, float]:
        return self._records.setdefault((home, away), {"win": 0.0, "draw": 0.0, "loss": 0.0})

    def update(self, home: str, away: str, outcome: Outcome) -> None:
        """Add one game's ``outcome`` (``"win"``, ``"draw"`` or ``"loss"``, for ``home``)."""
        if outcome not in _FLIP:
            raise ValueError(f"outcome must be 'win', 'draw' or 'loss', got {outcome!r}")
        if home == away:
            raise ValueError(f"a player does not play itself in the payoff table ({home!r})")
        for side, other, result in ((home, away, outcome), (away, home, _FLIP[outcome])):
            record = self._record(side, other)
            for key in record:
                record[key] *= self.decay
            record[result] += 1.0

    def games(self, home: str, away: str) -> float:
        """Decayed games played between the two."""
        return sum(self._records.get((home, away), {}).values())

    def win_rate(self, home: str, away: str) -> float:
        """``home``'s decayed win rate against ``away`` (draws count half; 0.5 below ``min_games``)."""
        record = self._records.get((home, away))
        games = 0.0 if record is None else sum(record.values())
        if games < max(self.min_games, 1e-12):
            return 0.5
        return (record["win"] + 0.5 * record["draw"]) / games

    def win_rates(self, home: str, aways: list[str]) -> np.ndarray:
        """``(len(aways),)`` win rates of ``home`` against each."""
        return np.array([self.win_rate(home, away) for away in aways], dtype=np.float64)

    def state_dict(self) -> dict[str, Any]:
        return {
            "decay": self.decay,
            "min_games": self.min_games,
            "records": [[home, away, dict(record)] for (home, away), record in self._records.items()],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decay, self.min_games = float(state["decay"]), float(state["min_games"])
        self._records = {(home, away): dict(record) for home, away, record in state["records"]}
