"""The loop a subprocess worker runs: a few envs, commands over a pipe, data through shared memory.

Per step the pipe carries one command byte down and one small pickle up (``None`` when the envs have
no info to report); observations, actions, rewards and flags never leave the shared arrays.
"""

from __future__ import annotations

import contextlib
import signal
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym
import numpy as np

from lightning_rl.envs.manager.base import access_env

STEP = b"s"
RESET = b"r"
ACCESS = b"a"  # call / get / set an attribute of each env (gymnasium's call, get_attr, set_attr)
CLOSE = b"c"


@dataclass
class SharedArrays:
    """Numpy views of the manager's shared memory; row ``i`` belongs to env ``i``.

    obs, final_obs: ``(E, *obs_shape)``; action: ``(E, *action_shape)``; reward: ``(E,)`` float64;
    terminated, truncated: ``(E,)`` bool.
    """

    obs: np.ndarray
    final_obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


@dataclass(frozen=True)
class AccessError:
    """Reply of a worker whose env's attribute access raised: that exception, re-raised in the parent."""

    error: BaseException


@dataclass(frozen=True)
class WorkerError:
    """Reply of a worker whose env raised: which env (global index) and the formatted traceback."""

    env_index: int
    traceback: str


def worker_main(
    conn: Connection,
    env_fns: Sequence[Callable[[], gym.Env]],
    env_indices: Sequence[int],
    shared: Callable[[], SharedArrays],
) -> None:
    """Build the envs, then serve commands until ``CLOSE`` or the parent goes away.

    Replies: after building, ``(observation_space, action_space)`` of each env; after ``RESET``
    and ``STEP``, ``None`` or a list of per-env info dicts; a :class:`WorkerError` if an env raised.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes us
    envs: list[gym.Env] = []
    current = env_indices[0]
    try:
        for current, fn in zip(env_indices, env_fns, strict=True):  # noqa: B007  # `current` names a failure
            envs.append(fn())
        conn.send([(env.observation_space, env.action_space) for env in envs])
        arrays = shared()
        while True:
            command = conn.recv_bytes()
            if command == STEP:
                infos = []
                for current, env in zip(env_indices, envs, strict=True):
                    infos.append(_step(env, current, arrays))
                conn.send(infos if any(infos) else None)
            elif command == RESET:
                seeds, options = conn.recv()
                infos = []
                for current, env, seed in zip(env_indices, envs, seeds, strict=True):
                    arrays.obs[current], info = env.reset(seed=seed, options=options)
                    infos.append(info)
                conn.send(infos if any(infos) else None)
            elif command == ACCESS:
                name, requests = conn.recv()  # one request per env of this worker
                try:
                    conn.send([access_env(env, name, r) for env, r in zip(envs, requests, strict=True)])
                except Exception as error:  # the caller's mistake (no such attribute): the envs are fine
                    conn.send(AccessError(error))
            elif command == CLOSE:
                break
    except (EOFError, KeyboardInterrupt, BrokenPipeError):
        pass  # the parent closed the pipe or died: nothing left to serve
    except Exception:
        with contextlib.suppress(OSError, EOFError):
            conn.send(WorkerError(current, traceback.format_exc()))
    finally:
        for env in envs:
            with contextlib.suppress(Exception):  # a broken env may not close cleanly; we exit anyway
                env.close()
        conn.close()


def _step(env: gym.Env, i: int, arrays: SharedArrays) -> dict[str, Any]:
    """Step env ``i`` with its action row; autoreset (``SAME_STEP``) when the episode ends."""
    obs, reward, terminated, truncated, info = env.step(arrays.action[i])
    arrays.reward[i] = reward
    arrays.terminated[i] = terminated
    arrays.truncated[i] = truncated
    if terminated or truncated:
        arrays.final_obs[i] = obs
        step_info = info
        obs, info = env.reset()
        info = {**info, "final_info": step_info}
    arrays.obs[i] = obs
    return info
