"""A random-policy rollout through an env manager, shared by the app_zoo smoke tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lightning_rl.envs import EnvManager


@dataclass(frozen=True)
class Rollout:
    """Stacked step results: obs ``(T, E, *obs_shape)`` (after each step), reward/ended ``(T, E)``."""

    first_obs: np.ndarray
    obs: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray

    @property
    def episodes_ended(self) -> int:
        return int((self.terminated | self.truncated).sum())


def random_rollout(envs: EnvManager, steps: int, seed: int = 0) -> Rollout:
    """Reset ``envs`` with ``seed``, take ``steps`` uniformly random vector actions, close ``envs``."""
    try:
        first_obs, _ = envs.reset(seed=seed)
        envs.action_space.seed(seed)
        results = [envs.step(envs.action_space.sample())[:4] for _ in range(steps)]
    finally:
        envs.close()
    obs, reward, terminated, truncated = (np.stack(column) for column in zip(*results, strict=True))
    return Rollout(first_obs, obs, reward, terminated, truncated)
