"""The common base of every policy: a manually optimized LightningModule tied to an env DataModule."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.core.optimizer import LightningOptimizer
from pytorch_lightning.plugins.precision import Precision
from pytorch_lightning.strategies import DDPStrategy, SingleDeviceStrategy
from tensordict import TensorDict
from torch import Tensor
from torch.nn.utils import clip_grads_with_norm_, get_total_norm

from lightning_rl.contract import DataSource, StepBatches, require
from lightning_rl.loggers import log_to_loggers
from lightning_rl.policies.nonfinite import (
    NONFINITE_MODES,
    NonFinite,
    NonFiniteError,
    NonFiniteGuard,
    NonFiniteMode,
)
from lightning_rl.spec import EnvSpec
from lightning_rl.utils.checks import ConfigError, check_choice, check_int, check_range

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


# the policies that act on legal-action masks (two-player games), named when another one meets a masked env
MASKED_POLICIES = "PPO, A2C, IMPALA or DQN"
# the multi-agent policies for an env's kind of actions, named by agent-kind and action-type errors
MULTI_AGENT_BY_ACTIONS = {"discrete": "QMIX, IQL, COMA, IA2C or IPPO", "continuous": "ATOC or IDDPG"}


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
    Every update goes through :meth:`optimizer_update` (zero_grad, backward, clip, step), which checks
    that its loss terms, gradient norm and parameters are finite (``on_nonfinite``).

    The policy talks to its DataModule only through :attr:`data`, typed by a protocol of
    :mod:`lightning_rl.contract` (:attr:`data_protocol`, checked when fit starts).

    Subclasses state only their own arguments and pass the rest on as ``**kwargs`` (LightningCLI resolves
    them to these; :meth:`save_hyperparameters` here records the whole chain).

    Args:
        env_spec: ``EnvSpec.to_dict()`` of the environment; linked from ``data.env_spec`` by the CLI.
        gamma: discount factor in [0, 1] (the policy's: on-policy collectors read it from here).
        log_interval: write ``train/…`` metrics every this many gradient updates (the ``DataMetrics``
            callback writes the DataModule's at the same interval).
        on_nonfinite: what a non-finite loss term, gradient norm or parameter does. Every update's loss
            terms and gradient norm are checked; the parameters (target networks' too) every
            ``log_interval`` updates and before every checkpoint save, evaluation and rollout collection,
            and when training ends (between those, a parameter that overflows makes the next loss
            non-finite). ``"stop"``: the run ends with one ``error:`` line naming the update, the policy
            and the term (exit status 1); no checkpoint is written after it, so ``last.ckpt`` and
            ``best.ckpt`` keep the last good weights, and no result is written. On the CPU a loss term or
            gradient norm stops the run at its update; on an accelerator they stay on the device (no
            sync per update) until the next of the reads above, which names the first bad update.
            ``"skip_step"``: an update whose loss terms or gradient norm are non-finite is not applied
            (no optimizer step, gradients dropped, parameters and optimizer state untouched,
            ``train_iter`` not advanced) and is counted in ``train/skipped_nonfinite``; the run goes on,
            but parameters that become non-finite (checked after every step) still stop it. This mode
            reads the values on the host at every update (a sync per update on an accelerator).
    """

    data_protocol: type[DataSource] = DataSource  # what this policy needs of its DataModule
    multi_agent: bool = False  # acts for the agents of a multi-agent env (joint actions, EnvSpec.multi_agent)
    action_masks: bool = False  # acts on legal-action masks in the observation (EnvSpec.action_mask)
    #: Let :meth:`optimizer_update` skip Lightning's hook dispatch when that changes nothing (False:
    #: always take Lightning's own calls; the tests use it to compare both paths).
    direct_optimizer_update: bool = True

    def __init__(
        self,
        env_spec: dict[str, Any] | None = None,
        gamma: float = 0.99,
        log_interval: int = 100,
        on_nonfinite: NonFiniteMode = "stop",
    ):
        super().__init__()
        self.save_hyperparameters()
        if env_spec is None:
            raise ValueError(
                "model.env_spec is missing: pass `env_spec=datamodule.env_spec` (the CLI links it from the "
                "DataModule automatically)"
            )
        check_range("gamma", gamma, 0.0, 1.0)
        check_int("log_interval", log_interval, 1)
        check_choice("on_nonfinite", on_nonfinite, NONFINITE_MODES)
        self.spec = EnvSpec.from_dict(env_spec)
        if self.spec.action_mask and not self.action_masks:
            raise ConfigError(
                f"{type(self).__name__} does not act on legal-action masks, which env '{self.spec.env_id}' "
                f"has: use {MASKED_POLICIES}",
                "data.init_args.env_id",
                f"env '{self.spec.env_id}' has legal-action masks, which {type(self).__name__} does not use",
                f"an env without action masks, or {MASKED_POLICIES} for this one",
            )
        self.gamma = gamma
        self.log_interval = log_interval
        self.automatic_optimization = False
        self.train_iter = 0
        self.on_nonfinite = on_nonfinite
        self.nonfinite = NonFiniteGuard()
        self.skipped_nonfinite = 0  # updates skipped by on_nonfinite="skip_step" (checkpointed)
        self._nonfinite_checked = 0  # guard records read by the last check_finite
        self._update_names: dict[tuple[Any, ...], tuple[str, ...]] = {}  # names of the checked values

    def require_action_type(self, action_type: str, fitting_policies: str = "") -> None:
        """A one-line :class:`ConfigError` on ``data.init_args.env_id`` unless the env's actions are
        ``action_type`` (``"discrete"`` or ``"continuous"``); it names ``fitting_policies``, the policies
        for the env's kind of actions (e.g. ``"DDPG, TD3 or SAC"``); a multi-agent policy's error names the
        multi-agent policies for the env's actions instead (``fitting_policies`` is then not needed)."""
        spec = self.spec
        self.require_agent_kind()
        if spec.action_type == action_type:
            return
        if self.multi_agent:
            fitting_policies = MULTI_AGENT_BY_ACTIONS[spec.action_type]
        actions = f"{spec.n_actions} discrete" if spec.action_type == "discrete" else "continuous"
        space = "gymnasium Discrete" if action_type == "discrete" else "gymnasium Box"
        raise ConfigError(
            f"{type(self).__name__} needs {action_type} actions ({space}); env '{spec.env_id}' has "
            f"{actions} actions: use {fitting_policies}",
            "data.init_args.env_id",
            f"env '{spec.env_id}' has {actions} actions, but {type(self).__name__} needs {action_type} ones "
            f"({space}); for this env use {fitting_policies}",
        )

    def require_agent_kind(self) -> None:
        """A one-line :class:`ConfigError` on ``data.init_args.env_id`` unless the env is multi-agent
        exactly when this policy is (:attr:`multi_agent`)."""
        spec = self.spec
        if (spec.multi_agent is not None) != self.multi_agent:
            kind = "multi-agent" if spec.multi_agent is not None else "single-agent"
            fitting = (
                MULTI_AGENT_BY_ACTIONS[spec.action_type]
                if spec.multi_agent is not None
                else "a single-agent policy"
            )
            raise ConfigError(
                f"{type(self).__name__} does not fit env '{spec.env_id}', which is {kind}: use {fitting}",
                "data.init_args.env_id",
                f"env '{spec.env_id}' is {kind}",
                f"an env for {type(self).__name__}, or {fitting} for this one",
            )

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
        try:
            batches, _, _ = next(dataloader_iter)  # Lightning yields (item, batch_idx, dataloader_idx)
            for batch in batches:
                self.training_update(self.batch_to_device(batch))
                if self.train_iter % self.log_interval == 0:
                    self.check_finite()
        except NonFiniteError:
            raise
        except Exception:
            # A non-finite update not read yet (on an accelerator) is the likely cause of a failure after
            # it, e.g. a replay buffer refusing NaN priorities: report that instead.
            self._raise_nonfinite(self.nonfinite.first_bad())
            raise

    def training_update(self, batch: TensorDict) -> None:
        """One gradient update on one batch (and whatever follows it: priorities, target sync, logging)."""
        raise NotImplementedError

    def batch_to_device(self, batch: TensorDict) -> TensorDict:
        """Replay batches live on the CPU; with the ``dataloader_iter`` step Lightning does not move
        them, so policies do it here (a no-op on CPU)."""
        return batch if self.device.type == "cpu" else batch.to(self.device, non_blocking=True)

    # --- optimization ----------------------------------------------------------------------------
    def optimizer_update(
        self,
        optimizer: LightningOptimizer,
        loss: Tensor,
        max_grad_norm: float | None,
        terms: Mapping[str, Tensor] | None = None,
    ) -> bool:
        """One gradient update: ``zero_grad(set_to_none=True)``, backward, clip the global gradient norm
        of the optimizer's parameters to ``max_grad_norm`` (``None`` or <= 0: no clipping), step.

        ``terms`` are the scalar loss terms to check, by name (``{"loss/td": ..., "loss": loss}``; default
        ``{"loss": loss}``): they and the global gradient norm must be finite (``on_nonfinite``). Returns
        whether the step was taken (``False``: skipped by ``on_nonfinite="skip_step"``; the caller then
        leaves ``train_iter`` and priorities alone).

        Lightning's own calls (``manual_backward``, ``clip_gradients``, ``optimizer.step()``) dispatch
        through the strategy, the precision plugin, a closure and six hook calls: ~150-300 us per update
        on a small CPU network, which is 10-15 % of a DQN step (benchmarks/lightning_overhead.py). When
        they would add nothing (:meth:`_direct_update_applies`), this runs the same operations directly:
        the strategy's ``pre_backward``/``post_backward`` (DDP's ``prepare_for_backward``, which arms the
        gradient all-reduce, and its static-graph flush), ``loss.backward()``, the same
        ``clip_grad_norm_`` operations as the 32-bit precision plugin (``get_total_norm``, whose result
        is also the checked gradient norm, and ``clip_grads_with_norm_``), and the raw
        ``optimizer.step()`` between the LightningOptimizer's step callbacks, which the
        manual-optimization loop uses to count ``trainer.global_step`` (and to time "optimizer_step" in
        a profiler). Weights, optimizer state, ``global_step`` and ``max_steps`` are identical on both
        paths; only the profiler's entries for the no-op hooks are missing. Anything else (AMP / bf16 /
        64-bit precision, DeepSpeed, FSDP, XLA, DDP model averaging, Fabric, an overridden hook) takes
        Lightning's calls (under a gradient scaler the scaled gradients are not checked: the scaler
        skips steps with inf gradients itself).
        """
        terms = {"loss": loss} if terms is None else terms
        direct = self._direct_update_applies(optimizer)
        raw = optimizer._optimizer if isinstance(optimizer, LightningOptimizer) else optimizer
        params = [param for group in raw.param_groups for param in group["params"]]
        if direct:
            strategy = self._trainer.strategy
            raw.zero_grad(set_to_none=True)
            strategy.pre_backward(loss)
            loss.backward()
            strategy.post_backward(loss)
        else:
            optimizer.zero_grad(set_to_none=True)
            self.manual_backward(loss)
        grad_norm = self._grad_norm(params, direct)
        if self.on_nonfinite == "skip_step" and self._skip_nonfinite(terms, grad_norm):
            raw.zero_grad(set_to_none=True)
            return False
        if not direct:
            if max_grad_norm is not None:
                self.clip_gradients(optimizer, max_grad_norm, gradient_clip_algorithm="norm")
            optimizer.step()
        else:
            if max_grad_norm is not None and max_grad_norm > 0 and grad_norm is not None:
                clip_grads_with_norm_(params, max_grad_norm, grad_norm)
            optimizer._on_before_step()
            raw.step()
            optimizer._on_after_step()
        self._record_update(terms, grad_norm, raw, params)
        return True

    def _grad_norm(self, params: list[Tensor], direct: bool) -> Tensor | None:
        """The global 2-norm of the gradients (``None`` without any, or while a precision plugin scales
        them)."""
        grads = [param.grad for param in params if param.grad is not None]
        precision = getattr(self._trainer, "precision_plugin", None)
        if not grads or (not direct and getattr(precision, "scaler", None) is not None):
            return None
        return get_total_norm(grads)

    # --- non-finite values --------------------------------------------------------------------------
    def _skip_nonfinite(self, terms: Mapping[str, Tensor], grad_norm: Tensor | None) -> bool:
        """``on_nonfinite="skip_step"``: whether this update's loss terms or gradient norm are non-finite
        (read on the host now; a decision of all ranks under DDP, whose gradients are all-reduced)."""
        with torch.no_grad():
            values = torch.stack([*terms.values(), *([] if grad_norm is None else [grad_norm])])
            skip = not bool(torch.isfinite(values).all())
        if self._world_size() > 1:
            skip = self._trainer.strategy.reduce_boolean_decision(skip, all=False)
        self.skipped_nonfinite += int(skip)
        return skip

    def _record_update(
        self, terms: Mapping[str, Tensor], grad_norm: Tensor | None, optimizer: Any, params: list[Tensor]
    ) -> None:
        """Hand the update's loss terms and gradient norm to the guard, which reads them at once on the
        CPU. skip_step reads every update, and the parameters after its step too (a parameter that
        overflows otherwise makes the next update's loss non-finite, or is found at the next read)."""
        update = self.train_iter + 1
        every_step = self.on_nonfinite == "skip_step"
        names = self._names_of_update(tuple(terms), grad_norm is not None, optimizer if every_step else None)
        with torch.no_grad():
            norms = torch._foreach_norm(params) if every_step else []
            values = torch.stack([*terms.values(), *([] if grad_norm is None else [grad_norm]), *norms])
        found = self.nonfinite.record(update, names, values)
        if every_step:
            found = self.nonfinite.first_bad() is not None  # a host read on an accelerator
        if found and (every_step or self._world_size() == 1):  # DDP: all ranks at the periodic read
            self._raise_nonfinite(self.nonfinite.first_bad())

    def _names_of_update(
        self, terms: tuple[str, ...], has_grad_norm: bool, optimizer: Any | None
    ) -> tuple[str, ...]:
        """The names of :meth:`_record_update`'s values, with the parameters of ``optimizer`` (``None``:
        none) last; one tuple per layout, built once."""
        key = (terms, has_grad_norm, id(optimizer))
        names = self._update_names.get(key)
        if names is None:
            params = (
                [] if optimizer is None else [p for group in optimizer.param_groups for p in group["params"]]
            )
            names = (*terms, *(["grad_norm"] if has_grad_norm else []), *self._parameter_names(params))
            self._update_names[key] = names
        return names

    def _parameter_names(self, params: list[Tensor]) -> list[str]:
        module_names = {id(param): name for name, param in self.named_parameters()}
        return [f"parameters of {module_names.get(id(param), 'the optimizer')}" for param in params]

    def _record_parameters(self) -> None:
        """Hand the norm of every parameter (target networks' too) to the guard."""
        params = [param for param in self.parameters() if param.is_floating_point()]
        if params:
            with torch.no_grad():
                norms = torch.stack(torch._foreach_norm(params))
            self.nonfinite.record(self.train_iter, tuple(self._parameter_names(params)), norms)

    def check_finite(self, rescan: bool = False) -> None:
        """Raise :class:`NonFiniteError` if a loss term or gradient norm of an update so far, or a
        parameter now, is non-finite: one host read of what the guard kept on the device, and a scan of
        the parameters; nothing when no update came since the last call (unless ``rescan``).

        Called every ``log_interval`` updates, before checkpoints are saved (``rescan``), before
        evaluations (``Evaluator``) and rollouts, and when training ends; under DDP every rank calls it
        at the same points, and it stops all ranks together.
        """
        guard = self.nonfinite
        if not rescan and guard.records == self._nonfinite_checked:
            return
        self._record_parameters()
        self._nonfinite_checked = guard.records
        found = guard.first_bad()
        if self._world_size() > 1 and self._trainer.strategy.reduce_boolean_decision(
            found is not None, all=False
        ):
            found = found or NonFinite(self.train_iter, "values on another rank", float("nan"))
        self._raise_nonfinite(found)

    def _raise_nonfinite(self, found: NonFinite | None) -> None:
        if found is None:
            return
        checkpoint = getattr(self._trainer and self._trainer.checkpoint_callback, "last_model_path", None)
        if checkpoint and os.path.exists(checkpoint):
            kept = f"last good checkpoint: {checkpoint}"
        else:
            kept = "no checkpoint was written before it"
        # a parameter's value is its 2-norm, which also overflows for values beyond ~1e19
        value = f"norm {found.value}" if found.term.startswith("parameters of ") else found.value
        raise NonFiniteError(
            f"{type(self).__name__}: non-finite {found.term} ({value}) at update {found.update}; {kept}"
        )

    def _world_size(self) -> int:
        return self._trainer.world_size if self._trainer is not None else 1

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
        """Write metrics straight to the loggers, tagged with ``env_steps`` and ``train_iter`` (with
        ``on_nonfinite="skip_step"``, plus ``train/skipped_nonfinite``)."""
        if self.on_nonfinite == "skip_step":
            metrics = {**metrics, "train/skipped_nonfinite": float(self.skipped_nonfinite)}
        log_to_loggers(self.trainer, metrics, env_steps=self.env_steps, train_iter=self.train_iter)

    # --- evaluation (`validate` subcommand: the Evaluator callback runs the episodes) ---------------
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Nothing per batch: the ``Evaluator`` callback evaluates whole episodes at the epoch's end."""

    # --- checkpoint ----------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Lightning calls it before the file is written: a non-finite update so far, or a non-finite
        parameter now, stops the run instead of saving."""
        self.check_finite(rescan=True)
        checkpoint["train_iter"] = self.train_iter
        checkpoint["skipped_nonfinite"] = self.skipped_nonfinite

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.train_iter = int(checkpoint.get("train_iter", 0))
        self.skipped_nonfinite = int(checkpoint.get("skipped_nonfinite", 0))

    def on_train_end(self) -> None:
        self.check_finite()  # before the run's result is written
