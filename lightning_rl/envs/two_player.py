"""Two-player turn-based games (PettingZoo AEC, e.g. ``connect_four_v3``, ``tictactoe_v3``) as the learner's
seat of a single-agent gymnasium env, the other seat played by opponents from an :class:`OpponentPool`.

Why the opponent moves inside the env: from the learner's side a two-player game is then an ordinary
single-agent episode (its move, the opponent's replies, its next observation), so every DataModule,
collector, replay buffer and evaluator runs it unchanged, and the league only decides *who* the opponent
is. The pool lives in the learner's process, so these envs run in-process (``vectorization: sync``; board
games are cheap, a connect-four move takes ~50 us).

Per env, the learner's seat alternates from episode to episode (the first seat is drawn from the env's
seed), and each episode draws its opponent from the pool's matchmaking. Observations are the game's
observation of the learner, flattened, followed by its legal-action mask (``EnvSpec.action_mask``); the
reward is the learner's, summed over its move and the replies; every finished game is reported to the
pool as a :class:`GameResult`. Without a pool (evaluation envs, a plain ``TwoPlayerEnv()``) the opponent
plays uniformly random legal moves.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from lightning_rl.torch_utils.masking import random_legal_actions, split_action_mask

__all__ = [
    "RANDOM",
    "GameResult",
    "Opponent",
    "OpponentPool",
    "RandomOpponent",
    "TwoPlayerEnv",
    "aec_game_factory",
    "play_games",
]

RANDOM = "random"  # the opponent id of uniformly random legal moves (every pool has it)
GameOutcome = Literal["win", "draw", "loss"]  # for the learner
Opponent = Callable[[Tensor], Tensor]  # packed observations (B, D + A) -> legal actions (B,) int64


@dataclass(frozen=True)
class GameResult:
    """One finished game: whom the learner played, how it ended for the learner, and its seat (0: first)."""

    opponent: str
    outcome: GameOutcome
    seat: int


class RandomOpponent:
    """Uniformly random legal moves: ``(B, D + A)`` packed observations -> ``(B,)`` actions.

    Args:
        n_actions: ``A``.
        generator: the random numbers' source (``None``: torch's global one).
    """

    def __init__(self, n_actions: int, generator: torch.Generator | None = None):
        self.n_actions, self.generator = n_actions, generator

    def __call__(self, obs: Tensor) -> Tensor:
        _, legal = split_action_mask(obs, self.n_actions)
        return random_legal_actions(legal, self.generator)


class OpponentPool:
    """The opponents of a DataModule's training envs: who plays the next game (``choose``), how each
    opponent moves, and the results of finished games (drained by the league callbacks).

    Args:
        seed: seed of the generator opponents sample their moves with.
    """

    def __init__(self, seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)
        self._choose: Callable[[], str] = lambda: RANDOM
        self._opponents: dict[str, Opponent] = {}
        self._results: list[GameResult] = []

    def set_matchmaking(self, choose: Callable[[], str], opponents: Mapping[str, Opponent]) -> None:
        """From now on each new game's opponent is ``choose()``: an id of ``opponents`` or :data:`RANDOM`."""
        self._choose, self._opponents = choose, dict(opponents)

    def draw(self) -> str:
        opponent = self._choose()
        if opponent != RANDOM and opponent not in self._opponents:
            raise KeyError(
                f"matchmaking chose {opponent!r}, which the pool does not hold: {sorted(self._opponents)}"
            )
        return opponent

    def act(self, opponent: str, obs: np.ndarray) -> int:
        """``opponent``'s move for one packed observation ``(D + A,)``."""
        with torch.no_grad():
            return int(self._opponents[opponent](torch.as_tensor(obs).unsqueeze(0))[0])

    def record(self, result: GameResult) -> None:
        self._results.append(result)

    def drain(self) -> list[GameResult]:
        """The games finished since the last call, in order."""
        results, self._results = self._results, []
        return results


def play_games(
    player: Opponent,
    game: str,
    games: int,
    opponent: Opponent | None = None,
    seed: int = 0,
    **game_kwargs: Any,
) -> list[GameResult]:
    """``games`` games of ``player`` against ``opponent`` (``None``: uniformly random legal moves), the
    player's seat alternating from game to game; the results, for ``player``, in order.

    Both sides are :data:`Opponent` callables (a policy: ``callbacks.PolicyOpponent(policy, mode, ...)``).
    """
    env, pool = TwoPlayerEnv(game, **game_kwargs), OpponentPool(seed)
    env.attach(pool)
    if opponent is not None:
        pool.set_matchmaking(lambda: "opponent", {"opponent": opponent})
    obs, _ = env.reset(seed=seed)
    with torch.no_grad():
        for game_index in range(games):
            done = False
            while not done:
                action = int(player(torch.as_tensor(obs).unsqueeze(0))[0])
                obs, _, terminated, truncated, _ = env.step(action)
                done = terminated or truncated
            if game_index + 1 < games:
                obs, _ = env.reset()
    env.close()
    return pool.drain()


def aec_game_factory(game: str) -> Callable[..., Any]:
    """A PettingZoo AEC game's factory (keyword arguments -> ``AECEnv``); ``ValueError`` if none.

    ``game`` is an id of PettingZoo's registry (``"classic/connect_four-v3"``), its module's name
    (``"connect_four_v3"``, ``"tictactoe_v3"``: the registry entry ``<namespace>/connect_four-v3``), or, for a
    game of your own, ``"package.module"`` (its ``env``) or ``"package.module:function"``.
    """
    registered = _registered_aec_id(game)
    if registered is not None:
        import pettingzoo

        return functools.partial(pettingzoo.make, "aec", registered)
    module_name, _, attribute = game.partition(":")
    if "." in module_name:
        try:
            factory = getattr(importlib.import_module(module_name), attribute or "env", None)
        except ImportError:
            factory = None
        if callable(factory):
            return factory
    raise ValueError(
        f"'{game}' is no PettingZoo AEC game: use a registered id (e.g. connect_four_v3, tictactoe_v3, "
        "classic/connect_four-v3; pettingzoo.pprint_registry() lists them), a module with env(), or "
        "'package.module:function'"
    )


def _registered_aec_id(game: str) -> str | None:
    """``game``'s id in PettingZoo's AEC registry (also for a module name ``name_vN``), or ``None``."""
    try:
        import pettingzoo
    except ImportError:
        return None
    if game in pettingzoo.aec_registry:
        return game
    name, _, version = game.rpartition("_v")
    if name and version.isdigit():
        matches = [key for key in pettingzoo.aec_registry if key.split("/")[-1] == f"{name}-v{version}"]
        if len(matches) == 1:
            return matches[0]
    return None


class TwoPlayerEnv(gym.Env):
    """The learner's seat of a two-player zero-sum AEC game (see the module docstring).

    Args:
        game: the game (:func:`aec_game_factory`), e.g. ``"connect_four_v3"``.
        **game_kwargs: arguments of the game's ``env`` factory.

    Shapes: observation ``(D + A,)`` float32 (``D`` the game's observation features, ``A`` its moves), the
    last ``A`` entries 1 for a legal move; action ``Discrete(A)``. An illegal move ends the game as the
    game's rules say (PettingZoo's classic games: a loss for the player who made it).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, game: str = "connect_four_v3", **game_kwargs: Any):
        self.game_name = game
        self.game = aec_game_factory(game)(**game_kwargs)
        self.agents = list(self.game.possible_agents)
        if len(self.agents) != 2:
            raise ValueError(f"{game}: a two-player game is needed, it has {len(self.agents)} players")
        obs_space = self.game.observation_space(self.agents[0])
        act_space = self.game.action_space(self.agents[0])
        same = all(
            self.game.observation_space(a) == obs_space and self.game.action_space(a) == act_space
            for a in self.agents
        )
        if not same or not isinstance(act_space, gym.spaces.Discrete):
            raise ValueError(f"{game}: both players need one Discrete action space and one observation space")
        features = obs_space["observation"] if isinstance(obs_space, gym.spaces.Dict) else obs_space
        self.n_actions = int(act_space.n)
        # (H, W, C) planes (PettingZoo's board games) are what a board encoder convolves over
        self.board_shape = tuple(int(d) for d in features.shape) if len(features.shape) == 3 else ()
        size = int(np.prod(features.shape)) + self.n_actions
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
        self.action_space = gym.spaces.Discrete(self.n_actions)
        self.pool: OpponentPool | None = None
        self.opponent = RANDOM
        self.learner = self.agents[0]
        self._first_seat, self._episodes, self._return = 0, 0, 0.0

    def attach(self, pool: OpponentPool) -> None:
        """Draw opponents from ``pool`` (and report results to it) from the next game on."""
        self.pool = pool

    @property
    def seat(self) -> int:
        return self.agents.index(self.learner)

    # --- gymnasium API --------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:  # a fresh env: its seed picks the seat it starts in
            self._first_seat, self._episodes = int(self.np_random.integers(2)), 0
        self.game.reset(seed=seed)
        self.learner = self.agents[(self._first_seat + self._episodes) % 2]
        self._episodes += 1
        self.opponent = self.pool.draw() if self.pool is not None else RANDOM
        self._return = 0.0
        self._reply()  # the opponent opens from the first seat (no reward for an opening move)
        return self._observe(self.learner), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        reward = self._move(int(action))
        reward += self._reply()
        terminated, truncated = self._game_over()
        self._return += reward
        if (terminated or truncated) and self.pool is not None:
            outcome: GameOutcome = "win" if self._return > 0 else "loss" if self._return < 0 else "draw"
            self.pool.record(GameResult(self.opponent, outcome, self.seat))
        return self._observe(self.learner), reward, terminated, truncated, {}

    def close(self) -> None:
        self.game.close()

    # --- the game --------------------------------------------------------------------------------------
    def _move(self, action: int) -> float:
        """Play ``action`` for the player to move; the learner's reward from it."""
        self.game.step(action)
        return float(self.game.rewards.get(self.learner, 0.0))

    def _reply(self) -> float:
        """The opponent's moves until the learner is to move or the game is over; the learner's reward."""
        reward = 0.0
        while not any(self._game_over()) and self.game.agent_selection != self.learner:
            obs = self._observe(self.game.agent_selection)
            if self.opponent == RANDOM:
                move = int(self.np_random.choice(np.flatnonzero(obs[-self.n_actions :] > 0.5)))
            else:
                move = self.pool.act(self.opponent, obs)
            reward += self._move(move)
        return reward

    def _game_over(self) -> tuple[bool, bool]:
        """``(terminated, truncated)`` of the learner's episode."""
        game, learner = self.game, self.learner
        terminated = bool(game.terminations.get(learner, True))
        truncated = not terminated and bool(game.truncations.get(learner, False))
        return terminated, truncated

    def _observe(self, agent: str) -> np.ndarray:
        obs = self.game.observe(agent)
        if isinstance(obs, dict):
            features, mask = obs["observation"], obs["action_mask"]
        else:
            features, mask = obs, np.ones(self.n_actions)
        return np.concatenate([np.asarray(features, np.float32).reshape(-1), np.asarray(mask, np.float32)])
