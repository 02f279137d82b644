"""Offline datasets from a policy's rollouts (the ``lightning-rl collect`` subcommand; entry layer).

It drives a policy on a DataModule's env and writes a :class:`~lightning_rl.data.TransitionDataset`
(the on-disk format lives in :mod:`lightning_rl.data.offline`); train on it with ``OfflineDataModule``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDictBase

from lightning_rl import keys
from lightning_rl.data.collector import VectorCollector
from lightning_rl.data.offline import TRANSITIONS_DIR, TransitionDataset, staging_dir, write_metadata
from lightning_rl.data.pipeline import TransitionPipeline
from lightning_rl.datamodules import EnvDataModule
from lightning_rl.envs import make_vector_env, probe_env_spec
from lightning_rl.policies import RLPolicy
from lightning_rl.utils.checks import check_positive, check_range

__all__ = ["collect_dataset"]


def collect_dataset(
    policy: RLPolicy,
    env: EnvDataModule | Callable[[], gym.Env],
    n_steps: int,
    out: str | os.PathLike,
    epsilon: float | Sequence[float] = 0.0,
    nstep: int = 1,
    n_envs: int = 8,
    seed: int = 0,
    source_ckpt: str | None = None,
    overwrite: bool = False,
) -> TransitionDataset:
    """Roll out ``policy.act(obs, mode="eval")`` and write ``n_steps`` transitions to ``out``.

    With probability ``epsilon`` (per env step) the action is replaced by a uniformly random one
    (discrete actions only), for state-action coverage beyond the greedy policy's. One epsilon per env
    (a list of ``n_envs``) mixes behaviors of several qualities in one dataset, which offline Q-learning
    needs: it learns what failing looks like only from data that fails (a near-greedy rollout of a
    good policy has almost no terminal transitions, and the Q-values of the actions it never takes are
    extrapolated and diverge). Transitions stream into the memory-mapped files as they are produced, so
    the dataset need not fit in memory.

    Args:
        policy: any :class:`~lightning_rl.policies.RLPolicy` whose spec matches the env's.
        env: an ``EnvDataModule`` (its env factory and spec are used) or a factory returning a
            ``gymnasium.Env``.
        n_steps: number of transitions to write (``N``); with ``nstep == 1`` also the env steps taken.
        out: dataset directory to create.
        epsilon: probability of a random action, in [0, 1]: one for all envs, or a list of ``n_envs``
            (env ``i`` acts with ``epsilon[i]``; e.g. ``[0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0]``).
        nstep: length of the stored n-step returns (reward ``(N, nstep)``); 1 keeps the data free of the
            behavior policy's bias in multi-step targets.
        n_envs: envs stepped together (a ``sync`` vector env).
        seed: seed of the env resets and of the random actions.
        source_ckpt: the checkpoint the policy came from, recorded in the metadata.
        overwrite: replace an existing ``out``.

    Returns:
        The written dataset, opened. Its metadata holds the returns and lengths of the episodes that
        finished during the rollout (``episode_returns``, ``episode_lengths``), the number of
        ``terminations`` in the data and ``epsilon`` as given.
    """
    check_positive(n_steps=n_steps, nstep=nstep, n_envs=n_envs)
    env_epsilon = _env_epsilon(epsilon, n_envs)  # (n_envs,)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if isinstance(env, EnvDataModule):
        make_env, env_spec = env.make_env, dict(env.env_spec)
        env_kwargs = env.hparams.get("env_kwargs")
    else:
        make_env, env_kwargs = env, None
        env_spec = probe_env_spec(getattr(env, "__qualname__", repr(env)), env).to_dict()
    _check_policy_matches(policy.spec.to_dict(), env_spec)
    if bool(env_epsilon.any()) and env_spec["action_type"] != "discrete":
        raise ValueError(
            f"epsilon must be 0 for continuous actions (env '{env_spec['env_id']}'), got {epsilon}; "
            "random actions are drawn for discrete action spaces only"
        )
    vector_env = make_vector_env(make_env, n_envs, "sync")
    vector_steps = math.ceil(n_steps / n_envs) + nstep - 1  # enough for n_steps complete windows
    # keep every finished episode (at most one per env step) for the metadata
    collector = VectorCollector(vector_env, stats_window=vector_steps * n_envs)
    pipeline = TransitionPipeline(collector, nstep)
    generator = torch.Generator().manual_seed(seed)
    n_actions = env_spec["n_actions"]

    def act(obs: torch.Tensor) -> torch.Tensor:
        action = policy.act(obs, mode="eval").cpu()
        if not env_epsilon.any():
            return action
        explore = torch.rand(action.shape, generator=generator) < env_epsilon
        return torch.where(explore, torch.randint(n_actions, action.shape, generator=generator), action)

    was_training = policy.training
    policy.eval()
    started = time.perf_counter()
    try:
        with staging_dir(Path(out), overwrite) as tmp:
            pipeline.reset(seed=seed)
            storage: TensorDictBase | None = None
            written = 0
            while written < n_steps:
                transitions = pipeline.step(act)
                if transitions is None:
                    continue
                if storage is None:  # allocate the files from the first item's shapes and dtypes
                    storage = transitions[0].expand(n_steps).memmap_like(prefix=tmp / TRANSITIONS_DIR)
                take = min(len(transitions), n_steps - written)
                storage[written : written + take] = transitions[:take]
                written += take
            metadata = {
                "env_spec": env_spec,
                "env_kwargs": env_kwargs,
                "env_steps": collector.counters.env_steps,
                "episodes": collector.counters.episodes,
                "episode_returns": list(collector.recent_returns),
                "episode_lengths": list(collector.recent_lengths),
                "return_mean": float(np.mean(collector.recent_returns)) if collector.recent_returns else None,
                "terminations": int(storage[keys.TERMINATED].sum()),
                "source_ckpt": None if source_ckpt is None else os.path.abspath(source_ckpt),
                "policy": type(policy).__qualname__,
                "epsilon": epsilon if isinstance(epsilon, (int, float)) else list(epsilon),
                "seed": seed,
                "n_envs": n_envs,
                "collect_time_s": round(time.perf_counter() - started, 2),
            }
            write_metadata(tmp, storage, metadata)
    finally:
        vector_env.close()
        policy.train(was_training)
    return TransitionDataset(out)


def _env_epsilon(epsilon: float | Sequence[float], n_envs: int) -> torch.Tensor:
    """``epsilon`` (one value or one per env) as a ``(n_envs,)`` float64 tensor, validated."""
    if isinstance(epsilon, (int, float)) and not isinstance(epsilon, bool):
        check_range("epsilon", epsilon, 0.0, 1.0)
        return torch.full((n_envs,), float(epsilon), dtype=torch.float64)
    if not isinstance(epsilon, Sequence) or isinstance(epsilon, str):
        raise TypeError(
            f"epsilon must be a float or a list of {n_envs} floats (one per env), got {epsilon!r}"
        )
    if len(epsilon) != n_envs:
        raise ValueError(
            f"epsilon must hold one value per env: a list of n_envs={n_envs} floats, got {len(epsilon)} "
            f"({list(epsilon)})"
        )
    for i, value in enumerate(epsilon):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"epsilon[{i}] must be a float in [0, 1], got {value!r}")
        check_range(f"epsilon[{i}]", value, 0.0, 1.0)
    return torch.tensor([float(value) for value in epsilon], dtype=torch.float64)


def _check_policy_matches(policy_spec: dict[str, Any], env_spec: dict[str, Any]) -> None:
    for field in ("obs_shape", "action_type", "n_actions", "action_shape"):
        if policy_spec[field] != env_spec[field]:
            raise ValueError(
                f"the policy was built for {field}={policy_spec[field]} (env '{policy_spec['env_id']}') but "
                f"env '{env_spec['env_id']}' has {field}={env_spec[field]}"
            )
