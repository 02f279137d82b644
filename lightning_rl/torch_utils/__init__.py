"""Torch building blocks below the RL layers: target-network updates, schedules and network blocks.

Imports only torch, numpy and ``lightning_rl.utils``; never policies, DataModules or Lightning.
"""

from lightning_rl.torch_utils.masking import mask_illegal, split_action_mask
from lightning_rl.torch_utils.network import (
    MLPEncoder,
    NatureCNNEncoder,
    make_encoder,
    mlp_layers,
    orthogonal_init_,
)
from lightning_rl.torch_utils.schedule import SCHEDULE_KINDS, Schedule, ScheduleKind
from lightning_rl.torch_utils.target import TargetUpdater, hard_update, soft_update

__all__ = [
    "SCHEDULE_KINDS",
    "MLPEncoder",
    "NatureCNNEncoder",
    "Schedule",
    "ScheduleKind",
    "TargetUpdater",
    "hard_update",
    "make_encoder",
    "mask_illegal",
    "mlp_layers",
    "orthogonal_init_",
    "soft_update",
    "split_action_mask",
]
