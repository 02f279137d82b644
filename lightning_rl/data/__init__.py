"""Replay buffers and transition building (``lightning_rl.data``)."""

from lightning_rl.data.nstep import NStepTransitionBuilder
from lightning_rl.data.replay import PrioritizedReplayBuffer, linear_beta

__all__ = ["NStepTransitionBuilder", "PrioritizedReplayBuffer", "linear_beta"]
