"""Torch building blocks below the RL layers: target-network updates, schedules and network blocks.

Imports only torch, numpy and ``lightning_rl.utils``; never policies, DataModules or Lightning.
"""

from lightning_rl.torch_utils.masking import (
    mask_illegal,
    random_legal_actions,
    split_action_mask,
    with_all_legal_fallback,
)
from lightning_rl.torch_utils.network import (
    BoardCNNEncoder,
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
    "BoardCNNEncoder",
    "MLPEncoder",
    "NatureCNNEncoder",
    "Schedule",
    "ScheduleKind",
    "TargetUpdater",
    "hard_update",
    "make_encoder",
    "mask_illegal",
    "random_legal_actions",
    "mlp_layers",
    "orthogonal_init_",
    "soft_update",
    "split_action_mask",
    "with_all_legal_fallback",
]
