"""Env managers: many envs behind one vector-env interface, with fault recovery (nerveX's env_manager)."""

from lightning_rl.envs.manager.base import EnvManager, EnvManagerError, EnvStep, build_env_fns
from lightning_rl.envs.manager.subprocess import SubprocessEnvManager
from lightning_rl.envs.manager.sync import SyncEnvManager

__all__ = [
    "EnvManager",
    "EnvManagerError",
    "EnvStep",
    "SubprocessEnvManager",
    "SyncEnvManager",
    "build_env_fns",
]
