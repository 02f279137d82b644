"""MountainCar as a config-built env: ``MountainCarEnv(cfg={})``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym

from lightning_rl.envs import GymEnv


class MountainCarEnv(GymEnv):
    """gymnasium's ``MountainCar-v0``: obs ``(2,)`` float32 (position in [-1.2, 0.6], velocity in
    [-0.07, 0.07]), 3 discrete actions (push left, none, push right), reward -1 on every step; terminates
    when the car reaches position 0.5, truncated at 200 steps (so returns lie in [-200, -1]).

    Config: ``env_id`` (default ``"MountainCar-v0"``) and ``env_kwargs`` for ``gymnasium.make``.
    """

    default_config: ClassVar[Mapping[str, Any]] = {"env_id": "MountainCar-v0", "env_kwargs": {}}

    def reward_space(self) -> gym.spaces.Box:
        return gym.spaces.Box(-1.0, 0.0, shape=())
