"""Acrobot as a config-built env: ``AcrobotEnv(cfg={})``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym

from lightning_rl.envs import GymEnv


class AcrobotEnv(GymEnv):
    """gymnasium's ``Acrobot-v1``: obs ``(6,)`` float32 (cos/sin of both joint angles, two angular
    velocities), 3 discrete actions (torque -1, 0, +1 on the middle joint), reward -1 per step until the
    tip swings above the line (then 0 and the episode terminates); truncated at 500 steps.

    Config: ``env_id`` (default ``"Acrobot-v1"``) and ``env_kwargs`` for ``gymnasium.make``.
    """

    default_config: ClassVar[Mapping[str, Any]] = {"env_id": "Acrobot-v1", "env_kwargs": {}}

    def reward_space(self) -> gym.spaces.Box:
        return gym.spaces.Box(-1.0, 0.0, shape=())
