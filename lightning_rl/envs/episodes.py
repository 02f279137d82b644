"""Reading finished episodes off a vector env's step info, gymnasium's way.

Episodes are counted once, where the steps happen: our env managers report them in every step's info
as gymnasium's ``RecordEpisodeStatistics`` does (``info["episode"] = {"r": returns, "l": lengths}``,
valid where ``info["_episode"]`` is True; an episode a manager dropped after a fault is not reported).
Training collection and evaluation both read them here; a plain gymnasium vector env reports them once
wrapped in ``gymnasium.wrappers.vector.RecordEpisodeStatistics``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from lightning_rl.envs.manager import EnvManager

__all__ = ["check_reports_episodes", "finished_episodes"]


def finished_episodes(info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(env_index, returns, lengths)`` of the episodes that ended at this step, each ``(K,)``
    (int64, float64, int64)."""
    mask = info.get("_episode")
    if mask is None:
        return np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int64)
    index = np.flatnonzero(mask)
    episode = info["episode"]
    returns = np.asarray(episode["r"], dtype=np.float64)[index]
    return index, returns, np.asarray(episode["l"], dtype=np.int64)[index]


def check_reports_episodes(env: gym.vector.VectorEnv) -> None:
    """Raise ``ValueError`` unless ``env`` reports finished episodes in its step infos."""
    layer: Any = env
    while layer is not None:
        if isinstance(layer, (EnvManager, gym.wrappers.vector.RecordEpisodeStatistics)):
            return
        layer = getattr(layer, "env", None)  # the next layer of a VectorWrapper chain
    raise ValueError(
        f"{type(env).__name__} does not report finished episodes: use an env manager of lightning_rl.envs "
        "or wrap it in gymnasium.wrappers.vector.RecordEpisodeStatistics"
    )
