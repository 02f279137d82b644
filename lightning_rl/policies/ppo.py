"""Proximal Policy Optimization (Schulman et al., 2017) on the OnPolicyDataModule's minibatches."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
from tensordict import TensorDict

from lightning_rl import keys, torch_utils
from lightning_rl.policies.actor_critic import ActorCriticPolicy, Schedule
from lightning_rl.rl_utils import PPOData, ppo_error
from lightning_rl.utils.checks import check_choice, check_positive


class PPO(ActorCriticPolicy):
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
        super().__init__(
            env_spec,
            hidden_sizes,
            shared_encoder,
            activation,
            log_std,
            log_std_init,
            squash,
            lr,
            lr_final,
            lr_schedule,
            vf_coef,
            ent_coef,
            ent_coef_final,
            ent_schedule,
            max_grad_norm,
            log_interval,
        )
        self.save_hyperparameters()
        check_positive(clip_ratio=clip_ratio, target_kl=target_kl)
        check_choice("clip_schedule", clip_schedule, ("constant", "linear"))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr, eps=1e-5)

    # --- training ----------------------------------------------------------------------------------
    def _kl_too_far(self, approx_kl: float) -> bool:
        """``approx_kl > 1.5 * target_kl`` on any rank (every rank must stop together under DDP)."""
        stop = approx_kl > 1.5 * self.hparams.target_kl
        if self.trainer.world_size > 1:
            stop = self.trainer.strategy.reduce_boolean_decision(stop, all=False)
        return bool(stop)

    def training_step(self, dataloader_iter: Iterator[tuple[TensorDict, int, int]]) -> None:
        hp = self.hparams
        batch, _, _ = next(dataloader_iter)  # Lightning yields (batch, batch_idx, dataloader_idx)
        batch = self.batch_to_device(batch)
        clip = torch_utils.Schedule(hp.clip_ratio, hp.clip_ratio_final, hp.clip_schedule)(self.progress())
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
            self.trainer.datamodule.stop_epochs()  # this minibatch moved too far already: not applied (SB3)
            return
        ent_coef = self.current_ent_coef()
        loss = losses.policy_loss + hp.vf_coef * losses.value_loss + ent_coef * losses.entropy_loss
        lr = self.apply_update(loss)
        if self.should_log():
            metrics = {
                "train/loss": loss.item(),
                "train/policy_loss": losses.policy_loss.item(),
                "train/value_loss": losses.value_loss.item(),
                "train/entropy": -losses.entropy_loss.item(),
                "train/approx_kl": float(info.approx_kl),
                "train/clip_fraction": float(info.clip_fraction),
                "train/lr": lr,
                "train/ent_coef": ent_coef,
                "train/clip_ratio": clip,
            }
            self.log_metrics({**metrics, **self.trainer.datamodule.metrics()})
