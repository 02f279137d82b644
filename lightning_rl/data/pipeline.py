"""The off-policy transition pipeline: vector-env steps -> (frame ids) -> n-step transitions.

One home for the collect -> build -> count loop that the off-policy DataModule (synchronous and in its
collector thread) and offline dataset collection both run.
"""

from __future__ import annotations

from collections.abc import Callable

from tensordict import TensorDictBase
from torch import Tensor

from lightning_rl.data.collector import VectorCollector, VectorStep
from lightning_rl.data.frames import FrameStore
from lightning_rl.data.nstep import NStepTransitionBuilder

__all__ = ["TransitionPipeline"]


class TransitionPipeline:
    """Steps a :class:`VectorCollector` and turns its steps into n-step transitions.

    Stepping (:meth:`collect`) and building (:meth:`build`) are separate so that a collector thread can
    step the envs outside the lock it shares with the learner and build (which touches the frame store
    and the n-step windows the learner's checkpoints read) inside it; :meth:`step` does both.

    Args:
        collector: the envs (it counts env steps and episodes).
        nstep: length of the n-step returns.
        frames: with stacked image observations, a :class:`FrameStore` that turns each ``(k, *frame)``
            stack into ``(k,)`` frame ids (each frame stored once); ``None``: observations as they are.
    """

    def __init__(self, collector: VectorCollector, nstep: int = 1, frames: FrameStore | None = None):
        self.collector = collector
        self.builder = NStepTransitionBuilder(collector.env.num_envs, nstep)
        self.frames = frames

    def reset(self, seed: int) -> None:
        """New episodes in every env; pending n-step windows and frame stacks belong to the old ones."""
        self.collector.reset(seed=seed)
        self.builder.reset()
        if self.frames is not None:
            self.frames.reset()

    def collect(self, act: Callable[[Tensor], Tensor]) -> VectorStep:
        """One vector step with ``act`` (obs ``(E, *obs_shape)`` -> actions ``(E, ...)``)."""
        return self.collector.step(act)

    def build(self, step: VectorStep) -> TensorDictBase | None:
        """The transitions ``[N]`` that ``step`` completes (keys of :mod:`lightning_rl.keys`), or ``None``."""
        obs, next_obs = step.obs, step.next_obs
        if self.frames is not None:  # obs before next_obs: the next step's obs is then free
            obs, next_obs = self.frames.encode(obs), self.frames.encode(next_obs)
        return self.builder.add(
            obs, step.action, step.reward, step.terminated, step.truncated, next_obs, step.dropped
        )

    def step(self, act: Callable[[Tensor], Tensor]) -> TensorDictBase | None:
        return self.build(self.collect(act))
