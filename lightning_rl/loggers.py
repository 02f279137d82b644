"""Experiment-tracking defaults: wandb offline unless the user picks a mode."""

from __future__ import annotations

import os
from typing import Any

from pytorch_lightning.loggers import WandbLogger

WANDB_MODES = ("online", "offline", "disabled")


class RLWandbLogger(WandbLogger):
    """``WandbLogger`` that runs offline by default, so no account or network is needed.

    ``mode`` (or the ``WANDB_MODE`` environment variable) selects ``"online"``, ``"offline"`` or
    ``"disabled"``; offline runs can be uploaded later with ``wandb sync <run dir>``. Every metric is
    plotted against ``env_steps``.
    """

    def __init__(
        self, project: str = "lightning_rl", save_dir: str = ".", mode: str | None = None, **kwargs: Any
    ):
        mode = mode or os.environ.get("WANDB_MODE") or "offline"
        if mode not in WANDB_MODES:
            raise ValueError(f"mode must be one of {list(WANDB_MODES)}, got {mode!r}")
        super().__init__(project=project, save_dir=save_dir, mode=mode, **kwargs)

    @property
    def experiment(self) -> Any:
        run = super().experiment
        if getattr(run, "define_metric", None) and not getattr(self, "_env_steps_axis", False):
            run.define_metric("env_steps")
            run.define_metric("*", step_metric="env_steps")
            self._env_steps_axis = True
        return run
