"""Env-backed LightningDataModules (installed as ``lightning_rl.datamodules``)."""

from lightning_rl.datamodules.base import EnvDataModule
from lightning_rl.datamodules.off_policy import OffPolicyDataModule
from lightning_rl.datamodules.offline import OfflineDataModule
from lightning_rl.datamodules.on_policy import OnPolicyDataModule
from lightning_rl.datamodules.sequence_replay import SequenceReplayDataModule

__all__ = [
    "EnvDataModule",
    "OffPolicyDataModule",
    "OfflineDataModule",
    "OnPolicyDataModule",
    "SequenceReplayDataModule",
]
