"""In-process env manager (nerveX's ``BaseEnvManager``): the fastest choice for cheap envs."""

from __future__ import annotations

import contextlib
import traceback
from typing import Any

import gymnasium as gym
import numpy as np

from lightning_rl.envs.manager.base import EnvManager, access_env


class SyncEnvManager(EnvManager):
    """Steps ``n_envs`` envs one after another in this process.

    An env whose ``step`` or ``reset`` raises is closed, rebuilt and reset; its episode is dropped (see
    :mod:`lightning_rl.envs.manager.base`). A hung env cannot be interrupted in-process: use
    :class:`~lightning_rl.envs.manager.SubprocessEnvManager` with a ``step_timeout`` for that.

    Arguments: :class:`EnvManager`'s (``env_fn``, ``env_cfg``, ``n_envs`` or nerveX's ``env_num``,
    the fault budget ``max_retries``, ``max_fault_rate``, ``fault_window``, ``episode_num``, ``stats_window``,
    ``env_name``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.envs: list[gym.Env] = [fn() for fn in self.env_fns]
        self._set_spaces(self.envs[0].observation_space, self.envs[0].action_space)
        for i, env in enumerate(self.envs[1:], start=1):
            self._check_spaces(i, env.observation_space, env.action_space)

    def _reset_one(
        self, i: int, options: dict[str, Any] | None = None, fresh: bool = True
    ) -> tuple[Any, dict[str, Any]]:
        """Reset env ``i``, seeding it if ``fresh`` (a new or rebuilt env; an autoreset continues its
        RNG); a failure rebuilds it and tries again (bounded by the fault budget)."""
        seed = self._env_seed(i) if fresh else None
        after_step = not fresh  # an autoreset follows the successful step that ended the episode
        while True:
            try:
                return self.envs[i].reset(seed=seed, options=options)
            except Exception as error:
                self._rebuild(i, error, after_step)
                seed, after_step = self._env_seed(i), False

    def _rebuild(self, i: int, error: BaseException, after_step: bool = False) -> None:
        detail = "".join(traceback.format_exception_only(error)).strip()
        self._record_fault(i, "error", detail, after_step)
        with contextlib.suppress(Exception):  # the env is broken already; closing it is best effort
            self.envs[i].close()
        while True:
            try:
                self.envs[i] = self.env_fns[i]()
                return
            except Exception as build_error:
                self._record_fault(i, "error", f"rebuild failed: {build_error!r}")

    def _reset_envs(self, options: dict[str, Any] | None) -> tuple[np.ndarray, list[dict[str, Any]]]:
        results = [self._reset_one(i, options) for i in range(self.num_envs)]
        return np.stack([obs for obs, _ in results]), [info for _, info in results]

    def _step_envs(self, index: np.ndarray, actions: np.ndarray) -> tuple:
        n = len(index)
        space = self.single_observation_space
        obs = np.empty((n, *space.shape), dtype=space.dtype)
        final_obs = np.zeros((n, *space.shape), dtype=space.dtype)
        reward = np.zeros(n)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        dropped = np.zeros(n, dtype=bool)
        infos: list[dict[str, Any]] = [{}] * n
        for row, i in enumerate(index.tolist()):
            try:
                next_obs, reward[row], terminated[row], truncated[row], info = self.envs[i].step(actions[row])
            except Exception as error:
                self._rebuild(i, error)
                final_obs[row] = self._last_obs[i]
                dropped[row] = truncated[row] = True
                next_obs, info = self._reset_one(i)
            else:
                if terminated[row] or truncated[row]:
                    final_obs[row] = next_obs
                    step_info = info
                    next_obs, info = self._reset_one(i, fresh=False)
                    info = {**info, "final_info": step_info}
            obs[row] = next_obs
            infos[row] = info
        return obs, reward, terminated, truncated, final_obs, dropped, infos

    def _access_envs(self, name: str, request: tuple) -> list[Any]:
        if request[0] == "set":
            return [
                access_env(env, name, ("set", value))
                for env, value in zip(self.envs, request[1], strict=True)
            ]
        return [access_env(env, name, request) for env in self.envs]

    def _close_envs(self) -> None:
        for env in self.envs:
            env.close()
