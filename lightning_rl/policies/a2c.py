"""Advantage Actor-Critic (Mnih et al., 2016; the synchronous A2C of OpenAI Baselines / SB3)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.policies.actor_critic import ActorCriticPolicy, Schedule
from lightning_rl.rl_utils import A2CData, a2c_error
from lightning_rl.utils.checks import check_choice


class A2C(ActorCriticPolicy):
    """One gradient step per rollout on ``policy_loss + vf_coef * value_loss - ent_coef * entropy``.

    Pair it with an ``OnPolicyDataModule`` whose ``batch_size`` is the whole rollout
    (``n_envs * n_steps``) and ``n_epochs`` 1, short rollouts (``n_steps`` 5) and usually
    ``normalize_advantage: false``, as SB3's A2C.

    Args:
        optimizer: ``"rmsprop"`` (SB3/Baselines: alpha 0.99, eps 1e-5) or ``"adam"``.
        Others: as :class:`~lightning_rl.policies.actor_critic.ActorCriticPolicy`.
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
        lr: float = 7e-4,
        lr_final: float | None = None,
        lr_schedule: Schedule = "constant",
        optimizer: Literal["rmsprop", "adam"] = "rmsprop",
        vf_coef: float = 0.5,
        ent_coef: float = 0.0,
        ent_coef_final: float | None = None,
        ent_schedule: Schedule = "constant",
        max_grad_norm: float | None = 0.5,
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
        check_choice("optimizer", optimizer, ("rmsprop", "adam"))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.hparams.optimizer == "adam":
            return torch.optim.Adam(self.net.parameters(), lr=self.lr, eps=1e-5)
        return torch.optim.RMSprop(self.net.parameters(), lr=self.lr, alpha=0.99, eps=1e-5)

    def training_step(self, dataloader_iter: Iterator[tuple[TensorDict, int, int]]) -> None:
        batch, _, _ = next(dataloader_iter)  # Lightning yields (batch, batch_idx, dataloader_idx)
        batch = self.batch_to_device(batch)
        log_prob, entropy, value = self.net.evaluate_actions(batch[keys.OBS], batch[keys.ACTION])
        losses = a2c_error(A2CData(log_prob, entropy, value, batch[keys.ADVANTAGE], batch[keys.RETURNS]))
        ent_coef = self.current_ent_coef()
        loss = losses.policy_loss + self.vf_coef * losses.value_loss + ent_coef * losses.entropy_loss
        lr = self.apply_update(loss)
        if self.should_log():
            metrics = {
                "train/loss": loss.item(),
                "train/policy_loss": losses.policy_loss.item(),
                "train/value_loss": losses.value_loss.item(),
                "train/entropy": -losses.entropy_loss.item(),
                "train/lr": lr,
                "train/ent_coef": ent_coef,
            }
            self.log_metrics({**metrics, **self.trainer.datamodule.metrics()})
