"""Proximal Policy Optimization (Schulman et al., 2017) on the OnPolicyDataModule's minibatches."""

from __future__ import annotations

from typing import Any

from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.policies.actor_critic import ActorCriticPolicy, BudgetSchedule, per_sample
from lightning_rl.rl_utils import PPOData, ppo_error
from lightning_rl.torch_utils import Schedule
from lightning_rl.utils.checks import check_choice, check_positive


class PPO(ActorCriticPolicy):
    """PPO-clip with GAE advantages, an actor-critic :class:`~lightning_rl.models.ValueAC`, discrete or
    continuous actions.

    Each minibatch is one Adam step on ``policy_loss + vf_coef * value_loss - ent_coef * entropy``.
    Learning rate, clip ratio and entropy coefficient follow ``constant`` or ``linear`` schedules over the
    run's env-step budget (``data.max_env_steps``). With ``target_kl``, a minibatch whose approximate KL
    to the collecting policy exceeds ``1.5 * target_kl`` is not applied and ends the rollout's epochs (as
    SB3; a decision of all ranks under DDP).

    Args (besides :class:`~lightning_rl.policies.actor_critic.ActorCriticPolicy`'s):
        clip_ratio, clip_ratio_final, clip_schedule: the surrogate's clip range and its schedule.
        dual_clip: dual-clip bound (> 1) for negative advantages, or ``None``.
        value_clip_ratio: clip the value prediction around the collected value (PPO2), or ``None``.
        target_kl: early stop of a rollout's epochs, or ``None``.
    """

    def __init__(
        self,
        clip_ratio: float = 0.2,
        clip_ratio_final: float | None = None,
        clip_schedule: BudgetSchedule = "constant",
        dual_clip: float | None = None,
        value_clip_ratio: float | None = None,
        target_kl: float | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        check_positive(clip_ratio=clip_ratio, target_kl=target_kl)
        check_choice("clip_schedule", clip_schedule, ("constant", "linear"))

    # --- training ----------------------------------------------------------------------------------
    def _kl_too_far(self, approx_kl: float) -> bool:
        """``approx_kl > 1.5 * target_kl`` on any rank (every rank must stop together under DDP)."""
        stop = approx_kl > 1.5 * self.hparams.target_kl
        if self.trainer.world_size > 1:
            stop = self.trainer.strategy.reduce_boolean_decision(stop, all=False)
        return bool(stop)

    def training_update(self, batch: TensorDict) -> None:
        hp = self.hparams
        clip = Schedule(hp.clip_ratio, hp.clip_ratio_final, hp.clip_schedule)(self.progress())
        log_prob, entropy, value, old_log_prob, old_value, advantage, returns = per_sample(
            *self.net.evaluate_actions(batch[keys.OBS], batch[keys.ACTION]),
            *(batch[key] for key in (keys.LOG_PROB, keys.VALUE, keys.ADVANTAGE, keys.RETURNS)),
        )
        data = PPOData(log_prob, old_log_prob, entropy, value, old_value, advantage, returns)
        losses, info = ppo_error(data, clip, hp.dual_clip, hp.value_clip_ratio)
        if hp.target_kl is not None and self._kl_too_far(float(info.approx_kl)):
            self.data.stop_epochs()  # this minibatch moved too far already: not applied (SB3)
            return
        self.apply_update(
            losses,
            lambda: {
                "train/approx_kl": float(info.approx_kl),
                "train/clip_fraction": float(info.clip_fraction),
                "train/clip_ratio": clip,
            },
        )
