"""Env managers: many envs behind one vector-env interface, with fault recovery (nerveX's env_manager)."""

from lightning_rl.envs.manager.base import EnvManager, EnvStep, build_env_fns
from lightning_rl.envs.manager.faults import EnvManagerError, FaultLimits
from lightning_rl.envs.manager.subprocess import SubprocessEnvManager
from lightning_rl.envs.manager.sync import SyncEnvManager

__all__ = [
    "EnvManager",
    "EnvManagerError",
    "EnvStep",
    "FaultLimits",
    "SubprocessEnvManager",
    "SyncEnvManager",
    "build_env_fns",
]
