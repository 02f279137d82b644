"""Google Research Football (Kurach et al., 2020) as a :class:`~lightning_rl.envs.MultiAgentEnv`: the
left team's players one agent each, in an academy scenario such as ``academy_3_vs_1_with_keeper``."""

from __future__ import annotations

from typing import Any

import numpy as np

from lightning_rl.envs.multi_agent import MultiAgentEnv, MultiAgentLayout

__all__ = ["INSTALL", "FootballEnv", "football_unavailable_reason"]

# The engine builds from source (about 10 minutes on 2 cores); Debian/Ubuntu packages, then pip.
INSTALL = (
    "apt-get install -y git cmake build-essential libgl1-mesa-dev libsdl2-dev libsdl2-image-dev "
    "libsdl2-ttf-dev libsdl2-gfx-dev libboost-python-dev libboost-system-dev libboost-filesystem-dev "
    "libboost-thread-dev libdirectfb-dev libst-dev mesa-utils xvfb libgl1-mesa-dri libegl-dev "
    "libosmesa6-dev && pip install psutil wheel && pip install --no-build-isolation -e '.[gfootball]'"
)
N_ACTIONS = 19  # gfootball's default action set: idle, 8 moves, passes, shot, sprint, dribble, ...


def football_unavailable_reason() -> str | None:
    """Why the engine cannot run here (``None`` where it can)."""
    try:
        import gfootball.env  # noqa: F401
    except ImportError as error:
        return f"gfootball is not installed ({error}): {INSTALL}"
    return None


class FootballEnv(MultiAgentEnv):
    """The left team's ``n_agents`` players of a gfootball scenario, one agent each.

    Args:
        scenario: a gfootball scenario, e.g. ``"academy_3_vs_1_with_keeper"`` (3 attackers against a
            defender and the keeper; the episode ends with a goal, the ball out of play, a change of
            possession or the time limit).
        n_agents: players controlled (the scenario's outfield players for the academy ones).
        representation: ``"simple115v2"`` (115 floats per player: positions, directions, ball, the
            active player) or another vector representation of gfootball.
        rewards: ``"scoring"`` (+1 / -1 per goal, for every player) or ``"scoring,checkpoints"`` (plus
            0.1 for the ball carrier per checkpoint zone towards the goal, gfootball's shaping).
        time_limit: the scenario's ``game_duration`` in steps (400 for the academy ones): an episode that
            lasts that long is truncated, every other end terminates.
        **options: further gfootball config options (``other_config_options``).

    Observations: each player's own ``representation`` row; the global state is the rows concatenated.
    Every action is allowed (no masks). The team reward is the sum of the players' rewards.
    """

    def __init__(
        self,
        scenario: str = "academy_3_vs_1_with_keeper",
        n_agents: int = 3,
        representation: str = "simple115v2",
        rewards: str = "scoring,checkpoints",
        time_limit: int = 400,
        **options: Any,
    ):
        reason = football_unavailable_reason()
        if reason is not None:
            raise ValueError(reason)
        import gfootball.env as football

        self.env = football.create_environment(
            env_name=scenario,
            representation=representation,
            rewards=rewards,
            number_of_left_players_agent_controls=n_agents,
            render=False,
            other_config_options=options,
        )
        shape = self.env.observation_space.shape
        if len(shape) != 2 or shape[0] != n_agents:
            raise ValueError(
                f"representation '{representation}' gives {shape}; a vector per player is needed"
            )
        self.time_limit = time_limit
        self._steps = 0
        self._init_spaces(MultiAgentLayout(n_agents, shape[1], n_agents * shape[1], n_actions=N_ACTIONS))

    def _parts(self, observation: np.ndarray) -> tuple[np.ndarray, np.ndarray, None]:
        agent_obs = np.asarray(observation, np.float32).reshape(self.layout.n_agents, -1)
        return agent_obs, agent_obs.reshape(-1), None

    def _reset(self, seed: int | None):
        if seed is not None:  # the engine's seed; later episodes vary with gfootball's episode counter
            self.env.unwrapped._config.update({"game_engine_random_seed": int(seed)})
        self._steps = 0
        return self._parts(self.env.reset()), {}

    def _step(self, action: np.ndarray):
        observation, reward, done, info = self.env.step(np.asarray(action, np.int64).reshape(-1))
        self._steps += 1
        truncated = bool(done) and self._steps >= self.time_limit
        terminated = bool(done) and not truncated
        return self._parts(observation), float(np.sum(reward)), terminated, truncated, {}

    def close(self) -> None:
        self.env.close()
