"""The common base of every policy: a manually optimized LightningModule tied to an env DataModule."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl
from tensordict import TensorDict

from lightning_rl.contract import DataSource, StepBatches, require
from lightning_rl.loggers import log_to_loggers
from lightning_rl.spec import EnvSpec
from lightning_rl.utils.checks import check_range

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

    Subclasses build their networks from :attr:`spec`, implement ``act`` (what the DataModule's
    collector and the evaluator call; its signature is :class:`lightning_rl.contract.Actor`'s) and
    :meth:`training_update` (one gradient update on one batch).
    A ``training_step`` takes the iterator of the DataModule's stream (rather than a batch), whose
    every item is the batches of one step (``lightning_rl.contract.StepBatches``), drawn lazily: each
    batch is collected and sampled only after the previous update and its priority write-back, and
    Lightning prefetches nothing with stale weights.

    Optimization is manual (DESIGN.md §6): one ``training_step`` may run several updates to amortize
    Lightning's per-step cost, and ``trainer.global_step`` counts optimizer steps, so ``max_steps`` is
    a budget of gradient updates. :attr:`train_iter` counts updates explicitly and is checkpointed.

    The policy talks to its DataModule only through :attr:`data`, typed by a protocol of
    :mod:`lightning_rl.contract` (:attr:`data_protocol`, checked when fit starts).

    Subclasses state only their own arguments and pass the rest on as ``**kwargs`` (LightningCLI resolves
    them to these; :meth:`save_hyperparameters` here records the whole chain).

    Args:
        env_spec: ``EnvSpec.to_dict()`` of the environment; linked from ``data.env_spec`` by the CLI.
        gamma: discount factor in [0, 1] (the policy's: on-policy collectors read it from here).
        log_interval: write ``train/…`` metrics every this many gradient updates (the ``DataMetrics``
            callback writes the DataModule's at the same interval).
    """

    data_protocol: type[DataSource] = DataSource  # what this policy needs of its DataModule

    def __init__(self, env_spec: dict[str, Any] | None = None, gamma: float = 0.99, log_interval: int = 100):
        super().__init__()
        self.save_hyperparameters()
        if env_spec is None:
            raise ValueError(
                "model.env_spec is missing: pass `env_spec=datamodule.env_spec` (the CLI links it from the "
                "DataModule automatically)"
            )
        check_range("gamma", gamma, 0.0, 1.0)
        if log_interval < 1:
            raise ValueError(f"log_interval must be >= 1, got {log_interval}")
        self.spec = EnvSpec.from_dict(env_spec)
        self.gamma = gamma
        self.log_interval = log_interval
        self.automatic_optimization = False
        self.train_iter = 0

    # --- what the policy reads of its DataModule -----------------------------------------------------
    @property
    def data(self) -> DataSource:
        """The DataModule, as the contract's :class:`~lightning_rl.contract.DataSource`."""
        return self.trainer.datamodule

    def on_fit_start(self) -> None:
        require(
            self.trainer.datamodule,
            self.data_protocol,
            f"{type(self).__name__}'s DataModule",
            "pick a DataModule of lightning_rl.datamodules that serves this kind of policy",
        )

    @property
    def env_steps(self) -> int:
        """Global env steps collected so far (all ranks), as counted by the DataModule."""
        return self.data.env_steps if self._trainer is not None and self.trainer.datamodule else 0

    # --- training ---------------------------------------------------------------------------------
    def training_step(self, dataloader_iter: Iterator[tuple[StepBatches, int, int]]) -> None:
        batches, _, _ = next(dataloader_iter)  # Lightning yields (item, batch_idx, dataloader_idx)
        for batch in batches:
            self.training_update(self.batch_to_device(batch))

    def training_update(self, batch: TensorDict) -> None:
        """One gradient update on one batch (and whatever follows it: priorities, target sync, logging)."""
        raise NotImplementedError

    def batch_to_device(self, batch: TensorDict) -> TensorDict:
        """Replay batches live on the CPU; with the ``dataloader_iter`` step Lightning does not move
        them, so policies do it here (a no-op on CPU)."""
        return batch if self.device.type == "cpu" else batch.to(self.device, non_blocking=True)

    # --- logging ----------------------------------------------------------------------------------
    def should_log(self) -> bool:
        return self.train_iter % self.log_interval == 0

    def log_metrics(self, metrics: dict[str, float]) -> None:
        """Write metrics straight to the loggers, tagged with ``env_steps`` and ``train_iter``."""
        log_to_loggers(self.trainer, metrics, env_steps=self.env_steps, train_iter=self.train_iter)

    # --- evaluation (`validate` subcommand: the Evaluator callback runs the episodes) ---------------
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Nothing per batch: the ``Evaluator`` callback evaluates whole episodes at the epoch's end."""

    # --- checkpoint ----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["train_iter"] = self.train_iter

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.train_iter = int(checkpoint.get("train_iter", 0))
