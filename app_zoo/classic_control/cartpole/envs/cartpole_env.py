"""CartPole as a config-built env: ``CartPoleEnv(cfg={})``, exactly as the nerveX tutorial writes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from lightning_rl.envs import GymEnv

# CartPole's observation: cart position, cart velocity, pole angle, pole angular velocity
POSITIONS = [0, 2]


class CartPoleEnv(GymEnv):
    """gymnasium's ``CartPole-v1`` (obs ``(4,)`` float32, 2 discrete actions, reward 1 per step).

    Config: ``env_id`` (default ``"CartPole-v1"``; ``"CartPole-v0"`` ends at 200 steps), ``env_kwargs``
    for ``gymnasium.make`` (e.g. ``{"max_episode_steps": 1000}``) and ``mask_velocity``: observe only
    the cart position and the pole angle (obs ``(2,)``), rl-zoo's "CartPoleNoVel": a partially observed
    task that a policy must solve from its memory of past observations (R2D2's LSTM), not from one
    observation.
    """

    default_config: ClassVar[Mapping[str, Any]] = {
        "env_id": "CartPole-v1",
        "env_kwargs": {},
        "mask_velocity": False,
    }

    def _build(self, cfg: dict[str, Any]) -> gym.Env:
        if not isinstance(cfg["mask_velocity"], bool):
            raise ValueError(
                f"CartPoleEnv config: mask_velocity must be true or false, got {cfg['mask_velocity']!r}"
            )
        env = super()._build(cfg)
        if not cfg["mask_velocity"]:
            return env
        space = env.observation_space
        positions = gym.spaces.Box(space.low[POSITIONS], space.high[POSITIONS], dtype=space.dtype)
        return gym.wrappers.TransformObservation(
            env, lambda obs: obs[POSITIONS].astype(np.float32), positions
        )

    def reward_space(self) -> gym.spaces.Box:
        return gym.spaces.Box(0.0, 1.0, shape=())
