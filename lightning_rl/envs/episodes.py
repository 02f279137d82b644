"""Per-env episode bookkeeping shared by training collection and evaluation."""

from __future__ import annotations

import numpy as np


class EpisodeTracker:
    """Running return and length of each of ``n_envs`` envs; reports the episodes that end."""

    def __init__(self, n_envs: int):
        self.returns = np.zeros(n_envs)
        self.lengths = np.zeros(n_envs, dtype=np.int64)

    def reset(self) -> None:
        self.returns[:] = 0.0
        self.lengths[:] = 0

    def step(self, reward: np.ndarray, done: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Add one step. Shapes: reward (E,), done (E,) bool.

        Returns ``(env_index, returns, lengths)`` of the episodes that ended at this step, each (K,).
        """
        self.returns += reward
        self.lengths += 1
        ended = np.flatnonzero(done)
        finished = (ended, self.returns[ended].copy(), self.lengths[ended].copy())
        self.returns[ended] = 0.0
        self.lengths[ended] = 0
        return finished

    def discard(self, env_mask: np.ndarray) -> None:
        """Forget the running episodes of the ``(E,)`` bool ``env_mask`` envs without reporting them."""
        self.returns[env_mask] = 0.0
        self.lengths[env_mask] = 0
