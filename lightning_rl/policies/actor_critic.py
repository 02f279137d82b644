"""What PPO, A2C and IMPALA share: a ValueAC network, the on-policy collection interface, schedules and
the update step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from lightning_rl import keys, torch_utils
from lightning_rl.models import ValueAC
from lightning_rl.policies.base import ActMode, RLPolicy
from lightning_rl.utils.checks import check_choice, check_positive, check_range

Schedule = Literal["constant", "linear"]


class ActorCriticPolicy(RLPolicy):
    """Base of the on-policy actor-critic policies (driven by ``OnPolicyDataModule``).

    Args:
        hidden_sizes, shared_encoder, activation, log_std, log_std_init, squash: the :class:`ValueAC`
            network (defaults: separate (64, 64) tanh MLPs for vectors, one shared Nature CNN for images).
        lr, lr_final, lr_schedule: learning rate and its schedule over the env-step budget.
        vf_coef: value loss weight.
        ent_coef, ent_coef_final, ent_schedule: entropy bonus weight and its schedule.
        max_grad_norm: global gradient-norm clip (``None``: off).
    """

    def __init__(
        self,
        env_spec: dict[str, Any] | None,
        hidden_sizes: Sequence[int] | None,
        shared_encoder: bool | None,
        activation: Literal["tanh", "relu"],
        log_std: Literal["independent", "state_dependent"],
        log_std_init: float,
        squash: bool,
        lr: float,
        lr_final: float | None,
        lr_schedule: Schedule,
        vf_coef: float,
        ent_coef: float,
        ent_coef_final: float | None,
        ent_schedule: Schedule,
        max_grad_norm: float | None,
        log_interval: int,
    ):
        super().__init__(env_spec, log_interval)
        check_positive(lr=lr, max_grad_norm=max_grad_norm)
        check_range("vf_coef", vf_coef, 0.0, float("inf"))
        check_range("ent_coef", ent_coef, 0.0, float("inf"))
        check_choice("lr_schedule", lr_schedule, ("constant", "linear"))
        check_choice("ent_schedule", ent_schedule, ("constant", "linear"))
        self.lr, self.lr_final, self.lr_schedule = lr, lr_final, lr_schedule
        self.ent_coef, self.ent_coef_final, self.ent_schedule = ent_coef, ent_coef_final, ent_schedule
        self.vf_coef, self.max_grad_norm = vf_coef, max_grad_norm
        self.squash = squash
        self.net = ValueAC.from_spec(
            self.spec,
            hidden_sizes=None if hidden_sizes is None else tuple(hidden_sizes),
            shared_encoder=shared_encoder,
            activation=activation,
            log_std=log_std,
            log_std_init=log_std_init,
            squash=squash,
        )

    # --- what the DataModule calls ---------------------------------------------------------------
    @torch.no_grad()
    def act(
        self,
        obs: Tensor,
        mode: ActMode = "eval",
        env_steps: int = 0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        action, _, _ = self.net.act(obs.to(self.device), deterministic=mode == "eval")
        return self.to_env_action(action)

    @torch.no_grad()
    def collect(self, obs: Tensor) -> dict[str, Tensor]:
        """One exploring step: the sampled ``action`` (stored), its ``log_prob`` and ``value`` ``(E,)``, and
        ``env_action`` (clipped to the action bounds when the Gaussian is not squashed)."""
        action, log_prob, value = self.net.act(obs.to(self.device))
        return {
            keys.ACTION: action.cpu(),
            keys.LOG_PROB: log_prob.cpu(),
            keys.VALUE: value.cpu(),
            "env_action": self.to_env_action(action).cpu(),
        }

    @torch.no_grad()
    def predict_value(self, obs: Tensor) -> Tensor:
        """Critic values ``(N,)`` of observations ``(N, *obs_shape)`` (bootstraps)."""
        return self.net.value(obs.to(self.device)).cpu()

    def to_env_action(self, action: Tensor) -> Tensor:
        """Unsquashed Gaussian samples are unbounded: the env gets them clipped to its bounds."""
        if self.spec.action_type == "discrete" or self.squash:
            return action
        low = torch.as_tensor(self.spec.action_low, device=action.device).reshape(self.spec.action_shape)
        high = torch.as_tensor(self.spec.action_high, device=action.device).reshape(self.spec.action_shape)
        return action.clamp(low, high)

    # --- training ----------------------------------------------------------------------------------
    def progress(self) -> float:
        """Fraction of the env-step budget used when the current rollout started (0 without a budget):
        constant over a rollout's epochs, and below 1 for the last one (a zero step size is no update)."""
        datamodule = self.trainer.datamodule
        budget = getattr(datamodule, "max_env_steps", None)
        return datamodule.rollout_env_steps / budget if budget else 0.0

    def current_ent_coef(self) -> float:
        return torch_utils.Schedule(self.ent_coef, self.ent_coef_final, self.ent_schedule)(self.progress())

    def apply_update(self, loss: Tensor) -> float:
        """One optimizer step on ``loss`` at the scheduled learning rate; returns that rate."""
        optimizer = self.optimizers()
        lr = torch_utils.Schedule(self.lr, self.lr_final, self.lr_schedule)(self.progress())
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.max_grad_norm is not None:
            self.clip_gradients(optimizer, self.max_grad_norm, gradient_clip_algorithm="norm")
        optimizer.step()
        self.train_iter += 1
        return lr
