"""Env-backed LightningDataModules (installed as ``lightning_rl.datamodules``)."""

from lightning_rl.datamodules.base import EnvDataModule
from lightning_rl.datamodules.off_policy import OffPolicyDataModule
from lightning_rl.datamodules.offline import OfflineDataModule

__all__ = ["EnvDataModule", "OffPolicyDataModule", "OfflineDataModule"]
