"""What one remote actor process runs: its own envs, a copy of the policy at a known version, and the
collection tasks the learner sends it (nerveX's actor). Plain Python: Ray wraps it in
:mod:`lightning_rl.data.actors.ray_pool`, and tests can run it in-process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import torch
from tensordict import TensorDict

from lightning_rl.contract import Actor, RolloutActor, SpreadExplorer
from lightning_rl.data.collector import VectorCollector
from lightning_rl.data.pipeline import TransitionPipeline
from lightning_rl.data.rollout import RolloutCollector

__all__ = ["CollectorWorker", "WorkerResult"]


@dataclass
class WorkerResult:
    """One finished task: its data, the weights' version that collected it, and what it counted.

    ``data`` is ``[N]`` n-step transitions (``None`` when the task completed none) or a ``(T, E)`` rollout.
    """

    data: TensorDict | None
    version: int
    vector_steps: int
    returns: list[float] = field(default_factory=list)  # episodes finished during the task
    lengths: list[int] = field(default_factory=list)
    env_faults: dict[str, float] = field(default_factory=dict)  # the env manager's counters, cumulative
    actor: int = -1  # which actor of the pool (set by the pool)
    pid: int = 0  # the process that ran the task (set by the remote actor)


class CollectorWorker:
    """The envs and policy copy of one actor.

    Args:
        make_envs: builds this actor's vector env (an env manager).
        policy: a CPU copy of the learner's policy (never trained here).
        seed: seed of the envs' first episodes and of the exploration randomness.
        nstep: off-policy actors build n-step transitions of this length; ``None``: on-policy rollouts.
        keep_next_obs: rollouts keep the true next observations (learners that bootstrap themselves).
        exploration: ``(actor, n_actors)`` for a :class:`~lightning_rl.contract.SpreadExplorer` policy to
            explore as that actor (Ape-X); ``None``: the policy's own schedule over the global env steps.
    """

    def __init__(
        self,
        make_envs: Callable[[], gym.vector.VectorEnv],
        policy: Actor,
        seed: int,
        nstep: int | None = None,
        keep_next_obs: bool = False,
        exploration: tuple[int, int] | None = None,
    ):
        torch.set_num_threads(1)  # an actor is one core's worth of env stepping and small forward passes
        self.policy = policy
        self.version = policy.train_iter
        if exploration is not None and isinstance(policy, SpreadExplorer):
            policy.spread_exploration(*exploration)
        self.generator = torch.Generator().manual_seed(seed)
        self.collector = VectorCollector(make_envs())
        if nstep is None:
            self.rollouts: RolloutCollector | None = RolloutCollector(
                self.collector, keep_next_obs=keep_next_obs
            )
            self.pipeline: TransitionPipeline | None = None
            self.collector.reset(seed=seed)
        else:
            self.rollouts, self.pipeline = None, TransitionPipeline(self.collector, nstep)
            self.pipeline.reset(seed=seed)

    def load(self, weights: dict[str, torch.Tensor] | None, version: int) -> None:
        """Take the learner's weights of ``version`` unless this copy already holds them."""
        if weights is not None and version != self.version:
            self.policy.load_state_dict(weights)
            self.version = version

    def transitions(
        self, vector_steps: int, env_steps: int, weights: dict[str, torch.Tensor] | None, version: int
    ) -> WorkerResult:
        """``vector_steps`` exploring steps of every env (epsilon at the learner's global ``env_steps``) as
        n-step transitions ``[N]``."""
        self.load(weights, version)

        def act(obs: torch.Tensor) -> torch.Tensor:
            return self.policy.act(obs, mode="collect", env_steps=env_steps, generator=self.generator)

        parts = [t for _ in range(vector_steps) if (t := self.pipeline.step(act)) is not None]
        return self._result(torch.cat(parts) if parts else None, vector_steps)

    def rollout(self, n_steps: int, weights: dict[str, torch.Tensor] | None, version: int) -> WorkerResult:
        """A ``(n_steps, E)`` rollout with advantages (:class:`~lightning_rl.data.RolloutCollector`)."""
        self.load(weights, version)
        policy: RolloutActor = self.policy  # type: ignore[assignment]  # the DataModule checked it
        return self._result(self.rollouts.collect(policy, n_steps), n_steps)

    def _result(self, data: TensorDict | None, vector_steps: int) -> WorkerResult:
        collector = self.collector
        returns, lengths = list(collector.recent_returns), list(collector.recent_lengths)
        collector.recent_returns.clear()
        collector.recent_lengths.clear()
        return WorkerResult(data, self.version, vector_steps, returns, lengths, dict(collector.env.stats()))

    def close(self) -> None:
        self.collector.env.close()
