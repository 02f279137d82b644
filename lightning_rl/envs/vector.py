"""Building vectorized environments (our env managers) from an env id or a factory.

Vector envs run in ``SAME_STEP`` autoreset mode: the step that ends an episode already returns the
first observation of the next one and puts the true last observation in ``info["final_obs"]``. So every
step is a real transition (no dummy reset step to filter out, unlike the default ``NEXT_STEP`` mode),
and callers recover the true next observation with :func:`true_next_obs`.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Callable
from functools import partial
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from lightning_rl.envs.manager import EnvManager, SubprocessEnvManager, SyncEnvManager
from lightning_rl.envs.manager.base import factory_name
from lightning_rl.envs.manager.faults import FAULT_KNOBS, FaultLimits
from lightning_rl.envs.multi_agent import MultiAgentEnv
from lightning_rl.envs.two_player import TwoPlayerEnv, aec_game_factory
from lightning_rl.spec import EnvSpec
from lightning_rl.utils.checks import check_choice, check_int

Vectorization = Literal["sync", "subprocess"]
EnvFactory = Callable[..., gym.Env]


def resolve_env_factory(
    env_id: str | None, env_fn: EnvFactory | None, env_kwargs: dict[str, Any] | None = None
) -> tuple[str, Callable[[], gym.Env]]:
    """Return ``(name, make)`` where ``make()`` builds one env; validates the id before anything runs.

    ``env_id`` is a registered gymnasium id (also gymnasium's ``module:EnvId``: importing ``module``
    registers ``EnvId``, in every worker process too) or a two-player PettingZoo AEC game (a
    :class:`~lightning_rl.envs.TwoPlayerEnv`; ids as :func:`~lightning_rl.envs.two_player.aec_game_factory`
    takes them: ``connect_four_v3``, ``tictactoe_v3``, ``package.module:function``).
    """
    env_kwargs = dict(env_kwargs or {})
    if (env_id is None) == (env_fn is None):
        raise ValueError("exactly one of 'env_id' (a gymnasium id) or 'env_fn' (a factory) must be set")
    if env_fn is not None:
        if not callable(env_fn):
            raise ValueError(
                f"env_fn must be callable (a function or class returning a gymnasium.Env), got {env_fn!r}"
            )
        return factory_name(env_fn), partial(env_fn, **env_kwargs)
    if not _registered(env_id):
        try:  # a two-player PettingZoo game by its id, e.g. connect_four_v3
            aec_game_factory(env_id)
        except ValueError:
            pass
        else:
            return env_id, partial(TwoPlayerEnv, env_id, **env_kwargs)
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = (
            f"; did you mean {close}?"
            if close
            else "; see gymnasium.pprint_registry() for the registered ids (two-player games: "
            "pettingzoo.pprint_registry()'s AEC ids, e.g. connect_four_v3)"
        )
        raise ValueError(f"env_id: unknown gymnasium environment id '{env_id}'{hint}")
    return env_id, partial(gym.make, env_id, **env_kwargs)


def _registered(env_id: str) -> bool:
    """``env_id`` is in gymnasium's registry, or is ``module:EnvId`` whose module registers ``EnvId``."""
    if env_id in gym.registry:
        return True
    module, colon, name = env_id.partition(":")
    if not colon:
        return False
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is None or not (module == err.name or module.startswith(f"{err.name}.")):
            raise  # the module exists and fails to import something of its own: its error, not ours
        return False
    return name in gym.registry


def probe_env_spec(name: str, make: Callable[[], gym.Env]) -> EnvSpec:
    """Build one env, read its spaces, close it."""
    env = make()
    try:
        if isinstance(env.unwrapped, MultiAgentEnv):  # packed per-agent observations, joint actions
            return EnvSpec.from_multi_agent_layout(
                name, env.observation_space, env.unwrapped.layout.to_dict()
            )
        spec = EnvSpec.from_spaces(name, env.observation_space, env.action_space)
        if isinstance(env.unwrapped, TwoPlayerEnv):  # the learner's seat: legal moves in the observation
            board = env.unwrapped.board_shape
            spec = dataclasses.replace(spec, action_mask=True, two_player=True, board_shape=board)
        return spec
    finally:
        env.close()


_MANAGER_KWARGS = {
    "sync": {*FAULT_KNOBS, "stats_window"},
    "subprocess": {*FAULT_KNOBS, "stats_window", "n_workers", "step_timeout", "reset_timeout", "context"},
}


def check_manager_kwargs(vectorization: Vectorization, manager_kwargs: dict[str, Any]) -> None:
    """Unknown keys and a bad fault budget fail here, before any env is built (a ``ConfigError``)."""
    allowed = _MANAGER_KWARGS[vectorization]
    unknown = sorted(set(manager_kwargs) - allowed)
    if unknown:
        raise ValueError(
            f"env_manager: unknown keys {unknown} for {vectorization!r}; allowed: {sorted(allowed)}"
        )
    FaultLimits(**{k: v for k, v in manager_kwargs.items() if k in FAULT_KNOBS})


def make_vector_env(
    make: Callable[[], gym.Env],
    n_envs: int,
    vectorization: Vectorization = "sync",
    manager_kwargs: dict[str, Any] | None = None,
    env_name: str | None = None,
) -> EnvManager:
    """``n_envs`` copies of ``make()`` in one process (``"sync"``) or in worker processes
    (``"subprocess"``), behind an env manager (a gymnasium vector env with fault recovery).

    ``manager_kwargs`` go to the manager (the fault budget ``max_retries``, ``max_fault_rate``,
    ``fault_window``, see :class:`~lightning_rl.envs.manager.faults.FaultLimits`; for ``"subprocess"``
    also ``n_workers``, ``step_timeout``, ``reset_timeout``, ``context``); ``env_name`` is what its error
    messages call the env. On a 2-core machine cheap envs (CartPole) are
    several times faster in-process; subprocesses pay off for expensive envs and isolate crashes.
    """
    check_int("n_envs", n_envs, 1)
    check_choice("vectorization", vectorization, ("sync", "subprocess"))
    manager_kwargs = dict(manager_kwargs or {})
    check_manager_kwargs(vectorization, manager_kwargs)
    manager = SyncEnvManager if vectorization == "sync" else SubprocessEnvManager
    return manager(make, n_envs=n_envs, env_name=env_name, **manager_kwargs)


def true_next_obs(next_obs: np.ndarray, done: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """The observation each env actually reached: ``info["final_obs"]`` where an episode just ended.

    Shapes: next_obs (E, *obs_shape), done (E,) bool -> (E, *obs_shape)
    """
    if not done.any():
        return next_obs
    real = next_obs.copy()
    for i in np.flatnonzero(done):
        real[i] = info["final_obs"][i]
    return real
