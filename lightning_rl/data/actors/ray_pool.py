"""Remote actors on Ray: N processes (on this machine or across a Ray cluster), each a
:class:`~lightning_rl.data.actors.worker.CollectorWorker` with its own envs and policy copy, each with one
collection task in flight (nerveX's actors and coordinator, on an existing distributed engine).

Weights travel by version through Ray's object store: the learner :meth:`~RayActorPool.publish`\\ es a
CPU snapshot, the next task submitted to any actor carries a reference to it (``ray.put`` once per
version, however many actors use it), and an actor fetches it only when its version differs from the
one it holds. A task's result names the version that collected it, so replay items keep their staleness.
References travel boxed in a list, which Ray leaves unresolved, so an unchanged version costs nothing.

Faults are Ray's to handle: a dead actor process is restarted (``max_restarts`` per actor) and the task
it was running is run again by the new process (``max_task_retries``), which builds its envs and takes
the policy and the newest weights from that task. The pool sees a restart as a new process id in the
actor's results and counts it (``restarts``; the work the dead process had done is lost: ``lost_tasks``).
An actor dead past its restarts ends the run with one line.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from lightning_rl.contract import Actor
from lightning_rl.data.actor_mirror import collecting_copy, weights_snapshot
from lightning_rl.data.actors.worker import CollectorWorker, WorkerResult
from lightning_rl.data.collector import episode_metrics
from lightning_rl.errors import ReportedError
from lightning_rl.utils.checks import ConfigError, check_int

__all__ = ["RayActorPool", "RaySettings", "RemoteActorError"]

RAY_KEYS = ("n_actors", "address", "max_restarts", "num_cpus", "exploration")


class RemoteActorError(ReportedError):
    """A remote actor died more often than its restart budget allows."""


@dataclass(frozen=True)
class RaySettings:
    """The ``data.init_args.ray`` section: where remote actors run and how many.

    Args:
        n_actors: actor processes per learner rank; each runs ``data.n_envs`` envs.
        address: a running Ray cluster to join (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``);
            ``None``: start a local one for this run (stopped when it ends).
        max_restarts: times Ray restarts one actor's process after it died, before the run fails.
        num_cpus: CPUs of the local cluster (``None``: this machine's, and at least ``n_actors``).
        exploration: ``"spread"``: each actor explores as its own Ape-X actor where the policy supports
            it (DQN: a fixed epsilon per actor, :func:`~lightning_rl.rl_utils.apex_epsilon`);
            ``"schedule"``: every actor follows the policy's schedule over the global env steps.
    """

    n_actors: int = 2
    address: str | None = None
    max_restarts: int = 3
    num_cpus: int | None = None
    exploration: str = "spread"

    @classmethod
    def from_config(cls, section: dict[str, Any] | None) -> RaySettings:
        """Validated settings from the config's ``ray`` mapping (a one-line ``ConfigError`` otherwise)."""
        section = dict(section or {})
        unknown = sorted(set(section) - set(RAY_KEYS))
        if unknown:
            raise ConfigError(
                f"ray: unknown keys {unknown}; allowed: {list(RAY_KEYS)}",
                "ray",
                f"unknown keys {unknown}",
                ", ".join(RAY_KEYS),
            )
        settings = cls(**section)
        check_int("ray.n_actors", settings.n_actors, 1)
        check_int("ray.max_restarts", settings.max_restarts, 0)
        if settings.num_cpus is not None:
            check_int("ray.num_cpus", settings.num_cpus, 1)
            if settings.address is not None:
                raise ConfigError(
                    "ray.num_cpus sizes the local cluster; a cluster at ray.address has its own CPUs",
                    "ray.num_cpus",
                    "set together with ray.address (the cluster has its own CPUs)",
                    "null with ray.address",
                )
        if settings.exploration not in ("spread", "schedule"):
            raise ConfigError(
                f"ray.exploration must be 'spread' or 'schedule', got {settings.exploration!r}",
                "ray.exploration",
                f"got {settings.exploration!r}",
                "'spread', 'schedule'",
            )
        return settings


def import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise ConfigError(
            "collection: ray needs the ray package: pip install 'lightning-rl[distributed]'",
            "collection",
            "'ray' needs the ray package (pip install 'lightning-rl[distributed]')",
            "'local', or install ray",
        ) from err
    return ray


class RayActorPool:
    """``settings.n_actors`` remote :class:`CollectorWorker`\\ s with one task each in flight.

    Args:
        settings: where and how many (:class:`RaySettings`).
        policy: the learner's policy; each actor gets a CPU copy (and its weights by version afterwards).
        worker_kwargs: ``worker_kwargs(actor)``: the rest of actor ``actor``'s :class:`CollectorWorker`
            arguments (its envs, seed, task kind).
        task: ``task(actor)``: ``(method name, positional arguments)`` of the actor's next task, to which
            the pool appends the newest weights' reference and version.
    """

    def __init__(
        self,
        settings: RaySettings,
        policy: Actor,
        worker_kwargs: Callable[[int], dict[str, Any]],
        task: Callable[[int], tuple[str, tuple[Any, ...]]],
    ):
        ray = self.ray = import_ray()
        self.settings = settings
        self._owns_cluster = False
        if not ray.is_initialized():
            num_cpus = None
            if settings.address is None:
                num_cpus = settings.num_cpus or max(os.cpu_count() or 1, settings.n_actors)
            # log_to_driver off: the actors' env and Lightning chatter stays in Ray's session logs
            ray.init(
                address=settings.address,
                num_cpus=num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
            self._owns_cluster = True
        self._task = task
        self.started = False
        self._lock = threading.Lock()
        self._published: tuple[dict[str, torch.Tensor], int] = (weights_snapshot(policy), policy.train_iter)
        self._ref: tuple[Any, int] | None = None  # the object-store copy of the newest weights put
        # the policy each actor process starts from (its first task fetches it; so does a restarted one)
        self._policy = ray.put(collecting_copy(policy))
        options = {"num_cpus": 1, "max_restarts": settings.max_restarts, "max_task_retries": -1}
        remote = ray.remote(**options)(RemoteWorker)
        self.actors = [remote.remote(worker_kwargs(i)) for i in range(settings.n_actors)]
        self.restarts = [0] * settings.n_actors  # processes of each actor that died (Ray restarted them)
        self.lost_tasks = 0
        self.results = [0] * settings.n_actors  # tasks finished per actor
        self._pids: list[int | None] = [None] * settings.n_actors  # each actor's current process
        self.versions = [policy.train_iter] * settings.n_actors  # of each actor's last result
        self._in_flight: dict[Any, int] = {}  # task result reference -> actor
        self.recent_returns: deque[float] = deque(maxlen=100)
        self.recent_lengths: deque[int] = deque(maxlen=100)
        self._env_faults: list[dict[str, float]] = [{} for _ in range(settings.n_actors)]

    # --- weights ---------------------------------------------------------------------------------------
    @property
    def published_version(self) -> int:
        with self._lock:
            return self._published[1]

    @property
    def version(self) -> int:
        """The oldest version among the actors' latest results (the actor lag's reference)."""
        return min(self.versions)

    def publish(self, policy: Actor) -> None:
        """Learner side: the weights of ``policy`` (CPU copies) become the ones the next tasks carry."""
        state = weights_snapshot(policy)
        with self._lock:
            self._published = (state, policy.train_iter)

    def _weights_ref(self) -> tuple[Any, int]:
        with self._lock:
            state, version = self._published
        if self._ref is None or self._ref[1] != version:
            self._ref = (self.ray.put(state), version)
        return self._ref

    # --- tasks -----------------------------------------------------------------------------------------
    def start(self) -> None:
        """One task per actor (call once), after reading each actor's first process id: a process that
        dies before its first result is counted as restarted too."""
        self.started = True
        self._pids = list(self.ray.get([actor.pid.remote() for actor in self.actors]))
        for actor in range(len(self.actors)):
            self.submit(actor)

    def submit(self, actor: int) -> None:
        method, args = self._task(actor)
        ref, version = self._weights_ref()
        task = self.actors[actor].run.remote(method, args, [self._policy], [ref], version)
        self._in_flight[task] = actor

    def next_result(self, timeout: float | None = None) -> WorkerResult | None:
        """The next finished task (whichever actor finishes first), or ``None`` after ``timeout`` seconds;
        its actor is idle until :meth:`submit`\\ ted again."""
        ray = self.ray
        done, _ = ray.wait(list(self._in_flight), num_returns=1, timeout=timeout)
        if not done:
            return None
        actor = self._in_flight.pop(done[0])
        try:
            result: WorkerResult = ray.get(done[0])
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as err:
            raise RemoteActorError(
                f"remote actor {actor} is gone after {self.restarts[actor]} restarts (ray.max_restarts: "
                f"{self.settings.max_restarts}): {type(err).__name__}"
            ) from err
        if self._pids[actor] not in (None, result.pid):  # a new process: Ray restarted the actor
            self.restarts[actor] += 1
            self.lost_tasks += 1
        self._pids[actor] = result.pid
        result.actor = actor
        self.results[actor] += 1
        self.versions[actor] = result.version
        self.recent_returns.extend(result.returns)
        self.recent_lengths.extend(result.lengths)
        self._env_faults[actor] = result.env_faults
        return result

    def kill(self, actor: int) -> None:
        """Kill ``actor``'s process as a crash would (Ray restarts it): for fault tests and drills."""
        self.ray.kill(self.actors[actor], no_restart=False)

    def metrics(self) -> dict[str, float]:
        metrics = {
            "collect/remote_actors": float(len(self.actors)),
            "collect/actor_restarts": float(sum(self.restarts)),
            "collect/lost_tasks": float(self.lost_tasks),
        }
        return {**metrics, **episode_metrics(self.recent_returns, self.recent_lengths)}

    def env_stats(self) -> dict[str, float]:
        """The actors' env-manager counters, summed (as of their latest results)."""
        names = {name for faults in self._env_faults for name in faults}
        return {name: sum(faults.get(name, 0.0) for faults in self._env_faults) for name in names}

    def close(self) -> None:
        """Kill the actors (and stop the local cluster this pool started)."""
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
        self.actors, self._in_flight = [], {}
        if self._owns_cluster:
            self.ray.shutdown()


class RemoteWorker:
    """The Ray actor: a :class:`CollectorWorker` built by the process's first task (so a restarted
    process builds its own), with the policy and weights references unboxed only when needed."""

    def __init__(self, worker_kwargs: dict[str, Any]):
        self.worker_kwargs = worker_kwargs
        self.worker: CollectorWorker | None = None

    def pid(self) -> int:
        """This actor's current process."""
        return os.getpid()

    def run(
        self, method: str, args: tuple[Any, ...], policy: list[Any], weights: list[Any], version: int
    ) -> WorkerResult:
        import ray

        if self.worker is None:
            self.worker = CollectorWorker(policy=ray.get(policy[0]), **self.worker_kwargs)
        state = ray.get(weights[0]) if version != self.worker.version else None
        result = getattr(self.worker, method)(*args, state, version)
        result.pid = os.getpid()
        return result
