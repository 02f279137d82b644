"""A progress bar that shows what an RL run is about: env steps, env steps/s and the last eval return."""

from __future__ import annotations

import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar


class RLProgressBar(TQDMProgressBar):
    """TQDM bar over gradient updates with ``env_steps``, ``sps`` (env steps/s) and ``eval`` columns."""

    def __init__(self, refresh_rate: int = 20):
        super().__init__(refresh_rate=refresh_rate)
        self._start: tuple[float, int] | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._start = (time.perf_counter(), pl_module.env_steps)

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = {k: v for k, v in super().get_metrics(trainer, pl_module).items() if k != "v_num"}
        env_steps = getattr(pl_module, "env_steps", 0)
        metrics["env_steps"] = str(env_steps)  # a string: tqdm would print 20000 as "2e+4"
        if self._start is not None:
            elapsed = time.perf_counter() - self._start[0]
            metrics["sps"] = str(int((env_steps - self._start[1]) / max(elapsed, 1e-9)))
        eval_return = trainer.callback_metrics.get("eval/return_mean")
        if eval_return is not None:
            metrics["eval"] = round(float(eval_return), 1)
        return metrics
