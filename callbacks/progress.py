"""A progress bar that shows what an RL run is about: env steps against the env-step budget (with tqdm's
rate and ETA) and the last eval return."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar


class RLProgressBar(TQDMProgressBar):
    """TQDM bar over env steps up to ``data.max_env_steps`` (offline data: over gradient updates up to
    ``trainer.max_steps``) with tqdm's rate and ETA, and an ``eval`` column (the last eval return);
    Lightning's own bar would count updates of an endless "epoch 0"."""

    def __init__(self, refresh_rate: int = 20):  # every 20 updates: a redraw per update costs ~0.1 ms
        super().__init__(refresh_rate=refresh_rate)

    def _counter(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> tuple[int, int | None, str]:
        """``(value, budget or None, unit)`` of what the bar counts."""
        dm = trainer.datamodule
        if getattr(dm, "x_axis", "env_steps") == "train_iter":  # offline data: no env steps
            budget = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
            return int(getattr(pl_module, "train_iter", trainer.global_step)), budget, "updates"
        return int(getattr(pl_module, "env_steps", 0)), getattr(dm, "max_env_steps", None), "env steps"

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_start(trainer, pl_module)
        value, budget, unit = self._counter(trainer, pl_module)
        bar = self.train_progress_bar
        bar.reset(total=budget)
        bar.unit, bar.n, bar.initial = f" {unit}", value, value  # a resumed run starts where it stopped
        bar.set_description("train")

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        batch_idx = args[-1] if args else 0
        bar = self.train_progress_bar
        if bar is None or bar.disable or (batch_idx + 1) % max(self.refresh_rate, 1):
            return
        bar.n = self._counter(trainer, pl_module)[0]
        bar.set_postfix(self.get_metrics(trainer, pl_module))  # refreshes the bar

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.train_progress_bar is not None and not self.train_progress_bar.disable:
            self.train_progress_bar.n = self._counter(trainer, pl_module)[0]  # the final count
        super().on_train_epoch_end(trainer, pl_module)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """Lightning's metrics (the loss), and ``eval``: the last evaluation's mean return; tqdm itself
        shows the count, the budget, the rate (env steps/s) and the ETA."""
        metrics = {k: v for k, v in super().get_metrics(trainer, pl_module).items() if k != "v_num"}
        eval_return = trainer.callback_metrics.get("eval/return_mean")
        if eval_return is not None:
            metrics["eval"] = round(float(eval_return), 1)
        return metrics
