"""Cooperative multi-agent policies on the multi-agent env layer (``lightning_rl.envs.multi_agent``)."""

from lightning_rl.policies.multi_agent.actor_critic import COMA, IA2C, IPPO
from lightning_rl.policies.multi_agent.atoc import ATOC, IDDPG
from lightning_rl.policies.multi_agent.qmix import IQL, QMIX

__all__ = ["ATOC", "COMA", "IA2C", "IDDPG", "IPPO", "IQL", "QMIX"]
