"""The league (Vinyals et al., 2019; nerveX's league manager): players, matchmaking per role, snapshots,
exploiter resets, payoff and ratings, all plain state that goes into a checkpoint.

Roles: ``main`` players learn to beat everyone; ``main_exploiter`` players learn to beat the main
players; ``league_exploiter`` players learn to beat the whole league; ``historical`` players are frozen
snapshots of the others (``parent_id`` names the player each was taken from). A player's ``weights``
are whatever its learner publishes (a policy's state dict); the league only copies and hands them out.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from lightning_rl.league.payoff import Outcome, Payoff
from lightning_rl.league.pfsp import Weighting, pfsp_probabilities
from lightning_rl.league.ratings import EloRatings, TrueSkillRatings

__all__ = ["League", "Player", "Role"]

Role = Literal["main", "main_exploiter", "league_exploiter", "historical"]
ACTIVE_ROLES = ("main", "main_exploiter", "league_exploiter")
EXPLOITERS = ("main_exploiter", "league_exploiter")


@dataclass
class Player:
    """One player of the league.

    Attributes:
        player_id: unique name, ``"<role>_<n>"``.
        role: one of :data:`Role`.
        parent_id: for a historical player, the active player it is a snapshot of.
        weights: the policy's state dict (frozen for historical players), or ``None``.
        steps: env steps the player trained since its last snapshot (or reset).
    """

    player_id: str
    role: Role
    parent_id: str | None = None
    weights: Any = None
    steps: int = 0


class League:
    """Players, their payoff table and ratings, and the AlphaStar matchmaking.

    Matchmaking (:meth:`choose_opponent`), for the learner's role:

    * ``main``: with probability ``fixed_opponent_prob`` one of the league's fixed opponents (historical
      players added without a parent, such as a random player), uniformly (a league without one gives
      that share to PFSP); with ``pfsp_prob`` an opponent from every historical player by PFSP
      (``main_weighting``, ``"squared"``: the hardest most); with ``verification_prob`` a check that
      nothing beats it: a historical exploiter it wins less than 30% against, else a snapshot of the main
      opponent it wins less than 70% against (PFSP squared among them), if there is any; otherwise
      self-play against a main player, or, when it wins 30% or less against that one, the PFSP
      (``"variance"``) choice among that player's snapshots.
    * ``main_exploiter``: a main player, or, when it wins 10% or less against it, that main player's
      snapshots by PFSP ``"variance"``.
    * ``league_exploiter``: every historical player by PFSP ``"squared"``.

    Uniform self-play (:meth:`uniform_self_play`) is ``main_weighting="uniform"`` without verification:
    every snapshot of the main player alike, or its current weights.

    Snapshots (:meth:`ready_to_snapshot`): once a player has trained ``min_snapshot_steps`` since its
    last snapshot, it is frozen when it wins at least ``snapshot_win_rate`` against its targets (main:
    every historical player; main exploiter: the main players; league exploiter: every historical
    player), and in any case after ``max_snapshot_steps``. After a snapshot a main exploiter restarts
    from its initial weights, and a league exploiter does so with probability ``league_exploiter_reset``.

    Results (:meth:`record`) update the payoff table, Elo and TrueSkill ratings; a game of a player
    against itself (self-play against its own current weights) counts in neither.

    Args:
        snapshot_win_rate, min_snapshot_steps, max_snapshot_steps, league_exploiter_reset: see above.
        pfsp_prob, verification_prob, main_weighting, fixed_opponent_prob: the main players' matchmaking
            mix. Why a fixed share: PFSP ``"squared"`` all but stops playing an opponent it beats, so a
            strong main player meets a random player's odd moves (threats no trained opponent makes)
            almost never and loses a few of its games against it.
        payoff_decay, min_games: the :class:`~lightning_rl.league.Payoff` table's.
        seed: the matchmaking's random generator (its state is checkpointed).
    """

    def __init__(
        self,
        snapshot_win_rate: float = 0.7,
        min_snapshot_steps: int = 0,
        max_snapshot_steps: int | None = None,
        league_exploiter_reset: float = 0.25,
        pfsp_prob: float = 0.5,
        verification_prob: float = 0.15,
        main_weighting: Weighting = "squared",
        fixed_opponent_prob: float = 0.0,
        payoff_decay: float = 0.99,
        min_games: float = 8.0,
        seed: int = 0,
    ):
        shares = {
            "fixed_opponent_prob": fixed_opponent_prob,
            "pfsp_prob": pfsp_prob,
            "verification_prob": verification_prob,
        }
        if any(not 0.0 <= share <= 1.0 for share in shares.values()) or sum(shares.values()) > 1.0:
            raise ValueError(
                f"{', '.join(shares)} must be probabilities summing to at most 1 (the rest is self-play), "
                f"got {', '.join(str(share) for share in shares.values())}"
            )
        if not 0.0 <= snapshot_win_rate <= 1.0 or not 0.0 <= league_exploiter_reset <= 1.0:
            raise ValueError("snapshot_win_rate and league_exploiter_reset must lie in [0, 1]")
        pfsp_probabilities(np.zeros(1), main_weighting)  # an unknown weighting fails here, not in a game
        self.snapshot_win_rate, self.league_exploiter_reset = snapshot_win_rate, league_exploiter_reset
        self.min_snapshot_steps, self.max_snapshot_steps = min_snapshot_steps, max_snapshot_steps
        self.pfsp_prob, self.verification_prob, self.main_weighting = (
            pfsp_prob,
            verification_prob,
            main_weighting,
        )
        self.fixed_opponent_prob = fixed_opponent_prob
        self.payoff = Payoff(payoff_decay, min_games)
        self.elo, self.trueskill = EloRatings(), TrueSkillRatings()
        self.players: dict[str, Player] = {}
        self.initial_weights: dict[str, Any] = {}  # active player id -> the weights it restarts from
        self.rng = np.random.default_rng(seed)

    @classmethod
    def uniform_self_play(
        cls,
        snapshot_interval: int,
        self_play_prob: float = 0.5,
        payoff_decay: float = 0.99,
        min_games: float = 8.0,
        seed: int = 0,
    ) -> League:
        """Uniform self-play: a snapshot of the main player every ``snapshot_interval`` env steps; each
        game against its current weights with probability ``self_play_prob`` (naive self-play: 1), else
        against one of its snapshots drawn uniformly (fictitious play: 0).

        Why both halves by default: against snapshots only, the learner best-responds to their average,
        which is fictitious play, whose *current* strategy keeps cycling around a mixed equilibrium
        (only its average converges); the games against itself make it converge (``app_zoo/league_demo``).
        """
        if not 0.0 <= self_play_prob <= 1.0:
            raise ValueError(f"self_play_prob must be in [0, 1], got {self_play_prob}")
        return cls(
            min_snapshot_steps=snapshot_interval,
            max_snapshot_steps=snapshot_interval,
            pfsp_prob=1.0 - self_play_prob,
            verification_prob=0.0,
            main_weighting="uniform",
            payoff_decay=payoff_decay,
            min_games=min_games,
            seed=seed,
        )

    # --- players ------------------------------------------------------------------------------------
    def add_player(self, role: Role, weights: Any = None, player_id: str | None = None) -> Player:
        """A new active player (``weights`` are also its restart point) or historical one, named
        ``player_id`` or ``"<role>_<n>"``."""
        if role not in (*ACTIVE_ROLES, "historical"):
            raise ValueError(f"role must be one of {[*ACTIVE_ROLES, 'historical']}, got {role!r}")
        if player_id is None:  # the next free "<role>_<n>" (players named otherwise do not count)
            n = sum(p.player_id.startswith(f"{role}_") for p in self.players.values())
            player_id = f"{role}_{n}"
        if player_id in self.players:
            raise ValueError(f"the league has a player {player_id!r} already")
        player = Player(player_id, role, weights=copy.deepcopy(weights))
        self.players[player.player_id] = player
        if role != "historical":
            self.initial_weights[player.player_id] = copy.deepcopy(weights)
        return player

    def of_role(self, *roles: Role) -> list[Player]:
        return [p for p in self.players.values() if p.role in roles]

    def historical(
        self, parent_roles: tuple[Role, ...] = ACTIVE_ROLES, parent_id: str | None = None
    ) -> list[Player]:
        """Snapshots whose parent has one of ``parent_roles`` (and is ``parent_id``, if given); a historical
        player added without a parent (e.g. a fixed opponent) counts under every role."""
        return [
            p
            for p in self.of_role("historical")
            if (p.parent_id is None or self.players[p.parent_id].role in parent_roles)
            and parent_id in (None, p.parent_id)
        ]

    # --- matchmaking -----------------------------------------------------------------------------------
    def _pfsp(self, learner: str, candidates: list[Player], weighting: Weighting) -> str:
        ids = [p.player_id for p in candidates]
        probs = pfsp_probabilities(self.payoff.win_rates(learner, ids), weighting)
        return ids[int(self.rng.choice(len(ids), p=probs))]

    def choose_opponent(self, player_id: str) -> str:
        """The opponent ``player_id`` plays its next game against (see the class docstring)."""
        learner = self.players[player_id]
        if learner.role == "main":
            return self._main_opponent(learner)
        if learner.role == "main_exploiter":
            main = self.of_role("main")[int(self.rng.integers(len(self.of_role("main"))))]
            history = self.historical(parent_id=main.player_id)
            if self.payoff.win_rate(player_id, main.player_id) > 0.1 or not history:
                return main.player_id
            return self._pfsp(player_id, history, "variance")
        if learner.role == "league_exploiter":
            history = self.of_role("historical")
            return self._pfsp(player_id, history, "squared") if history else self.of_role("main")[0].player_id
        raise ValueError(f"{player_id} is historical: it does not learn, so it is never matched as a learner")

    def fixed_opponents(self) -> list[Player]:
        """Historical players added without a parent (a random player, a scripted bot)."""
        return [p for p in self.of_role("historical") if p.parent_id is None]

    def _main_opponent(self, learner: Player) -> str:
        me, coin = learner.player_id, self.rng.random()
        fixed = self.fixed_opponents()
        if coin < self.fixed_opponent_prob and fixed:
            return fixed[int(self.rng.integers(len(fixed)))].player_id
        coin -= self.fixed_opponent_prob  # the remaining shares, as without fixed opponents
        history = self.of_role("historical")
        if coin < self.pfsp_prob and history:
            return self._pfsp(me, history, self.main_weighting)
        mains = self.of_role("main")
        opponent = mains[int(self.rng.integers(len(mains)))]
        if coin < self.pfsp_prob + self.verification_prob:
            exploiters = [
                p for p in self.historical(EXPLOITERS) if self.payoff.win_rate(me, p.player_id) < 0.3
            ]
            if exploiters:
                return self._pfsp(me, exploiters, "squared")
            lineage = self.historical(parent_id=opponent.player_id)
            losing = [p for p in lineage if self.payoff.win_rate(me, p.player_id) < 0.7]
            if losing:
                return self._pfsp(me, losing, "squared")
        lineage = self.historical(parent_id=opponent.player_id)
        if opponent.player_id != me and self.payoff.win_rate(me, opponent.player_id) <= 0.3 and lineage:
            return self._pfsp(me, lineage, "variance")
        return opponent.player_id

    # --- results and snapshots -------------------------------------------------------------------------
    def record(self, home: str, away: str, outcome: Outcome) -> None:
        """One game's ``outcome`` for ``home``: payoff and both ratings (not for a game against itself)."""
        if home == away:
            return
        self.payoff.update(home, away, outcome)
        self.elo.update(home, away, outcome)
        self.trueskill.update(home, away, outcome)

    def add_steps(self, player_id: str, steps: int) -> None:
        self.players[player_id].steps += int(steps)

    def snapshot_targets(self, player: Player) -> list[str]:
        """Whom ``player`` must beat to be frozen."""
        if player.role == "main_exploiter":
            return [p.player_id for p in self.of_role("main")]
        return [p.player_id for p in self.of_role("historical")]

    def ready_to_snapshot(self, player_id: str) -> bool:
        player = self.players[player_id]
        if player.role == "historical" or player.steps < self.min_snapshot_steps:
            return False
        if self.max_snapshot_steps is not None and player.steps >= self.max_snapshot_steps:
            return True
        targets = self.snapshot_targets(player)
        if not targets:
            return True  # nothing to beat yet: the first snapshot starts the history
        return float(self.payoff.win_rates(player_id, targets).mean()) >= self.snapshot_win_rate

    def snapshot(self, player_id: str, weights: Any) -> Player:
        """Freeze ``player_id`` with its current ``weights``; then reset it if it is an exploiter that
        restarts. Returns the new historical player (``player.weights`` of the active one is updated to
        what it continues from: ``weights``, or its initial weights after a reset)."""
        player = self.players[player_id]
        frozen = self.add_player("historical", weights)
        frozen.parent_id = player_id
        player.steps = 0
        reset = player.role == "main_exploiter" or (
            player.role == "league_exploiter" and self.rng.random() < self.league_exploiter_reset
        )
        player.weights = copy.deepcopy(self.initial_weights[player_id] if reset else weights)
        return frozen

    # --- checkpoints -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "players": [asdict(p) for p in self.players.values()],
            "initial_weights": dict(self.initial_weights),
            "payoff": self.payoff.state_dict(),
            "elo": self.elo.state_dict(),
            "trueskill": self.trueskill.state_dict(),
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.players = {p["player_id"]: Player(**p) for p in state["players"]}
        self.initial_weights = dict(state["initial_weights"])
        self.payoff.load_state_dict(state["payoff"])
        self.elo.load_state_dict(state["elo"])
        self.trueskill.load_state_dict(state["trueskill"])
        self.rng.bit_generator.state = state["rng"]
