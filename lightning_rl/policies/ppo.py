"""Proximal Policy Optimization (Schulman et al., 2017) on the OnPolicyDataModule's minibatches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
from tensordict import TensorDict
from torch import Tensor

from lightning_rl import keys
from lightning_rl.models import ValueAC
from lightning_rl.policies.base import ActMode, RLPolicy
from lightning_rl.rl_utils import PPOData, ppo_error
from lightning_rl.utils.checks import check_choice, check_positive, check_range

Schedule = Literal["constant", "linear"]


def scheduled(start: float, end: float | None, schedule: Schedule, progress: float) -> float:
    """``start`` (constant), or linear from ``start`` to ``end`` (default 0) over ``progress`` in [0, 1]."""
    if schedule == "constant":
        return start
    end = 0.0 if end is None else end
    return start + (end - start) * min(max(progress, 0.0), 1.0)


class PPO(RLPolicy):
    """PPO-clip with GAE advantages, an actor-critic :class:`~lightning_rl.models.ValueAC`, discrete or
    continuous actions.

    Each minibatch is one Adam step on ``policy_loss + vf_coef * value_loss - ent_coef * entropy``.
    Learning rate, clip ratio and entropy coefficient follow ``constant`` or ``linear`` schedules over the
    run's env-step budget (``data.max_env_steps``). With ``target_kl``, a minibatch whose approximate KL
    to the collecting policy exceeds ``1.5 * target_kl`` is not applied and ends the rollout's epochs (as
    SB3; a decision of all ranks under DDP).

    Args:
        hidden_sizes, shared_encoder, activation, log_std, log_std_init, squash: the :class:`ValueAC`
            network (defaults: separate (64, 64) tanh MLPs for vectors, one shared Nature CNN for images).
        lr, lr_final, lr_schedule: Adam learning rate and its schedule.
        clip_ratio, clip_ratio_final, clip_schedule: the surrogate's clip range and its schedule.
        dual_clip: dual-clip bound (> 1) for negative advantages, or ``None``.
        value_clip_ratio: clip the value prediction around the collected value (PPO2), or ``None``.
        vf_coef: value loss weight.
        ent_coef, ent_coef_final, ent_schedule: entropy bonus weight and its schedule.
        max_grad_norm: global gradient-norm clip (``None``: off).
        target_kl: early stop of a rollout's epochs, or ``None``.
    """

    def __init__(
        self,
        env_spec: dict[str, Any] | None = None,
        hidden_sizes: Sequence[int] | None = None,
        shared_encoder: bool | None = None,
        activation: Literal["tanh", "relu"] = "tanh",
        log_std: Literal["independent", "state_dependent"] = "independent",
        log_std_init: float = 0.0,
        squash: bool = False,
        lr: float = 3e-4,
        lr_final: float | None = None,
        lr_schedule: Schedule = "constant",
        clip_ratio: float = 0.2,
        clip_ratio_final: float | None = None,
        clip_schedule: Schedule = "constant",
        dual_clip: float | None = None,
        value_clip_ratio: float | None = None,
        vf_coef: float = 0.5,
        ent_coef: float = 0.0,
        ent_coef_final: float | None = None,
        ent_schedule: Schedule = "constant",
        max_grad_norm: float | None = 0.5,
        target_kl: float | None = None,
        log_interval: int = 100,
    ):
        super().__init__(env_spec, log_interval)
        self.save_hyperparameters()
        check_positive(lr=lr, clip_ratio=clip_ratio, max_grad_norm=max_grad_norm, target_kl=target_kl)
        check_range("vf_coef", vf_coef, 0.0, float("inf"))
        check_range("ent_coef", ent_coef, 0.0, float("inf"))
        for name, schedule in (("lr_schedule", lr_schedule), ("clip_schedule", clip_schedule)):
            check_choice(name, schedule, ("constant", "linear"))
        check_choice("ent_schedule", ent_schedule, ("constant", "linear"))
        spec = self.spec
        self.net = ValueAC.from_spec(
            spec,
            hidden_sizes=None if hidden_sizes is None else tuple(hidden_sizes),
            shared_encoder=shared_encoder,
            activation=activation,
            log_std=log_std,
            log_std_init=log_std_init,
            squash=squash,
        )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr, eps=1e-5)

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
        if self.spec.action_type == "discrete" or self.hparams.squash:
            return action
        low = torch.as_tensor(self.spec.action_low, device=action.device).reshape(self.spec.action_shape)
        high = torch.as_tensor(self.spec.action_high, device=action.device).reshape(self.spec.action_shape)
        return action.clamp(low, high)

    # --- training ----------------------------------------------------------------------------------
    def progress(self) -> float:
        """Fraction of the env-step budget used when the current rollout started (0 without a budget):
        constant over a rollout's epochs, and below 1 for the last one (a clip ratio of 0 is no update)."""
        datamodule = self.trainer.datamodule
        budget = getattr(datamodule, "max_env_steps", None)
        return datamodule.rollout_env_steps / budget if budget else 0.0

    def _kl_too_far(self, approx_kl: float) -> bool:
        """``approx_kl > 1.5 * target_kl`` on any rank (every rank must stop together under DDP)."""
        stop = approx_kl > 1.5 * self.hparams.target_kl
        if self.trainer.world_size > 1:
            stop = self.trainer.strategy.reduce_boolean_decision(stop, all=False)
        return bool(stop)

    def training_step(self, dataloader_iter: Iterator[tuple[TensorDict, int, int]]) -> None:
        hp = self.hparams
        optimizer = self.optimizers()
        datamodule = self.trainer.datamodule
        batch, _, _ = next(dataloader_iter)  # Lightning yields (batch, batch_idx, dataloader_idx)
        batch = self.batch_to_device(batch)
        progress = self.progress()
        lr = scheduled(hp.lr, hp.lr_final, hp.lr_schedule, progress)
        clip = scheduled(hp.clip_ratio, hp.clip_ratio_final, hp.clip_schedule, progress)
        ent_coef = scheduled(hp.ent_coef, hp.ent_coef_final, hp.ent_schedule, progress)
        log_prob, entropy, value = self.net.evaluate_actions(batch[keys.OBS], batch[keys.ACTION])
        data = PPOData(
            log_prob=log_prob,
            old_log_prob=batch[keys.LOG_PROB],
            entropy=entropy,
            value=value,
            old_value=batch[keys.VALUE],
            advantage=batch[keys.ADVANTAGE],
            returns=batch[keys.RETURNS],
        )
        losses, info = ppo_error(data, clip, hp.dual_clip, hp.value_clip_ratio)
        if hp.target_kl is not None and self._kl_too_far(float(info.approx_kl)):
            datamodule.stop_epochs()  # this minibatch moved too far already: no update from it (as SB3)
            return
        loss = losses.policy_loss + hp.vf_coef * losses.value_loss + ent_coef * losses.entropy_loss
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if hp.max_grad_norm is not None:
            self.clip_gradients(optimizer, hp.max_grad_norm, gradient_clip_algorithm="norm")
        optimizer.step()
        self.train_iter += 1
        if self.should_log():
            metrics = {
                "train/loss": loss.item(),
                "train/policy_loss": losses.policy_loss.item(),
                "train/value_loss": losses.value_loss.item(),
                "train/entropy": -losses.entropy_loss.item(),
                "train/approx_kl": float(info.approx_kl),
                "train/clip_fraction": float(info.clip_fraction),
                "train/lr": lr,
                "train/clip_ratio": clip,
            }
            self.log_metrics({**metrics, **datamodule.metrics()})
