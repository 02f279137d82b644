"""Env manager with envs in worker processes: isolation, timeouts, restarts and an async mode."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
from functools import partial
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from lightning_rl.envs.manager._worker import (
    ACCESS,
    CLOSE,
    RESET,
    STEP,
    AccessError,
    SharedArrays,
    WorkerError,
    worker_main,
)
from lightning_rl.envs.manager.base import EnvManager, EnvManagerError, EnvStep, FaultKind
from lightning_rl.utils.checks import check_choice, check_int, check_positive


def _allocate(ctx: Any, shape: tuple[int, ...], dtype: np.dtype) -> tuple[Any, tuple[int, ...], str]:
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    return ctx.RawArray("b", max(nbytes, 1)), shape, np.dtype(dtype).str


def _views(raw: dict[str, tuple[Any, tuple[int, ...], str]]) -> SharedArrays:
    """Numpy views of the raw shared buffers (called in the parent and in each worker)."""
    arrays = {
        name: np.frombuffer(buffer, dtype=dtype, count=int(np.prod(shape, dtype=np.int64))).reshape(shape)
        for name, (buffer, shape, dtype) in raw.items()
    }
    return SharedArrays(**arrays)


class _Worker:
    """A worker process serving envs ``env_indices`` (contiguous), and its pipe."""

    def __init__(self, env_indices: list[int]):
        self.env_indices = env_indices
        self.process: mp.process.BaseProcess | None = None
        self.conn: Connection | None = None

    def stop(self, timeout: float) -> None:
        """Ask it to close, then kill it if it lingers; always reaped (no zombies)."""
        if self.conn is not None:
            with contextlib.suppress(OSError, ValueError):
                self.conn.send_bytes(CLOSE)
        self.kill(timeout)

    def kill(self, grace: float = 0.0) -> None:
        if self.process is not None:
            self.process.join(grace)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
            self.process.close()
            self.process = None
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class SubprocessEnvManager(EnvManager):
    """``n_envs`` envs in worker processes; observations come back through shared memory.

    Faults (see :mod:`lightning_rl.envs.manager.base`): a worker that dies (``crash``), an env that
    raises (``error``) or a step/reset slower than its timeout (``timeout``) gets its process killed and
    restarted; the episodes of that worker's envs are dropped and the fault is counted against the env
    that failed (for a crash or timeout of a worker with several envs: its first env).

    Args:
        args, kwargs: :class:`EnvManager`'s (``env_fn``, ``env_cfg``, ``n_envs`` or nerveX's ``env_num``,
            the fault budget ``max_retries``, ``max_fault_rate``, ``fault_window``, ``episode_num``,
            ``stats_window``, ``env_name``).
        n_workers: processes to spread the envs over (default: one per env, the most isolated). Fewer
            workers cut inter-process traffic (faster for cheap envs) but a fault drops the episodes of
            every env in the failed worker; async mode needs one env per worker.
        step_timeout: seconds a worker may take for one step of its envs (``None``: wait forever).
        reset_timeout: seconds a worker may take to start and reset its envs (``None``: wait forever).
        wait_num: async mode: :meth:`step_ready` returns once this many envs have results (``None``:
            wait for every stepped env).
        context: multiprocessing start method; ``"fork"`` (default on Linux) needs no picklable
            ``env_fn``, ``"forkserver"``/``"spawn"`` are safer next to many threads.
        close_timeout: seconds a worker gets to close its envs before it is killed.
    """

    def __init__(
        self,
        *args: Any,
        n_workers: int | None = None,
        step_timeout: float | None = None,
        reset_timeout: float | None = None,
        wait_num: int | None = None,
        context: str | None = None,
        close_timeout: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        n_workers = self.num_envs if n_workers is None else check_int("n_workers", n_workers, 1)
        if n_workers > self.num_envs:
            raise ValueError(f"n_workers must be <= n_envs={self.num_envs}, got {n_workers}")
        check_positive(step_timeout=step_timeout, reset_timeout=reset_timeout, close_timeout=close_timeout)
        self.wait_num = self.num_envs if wait_num is None else check_int("wait_num", wait_num, 1)
        if self.wait_num < self.num_envs and n_workers != self.num_envs:
            raise ValueError(f"wait_num={wait_num} (async mode) needs n_workers == n_envs={self.num_envs}")
        methods = mp.get_all_start_methods()
        context = context or ("fork" if "fork" in methods else methods[0])
        check_choice("context", context, methods)
        self.step_timeout, self.reset_timeout, self.close_timeout = step_timeout, reset_timeout, close_timeout
        self._ctx = mp.get_context(context)

        probe = self.env_fns[0]()  # the spaces size the shared memory before any worker starts
        try:
            self._set_spaces(probe.observation_space, probe.action_space)
        finally:
            probe.close()
        obs_space, act_space = self.single_observation_space, self.single_action_space
        e = self.num_envs
        self._raw = {
            "obs": _allocate(self._ctx, (e, *obs_space.shape), obs_space.dtype),
            "final_obs": _allocate(self._ctx, (e, *obs_space.shape), obs_space.dtype),
            "action": _allocate(self._ctx, (e, *act_space.shape), act_space.dtype),
            "reward": _allocate(self._ctx, (e,), np.float64),
            "terminated": _allocate(self._ctx, (e,), np.bool_),
            "truncated": _allocate(self._ctx, (e,), np.bool_),
        }
        self._shared = _views(self._raw)
        self._workers = [_Worker(chunk.tolist()) for chunk in np.array_split(np.arange(e), n_workers)]
        self._sent_at = np.zeros(e)  # async mode: when each in-flight env was sent its action
        self._faulted: dict[int, dict[str, Any]] = {}  # async mode: env -> info of its restarted episode
        try:
            for w in range(n_workers):
                self._start(w)
        except _Fault as fault:
            self._close_envs()
            raise EnvManagerError(f"env worker failed to start: {fault}") from None
        except BaseException:
            self._close_envs()
            raise

    # ----------------------------------------------------------------------------- worker lifecycle
    def _start(self, w: int) -> None:
        """Start worker ``w`` and check the spaces it reports (bounded by ``reset_timeout``)."""
        worker = self._workers[w]
        parent_conn, child_conn = self._ctx.Pipe()
        fns = [self.env_fns[i] for i in worker.env_indices]
        process = self._ctx.Process(
            target=worker_main,
            args=(child_conn, fns, worker.env_indices, partial(_views, self._raw)),
            name=f"lightning_rl-env-worker-{w}",
            daemon=True,
        )
        process.start()
        child_conn.close()
        worker.process, worker.conn = process, parent_conn
        for i, spaces in zip(worker.env_indices, self._receive(w, self.reset_timeout), strict=True):
            self._check_spaces(i, *spaces)

    def _receive(self, w: int, timeout: float | None) -> Any:
        """Worker ``w``'s reply; raises :class:`_Fault` if it died, raised or timed out."""
        conn = self._workers[w].conn
        assert conn is not None
        if timeout is not None and not conn.poll(timeout):
            raise _Fault("timeout", f"no reply within {timeout} s")
        try:
            reply = conn.recv()
        except (EOFError, ConnectionResetError, OSError) as error:
            raise _Fault("crash", f"worker process died ({self._exit_reason(w)}): {error!r}") from None
        if isinstance(reply, WorkerError):
            raise _Fault("error", reply.traceback.strip().splitlines()[-1], reply.env_index)
        return reply

    def _exit_reason(self, w: int) -> str:
        process = self._workers[w].process
        if process is None:
            return "not running"
        process.join(0.1)
        return f"exit code {process.exitcode}"

    def _send_reset(self, w: int, options: dict[str, Any] | None = None) -> None:
        """Ask worker ``w`` to reset its envs with their seeds; raises :class:`_Fault` if it is gone."""
        worker = self._workers[w]
        try:
            worker.conn.send_bytes(RESET)  # type: ignore[union-attr]
            worker.conn.send(([self._env_seed(i) for i in worker.env_indices], options))  # type: ignore[union-attr]
        except (AttributeError, OSError, ValueError) as error:
            raise _Fault("crash", f"worker pipe broken: {error!r}") from None

    def _reset_worker(self, w: int, options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Reset worker ``w``'s envs; returns their infos."""
        self._send_reset(w, options)
        return self._receive(w, self.reset_timeout) or [{} for _ in self._workers[w].env_indices]

    def _recover(self, w: int, fault: _Fault) -> list[dict[str, Any]]:
        """Count ``fault``, restart worker ``w`` and reset its envs; retried within the fault budget."""
        worker = self._workers[w]
        while True:
            failed = fault.env_index if fault.env_index is not None else worker.env_indices[0]
            worker.kill()
            self._record_fault(failed, fault.kind, fault.detail)  # raises once the budget is spent
            others = [i for i in worker.env_indices if i != failed]
            self._restarts[others] += 1  # rebuilt too: fresh seeds, or they would replay into the fault
            try:
                self._start(w)
                return self._reset_worker(w)
            except _Fault as again:
                fault = again

    # ----------------------------------------------------------------------------- EnvManager hooks
    def _reset_envs(self, options: dict[str, Any] | None) -> tuple[np.ndarray, list[dict[str, Any]]]:
        faults: dict[int, _Fault] = {}
        for w in range(len(self._workers)):
            try:
                self._send_reset(w, options)
            except _Fault as fault:
                faults[w] = fault
        infos: list[dict[str, Any]] = []
        for w, worker in enumerate(self._workers):
            try:
                if w in faults:
                    raise faults[w]
                infos.extend(self._receive(w, self.reset_timeout) or [{} for _ in worker.env_indices])
            except _Fault as fault:
                infos.extend(self._recover(w, fault))
        return self._shared.obs.copy(), infos

    def _step_envs(self, index: np.ndarray, actions: np.ndarray) -> tuple:
        if len(index) != self.num_envs:
            raise EnvManagerError("the subprocess manager steps all envs at once outside async mode")
        shared = self._shared
        shared.action[...] = actions
        dropped = np.zeros(self.num_envs, dtype=bool)
        faulted: list[tuple[int, _Fault]] = []
        for w, worker in enumerate(self._workers):
            try:
                worker.conn.send_bytes(STEP)  # type: ignore[union-attr]
            except (OSError, ValueError) as error:
                faulted.append((w, _Fault("crash", f"worker pipe broken: {error!r}")))
        deadline = None if self.step_timeout is None else time.monotonic() + self.step_timeout
        infos: list[dict[str, Any]] = [{}] * self.num_envs
        broken = {w for w, _ in faulted}
        for w, worker in enumerate(self._workers):
            if w in broken:
                continue
            try:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                reply = self._receive(w, remaining)
            except _Fault as fault:
                faulted.append((w, fault))
                continue
            if reply is not None:
                for i, info in zip(worker.env_indices, reply, strict=True):
                    infos[i] = info
        reward = shared.reward.copy()
        terminated = shared.terminated.copy()
        truncated = shared.truncated.copy()
        final_obs = np.zeros(shared.obs.shape, shared.obs.dtype)  # calloc: untouched rows cost nothing
        ended = np.flatnonzero(terminated | truncated)
        final_obs[ended] = shared.final_obs[ended]
        for w, fault in faulted:
            rows = self._workers[w].env_indices
            final_obs[rows] = self._last_obs[rows]  # the obs the failed action was taken from
            dropped[rows] = True
            for i, info in zip(rows, self._recover(w, fault), strict=True):
                infos[i] = info
        reward[dropped], terminated[dropped], truncated[dropped] = 0.0, False, True
        return shared.obs.copy(), reward, terminated, truncated, final_obs, dropped, infos

    def _step_ready(self, index: np.ndarray, actions: np.ndarray) -> dict[int, EnvStep]:
        """Async mode: send the new actions, then wait until ``wait_num`` in-flight envs are done."""
        if self.wait_num == self.num_envs and len(index) == self.num_envs:
            return super()._step_ready(index, actions)
        if len(self._workers) != self.num_envs:
            raise EnvManagerError("step_ready() on a subset of envs needs n_workers == n_envs")
        now = time.monotonic()
        for row, i in enumerate(index.tolist()):
            self._shared.action[i] = actions[row]
            self._in_flight[i] = True
            self._sent_at[i] = now
            try:
                self._workers[i].conn.send_bytes(STEP)  # type: ignore[union-attr]
            except (OSError, ValueError) as error:
                self._faulted[i] = self._drop(i, _Fault("crash", f"worker pipe broken: {error!r}"))
        return self._gather_ready()

    def _gather_ready(self) -> dict[int, EnvStep]:
        """Results of in-flight envs: at least ``min(wait_num, in flight)``, or all that time out."""
        results: dict[int, EnvStep] = {}
        for i, info in list(self._faulted.items()):
            results.update(self._env_result(i, info, dropped=True))
        self._faulted.clear()
        while True:
            flying = np.flatnonzero(self._in_flight).tolist()
            if not flying or len(results) >= min(self.wait_num, len(results) + len(flying)):
                return results
            timeout = None
            if self.step_timeout is not None:
                timeout = max(0.0, min(self._sent_at[flying]) + self.step_timeout - time.monotonic())
            conns = {self._workers[i].conn: i for i in flying}
            arrived = wait(list(conns), timeout)
            for conn in arrived:
                i = conns[conn]
                try:
                    reply = self._receive(i, None)
                except _Fault as fault:
                    results.update(self._env_result(i, self._drop(i, fault), dropped=True))
                else:
                    results.update(self._env_result(i, reply[0] if reply else {}, dropped=False))
            if not arrived and self.step_timeout is not None:
                late = [i for i in flying if time.monotonic() - self._sent_at[i] >= self.step_timeout]
                for i in late:
                    fault = _Fault("timeout", f"no reply within {self.step_timeout} s")
                    results.update(self._env_result(i, self._drop(i, fault), dropped=True))

    def _drop(self, i: int, fault: _Fault) -> dict[str, Any]:
        """Async mode: recover env ``i``'s worker; returns the new episode's info."""
        self._shared.final_obs[i] = self._last_obs[i]
        return self._recover(i, fault)[0]

    def _env_result(self, i: int, info: dict[str, Any], dropped: bool) -> dict[int, EnvStep]:
        shared = self._shared
        reward = np.array([0.0 if dropped else shared.reward[i]])
        terminated = np.array([False if dropped else shared.terminated[i]])
        truncated = np.array([True if dropped else shared.truncated[i]])
        result = (
            shared.obs[i : i + 1],
            reward,
            terminated,
            truncated,
            shared.final_obs[i : i + 1],
            np.array([dropped]),
            [info],
        )
        return self._to_env_steps(np.array([i]), result)

    def _access_envs(self, name: str, request: tuple) -> list[Any]:
        if self._in_flight.any():  # their step replies are due first on the pipes
            raise EnvManagerError(f"{name!r}: no env access while envs are stepping under step_ready")
        for worker in self._workers:
            rows = worker.env_indices
            per_env = [("set", request[1][i]) for i in rows] if request[0] == "set" else [request] * len(rows)
            try:
                worker.conn.send_bytes(ACCESS)  # type: ignore[union-attr]
                worker.conn.send((name, per_env))  # type: ignore[union-attr]
            except (AttributeError, OSError, ValueError) as error:
                raise EnvManagerError(f"{self.env_name}: env worker pipe broken: {error!r}") from None
        replies = []
        for w in range(len(self._workers)):  # every reply is read, so the pipes stay in step
            try:
                replies.append(self._receive(w, self.reset_timeout))
            except _Fault as fault:
                raise EnvManagerError(f"{self.env_name}: env worker {w} failed: {fault}") from None
        errors = [reply.error for reply in replies if isinstance(reply, AccessError)]
        if errors:
            raise errors[0]
        return [result for reply in replies for result in reply]

    def _close_envs(self) -> None:
        for worker in getattr(self, "_workers", []):
            worker.stop(self.close_timeout)


class _Fault(Exception):
    """A worker failed: ``kind`` is ``crash``, ``timeout`` or ``error``; ``env_index`` if known."""

    def __init__(self, kind: FaultKind, detail: str, env_index: int | None = None):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail, self.env_index = kind, detail, env_index
