"""The common base of every policy: a manually optimized LightningModule tied to an env DataModule."""

from __future__ import annotations

import re
import warnings
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from tensordict import TensorDict
from torch import Tensor

from lightning_rl.loggers import log_to_loggers
from lightning_rl.spec import EnvSpec

ActMode = Literal["collect", "eval"]

# Deliberate choices that Lightning warns about on every run: policies take `dataloader_iter` (so nothing
# is prefetched with stale weights or priorities), and fit gets no validation batches (evaluation is the
# Evaluator callback's job).
for _message in (
    "You are using the `dataloader_iter` step flavor",
    "Found `dataloader_iter` argument in the `training_step`",
    "Total length of `list` across ranks is zero",
):
    warnings.filterwarnings("ignore", message=f".*{re.escape(_message)}")


class RLPolicy(pl.LightningModule):
    """Base class of all policies.

    Subclasses build their networks from :attr:`spec`, implement :meth:`act` (what the DataModule's
    collector and evaluator call) and a ``training_step(dataloader_iter)`` that pulls as many batches as
    it takes gradient steps. Taking the iterator (rather than a batch) stops Lightning from prefetching:
    each batch is collected and sampled only after the previous update and its priority write-back.

    Optimization is manual (DESIGN.md §6): one ``training_step`` may run several updates to amortize
    Lightning's per-step cost, and ``trainer.global_step`` counts optimizer steps, so ``max_steps`` is
    a budget of gradient updates. :attr:`train_iter` counts updates explicitly and is checkpointed.

    Args:
        env_spec: ``EnvSpec.to_dict()`` of the environment; linked from ``data.env_spec`` by the CLI.
        log_interval: write ``train/…`` metrics every this many gradient updates.
    """

    def __init__(self, env_spec: dict[str, Any] | None = None, log_interval: int = 100):
        super().__init__()
        if env_spec is None:
            raise ValueError(
                "model.env_spec is missing: pass `env_spec=datamodule.env_spec` (the CLI links it from the "
                "DataModule automatically)"
            )
        if log_interval < 1:
            raise ValueError(f"log_interval must be >= 1, got {log_interval}")
        self.spec = EnvSpec.from_dict(env_spec)
        self.log_interval = log_interval
        self.automatic_optimization = False
        self.train_iter = 0

    # --- what the DataModule calls -------------------------------------------------------------
    def act(
        self,
        obs: Tensor,
        mode: ActMode = "eval",
        env_steps: int = 0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Actions for a batch of observations.

        Shapes: obs (E, *obs_shape) -> actions (E,) for discrete, (E, *action_shape) for continuous.
        ``mode="collect"`` explores (schedules are functions of the global ``env_steps``);
        ``mode="eval"`` is deterministic.
        """
        raise NotImplementedError

    def batch_to_device(self, batch: TensorDict) -> TensorDict:
        """Replay batches live on the CPU; with the ``dataloader_iter`` step Lightning does not move
        them, so policies do it here (a no-op on CPU)."""
        return batch if self.device.type == "cpu" else batch.to(self.device, non_blocking=True)

    # --- counters and logging ------------------------------------------------------------------
    @property
    def env_steps(self) -> int:
        """Global env steps collected so far (all ranks), as counted by the DataModule."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        return int(getattr(datamodule, "env_steps", 0))

    def should_log(self) -> bool:
        return self.train_iter % self.log_interval == 0

    def log_metrics(self, metrics: dict[str, float]) -> None:
        """Write metrics straight to the loggers, tagged with ``env_steps`` and ``train_iter``."""
        log_to_loggers(self.trainer, metrics, env_steps=self.env_steps, train_iter=self.train_iter)

    # --- evaluation (`validate` subcommand) ----------------------------------------------------
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        stats = self.trainer.datamodule.evaluate(self)
        self.log_dict(stats.as_metrics(), batch_size=len(stats.returns))

    # --- checkpoint ----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["train_iter"] = self.train_iter

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.train_iter = int(checkpoint.get("train_iter", 0))
