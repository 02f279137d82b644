"""CartPole as a config-built env: ``CartPoleEnv(cfg={})``, exactly as the nerveX tutorial writes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym

from lightning_rl.envs import GymEnv


class CartPoleEnv(GymEnv):
    """gymnasium's ``CartPole-v1`` (obs ``(4,)`` float32, 2 discrete actions, reward 1 per step).

    Config: ``env_id`` (default ``"CartPole-v1"``; ``"CartPole-v0"`` ends at 200 steps) and ``env_kwargs``
    for ``gymnasium.make`` (e.g. ``{"max_episode_steps": 1000}``).
    """

    default_config: ClassVar[Mapping[str, Any]] = {"env_id": "CartPole-v1", "env_kwargs": {}}

    def reward_space(self) -> gym.spaces.Box:
        return gym.spaces.Box(0.0, 1.0, shape=())
