"""Writing metrics to Lightning's loggers without going through ``self.log``.

RL metrics arrive at irregular points (an evaluation every N updates, an episode end), while
``LightningModule.log`` only reaches the loggers on steps that are multiples of
``log_every_n_steps`` and costs ~0.1 ms per call. So we write to every logger directly, always with
``env_steps`` (the x-axis of learning curves) and mirror the values in ``trainer.callback_metrics`` so
checkpoint monitors and the progress bar see them.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch


def log_to_loggers(trainer: pl.Trainer, metrics: dict[str, float], env_steps: int, train_iter: int) -> None:
    row = {**metrics, "env_steps": float(env_steps), "train_iter": float(train_iter)}
    trainer.callback_metrics.update({k: torch.tensor(v) for k, v in row.items()})
    if trainer.is_global_zero:
        for logger in trainer.loggers:
            logger.log_metrics(row, step=trainer.global_step)
