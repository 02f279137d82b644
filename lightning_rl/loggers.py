"""Experiment-tracking defaults: wandb offline unless the user picks a mode."""

from __future__ import annotations

import os
from typing import Any

from pytorch_lightning.loggers import WandbLogger

WANDB_MODES = ("online", "offline", "disabled")
STEP_METRICS = ("env_steps", "train_iter")  # the counters on every logged row


class RLWandbLogger(WandbLogger):
    """``WandbLogger`` that runs offline by default, so no account or network is needed.

    ``mode`` (or the ``WANDB_MODE`` environment variable) selects ``"online"``, ``"offline"`` or
    ``"disabled"``; offline runs can be uploaded later with ``wandb sync <run dir>``. Every metric is
    plotted against ``step_metric``: ``"env_steps"`` (online RL) or ``"train_iter"`` (offline RL, which
    takes no env steps).
    """

    def __init__(
        self,
        project: str = "lightning_rl",
        save_dir: str = ".",
        mode: str | None = None,
        step_metric: str = "env_steps",
        **kwargs: Any,
    ):
        mode = mode or os.environ.get("WANDB_MODE") or "offline"
        if mode not in WANDB_MODES:
            raise ValueError(f"mode must be one of {list(WANDB_MODES)}, got {mode!r}")
        if step_metric not in STEP_METRICS:
            raise ValueError(f"step_metric must be one of {list(STEP_METRICS)}, got {step_metric!r}")
        self.step_metric = step_metric
        super().__init__(project=project, save_dir=save_dir, mode=mode, **kwargs)

    @property
    def experiment(self) -> Any:
        run = super().experiment
        if getattr(run, "define_metric", None) and not getattr(self, "_x_axis_defined", False):
            run.define_metric(self.step_metric)
            run.define_metric("*", step_metric=self.step_metric)
            self._x_axis_defined = True
        return run
