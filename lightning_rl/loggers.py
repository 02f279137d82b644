"""Lightning's loggers for RL: metrics written straight to them (``log_to_loggers``), and a wandb logger
that runs offline unless the user picks a mode."""

from __future__ import annotations

import os
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import WandbLogger

WANDB_MODES = ("online", "offline", "disabled")
STEP_METRICS = ("env_steps", "train_iter")  # the counters on every logged row


def log_to_loggers(trainer: pl.Trainer, metrics: dict[str, float], env_steps: int, train_iter: int) -> None:
    """Write ``metrics`` with ``env_steps`` and ``train_iter`` to every logger, without ``self.log``.

    RL metrics arrive at irregular points (an evaluation every N updates, an episode end), while
    ``LightningModule.log`` only reaches the loggers on steps that are multiples of
    ``log_every_n_steps`` and costs ~0.1 ms per call. So this writes to every logger directly (rank 0
    only), always with ``env_steps`` (the x-axis of learning curves), and mirrors the values in
    ``trainer.callback_metrics`` so checkpoint monitors and the progress bar see them.
    """
    row = {**metrics, "env_steps": float(env_steps), "train_iter": float(train_iter)}
    trainer.callback_metrics.update({k: torch.tensor(v) for k, v in row.items()})
    if trainer.is_global_zero:
        for logger in trainer.loggers:
            logger.log_metrics(row, step=trainer.global_step)


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
        if self._wandb_init.get("anonymous") is None:  # wandb warns about the key even when it is unset
            del self._wandb_init["anonymous"]

    @property
    def experiment(self) -> Any:
        run = super().experiment
        if getattr(run, "define_metric", None) and not getattr(self, "_x_axis_defined", False):
            run.define_metric(self.step_metric)
            run.define_metric("*", step_metric=self.step_metric)
            self._x_axis_defined = True
        return run
