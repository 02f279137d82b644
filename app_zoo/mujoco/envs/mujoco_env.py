"""gymnasium's MuJoCo envs as config-built envs with float32 observations."""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from lightning_rl.envs import GymEnv

INSTALL_HINT = (
    "pip install 'lightning-rl[mujoco]' (the mujoco bindings, and imageio for gymnasium's renderer)"
)


def mujoco_ids() -> list[str]:
    """gymnasium's registered MuJoCo ids (``Hopper-v5``, ``Ant-v4``, ...)."""
    return sorted(
        env_id
        for env_id, spec in gym.registry.items()
        if str(spec.entry_point).startswith("gymnasium.envs.mujoco")
    )


def to_float32(obs: np.ndarray) -> np.ndarray:
    """``obs`` as float32 (module level, so an env pickles for subprocesses)."""
    return obs.astype(np.float32)


class MujocoEnv(GymEnv):
    """A gymnasium MuJoCo env; observations cast from float64 to float32 (what replay and policies expect).

    Shapes (v5): obs ``(obs_dim,)`` float32, unbounded; actions ``(act_dim,)`` float32 in ``[-1, 1]``;
    episodes truncate at 1000 steps (Hopper and Walker2d also terminate when they fall).

    Config:
        env_id: a gymnasium MuJoCo id (default ``"Hopper-v5"``).
        env_kwargs: keyword arguments for ``gymnasium.make`` (e.g. ``{"ctrl_cost_weight": 1e-3}``).
    """

    default_config: ClassVar[Mapping[str, Any]] = {"env_id": "Hopper-v5", "env_kwargs": {}}

    def _build(self, cfg: dict[str, Any]) -> gym.Env:
        ids = mujoco_ids()
        if cfg["env_id"] not in ids:
            close = difflib.get_close_matches(str(cfg["env_id"]), ids, n=3)
            raise ValueError(
                f"{type(self).__name__} config: env_id {cfg['env_id']!r} is not a gymnasium MuJoCo env; "
                + (f"did you mean {close}?" if close else f"allowed: {ids}")
            )
        missing = [name for name in ("mujoco", "imageio") if importlib.util.find_spec(name) is None]
        if missing:
            raise ImportError(
                f"{type(self).__name__} needs {missing}, which is not installed: {INSTALL_HINT}"
            )
        env = super()._build(cfg)
        space = env.observation_space
        float32_space = gym.spaces.Box(
            space.low.astype(np.float32), space.high.astype(np.float32), dtype=np.float32
        )
        return gym.wrappers.TransformObservation(env, to_float32, float32_space)


class HopperEnv(MujocoEnv):
    """``Hopper-v5``: obs ``(11,)``, action ``(3,)`` in [-1, 1]."""

    default_config: ClassVar[Mapping[str, Any]] = {"env_id": "Hopper-v5", "env_kwargs": {}}


class HalfCheetahEnv(MujocoEnv):
    """``HalfCheetah-v5``: obs ``(17,)``, action ``(6,)`` in [-1, 1]; never terminates early."""

    default_config: ClassVar[Mapping[str, Any]] = {"env_id": "HalfCheetah-v5", "env_kwargs": {}}


class Walker2dEnv(MujocoEnv):
    """``Walker2d-v5``: obs ``(17,)``, action ``(6,)`` in [-1, 1]."""

    default_config: ClassVar[Mapping[str, Any]] = {"env_id": "Walker2d-v5", "env_kwargs": {}}
