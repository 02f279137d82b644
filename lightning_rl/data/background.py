"""Env collection in a background thread, so env stepping overlaps with gradient steps (nerveX's
AsyncDataLoader).

A thread rather than a process: the policy copy, the buffer and the counters stay in one address space
(no serialization of transitions), and both sides spend most of their time in code that releases the
GIL (torch kernels, C env simulators, env I/O). Measured (``benchmarks/async_collection.py``, 2-core
CPU, DQN): with 1 ms per env step outside Python, 534 -> 721 env steps/s (1.35x, close to the bound set
by the env's own time); on plain CartPole, whose steps are ~2% of the work, only 1.07x, and its runs
needed more env steps to solve it than lockstep collection: leave it off for cheap envs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lightning_rl.errors import ReportedError

__all__ = ["BackgroundCollection"]


class BackgroundCollection:
    """Calls ``step()`` in a daemon thread for as long as it may, until ``finished()`` or :meth:`stop`.

    All coordination goes through one ``threading.Condition`` shared with the consumer (the learner):
    ``may_step()`` and ``finished()`` are evaluated with it held, ``step()`` must take it itself around
    the shared-state part of its work (buffer and counters) and call ``notify_all()`` there, and the
    consumer waits with :meth:`wait_until` and notifies after it sampled or wrote priorities.

    An exception in the thread ends it and is re-raised in the consumer by :meth:`wait_until`.

    Args:
        cond: the condition (and lock) guarding the shared state.
        step: collects one vector step; runs in the thread.
        may_step: whether the next step may start now (e.g. the sample-to-insert ratio band).
        finished: whether collection is over for good (e.g. the env-step budget).
    """

    def __init__(
        self,
        cond: threading.Condition,
        step: Callable[[], None],
        may_step: Callable[[], bool],
        finished: Callable[[], bool],
    ):
        self.cond = cond
        self._step = step
        self._may_step = may_step
        self._finished = finished
        self._stopping = False
        self._error: BaseException | None = None
        self.alive = False
        self.collector_wait_s = 0.0  # time the collector was held back by may_step()
        self.learner_wait_s = 0.0  # time the consumer waited in wait_until()
        self._thread = threading.Thread(target=self._run, name="lightning_rl-collector", daemon=True)

    def start(self) -> None:
        self.alive = True
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                with self.cond:
                    start = time.perf_counter()
                    while not (self._stopping or self._finished() or self._may_step()):
                        self.cond.wait()
                    self.collector_wait_s += time.perf_counter() - start
                    if self._stopping or self._finished():
                        return
                self._step()
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self._error = err
        finally:
            with self.cond:
                self.alive = False
                self.cond.notify_all()

    def wait_until(self, ready: Callable[[], bool]) -> bool:
        """Block until ``ready()`` (evaluated with the condition held; call this with it held).

        Returns ``True`` when ready, ``False`` if the thread ended first (finished or stopped).
        Raises the thread's error if it failed: a :class:`~lightning_rl.errors.ReportedError` (a broken
        env) as it is, anything else as a ``RuntimeError`` chained to it.
        """
        start = time.perf_counter()
        try:
            while True:
                if isinstance(self._error, ReportedError):  # e.g. a broken env: its own one-line report
                    raise self._error
                if self._error is not None:  # checked first: a dead collector must not go unnoticed
                    raise RuntimeError(f"background env collection failed: {self._error!r}") from self._error
                if ready():
                    return True
                if not self.alive:
                    return False
                self.cond.wait()
        finally:
            self.learner_wait_s += time.perf_counter() - start

    def stop(self) -> None:
        """Ask the thread to end after its current step and wait for it."""
        with self.cond:
            self._stopping = True
            self.cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()
