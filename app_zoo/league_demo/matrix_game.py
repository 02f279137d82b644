"""A two-action zero-sum matrix game as a PettingZoo AEC game, and its exploitability.

The row player (``player_0``) earns ``PAYOFF[row, col]``, the column player its negative. Its unique Nash
equilibrium has both players play action 0 with probability 3/8 (each seat's mix makes the other
indifferent: ``3p - 2(1 - p) = -2p + (1 - p)``), the row player's value being -1/8.

As a turn-based game the row player moves first and the column player moves without seeing that move:
each observes only its seat (one-hot), so the game stays simultaneous. Any PettingZoo AEC game of your own
plugs in the same way: a module with ``env()`` is an ``env_id``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from pettingzoo import AECEnv

__all__ = ["NASH", "PAYOFF", "MatrixGame", "env", "exploitability"]

PAYOFF = np.array([[3.0, -2.0], [-2.0, 1.0]])  # the row player's payoff (row action, column action)
NASH = np.array([0.375, 0.625])  # both seats' equilibrium strategy


def exploitability(row: np.ndarray, col: np.ndarray) -> float:
    """How much a best response gains against the strategy pair, averaged over both seats:
    ``(max_a (R col)_a - min_b (row R)_b) / 2`` (half of NashConv; 0 exactly at the equilibrium)."""
    row, col = np.asarray(row, float), np.asarray(col, float)
    return float(((PAYOFF @ col).max() - (row @ PAYOFF).min()) / 2)


class MatrixGame(AECEnv):
    """:data:`PAYOFF` as a two-player AEC game: ``player_0`` picks a row, then ``player_1`` a column.

    Observations: ``{"observation": one-hot seat (2,), "action_mask": ones (2,)}``; rewards at the end.
    """

    metadata = {"name": "matrix_game_v0", "render_modes": [], "is_parallelizable": False}

    def __init__(self) -> None:
        super().__init__()
        self.possible_agents = ["player_0", "player_1"]
        self.observation_spaces = {
            agent: gym.spaces.Dict(
                {
                    "observation": gym.spaces.Box(0.0, 1.0, (2,), np.float32),
                    "action_mask": gym.spaces.Box(0, 1, (2,), np.int8),
                }
            )
            for agent in self.possible_agents
        }
        self.action_spaces = {agent: gym.spaces.Discrete(2) for agent in self.possible_agents}

    def observation_space(self, agent: str) -> gym.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> gym.Space:
        return self.action_spaces[agent]

    def observe(self, agent: str) -> dict[str, np.ndarray]:
        seat = np.zeros(2, np.float32)
        seat[self.possible_agents.index(agent)] = 1.0
        return {"observation": seat, "action_mask": np.ones(2, np.int8)}

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos = {agent: {} for agent in self.agents}
        self.agent_selection = self.agents[0]
        self._row_action: int | None = None

    def step(self, action: int) -> None:
        if self.terminations[self.agent_selection]:
            self._was_dead_step(action)
            return
        if self.agent_selection == "player_0":
            self._row_action = int(action)
            self.agent_selection = "player_1"
            return
        payoff = float(PAYOFF[self._row_action, int(action)])
        self.rewards = {"player_0": payoff, "player_1": -payoff}
        self.terminations = dict.fromkeys(self.agents, True)
        self._accumulate_rewards()


def env() -> MatrixGame:
    """The game's factory (what ``env_id: app_zoo.league_demo.matrix_game`` calls)."""
    return MatrixGame()
