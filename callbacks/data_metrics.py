"""Logging what the DataModule reports (``collect/…``, ``buffer/…``, ``env/…``), outside the policy."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

from lightning_rl.loggers import log_to_loggers


class DataMetrics(pl.Callback):
    """Writes ``datamodule.metrics()`` to the loggers whenever the policy's ``train_iter`` passes a
    multiple of its ``log_interval`` (the policy writes its ``train/…`` metrics at the same updates), so
    a ``training_step`` computes losses and nothing else. ``lightning-rl`` adds it to every run."""

    def __init__(self) -> None:
        self._logged_at = 0  # train_iter // log_interval at the last write

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        mark = pl_module.train_iter // pl_module.log_interval
        if mark > self._logged_at:
            self._logged_at = mark
            log_to_loggers(
                trainer,
                trainer.datamodule.metrics(),
                env_steps=pl_module.env_steps,
                train_iter=pl_module.train_iter,
            )
