"""Running statistics for observation and reward normalization (on-policy methods), checkpointable."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lightning_rl.utils.checks import check_positive, check_range


class RunningMeanStd:
    """Mean and variance over every sample seen, merged batch by batch (Chan et al.'s parallel update).

    Args:
        shape: shape of one sample, e.g. ``obs_shape``; ``()`` for scalars.
        epsilon: initial pseudo-count, so the first batch does not divide by zero.
    """

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        check_positive(epsilon=epsilon)
        self.mean = torch.zeros(shape, dtype=torch.float64)
        self.var = torch.ones(shape, dtype=torch.float64)
        self.count = epsilon

    def update(self, batch: Tensor) -> None:
        """Merge ``batch`` ``(N, *shape)``."""
        batch = batch.detach().to(torch.float64).reshape(-1, *self.mean.shape)
        n = batch.shape[0]
        if n == 0:
            return
        batch_mean = batch.mean(0)
        batch_var = batch.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.var = (self.var * self.count + batch_var * n + delta.square() * (self.count * n / total)) / total
        self.count = total

    def normalize(self, x: Tensor, clip: float | None = None, eps: float = 1e-8) -> Tensor:
        """``(x - mean) / sqrt(var + eps)``, clipped to ``[-clip, clip]``, as float32."""
        out = (x.to(torch.float64) - self.mean) / torch.sqrt(self.var + eps)
        if clip is not None:
            out = out.clamp(-clip, clip)
        return out.to(torch.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": float(self.count)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if tuple(state["mean"].shape) != tuple(self.mean.shape):
            raise ValueError(
                f"normalizer shape: {tuple(state['mean'].shape)} in the checkpoint, "
                f"{tuple(self.mean.shape)} here"
            )
        self.mean, self.var, self.count = state["mean"].clone(), state["var"].clone(), float(state["count"])


def standardize(obs: Tensor, stats: RunningMeanStd | None, clip: float) -> Tensor:
    """What a policy sees of observations: standardized by ``stats`` and clipped, or as they are when
    normalization is off (``stats`` is ``None``)."""
    return obs if stats is None else stats.normalize(obs, clip)


class RewardScaler:
    """Divides rewards by the running std of the discounted return (SB3's ``VecNormalize`` rewards).

    The per-env return ``G = gamma * G + r`` restarts at episode ends; its variance scales rewards, which
    keeps value targets near unit scale without shifting them (a shift would change the optimal policy).

    Args:
        n_envs: number of envs ``E``.
        gamma: the discount of the return whose scale is tracked.
        clip: clip scaled rewards to ``[-clip, clip]`` (``None``: no clip).
    """

    def __init__(self, n_envs: int, gamma: float, clip: float | None = 10.0):
        check_range("gamma", gamma, 0.0, 1.0)
        check_positive(clip=clip)
        self.gamma, self.clip = gamma, clip
        self.returns = torch.zeros(n_envs, dtype=torch.float64)
        self.stats = RunningMeanStd(())

    def __call__(self, reward: Tensor, done: Tensor) -> Tensor:
        """Scale one vector step of rewards ``(E,)``; ``done`` ``(E,)`` ends the envs' returns after it."""
        self.returns = self.returns * self.gamma + reward.to(torch.float64)
        self.stats.update(self.returns)
        self.returns[done.to(torch.bool)] = 0.0
        scaled = reward.to(torch.float64) / torch.sqrt(self.stats.var + 1e-8)
        if self.clip is not None:
            scaled = scaled.clamp(-self.clip, self.clip)
        return scaled.to(torch.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"returns": self.returns.clone(), "stats": self.stats.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.returns = state["returns"].clone()
        self.stats.load_state_dict(state["stats"])
