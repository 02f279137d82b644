"""League training and self-play for two-player games, as callbacks (nerveX's league manager, in Lightning).

The policy being fit is the league's main player. Each new game of the DataModule's training envs draws
its opponent from :class:`~lightning_rl.league.League` matchmaking (PFSP, self-play, verification) over
the main player's frozen snapshots (plus, optionally, the random player); every finished game updates the
payoff table and the Elo and TrueSkill ratings; once the snapshot rule says so, the current weights are
frozen as a new historical player. Everything the league holds (players and their weights, payoff,
ratings, the matchmaking's random state, the rating history) is this callback's checkpoint state, so a
resumed run continues the same league.

Files, beside the checkpoints (``<log_dir>/league/``): ``league.json`` (players, payoff matrix, ratings
and their history) and ``payoff.png`` (the payoff heat-map) at every snapshot and when fit ends, and
``ratings.png`` (Elo curves) at the end; the loggers get ``league/…`` scalars every ``log_interval`` env
steps and the heat-map image (wandb, TensorBoard).

They meet the DataModule through :class:`~lightning_rl.contract.OpponentSource`.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger, WandbLogger
from torch import Tensor

from lightning_rl.contract import ActMode, Actor, OpponentSource, require
from lightning_rl.envs.two_player import RandomOpponent
from lightning_rl.league import League, Weighting
from lightning_rl.loggers import log_to_loggers
from lightning_rl.utils.checks import check_choice, check_int

__all__ = ["LeagueCallback", "PolicyOpponent", "SelfPlayCallback"]

LEARNER = "main_0"  # the fitted policy's player id
RANDOM_PLAYER = "random"  # the fixed random opponent's player id (include_random)


class PolicyOpponent:
    """A policy playing the other seat: ``act(obs, mode, env_steps)`` on packed observations.

    Args:
        policy: a frozen copy (a snapshot) or the live learner (self-play against itself).
        mode: ``"collect"`` plays as the policy explores (PPO samples, DQN is epsilon-greedy at
            ``env_steps``), ``"eval"`` deterministically.
        env_steps: the env steps its exploration schedule is at (a snapshot's: when it was frozen), or a
            callable returning the live count.
        generator: the random source of its exploration.
    """

    def __init__(
        self,
        policy: Actor,
        mode: ActMode,
        env_steps: int | Callable[[], int],
        generator: torch.Generator | None = None,
    ):
        self.policy, self.mode, self.env_steps, self.generator = policy, mode, env_steps, generator

    def __call__(self, obs: Tensor) -> Tensor:
        steps = self.env_steps() if callable(self.env_steps) else self.env_steps
        return self.policy.act(obs, mode=self.mode, env_steps=steps, generator=self.generator).cpu()


class LeagueCallback(pl.Callback):
    """The fitted policy as a league's main player (see the module docstring and
    :class:`~lightning_rl.league.League` for matchmaking and the snapshot rule).

    The env must be a two-player game (``data.env_id: connect_four_v3`` or any PettingZoo AEC game) and
    the policy one that acts on legal-action masks (PPO, A2C, IMPALA, DQN). Only the main player learns
    in a run: the league's exploiter roles need learners of their own.

    Args:
        snapshot_win_rate, min_snapshot_steps, max_snapshot_steps: when the learner is frozen as a new
            historical player (env steps since its last snapshot; the first snapshot comes after
            ``min_snapshot_steps``).
        pfsp_prob, verification_prob, main_weighting: the main player's matchmaking mix (the rest is
            self-play against its current weights, whose games count in no table).
        fixed_opponent_prob: the share of games against the random player (``include_random``), before
            the mix above: PFSP alone all but stops playing it once it is beaten.
        payoff_decay, min_games: the payoff table's.
        include_random: a fixed random player in the league (an anchor for the ratings and the first
            opponent PFSP can pick).
        opponent_mode: how opponents move: ``"collect"`` (as the policy explores) or ``"eval"``.
        log_interval: env steps between ``league/…`` scalars.
        seed: the matchmaking's and the opponents' random source.
    """

    def __init__(
        self,
        snapshot_win_rate: float = 0.7,
        min_snapshot_steps: int = 20_000,
        max_snapshot_steps: int | None = 200_000,
        pfsp_prob: float = 0.5,
        verification_prob: float = 0.15,
        main_weighting: Weighting = "squared",
        fixed_opponent_prob: float = 0.0,
        payoff_decay: float = 0.99,
        min_games: float = 8.0,
        include_random: bool = True,
        opponent_mode: ActMode = "collect",
        log_interval: int = 10_000,
        seed: int = 0,
    ):
        check_int("min_snapshot_steps", min_snapshot_steps, 1)
        check_int("log_interval", log_interval, 1)
        check_choice("opponent_mode", opponent_mode, ("collect", "eval"))
        if max_snapshot_steps is not None and max_snapshot_steps < min_snapshot_steps:
            raise ValueError(
                f"max_snapshot_steps must be >= min_snapshot_steps = {min_snapshot_steps} or null, "
                f"got {max_snapshot_steps}"
            )
        if fixed_opponent_prob and not include_random:
            raise ValueError(
                "fixed_opponent_prob needs include_random: true (the random player is the fixed opponent)"
            )
        self.league = League(
            snapshot_win_rate=snapshot_win_rate,
            min_snapshot_steps=min_snapshot_steps,
            max_snapshot_steps=max_snapshot_steps,
            pfsp_prob=pfsp_prob,
            verification_prob=verification_prob,
            main_weighting=main_weighting,
            fixed_opponent_prob=fixed_opponent_prob,
            payoff_decay=payoff_decay,
            min_games=min_games,
            seed=seed,
        )
        self.include_random, self.opponent_mode, self.log_interval = (
            include_random,
            opponent_mode,
            log_interval,
        )
        self.generator = torch.Generator().manual_seed(seed)
        self.frozen_at: dict[str, int] = {}  # historical player -> env steps when it was frozen
        self.history: list[dict[str, Any]] = []  # rating curves: env steps, games, each player's Elo
        self.games = 0
        self._counted_steps = 0  # env steps already added to the learner's
        self._logged_at = 0
        self._opponents: dict[str, Callable[[Tensor], Tensor]] = {}
        self._template: Actor | None = None  # the frozen copy snapshots are loaded into

    # --- fit ----------------------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        data = self._data(trainer)
        n_actions = pl_module.spec.n_actions
        if LEARNER not in self.league.players:  # a new league (a resumed one was loaded already)
            self.league.add_player("main", _weights(pl_module), player_id=LEARNER)
            if self.include_random:
                self.league.add_player("historical", player_id=RANDOM_PLAYER)
        self._template = copy.deepcopy(pl_module).cpu().requires_grad_(False).eval()
        self._opponents = {
            LEARNER: PolicyOpponent(pl_module, self.opponent_mode, lambda: data.env_steps, self.generator)
        }
        for player in self.league.of_role("historical"):
            self._opponents[player.player_id] = (
                RandomOpponent(n_actions, self.generator)
                if player.weights is None
                else self._frozen(player.weights, self.frozen_at[player.player_id])
            )
        self._counted_steps = self._logged_at = data.env_steps
        data.set_matchmaking(self._choose, self._opponents)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        data = self._data(trainer)
        for opponent, outcome, _ in data.game_results():
            self.league.record(LEARNER, opponent, outcome)  # a game against itself counts in no table
            self.games += 1
        self.league.add_steps(LEARNER, data.env_steps - self._counted_steps)
        self._counted_steps = data.env_steps
        if self.league.ready_to_snapshot(LEARNER):
            frozen = self.league.snapshot(LEARNER, _weights(pl_module))
            self.frozen_at[frozen.player_id] = data.env_steps
            self._opponents[frozen.player_id] = self._frozen(frozen.weights, data.env_steps)
            data.set_matchmaking(self._choose, self._opponents)
            self._write_files(trainer, final=False)
        if data.env_steps - self._logged_at >= self.log_interval:
            self._logged_at = data.env_steps
            self._log(trainer, pl_module, data.env_steps)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(trainer, pl_module, self._data(trainer).env_steps)
        self._write_files(trainer, final=True)

    # --- opponents -----------------------------------------------------------------------------------
    def _data(self, trainer: pl.Trainer) -> OpponentSource:
        return require(
            trainer.datamodule,
            OpponentSource,
            f"{type(self).__name__}'s DataModule",
            "use a DataModule of lightning_rl.datamodules with a two-player env",
        )

    def _choose(self) -> str:
        return self.league.choose_opponent(LEARNER)

    def _frozen(self, weights: dict[str, Tensor], env_steps: int) -> PolicyOpponent:
        policy = copy.deepcopy(self._template)
        policy.load_state_dict(weights)
        return PolicyOpponent(policy, self.opponent_mode, env_steps, self.generator)

    # --- what it reports -----------------------------------------------------------------------------
    def ratings(self) -> dict[str, float]:
        """Every player's Elo."""
        return {player: self.league.elo.rating(player) for player in self.league.players}

    def payoff_matrix(self) -> tuple[list[str], np.ndarray]:
        """``(players, win rates (P, P))``: row player's decayed win rate against the column player
        (NaN where they played fewer than ``min_games`` games)"""
        players = list(self.league.players)
        payoff = self.league.payoff
        table = np.full((len(players), len(players)), np.nan)
        for i, home in enumerate(players):
            for j, away in enumerate(players):
                if payoff.games(home, away) >= payoff.min_games:  # below it win_rate is the prior 0.5
                    table[i, j] = payoff.win_rate(home, away)
        return players, table

    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule, env_steps: int) -> None:
        ratings = self.ratings()
        self.history.append({"env_steps": env_steps, "games": self.games, "elo": ratings})
        learner = self.league.players[LEARNER]
        metrics = {f"league/elo/{player}": rating for player, rating in ratings.items()}
        metrics["league/trueskill"] = self.league.trueskill.conservative(LEARNER)
        metrics["league/games"] = float(self.games)
        metrics["league/players"] = float(len(self.league.players))
        metrics["league/steps_since_snapshot"] = float(learner.steps)
        for player in self.league.of_role("historical"):
            metrics[f"league/win_rate/{player.player_id}"] = self.league.payoff.win_rate(
                LEARNER, player.player_id
            )
        log_to_loggers(trainer, metrics, env_steps=env_steps, train_iter=int(pl_module.train_iter))

    def _write_files(self, trainer: pl.Trainer, final: bool) -> None:
        if not trainer.is_global_zero:
            return
        folder = os.path.join(trainer.log_dir or trainer.default_root_dir, "league")
        os.makedirs(folder, exist_ok=True)
        players, table = self.payoff_matrix()
        summary = {
            "players": [
                {
                    "id": p.player_id,
                    "role": p.role,
                    "parent": p.parent_id,
                    "frozen_at": self.frozen_at.get(p.player_id),
                }
                for p in self.league.players.values()
            ],
            "payoff": {
                "players": players,
                "win_rate": [[None if np.isnan(x) else x for x in r] for r in table],
            },
            "elo": self.ratings(),
            "trueskill": {p: list(self.league.trueskill.rating(p)) for p in players},
            "games": self.games,
            "history": self.history,
        }
        with open(os.path.join(folder, "league.json"), "w") as file:
            json.dump(summary, file, indent=1)
        heatmap = os.path.join(folder, "payoff.png")
        _plot_payoff(players, table, heatmap)
        _log_image(trainer, "league/payoff", heatmap)
        if final:
            _plot_ratings(self.history, os.path.join(folder, "ratings.png"))

    # --- checkpoints ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "league": self.league.state_dict(),
            "frozen_at": dict(self.frozen_at),
            "history": copy.deepcopy(self.history),
            "games": self.games,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.league.load_state_dict(state_dict["league"])
        self.frozen_at = dict(state_dict["frozen_at"])
        self.history = copy.deepcopy(state_dict["history"])
        self.games = int(state_dict["games"])
        self.generator.set_state(state_dict["generator"])


class SelfPlayCallback(LeagueCallback):
    """Uniform self-play (nerveX's; :meth:`~lightning_rl.league.League.uniform_self_play`): a snapshot of
    the learner every ``snapshot_interval`` env steps; each game against its current weights with
    probability ``self_play_prob``, else against one of all its snapshots so far, uniformly. Payoff,
    ratings, files and checkpoints as :class:`LeagueCallback`'s.

    Args:
        snapshot_interval: env steps between snapshots.
        self_play_prob: the share of games against its current weights (1: naive self-play; 0: against
            snapshots only, fictitious play, whose current strategy cycles in games with a mixed
            equilibrium).
        include_random, opponent_mode, log_interval, payoff_decay, min_games, seed: as
            :class:`LeagueCallback`'s (``include_random`` is off here: pure self-play).
    """

    def __init__(
        self,
        snapshot_interval: int = 20_000,
        self_play_prob: float = 0.5,
        include_random: bool = False,
        opponent_mode: ActMode = "collect",
        log_interval: int = 10_000,
        payoff_decay: float = 0.99,
        min_games: float = 8.0,
        seed: int = 0,
    ):
        check_int("snapshot_interval", snapshot_interval, 1)
        super().__init__(
            include_random=include_random, opponent_mode=opponent_mode, log_interval=log_interval, seed=seed
        )
        self.league = League.uniform_self_play(
            snapshot_interval, self_play_prob, payoff_decay, min_games, seed
        )


def _weights(policy: pl.LightningModule) -> dict[str, Tensor]:
    """A CPU copy of the policy's state dict (what a snapshot freezes)."""
    return {name: value.detach().to("cpu", copy=True) for name, value in policy.state_dict().items()}


def _plot_payoff(players: list[str], table: np.ndarray, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = 2.0 + 0.45 * len(players)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(np.ma.masked_invalid(table), cmap="RdBu", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(players)), players, rotation=90, fontsize=7)
    ax.set_yticks(range(len(players)), players, fontsize=7)
    ax.set_xlabel("opponent")
    ax.set_ylabel("player")
    ax.set_title("win rate (decayed payoff)")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_ratings(history: list[dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    steps = [row["env_steps"] for row in history]
    ax.plot(steps, [row["elo"][LEARNER] for row in history], label=LEARNER)
    if history and RANDOM_PLAYER in history[-1]["elo"]:
        ax.plot(steps, [row["elo"].get(RANDOM_PLAYER, np.nan) for row in history], label=RANDOM_PLAYER)
    ax.set_xlabel("env steps")
    ax.set_ylabel("Elo")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _log_image(trainer: pl.Trainer, key: str, path: str) -> None:
    """The image at ``path`` to the loggers that take images (wandb, TensorBoard)."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[path], step=trainer.global_step)
        elif isinstance(logger, TensorBoardLogger):
            import matplotlib.image

            logger.experiment.add_image(
                key, matplotlib.image.imread(path), trainer.global_step, dataformats="HWC"
            )
