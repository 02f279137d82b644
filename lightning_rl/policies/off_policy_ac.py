"""What DDPG, TD3 and SAC share: a QValueAC, target networks, random warm-up and one fused update."""

from __future__ import annotations

from collections.abc import Sequence
from copy import deepcopy
from typing import Any

import torch
from tensordict import TensorDict
from torch import Tensor, nn

from lightning_rl import keys
from lightning_rl.contract import ActMode, Rng
from lightning_rl.models import QValueAC
from lightning_rl.models.qac import ActorKind
from lightning_rl.policies.base import RLPolicy
from lightning_rl.rl_utils import critic_loss
from lightning_rl.torch_utils import TargetUpdater
from lightning_rl.utils.checks import check_at_least, check_positive, check_range

# The policies for discrete actions, named by a continuous-control policy given a Discrete env.
DISCRETE_POLICIES = "DQN, PPO, A2C or IMPALA"


class OffPolicyActorCritic(RLPolicy):
    """Base of the off-policy continuous-control policies (DDPG, TD3, SAC), driven by
    ``OffPolicyDataModule``: a :class:`~lightning_rl.models.QValueAC` with Polyak-averaged target networks.

    Every update is **one** backward pass and one fused Adam step over three parameter groups (critics,
    actor, SAC's temperature), each at its own learning rate. The actor's loss reads the critics with
    their parameters detached, so it trains the actor only and the critic loss trains the critics only
    (as TorchRL's losses do; SB3 runs one optimizer and backward per part, which costs the same gradients
    and two more passes). The actor's loss uses the critics as they are before this update's step. Adam
    leaves parameters without a gradient untouched, so an update that skips the actor (TD3's delay) does
    not move it or its moments. Subclasses say how the critic target and the actor's losses are computed
    (:meth:`critic_target`, :meth:`actor_losses`) and how the policy explores (:meth:`explore`).

    Actions: the model works on actions normalized to ``[-1, 1]``; :meth:`act` returns env actions
    (``model.scaler``), which replay stores and the critic update normalizes back.

    Prioritized replay: the critics' loss is weighted by the importance weights and the priorities are
    ``mean_k |y - Q_k|`` (DI-engine's TD3). n-step targets follow the DataModule's ``nstep``.

    Args (besides :class:`~lightning_rl.policies.RLPolicy`'s ``env_spec``, ``gamma``, ``log_interval``):
        actor_hidden_sizes, critic_hidden_sizes: MLP widths (for image obs the last one is the Nature
            CNN's feature width).
        actor_lr, critic_lr: Adam learning rates.
        tau: Polyak factor of the target networks, applied at every target update (1: hard copies).
        random_steps: while fewer global env steps than this were collected, ``"collect"`` actions are
            uniform over the action box (warm-up before the policy acts; SB3 does this for its
            ``learning_starts``, TD3's paper for 25k steps). Usually the DataModule's ``learning_starts``.
        max_grad_norm: clip the global gradient norm of all parts together (``None``: no clipping).
    """

    #: "deterministic" (DDPG, TD3) or "gaussian" (SAC): the actor of the model.
    actor_kind: ActorKind = "gaussian"
    #: Q-functions of the model: 1 (DDPG) or 2 (clipped double Q of TD3 and SAC).
    n_critics: int = 2

    def __init__(
        self,
        actor_hidden_sizes: Sequence[int] = (256, 256),
        critic_hidden_sizes: Sequence[int] = (256, 256),
        actor_lr: float = 1e-3,
        critic_lr: float = 1e-3,
        tau: float = 0.005,
        random_steps: int = 1_000,
        max_grad_norm: float | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        check_positive(actor_lr=actor_lr, critic_lr=critic_lr, max_grad_norm=max_grad_norm)
        check_range("tau", tau, 0.0, 1.0, low_open=True)
        check_at_least("random_steps", random_steps, 0)
        self.require_action_type("continuous", DISCRETE_POLICIES)
        self.actor_lr, self.critic_lr, self.max_grad_norm = actor_lr, critic_lr, max_grad_norm
        self.random_steps = random_steps
        self.model = self.build_model()
        # Frozen copies: DDP sees no parameters that never get gradients (DESIGN.md §6).
        self.target_critics = deepcopy(self.model.critics).requires_grad_(False)
        self.target_updaters = [TargetUpdater(self.target_critics, self.model.critics, tau)]

    def build_model(self) -> QValueAC:
        """The online networks (override for another architecture with the same interface)."""
        spec = self.spec
        return QValueAC(
            spec.obs_shape,
            spec.action_shape,
            spec.action_low,
            spec.action_high,
            actor=self.actor_kind,
            n_critics=self.n_critics,
            actor_hidden_sizes=self.hparams.actor_hidden_sizes,
            critic_hidden_sizes=self.hparams.critic_hidden_sizes,
        )

    def add_target(self, online: nn.Module) -> nn.Module:
        """A frozen target copy of ``online``, Polyak-averaged with the critics' target."""
        target = deepcopy(online).requires_grad_(False)
        self.target_updaters.append(TargetUpdater(target, online, self.hparams.tau))
        return target

    # --- multi-agent policies: the critics value each agent of an item apart ---------------------
    @property
    def n_agents(self) -> int:
        """Agents acting in each env step: 1, but for a multi-agent policy (:attr:`multi_agent`)."""
        return int(self.spec.multi_agent["n_agents"]) if self.multi_agent else 1

    def per_agent(self, x: Tensor | None) -> Tensor | None:
        """A per-item tensor ``(B, ...)`` as the critics' per-agent samples ``(B * N, ...)``, agent-major
        within each item (the identity for one agent)."""
        return x if x is None or self.n_agents == 1 else x.repeat_interleave(self.n_agents, 0)

    def per_agent_shape(self, action_shape: tuple[int, ...]) -> tuple[int, ...]:
        """One env step's action shape from one agent's: ``(N, *action_shape)`` for several agents."""
        return action_shape if self.n_agents == 1 else (self.n_agents, *action_shape)

    # --- optimization ----------------------------------------------------------------------------
    def param_groups(self) -> list[dict[str, Any]]:
        """Adam's parameter groups: critics and actor (subclasses add theirs, e.g. SAC's temperature)."""
        return [
            {"params": list(self.model.critics.parameters()), "lr": self.critic_lr, "name": "critic"},
            {"params": list(self.model.actor.parameters()), "lr": self.actor_lr, "name": "actor"},
        ]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        # fused: one kernel for all parameters (and groups), far cheaper than the per-tensor loop on CPU
        return torch.optim.Adam(self.param_groups(), fused=True)

    # --- acting ----------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Tensor, mode: ActMode = "eval", env_steps: int = 0, generator: Rng = None) -> Tensor:
        """Env actions ``(E, *action_shape)`` for ``obs`` ``(E, *obs_shape)``: the deterministic action in
        ``"eval"``, uniform random ones during the first ``random_steps`` of ``"collect"``, then the
        subclass's exploration (:meth:`explore`)."""
        obs = obs.to(self.device)
        if mode == "eval":
            action = self.model.actor(obs)
        elif env_steps < self.random_steps:
            shape = (obs.shape[0], *self.per_agent_shape(self.spec.action_shape))
            device = generator.device if generator is not None else None
            action = (torch.rand(shape, generator=generator, device=device) * 2 - 1).to(obs.device)
        else:
            action = self.explore(obs, generator)
        return self.model.scaler.scale(action)

    def explore(self, obs: Tensor, generator: Rng) -> Tensor:
        """Exploring normalized actions ``(E, *action_shape)`` in ``[-1, 1]``."""
        raise NotImplementedError

    # --- the update ----------------------------------------------------------------------------
    def critic_target(self, batch: TensorDict) -> Tensor:
        """The critics' regression target ``(B,)`` (no gradient) of a replay batch."""
        raise NotImplementedError

    def actor_losses(self, obs: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """``(losses, logs)`` of the actor side on ``obs`` ``(B, *obs_shape)``: scalar loss terms by name
        (``"actor"``, SAC's ``"alpha"``; summed into the update's loss) and detached scalars to log;
        ``({}, {})`` when this update does not train the actor (TD3's delay)."""
        raise NotImplementedError

    def update_targets(self) -> None:
        """Polyak-average every target network (after each update; TD3 after its actor updates)."""
        for updater in self.target_updaters:
            updater.step(self.train_iter)

    def training_update(self, batch: TensorDict) -> None:
        obs = batch[keys.OBS]
        target = self.critic_target(batch)
        q = self.model.critics(obs, self.model.scaler.normalize(batch[keys.ACTION]))
        loss_critic, td_error = critic_loss(q, target, self.per_agent(batch.get(keys.WEIGHT, None)))
        actor_losses, logs = self.actor_losses(obs)
        losses = {"critic": loss_critic, **actor_losses}
        loss = torch.stack(list(losses.values())).sum()
        terms = {**{f"loss/{name}": value for name, value in losses.items()}, "loss": loss}
        if not self.optimizer_update(self.optimizers(), loss, self.max_grad_norm, terms):
            return  # skipped (on_nonfinite="skip_step"): no priorities from a non-finite TD error
        self.train_iter += 1
        self.data.update_priority(batch[keys.INDEX], td_error.view(len(obs), -1).mean(1))  # agents' mean
        self.after_update(trained_actor=bool(actor_losses))
        if self.should_log():
            metrics = {f"train/{name}_loss": value.item() for name, value in losses.items()}
            metrics["train/loss"] = loss.item()
            metrics["train/q_mean"] = q.detach().mean().item()
            metrics.update({f"train/{name}": value.item() for name, value in logs.items()})
            self.log_metrics(metrics)

    def after_update(self, trained_actor: bool) -> None:
        """What follows a gradient step: target updates (every step here)."""
        self.update_targets()
