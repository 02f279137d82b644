"""Policies: one LightningModule per algorithm, all built on :class:`RLPolicy`."""

from lightning_rl.policies.base import RLPolicy
from lightning_rl.policies.dqn import DQN
from lightning_rl.policies.ppo import PPO

__all__ = ["DQN", "PPO", "RLPolicy"]
