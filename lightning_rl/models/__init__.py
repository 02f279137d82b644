"""Neural networks. They know nothing of RL losses or Lightning."""

from lightning_rl.models.dqn import DQNNet
from lightning_rl.models.encoders import MLPEncoder, NatureCNNEncoder, make_encoder
from lightning_rl.models.heads import DuelingHead, QHead

__all__ = ["DQNNet", "DuelingHead", "MLPEncoder", "NatureCNNEncoder", "QHead", "make_encoder"]
