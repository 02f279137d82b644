"""The common base of every policy: a manually optimized LightningModule tied to an env DataModule."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.core.optimizer import LightningOptimizer
from pytorch_lightning.plugins.precision import Precision
from pytorch_lightning.strategies import DDPStrategy, SingleDeviceStrategy
from tensordict import TensorDict
from torch import Tensor

from lightning_rl.contract import DataSource, StepBatches, require
from lightning_rl.loggers import log_to_loggers
from lightning_rl.spec import EnvSpec
from lightning_rl.utils.checks import check_int, check_range

# Deliberate choices that Lightning warns about on every run: policies take `dataloader_iter` (so nothing
# is prefetched with stale weights or priorities), and fit gets no validation batches (evaluation is the
# Evaluator callback's job).
for _message in (
    "You are using the `dataloader_iter` step flavor",
    "Found `dataloader_iter` argument in the `training_step`",
    "Total length of `list` across ranks is zero",
):
    warnings.filterwarnings("ignore", message=f".*{re.escape(_message)}")


# Hooks that Lightning's manual_backward / clip_gradients / optimizer.step call around each update; the
# direct path of `RLPolicy.optimizer_update` is taken only while neither the module nor any callback
# overrides one of them (plus `LightningModule.backward`, which manual_backward calls).
_UPDATE_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")
_MODULE_UPDATE_HOOKS = (*_UPDATE_HOOKS, "backward")


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
    Every update goes through :meth:`optimizer_update` (zero_grad, backward, clip, step).

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
    #: Let :meth:`optimizer_update` skip Lightning's hook dispatch when that changes nothing (False:
    #: always take Lightning's own calls; the tests use it to compare both paths).
    direct_optimizer_update: bool = True

    def __init__(self, env_spec: dict[str, Any] | None = None, gamma: float = 0.99, log_interval: int = 100):
        super().__init__()
        self.save_hyperparameters()
        if env_spec is None:
            raise ValueError(
                "model.env_spec is missing: pass `env_spec=datamodule.env_spec` (the CLI links it from the "
                "DataModule automatically)"
            )
        check_range("gamma", gamma, 0.0, 1.0)
        check_int("log_interval", log_interval, 1)
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
        self.check_data_source(self.trainer.datamodule)

    def check_data_source(self, datamodule: Any) -> None:
        """A :class:`~lightning_rl.contract.ContractError` (or ``ConfigError``) unless ``datamodule``
        can drive this policy; the CLI calls it before the Trainer exists, ``fit`` again at its start."""
        require(
            datamodule,
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

    # --- optimization ----------------------------------------------------------------------------
    def optimizer_update(
        self, optimizer: LightningOptimizer, loss: Tensor, max_grad_norm: float | None
    ) -> None:
        """One gradient update: ``zero_grad(set_to_none=True)``, backward, clip the global gradient norm
        of the optimizer's parameters to ``max_grad_norm`` (``None`` or <= 0: no clipping), step.

        Lightning's own calls (``manual_backward``, ``clip_gradients``, ``optimizer.step()``) dispatch
        through the strategy, the precision plugin, a closure and six hook calls: ~150-300 us per update
        on a small CPU network, which is 10-15 % of a DQN step (benchmarks/lightning_overhead.py). When
        they would add nothing (:meth:`_direct_update_applies`), this runs the same operations directly:
        the strategy's ``pre_backward``/``post_backward`` (DDP's ``prepare_for_backward``, which arms the
        gradient all-reduce, and its static-graph flush), ``loss.backward()``, the same
        ``clip_grad_norm_`` call as the 32-bit precision plugin, and the raw ``optimizer.step()`` between
        the LightningOptimizer's step callbacks, which the manual-optimization loop uses to count
        ``trainer.global_step`` (and to time "optimizer_step" in a profiler). Weights, optimizer state,
        ``global_step`` and ``max_steps`` are identical on both paths; only the profiler's entries for
        the no-op hooks are missing. Anything else (AMP / bf16 / 64-bit precision, DeepSpeed, FSDP, XLA,
        DDP model averaging, Fabric, an overridden hook) takes Lightning's calls.
        """
        if not self._direct_update_applies(optimizer):
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
            if max_grad_norm is not None:
                self.clip_gradients(optimizer, max_grad_norm, gradient_clip_algorithm="norm")
            optimizer.step()
            return
        raw = optimizer._optimizer
        strategy = self._trainer.strategy
        raw.zero_grad(set_to_none=True)
        strategy.pre_backward(loss)
        loss.backward()
        strategy.post_backward(loss)
        if max_grad_norm is not None and max_grad_norm > 0:
            params = [param for group in raw.param_groups for param in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer._on_before_step()
        raw.step()
        optimizer._on_after_step()

    def _direct_update_applies(self, optimizer: Any) -> bool:
        """Whether Lightning's manual_backward / clip_gradients / optimizer.step would run exactly the
        operations of the direct path (checked on every update: a few attribute look-ups)."""
        trainer = self._trainer
        if not self.direct_optimizer_update or trainer is None or self._fabric is not None:
            return False
        if not isinstance(optimizer, LightningOptimizer):
            return False
        strategy = trainer.strategy
        # Strategy.backward = pre_backward + precision hooks + module.backward + post_backward and
        # Strategy.optimizer_step = precision.optimizer_step; DDP adds only pre/post_backward (called on
        # the direct path too) and, with post-localSGD, model averaging after the step.
        kind = type(strategy)
        if kind is DDPStrategy:
            if strategy._model_averager is not None:
                return False
        elif kind is not SingleDeviceStrategy:
            return False
        # The 32-bit plugin exactly: its backward is loss.backward(), its optimizer_step is
        # optimizer.step(closure) with the closure only running on_before_optimizer_step (it does not clip
        # in manual optimization), its clip_gradients is clip_grad_norm_ over the optimizer's params.
        if type(strategy.precision_plugin) is not Precision:
            return False
        # clip_gradients raises on a Trainer-level clip value that differs from ours: keep that error.
        if trainer.gradient_clip_val is not None or trainer.gradient_clip_algorithm is not None:
            return False
        module_type = type(self)
        for hook in _MODULE_UPDATE_HOOKS:
            if getattr(module_type, hook) is not getattr(pl.LightningModule, hook):
                return False
        for callback in trainer.callbacks:
            callback_type = type(callback)
            for hook in _UPDATE_HOOKS:
                if getattr(callback_type, hook) is not getattr(pl.Callback, hook):
                    return False
        return True

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
