"""Run a signal controller over whole episodes of :class:`TrafficSignalEnv` and summarize the traffic.

A controller is anything with ``reset()`` (called at each episode start) and ``__call__(obs) -> action``;
the fixed-time baseline and a trained DQN are compared on the same seeds (the same traffic).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from app_zoo.sumo.envs import TrafficSignalEnv


class Controller(Protocol):
    def reset(self) -> None: ...

    def __call__(self, obs: np.ndarray) -> int: ...


@dataclass(frozen=True)
class EpisodeResult:
    """One episode's traffic at the horizon (see :class:`TrafficSignalEnv` for the definitions)."""

    seed: int
    mean_waiting_time: float  # s per vehicle that entered the network
    vehicles: int
    pending: int  # vehicles not yet inserted at the horizon
    episode_return: float


def run_episodes(
    controller: Controller, seeds: Iterable[int], env_cfg: Mapping[str, Any] | None = None
) -> list[EpisodeResult]:
    """One episode per seed with ``controller`` on ``TrafficSignalEnv(env_cfg)``."""
    env = TrafficSignalEnv(env_cfg)
    results = []
    try:
        for seed in seeds:
            controller.reset()
            obs, _ = env.reset(seed=seed)
            episode_return, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, info = env.step(controller(obs))
                episode_return += reward
                done = terminated or truncated
            results.append(
                EpisodeResult(
                    seed, info["mean_waiting_time"], info["vehicles"], info["pending"], episode_return
                )
            )
    finally:
        env.close()
    return results


def mean_waiting_time(results: list[EpisodeResult]) -> float:
    """The comparison metric: mean waiting time per vehicle (s), averaged over episodes."""
    return float(np.mean([r.mean_waiting_time for r in results]))
