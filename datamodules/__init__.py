"""Env-backed LightningDataModules (installed as ``lightning_rl.datamodules``)."""

from lightning_rl.datamodules.base import EnvDataModule
from lightning_rl.datamodules.off_policy import OffPolicyDataModule

__all__ = ["EnvDataModule", "OffPolicyDataModule"]
