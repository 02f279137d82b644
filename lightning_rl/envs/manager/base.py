"""What every env manager shares: construction from nerveX-style arguments, batched arrays, episode
statistics and fault accounting.

An env manager is a ``gymnasium.vector.VectorEnv`` (``SAME_STEP`` autoreset: the step that ends an
episode returns the next episode's first observation and puts the real last one in
``info["final_obs"]``), so DataModules, evaluation and user code drive it like any vector env. On top:

* **faults**: an env that crashes, raises or (subprocess manager) exceeds its timeout is rebuilt and
  reset; its broken episode is *dropped*: ``info["dropped"][i]`` is True, ``obs[i]`` is the new
  episode's first observation, ``truncated[i]`` is True, ``reward[i]`` is 0 and ``final_obs[i]`` is the
  observation the failed action was taken from. The step itself is no transition; consumers skip it
  (the collector and the n-step builder do). Counted in :meth:`stats`.
* **a fault budget** (:mod:`lightning_rl.envs.manager.faults`): sporadic faults are survived however long
  the episodes; an env that faults ``max_retries + 1`` times in a row without a successful step, or at
  ``max_fault_rate`` over its last ``fault_window`` steps, is broken: :class:`EnvManagerError` names it
  instead of looping forever on a deterministic bug.
* **per-env readiness** (nerveX's actor loop): :attr:`ready_obs` and :meth:`step_ready` step any subset
  of envs; with ``episode_num`` each env stops after that many episodes and :attr:`done` turns True.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import gymnasium as gym
import numpy as np

from lightning_rl.envs.manager.faults import EnvManagerError, FaultBudget, FaultLimits
from lightning_rl.utils.checks import check_int

log = logging.getLogger(__name__)

FaultKind = Literal["crash", "timeout", "error"]
FAULT_KINDS: tuple[FaultKind, ...] = ("crash", "timeout", "error")


@dataclass(frozen=True)
class EnvStep:
    """One env's step result from :meth:`EnvManager.step_ready`.

    ``obs`` is what the env shows now (the next episode's first observation if this step ended one);
    ``final_obs`` is the true successor observation when ``terminated or truncated`` (else ``None``).
    """

    obs: np.ndarray
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    final_obs: np.ndarray | None = None
    dropped: bool = False


def build_env_fns(
    env_fn: Callable[..., gym.Env] | Sequence[Callable[[], gym.Env]],
    env_cfg: Sequence[Mapping[str, Any]] | None = None,
    n_envs: int | None = None,
    *,
    env_num: int | None = None,
) -> list[Callable[[], gym.Env]]:
    """The per-env factories, from nerveX's ``(env_fn, env_cfg, n_envs)`` or a list of factories.

    ``env_fn(cfg=env_cfg[i])`` builds env ``i`` when ``env_cfg`` is given (different configs per env),
    else ``env_fn()`` ``n_envs`` times. A list of zero-argument factories is taken as is. ``env_num`` is
    nerveX's name for ``n_envs`` (both given: they must agree).
    """
    n_envs = _resolve_n_envs(n_envs, env_num)
    if isinstance(env_fn, Sequence):
        if env_cfg is not None or n_envs not in (None, len(env_fn)):
            raise ValueError("with a list of env factories, env_cfg must be None and n_envs its length")
        fns = list(env_fn)
    elif not callable(env_fn):
        raise ValueError(f"env_fn must be callable or a list of callables, got {env_fn!r}")
    elif env_cfg is not None:
        if n_envs is not None and n_envs != len(env_cfg):
            raise ValueError(f"n_envs={n_envs} but env_cfg has {len(env_cfg)} entries; they must match")
        fns = [partial(env_fn, cfg=dict(cfg)) for cfg in env_cfg]
    else:
        if n_envs is None:
            raise ValueError("n_envs must be set when env_cfg is None")
        fns = [env_fn] * n_envs
    check_int("n_envs", len(fns), 1)
    return fns


def factory_name(env_fn: Callable[..., Any]) -> str:
    """``CartPoleEnv`` for a class or function, also when a config parser wrapped it in a ``partial``;
    the id for ``partial(gymnasium.make, "CartPole-v1")``."""
    while isinstance(env_fn, partial):
        if env_fn.func is gym.make and env_fn.args and isinstance(env_fn.args[0], str):
            return env_fn.args[0]
        # jsonargparse passes a class from YAML as partial(<instantiator>, ..., cls): the class is last
        wrapped = [arg for arg in env_fn.args if callable(arg) and hasattr(arg, "__qualname__")]
        env_fn = wrapped[-1] if wrapped else env_fn.func
    return getattr(env_fn, "__qualname__", repr(env_fn))


def _resolve_n_envs(n_envs: int | None, env_num: int | None) -> int | None:
    """``n_envs``, also when spelled ``env_num`` as nerveX's env managers did
    (``SubprocessEnvManager(env_fn=CartPoleEnv, env_cfg=[{} for _ in range(4)], env_num=4)``).

    Both may be given only when they agree; otherwise a ``ValueError`` names both.
    """
    if env_num is None:
        return n_envs
    if n_envs is not None and n_envs != env_num:
        raise ValueError(
            f"n_envs={n_envs} and env_num={env_num} differ; env_num is nerveX's name for n_envs: give one"
        )
    return env_num


class EnvManager(gym.vector.VectorEnv):
    """Shared state and bookkeeping of the sync and subprocess managers (see the module docstring).

    Subclasses implement :meth:`_reset_envs`, :meth:`_step_envs` and :meth:`_close_envs`.

    Args:
        env_fn: a factory (called as ``env_fn(cfg=env_cfg[i])`` or ``env_fn()``) or a list of
            zero-argument factories (see :func:`build_env_fns`).
        env_cfg: one config per env; envs may differ in config but must share their spaces.
        n_envs: number of envs (the length of ``env_cfg`` when given).
        env_num: nerveX's name for ``n_envs`` (its tutorial writes ``env_num=4``); give one of them, or
            both with the same value.
        max_retries, max_fault_rate, fault_window: the fault budget (:class:`FaultLimits`): faults of one
            env in a row without a successful step that are retried (one more raises), and the share of
            faults in an env's last ``fault_window`` steps that makes it broken (``None``: no rate bound).
        episode_num: episodes each env runs under :meth:`step_ready` before it stops (``None``: no limit).
        stats_window: finished episodes averaged by :meth:`stats`.
        env_name: what error messages call the env (default: the factory's name).
    """

    metadata: dict[str, Any] = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(
        self,
        env_fn: Callable[..., gym.Env] | Sequence[Callable[[], gym.Env]],
        env_cfg: Sequence[Mapping[str, Any]] | None = None,
        n_envs: int | None = None,
        *,
        env_num: int | None = None,
        max_retries: int = FaultLimits.max_retries,
        max_fault_rate: float | None = FaultLimits.max_fault_rate,
        fault_window: int = FaultLimits.fault_window,
        episode_num: int | None = None,
        stats_window: int = 100,
        env_name: str | None = None,
    ) -> None:
        self.env_fns = build_env_fns(env_fn, env_cfg, n_envs, env_num=env_num)
        self.num_envs = check_int("n_envs", len(self.env_fns), 1)
        self.fault_limits = FaultLimits(max_retries, max_fault_rate, fault_window)
        self.env_name = env_name or factory_name(env_fn if callable(env_fn) else self.env_fns[0])
        self.episode_num = math.inf if episode_num is None else check_int("episode_num", episode_num, 1)
        check_int("stats_window", stats_window, 1)
        self.closed = False
        self._seed: int | None = None
        self._returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._episodes = np.zeros(self.num_envs, dtype=np.int64)  # finished, per env
        self._budget = FaultBudget(self.fault_limits, self.num_envs)
        self._restarts = np.zeros(self.num_envs, dtype=np.int64)  # rebuilds per env: seeds new episodes
        self.faults: Counter[str] = Counter({kind: 0 for kind in FAULT_KINDS})
        self.env_steps = 0
        self.dropped_episodes = 0
        self.recent_returns: deque[float] = deque(maxlen=stats_window)
        self.recent_lengths: deque[int] = deque(maxlen=stats_window)
        self._all_envs = np.arange(self.num_envs)
        self._in_flight = np.zeros(self.num_envs, dtype=bool)  # stepping under step_ready
        self._last_obs: np.ndarray | None = None  # (E, *obs_shape): each env's current observation
        self._last_obs_shared = False  # _last_obs is the array step() returned

    # ----------------------------------------------------------------------------- spaces and seeds
    def _set_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.single_observation_space = observation_space
        self.single_action_space = action_space
        self.observation_space = gym.vector.utils.batch_space(observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(action_space, self.num_envs)

    def _check_spaces(self, index: int, observation_space: gym.Space, action_space: gym.Space) -> None:
        if (observation_space, action_space) != (self.single_observation_space, self.single_action_space):
            raise EnvManagerError(
                f"env {index} has observation space {observation_space} and action space {action_space}, "
                f"env 0 has {self.single_observation_space} and {self.single_action_space}; all envs of a "
                "manager must share their spaces (use one manager per kind of env)"
            )

    def _env_seed(self, index: int) -> int | None:
        """Seed of env ``index``'s next fresh start: distinct per env and per rebuild, reproducible."""
        if self._seed is None:
            return None
        return self._seed + index + 1_000_003 * int(self._restarts[index])

    # ----------------------------------------------------------------------------- vector-env API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env; env ``i`` gets ``seed + i``. Returns obs ``(E, *obs_shape)`` and infos."""
        self._check_open()
        self._seed = seed
        self._returns[:] = 0.0
        self._lengths[:] = 0
        self._in_flight[:] = False
        obs, infos = self._reset_envs(options)
        self._last_obs = obs.copy()
        return obs, self._merge_infos(infos)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env once. ``actions`` ``(E, *action_shape)``.

        Returns obs ``(E, *obs_shape)``, reward ``(E,)`` float64, terminated/truncated ``(E,)`` bool and
        infos with ``final_obs`` ``(E, *obs_shape)`` (valid where an episode ended), ``dropped`` ``(E,)``
        and, at a step where episodes finished, gymnasium's ``RecordEpisodeStatistics`` entries:
        ``episode`` ``{"r": (E,) returns, "l": (E,) lengths}`` valid where ``_episode`` ``(E,)`` is True
        (an episode an env manager dropped is not reported).
        """
        self._check_open()
        if self._last_obs is None:
            raise EnvManagerError("step() called before reset()")
        if self._in_flight.any():
            raise EnvManagerError("step() while step_ready() has envs in flight; use one API at a time")
        actions = np.asarray(actions)
        if actions.shape[:1] != (self.num_envs,):
            raise ValueError(f"actions must have shape (num_envs={self.num_envs}, ...), got {actions.shape}")
        result = self._step_envs(self._all_envs, actions)
        obs, reward, terminated, truncated, final_obs, dropped, infos = result
        episodes = self._account(self._all_envs, reward, terminated, truncated, dropped)
        info = self._merge_infos(infos)
        info["final_obs"] = final_obs
        info["dropped"] = dropped
        if episodes is not None:
            info.update(episodes)
        self._last_obs = obs  # a fresh array each step, shared with the caller: copied before writing
        self._last_obs_shared = True
        return obs, reward, terminated, truncated, info

    # ----------------------------------------------------------------------------- nerveX actor API
    @property
    def ready_obs(self) -> dict[int, np.ndarray]:
        """Observations of the envs waiting for an action (not in flight, episode quota not reached)."""
        self._check_open()
        if self._last_obs is None:
            raise EnvManagerError("ready_obs read before reset()")
        ready = ~self._in_flight & (self._episodes < self.episode_num)
        return {int(i): self._last_obs[i] for i in np.flatnonzero(ready)}

    @property
    def done(self) -> bool:
        """Every env finished ``episode_num`` episodes (never, when ``episode_num`` is None)."""
        return bool((self._episodes >= self.episode_num).all())

    def step_ready(self, actions: Mapping[int, Any]) -> dict[int, EnvStep]:
        """Step the envs in ``actions`` (``{env_index: action}``) and return the results that are ready.

        The sync manager returns every stepped env. The subprocess manager in async mode returns as soon
        as ``wait_num`` envs have results (envs still stepping stay in flight and come back later).
        """
        self._check_open()
        ready = self.ready_obs
        not_ready = sorted(set(actions) - set(ready))
        if not_ready:
            raise EnvManagerError(f"envs {not_ready} are not ready for an action; ready: {sorted(ready)}")
        index = np.fromiter(actions, dtype=np.int64, count=len(actions))
        stacked = np.stack([np.asarray(a) for a in actions.values()]) if len(index) else np.empty(0)
        return self._step_ready(index, stacked)

    def _step_ready(self, index: np.ndarray, actions: np.ndarray) -> dict[int, EnvStep]:
        """Step envs ``index`` (one action row each); the subprocess manager's async mode overrides it."""
        if not len(index):
            return {}
        return self._to_env_steps(index, self._step_envs(index, actions))

    def _to_env_steps(self, index: np.ndarray, result: tuple) -> dict[int, EnvStep]:
        obs, reward, terminated, truncated, final_obs, dropped, infos = result
        self._account(index, reward, terminated, truncated, dropped)
        self._in_flight[index] = False
        if self._last_obs_shared:
            self._last_obs, self._last_obs_shared = self._last_obs.copy(), False
        steps = {}
        for row, i in enumerate(index.tolist()):
            self._last_obs[i] = obs[row]
            ended = bool(terminated[row] or truncated[row])
            steps[i] = EnvStep(
                obs=obs[row].copy(),
                reward=float(reward[row]),
                terminated=bool(terminated[row]),
                truncated=bool(truncated[row]),
                info=infos[row],
                final_obs=final_obs[row].copy() if ended else None,
                dropped=bool(dropped[row]),
            )
        return steps

    # ----------------------------------------------------------------------------- bookkeeping
    def _account(
        self,
        index: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
        dropped: np.ndarray,
    ) -> dict[str, Any] | None:
        """Episode statistics of the stepped envs ``index`` (rows of the other arrays): the one place
        episodes are counted. Returns gymnasium's ``RecordEpisodeStatistics`` info entries for the rows
        (``episode``: ``{"r": returns, "l": lengths}``, ``_episode``: mask of the episodes that ended
        at this step, dropped ones excluded), or ``None`` when none ended."""
        ended_mask = terminated | truncated
        if not ended_mask.any():  # the common step: no episode ended, so nothing was dropped either
            self._budget.stepped(index)
            self.env_steps += len(index)
            self._returns[index] += reward
            self._lengths[index] += 1
            return None
        valid = ~dropped
        self._budget.stepped(index, valid)
        self.env_steps += int(valid.sum())
        self.dropped_episodes += int(dropped.sum())
        self._returns[index] += np.where(valid, reward, 0.0)
        self._lengths[index] += valid
        finished = ended_mask & valid
        episode = {"r": self._returns[index].copy(), "l": self._lengths[index].copy()}
        ended = index[finished]
        if len(ended):
            self.recent_returns.extend(self._returns[ended].tolist())
            self.recent_lengths.extend(self._lengths[ended].tolist())
            self._episodes[ended] += 1
        restarted = index[ended_mask]  # ended or dropped: a fresh episode starts
        self._returns[restarted] = 0.0
        self._lengths[restarted] = 0
        return {"episode": episode, "_episode": finished} if finished.any() else None

    def _record_fault(self, index: int, kind: FaultKind, detail: str, after_step: bool = False) -> None:
        """Count a fault of env ``index``; raise :class:`EnvManagerError` once its fault budget is spent.
        ``after_step``: the fault directly follows a successful step of that env (an autoreset failed)."""
        self.faults[kind] += 1
        self._restarts[index] += 1
        broken = self._budget.fault(index, after_step)
        if broken is not None:
            raise EnvManagerError(
                f"env {index} ({self.env_name}) is broken: {broken}; {self._budget.faults[index]} faults "
                f"in all; last fault: {kind}: {detail}"
            )
        log.warning("env %d: %s (%s); rebuilding it and dropping its episode", index, kind, detail)

    @property
    def max_retries(self) -> int:
        return self.fault_limits.max_retries

    @property
    def env_faults(self) -> np.ndarray:
        """Faults per env ``(E,)`` since the manager was built (a broken worker's crash or timeout counts
        against the env it is blamed on)."""
        return self._budget.faults.copy()

    def stats(self) -> dict[str, float]:
        """Counters for logging: env steps, episodes, faults by kind, dropped steps, recent returns."""
        stats: dict[str, float] = {
            "env_steps": float(self.env_steps),
            "episodes": float(self._episodes.sum()),
            "dropped_episodes": float(self.dropped_episodes),
            **{f"faults/{kind}": float(n) for kind, n in self.faults.items()},
        }
        if self.recent_returns:
            stats["return_mean"] = float(np.mean(self.recent_returns))
            stats["episode_len"] = float(np.mean(self.recent_lengths))
        return stats

    def _merge_infos(self, infos: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Per-env info dicts → gymnasium's vector layout (``info[key]`` array plus ``info["_key"]`` mask)."""
        merged: dict[str, Any] = {}
        for i, info in enumerate(infos):
            if info:
                merged = self._add_info(merged, info, i)
        return merged

    def _check_open(self) -> None:
        if self.closed:
            raise EnvManagerError(f"{type(self).__name__} is closed")

    def close_extras(self, **kwargs: Any) -> None:
        self._close_envs()

    # ----------------------------------------------------------------------------- gymnasium's env access
    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Each env's attribute ``name`` (through its wrappers), called with ``args`` / ``kwargs`` when it
        is callable, as gymnasium's ``SyncVectorEnv.call``: one result per env."""
        self._check_open()
        return tuple(self._access_envs(name, ("call", args, kwargs)))

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """Each env's attribute ``name`` (a method is called without arguments, as gymnasium does)."""
        return self.call(name)

    def set_attr(self, name: str, values: Any) -> None:
        """Set attribute ``name`` of each env (through its wrappers) to ``values[i]``, or to ``values``
        itself when it is not a list or tuple."""
        self._check_open()
        if not isinstance(values, list | tuple):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"set_attr({name!r}): {len(values)} values for {self.num_envs} envs")
        self._access_envs(name, ("set", list(values)))

    # ----------------------------------------------------------------------------- subclass hooks
    def _reset_envs(self, options: dict[str, Any] | None) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Reset all envs (seeding each with :meth:`_env_seed`); obs ``(E, *obs_shape)`` and infos."""
        raise NotImplementedError

    def _step_envs(self, index: np.ndarray, actions: np.ndarray) -> tuple:
        """Step envs ``index`` with ``actions`` (one row each), autoresetting and recovering faults.

        Returns ``(obs, reward, terminated, truncated, final_obs, dropped, infos)`` with one row per env
        of ``index``.
        """
        raise NotImplementedError

    def _access_envs(self, name: str, request: tuple) -> list[Any]:
        """:func:`access_env` on every env: one result per env, in env order."""
        raise NotImplementedError

    def _close_envs(self) -> None:
        raise NotImplementedError


def access_env(env: gym.Env, name: str, request: tuple) -> Any:
    """``("call", args, kwargs)``: ``env``'s attribute ``name``, called if callable; ``("set", value)``:
    set it. Wrappers are searched as ``get_wrapper_attr`` / ``set_wrapper_attr`` do."""
    if request[0] == "set":
        env.set_wrapper_attr(name, request[1])
        return None
    attribute = env.get_wrapper_attr(name)
    return attribute(*request[1], **request[2]) if callable(attribute) else attribute
