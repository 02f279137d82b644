"""Policies: one LightningModule per algorithm, all built on :class:`RLPolicy`."""

from lightning_rl.policies.a2c import A2C
from lightning_rl.policies.actor_critic import ActorCriticPolicy
from lightning_rl.policies.base import RLPolicy
from lightning_rl.policies.dqn import DQN
from lightning_rl.policies.impala import IMPALA
from lightning_rl.policies.ppo import PPO

__all__ = ["A2C", "ActorCriticPolicy", "DQN", "IMPALA", "PPO", "RLPolicy"]
