"""DQN with the usual extensions: double Q-learning, dueling head, n-step returns, prioritized replay."""

from __future__ import annotations

import math
from collections.abc import Sequence
from copy import deepcopy
from typing import Any, Literal

import torch
from tensordict import TensorDict
from torch import Tensor, nn

from lightning_rl import keys
from lightning_rl.contract import ActMode, Rng
from lightning_rl.models import DQNNet
from lightning_rl.policies.base import RLPolicy
from lightning_rl.rl_utils import QNStepData, apex_epsilon, cql_penalty, epsilon_greedy, q_nstep_td_error
from lightning_rl.spec import EnvSpec
from lightning_rl.torch_utils import Schedule, TargetUpdater, mask_illegal, split_action_mask
from lightning_rl.utils.checks import check_choice, check_positive, check_range


class DQN(RLPolicy):
    """Deep Q-learning (Mnih et al. 2015) with double Q (van Hasselt et al. 2016), dueling heads,
    n-step targets and prioritized replay (Schaul et al. 2016).

    The n-step length comes from the data (the DataModule's ``nstep``); importance weights and
    priority write-back are used whenever the batch carries them (prioritized replay).

    Subclass and override :meth:`build_net` for another network or :meth:`compute_loss` to add loss
    terms (see ``examples/dqn_aux_loss.py``).

    Args (besides :class:`~lightning_rl.policies.RLPolicy`'s ``env_spec``, ``gamma``, ``log_interval``):
        hidden_sizes: MLP widths for vector obs; for image obs the last one is the CNN feature width.
        dueling: use a dueling head.
        double: pick the bootstrap action with the online net (double DQN) instead of max over the target net.
        lr: Adam learning rate.
        loss_type: ``"huber"`` or ``"mse"``.
        target_update_interval: hard target sync every this many gradient updates (when ``target_tau == 1``).
        target_tau: Polyak factor applied every update when < 1 (1 means hard updates).
        eps_start, eps_end, eps_decay_steps, eps_schedule: epsilon-greedy exploration over global env
            steps, ``"linear"`` or ``"exp"``.
        max_grad_norm: clip the global gradient norm to this (``None``: no clipping).
        cql_alpha: weight of the conservative Q-learning penalty (:func:`~lightning_rl.rl_utils.cql_penalty`,
            CQL(H) of Kumar et al. 2020) added to the TD loss, for offline training
            (``OfflineDataModule``): it keeps the Q-values of actions the data does not take from being
            overestimated. 0 (the default) is plain DQN.

    With legal-action masks in the observation (``EnvSpec.action_mask``: two-player games) the network
    sees the features before the mask, and acting, exploring and the bootstrap's max (or double DQN's
    argmax) range over the legal actions only.

    How many updates one Lightning step takes (and how they interleave with collection) is the
    DataModule's to say: ``data.gradient_steps``, ``data.updates_per_step``.
    """

    action_masks = True

    def __init__(
        self,
        hidden_sizes: Sequence[int] = (256, 256),
        dueling: bool = False,
        double: bool = True,
        lr: float = 1e-3,
        loss_type: Literal["huber", "mse"] = "huber",
        target_update_interval: int = 500,
        target_tau: float = 1.0,
        eps_start: float = 1.0,
        eps_end: float = 0.05,
        eps_decay_steps: int = 10_000,
        eps_schedule: Literal["linear", "exp"] = "linear",
        max_grad_norm: float | None = 10.0,
        cql_alpha: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        check_range("target_tau", target_tau, 0.0, 1.0, low_open=True)
        check_positive(
            lr=lr,
            target_update_interval=target_update_interval,
            max_grad_norm=max_grad_norm,
        )
        check_choice("loss_type", loss_type, ("huber", "mse"))
        if isinstance(cql_alpha, bool) or not (math.isfinite(cql_alpha) and cql_alpha >= 0):
            raise ValueError(f"cql_alpha must be a finite float >= 0 (0: no CQL penalty), got {cql_alpha!r}")
        check_range("eps_start", eps_start, 0.0, 1.0)
        check_range("eps_end", eps_end, 0.0, 1.0)
        check_positive(eps_decay_steps=eps_decay_steps)
        check_choice("eps_schedule", eps_schedule, ("linear", "exp"))
        self.require_action_type("discrete", "DDPG, TD3 or SAC (or PPO, A2C)")
        self.epsilon = Schedule(eps_start, eps_end, eps_schedule, eps_decay_steps)
        self.net = self.build_net(self.spec)
        # A frozen copy: DDP sees no parameters that never get gradients (DESIGN.md §6).
        self.target_net = deepcopy(self.net).requires_grad_(False)
        self.target_updater = TargetUpdater(self.target_net, self.net, target_tau, target_update_interval)

    def build_net(self, spec: EnvSpec) -> nn.Module:
        """The online Q-network: obs (B, *obs_shape) -> q (B, n_actions); with action masks its input is
        the features before the mask, (B, obs_dim - n_actions)."""
        obs_shape = (spec.obs_shape[0] - spec.n_actions,) if spec.action_mask else spec.obs_shape
        return DQNNet(obs_shape, spec.n_actions, self.hparams.hidden_sizes, self.hparams.dueling)

    def masked_q(self, net: nn.Module, obs: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(q (B, A), legal (B, A) bool or None)``: ``net``'s Q-values of ``obs (B, *obs_shape)``, illegal
        actions at the lowest float (with action masks; else the plain Q-values and ``None``)."""
        if not self.spec.action_mask:
            return net(obs), None
        features, legal = split_action_mask(obs, self.spec.n_actions)
        return mask_illegal(net(features), legal), legal

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # fused: one kernel for all parameters, ~40 us/step less than the per-tensor loop on CPU
        return torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr, fused=True)

    def spread_exploration(self, actor: int, n_actors: int) -> None:
        """Ape-X: a fixed epsilon per actor, ``0.4 ** (1 + 7 * actor / (n_actors - 1))``
        (:func:`~lightning_rl.rl_utils.apex_epsilon`), in place of the epsilon schedule."""
        self.epsilon = Schedule(apex_epsilon(actor, n_actors), kind="constant")

    @torch.no_grad()
    def act(self, obs: Tensor, mode: ActMode = "eval", env_steps: int = 0, generator: Rng = None) -> Tensor:
        q, legal = self.masked_q(self.net, obs.to(self.device))
        if mode == "eval":
            return q.argmax(dim=-1)
        return epsilon_greedy(q, self.epsilon(env_steps), generator, legal)

    def compute_loss(self, batch: TensorDict) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """TD loss of one replay batch (plus the CQL penalty with ``cql_alpha``).

        Returns ``(loss, priority (B,), extra)`` where ``extra`` holds detached tensors to log
        (``td_loss``, and ``cql_penalty`` with CQL, are also the terms checked for non-finite values).
        """
        q, loss, priority = self.td_loss(batch)
        values = q.detach()  # q itself stays differentiable: the CQL penalty below trains through it
        legal_values = values[values > torch.finfo(values.dtype).min] if self.spec.action_mask else values
        extra = {"td_loss": loss.detach(), "q_mean": legal_values.mean()}
        if self.hparams.cql_alpha > 0:
            penalty = cql_penalty(q, batch[keys.ACTION], batch.get(keys.WEIGHT, None))
            loss = loss + self.hparams.cql_alpha * penalty
            extra["cql_penalty"] = penalty.detach()
        return loss, priority, extra

    def td_loss(self, batch: TensorDict) -> tuple[Tensor, Tensor, Tensor]:
        """``(q (B, A) online Q-values at obs, TD loss (), |TD error| (B,))`` of one batch."""
        obs, next_obs = batch[keys.OBS], batch[keys.NEXT_OBS]
        q, _ = self.masked_q(self.net, obs)
        with torch.no_grad():
            next_q, _ = self.masked_q(self.target_net, next_obs)
            # double DQN: the online net picks the bootstrap action, the target net values it
            next_action = self.masked_q(self.net, next_obs)[0].argmax(dim=-1) if self.hparams.double else None
        data = QNStepData(
            q=q,
            next_q=next_q,
            action=batch[keys.ACTION],
            reward=batch[keys.REWARD],
            terminated=batch[keys.TERMINATED],
            next_action=next_action,
            steps=batch[keys.STEPS],
            weight=batch.get(keys.WEIGHT, None),
        )
        loss, td_error = q_nstep_td_error(data, self.gamma, loss_type=self.hparams.loss_type)
        return q, loss, td_error

    def training_update(self, batch: TensorDict) -> None:
        optimizer = self.optimizers()
        loss, priority, extra = self.compute_loss(batch)
        terms = {"loss/td": extra["td_loss"]} if "td_loss" in extra else {}
        if "cql_penalty" in extra:
            terms["loss/cql"] = extra["cql_penalty"]
        terms["loss"] = loss  # the total, with whatever a subclass's compute_loss adds
        if not self.optimizer_update(optimizer, loss, self.hparams.max_grad_norm, terms):
            return  # skipped (on_nonfinite="skip_step"): no priorities from a non-finite TD error
        self.train_iter += 1
        self.data.update_priority(batch[keys.INDEX], priority)
        self.update_target()
        if self.should_log():
            metrics = {"train/loss": loss.item(), "train/epsilon": self.epsilon(self.env_steps)}
            metrics.update({f"train/{name}": value.item() for name, value in extra.items()})
            self.log_metrics(metrics)

    def update_target(self) -> None:
        """Hard sync every ``target_update_interval`` updates, or Polyak averaging every update."""
        self.target_updater.step(self.train_iter)
