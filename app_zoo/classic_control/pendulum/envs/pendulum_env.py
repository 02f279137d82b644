"""Pendulum as a config-built env: ``PendulumEnv(cfg={})``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym

from lightning_rl.envs import GymEnv

# reward = -(theta^2 + 0.1 * theta_dot^2 + 0.001 * torque^2), |theta| <= pi, |theta_dot| <= 8, |torque| <= 2
MIN_REWARD = -(math.pi**2 + 0.1 * 8.0**2 + 0.001 * 2.0**2)


class PendulumEnv(GymEnv):
    """gymnasium's ``Pendulum-v1``: obs ``(3,)`` float32 (cos theta, sin theta, angular velocity), action
    ``(1,)`` float32 torque in [-2, 2], reward in [-16.27, 0] (0 when upright and still); never
    terminates, truncated at 200 steps.

    Config: ``env_id`` (default ``"Pendulum-v1"``) and ``env_kwargs`` for ``gymnasium.make``
    (e.g. ``{"g": 9.81}``).
    """

    default_config: ClassVar[Mapping[str, Any]] = {"env_id": "Pendulum-v1", "env_kwargs": {}}

    def reward_space(self) -> gym.spaces.Box:
        return gym.spaces.Box(MIN_REWARD, 0.0, shape=())
