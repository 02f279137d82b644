"""Deterministic evaluation rollouts on a vector env."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from lightning_rl.envs.episodes import check_reports_episodes, finished_episodes


@dataclass(frozen=True)
class EpisodeStats:
    """Returns and lengths of finished episodes."""

    returns: np.ndarray  # (n_episodes,) float64
    lengths: np.ndarray  # (n_episodes,) int64

    @property
    def return_mean(self) -> float:
        return float(self.returns.mean())

    @property
    def return_std(self) -> float:
        return float(self.returns.std())

    @property
    def length_mean(self) -> float:
        return float(self.lengths.mean())

    def as_metrics(self, prefix: str = "eval") -> dict[str, float]:
        """``{prefix}/return_mean``, ``{prefix}/return_std`` and ``{prefix}/episode_len``."""
        return {
            f"{prefix}/return_mean": self.return_mean,
            f"{prefix}/return_std": self.return_std,
            f"{prefix}/episode_len": self.length_mean,
        }


def run_episodes(
    act: Callable[[torch.Tensor], torch.Tensor],
    env: gym.vector.VectorEnv,
    n_episodes: int,
    seed: int,
    on_done: Callable[[torch.Tensor], None] | None = None,
) -> EpisodeStats:
    """Run exactly ``n_episodes`` episodes with ``act`` (obs (E, *obs_shape) -> actions (E, ...)).

    Episodes are split evenly over the envs before starting, so short episodes are not over-counted
    (taking the first ``n`` to finish would bias the mean towards failures). Resetting with the same
    ``seed`` makes repeated evaluations of the same policy identical.

    Finished episodes are read from the env's step infos (:mod:`lightning_rl.envs.episodes`): an
    episode an env manager dropped (its env faulted, see :mod:`lightning_rl.envs.manager.base`) is no
    episode, so it is not counted and that env's quota continues with its next, fresh episode.
    """
    check_reports_episodes(env)
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    n_envs = env.num_envs
    quota = np.full(n_envs, n_episodes // n_envs) + (np.arange(n_envs) < n_episodes % n_envs)
    returns: list[float] = []
    lengths: list[int] = []
    obs, _ = env.reset(seed=seed)
    while (quota > 0).any():
        with torch.no_grad():
            action = act(torch.as_tensor(obs))
        obs, _, terminated, truncated, info = env.step(action.cpu().numpy())
        if on_done is not None:
            dropped = info.get("dropped", np.zeros(n_envs, dtype=bool))
            on_done(torch.as_tensor(terminated | truncated | dropped))
        for i, episode_return, length in zip(*finished_episodes(info), strict=True):
            if quota[i] > 0:  # an env past its quota keeps running; its extra episodes don't count
                returns.append(episode_return)
                lengths.append(length)
                quota[i] -= 1
    return EpisodeStats(np.asarray(returns, dtype=np.float64), np.asarray(lengths, dtype=np.int64))
