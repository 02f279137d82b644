"""Stepping a vector env with the live policy and turning its output into true transitions."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from lightning_rl.envs.episodes import check_reports_episodes, finished_episodes
from lightning_rl.envs.vector import true_next_obs


class VectorStep(NamedTuple):
    """One step of ``E`` envs. ``next_obs`` is the true successor (the final obs where an episode ended)."""

    obs: Tensor  # (E, *obs_shape)
    action: Tensor  # (E,) or (E, *action_shape)
    reward: Tensor  # (E,) float32
    terminated: Tensor  # (E,) bool
    truncated: Tensor  # (E,) bool
    next_obs: Tensor  # (E, *obs_shape)
    dropped: Tensor  # (E,) bool: the env failed at this step; no transition (see envs.manager)


@dataclass
class CollectCounters:
    """A run's collection counters: the one place env steps and episodes are counted (by
    :meth:`VectorCollector.step`); the DataModule that owns them checkpoints them."""

    env_steps: int = 0  # global: all ranks together
    episodes: int = 0  # finished by this rank's envs (episodes an env manager dropped are not counted)

    def state_dict(self) -> dict[str, int]:
        return {"env_steps": self.env_steps, "episodes": self.episodes}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.env_steps, self.episodes = int(state["env_steps"]), int(state["episodes"])


class VectorCollector:
    """Runs a vector env (``SAME_STEP`` autoreset), counts env steps and episodes, keeps episode statistics.

    Finished episodes are read from the env's step infos (:mod:`lightning_rl.envs.episodes`), so those
    an env manager dropped (a faulted env) are not counted.

    Args:
        env: the vector env; its episodes restart from :meth:`reset`.
        counters: the run's counters to add to (default: fresh ones, see :attr:`counters`).
        world_size: ranks collecting alike; each vector step adds ``num_envs * world_size`` global env steps.
        stats_window: number of recent finished episodes that :meth:`episode_stats` averages.
    """

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        counters: CollectCounters | None = None,
        world_size: int = 1,
        stats_window: int = 100,
    ):
        check_reports_episodes(env)
        self.env = env
        self.counters = counters if counters is not None else CollectCounters()
        self._global_steps_per_step = env.num_envs * world_size
        self._obs: np.ndarray | None = None
        self.recent_returns: deque[float] = deque(maxlen=stats_window)
        self.recent_lengths: deque[int] = deque(maxlen=stats_window)

    def reset(self, seed: int) -> None:
        self._obs, _ = self.env.reset(seed=seed)

    def step(self, act: Callable[[Tensor], Tensor]) -> VectorStep:
        """Act on the current observations and step every env once."""
        if self._obs is None:
            raise RuntimeError("VectorCollector.step() called before reset()")
        obs = torch.as_tensor(self._obs)
        action = act(obs).cpu()
        next_obs, reward, terminated, truncated, info = self.env.step(action.numpy())
        done = terminated | truncated
        dropped = info.get("dropped", np.zeros(self.env.num_envs, dtype=bool))
        _, returns, lengths = finished_episodes(info)
        self.counters.episodes += len(returns)
        self.counters.env_steps += self._global_steps_per_step
        self.recent_returns.extend(returns.tolist())
        self.recent_lengths.extend(lengths.tolist())
        transition = VectorStep(
            obs=obs,
            action=action,
            reward=torch.as_tensor(reward, dtype=torch.float32),
            terminated=torch.as_tensor(terminated),
            truncated=torch.as_tensor(truncated),
            next_obs=torch.as_tensor(true_next_obs(next_obs, done, info)),
            dropped=torch.as_tensor(dropped),
        )
        self._obs = next_obs
        return transition

    def episode_stats(self) -> dict[str, float]:
        return episode_metrics(self.recent_returns, self.recent_lengths)


def episode_metrics(returns: Sequence[float], lengths: Sequence[int]) -> dict[str, float]:
    """``collect/return_mean`` and ``collect/episode_len`` of recent episodes (none: no entries)."""
    if not returns:
        return {}
    return {"collect/return_mean": float(np.mean(returns)), "collect/episode_len": float(np.mean(lengths))}
