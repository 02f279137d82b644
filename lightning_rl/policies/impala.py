"""IMPALA's learner (Espeholt et al., 2018): actor-critic updates on V-trace targets, which correct for
the lag between the policy that collected a trajectory and the one being trained."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
from tensordict import TensorDict
from torch import Tensor

from lightning_rl import keys
from lightning_rl.policies.actor_critic import ActorCriticPolicy, Schedule
from lightning_rl.rl_utils import VTraceData, vtrace_error
from lightning_rl.utils.checks import check_choice, check_positive, check_range


class IMPALA(ActorCriticPolicy):
    """Actor-critic on time-major trajectories with V-trace targets and importance-weighted policy
    gradients (``rho``/``c`` clipping).

    Needs an ``OnPolicyDataModule`` with ``minibatch: trajectories`` (minibatches ``(T, b)`` of whole env
    trajectories with their true next observations). The learner recomputes every value with its current
    critic (bootstraps included) and weights the policy gradient by ``min(pg_rho_clip, pi / mu)``, so
    several epochs over one rollout, i.e. a behaviour policy that lags the learner, stay unbiased up to the
    clipping. The discount is the DataModule's ``gamma``. Steps an env manager dropped carry weight 0.

    Args:
        lambda_, rho_clip, c_clip, pg_rho_clip: V-trace's trace decay and truncation levels.
        optimizer: ``"rmsprop"`` (the paper's; alpha 0.99, eps 1e-5) or ``"adam"``.
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
        lr: float = 6e-4,
        lr_final: float | None = None,
        lr_schedule: Schedule = "constant",
        optimizer: Literal["rmsprop", "adam"] = "adam",
        lambda_: float = 1.0,
        rho_clip: float = 1.0,
        c_clip: float = 1.0,
        pg_rho_clip: float = 1.0,
        vf_coef: float = 0.5,
        ent_coef: float = 0.01,
        ent_coef_final: float | None = None,
        ent_schedule: Schedule = "constant",
        max_grad_norm: float | None = 40.0,
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
        check_range("lambda_", lambda_, 0.0, 1.0)
        check_positive(rho_clip=rho_clip, c_clip=c_clip, pg_rho_clip=pg_rho_clip)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.hparams.optimizer == "adam":
            return torch.optim.Adam(self.net.parameters(), lr=self.lr, eps=1e-5)
        return torch.optim.RMSprop(self.net.parameters(), lr=self.lr, alpha=0.99, eps=1e-5)

    def on_fit_start(self) -> None:
        minibatch = getattr(self.trainer.datamodule.hparams, "minibatch", None)
        if minibatch != "trajectories":
            raise ValueError(
                "IMPALA needs data.minibatch 'trajectories' (time-major chunks for V-trace), "
                f"got {minibatch!r}"
            )

    def next_values(self, value: Tensor, batch: TensorDict) -> Tensor:
        """``(T, b)`` values of each step's true next observation under the current critic: the next
        step's value inside an episode, the critic on the stored next observation at an episode end
        and at the end of the chunk."""
        next_value = torch.empty_like(value)
        next_value[:-1] = value[1:]
        ended = batch[keys.TERMINATED] | batch[keys.TRUNCATED]
        ended[-1] = True
        next_value[ended] = self.net.value(batch[keys.NEXT_OBS][ended])
        return next_value.detach()

    def training_step(self, dataloader_iter: Iterator[tuple[TensorDict, int, int]]) -> None:
        hp = self.hparams
        batch, _, _ = next(dataloader_iter)  # Lightning yields (batch, batch_idx, dataloader_idx)
        batch = self.batch_to_device(batch)
        dist, value = self.net(batch[keys.OBS])  # (T, b) chunks: the network keeps the leading dims
        with torch.no_grad():
            next_value = self.next_values(value, batch)
        data = VTraceData(
            target_log_prob=dist.log_prob(batch[keys.ACTION]),
            behaviour_log_prob=batch[keys.LOG_PROB],
            entropy=dist.entropy(),
            value=value,
            next_value=next_value,
            reward=batch[keys.REWARD],
            terminated=batch[keys.TERMINATED],
            truncated=batch[keys.TRUNCATED],
            weight=batch[keys.MASK].to(value.dtype),
        )
        gamma = self.trainer.datamodule.hparams.gamma
        losses = vtrace_error(data, gamma, hp.lambda_, hp.rho_clip, hp.c_clip, hp.pg_rho_clip)
        ent_coef = self.current_ent_coef()
        loss = losses.policy_loss + self.vf_coef * losses.value_loss + ent_coef * losses.entropy_loss
        lr = self.apply_update(loss)
        if self.should_log():
            ratio = (data.target_log_prob.detach() - data.behaviour_log_prob).exp()
            metrics = {
                "train/loss": loss.item(),
                "train/policy_loss": losses.policy_loss.item(),
                "train/value_loss": losses.value_loss.item(),
                "train/entropy": -losses.entropy_loss.item(),
                "train/rho_mean": ratio.mean().item(),
                "train/lr": lr,
                "train/ent_coef": ent_coef,
            }
            self.log_metrics({**metrics, **self.trainer.datamodule.metrics()})
