"""Policies: one LightningModule per algorithm, all built on :class:`RLPolicy`."""

from lightning_rl.policies.a2c import A2C
from lightning_rl.policies.actor_critic import ActorCriticPolicy
from lightning_rl.policies.base import RLPolicy
from lightning_rl.policies.ddpg import DDPG, TD3
from lightning_rl.policies.dqn import DQN
from lightning_rl.policies.impala import IMPALA
from lightning_rl.policies.multi_agent import ATOC, COMA, IA2C, IDDPG, IPPO, IQL, QMIX
from lightning_rl.policies.off_policy_ac import OffPolicyActorCritic
from lightning_rl.policies.ppo import PPO
from lightning_rl.policies.r2d2 import R2D2
from lightning_rl.policies.rainbow import Rainbow
from lightning_rl.policies.sac import SAC

__all__ = [
    "A2C",
    "ATOC",
    "ActorCriticPolicy",
    "COMA",
    "DDPG",
    "DQN",
    "IA2C",
    "IDDPG",
    "IMPALA",
    "IPPO",
    "IQL",
    "OffPolicyActorCritic",
    "PPO",
    "QMIX",
    "R2D2",
    "Rainbow",
    "RLPolicy",
    "SAC",
    "TD3",
]
