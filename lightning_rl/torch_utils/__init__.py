"""Torch building blocks below the RL layers: target-network updates, schedules and network blocks.

Imports only torch, numpy and ``lightning_rl.utils``; never policies, DataModules or Lightning.
"""

from lightning_rl.torch_utils.network import MLPEncoder, NatureCNNEncoder, make_encoder, orthogonal_init_

__all__ = ["MLPEncoder", "NatureCNNEncoder", "make_encoder", "orthogonal_init_"]
