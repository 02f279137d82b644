"""Advantage Actor-Critic (Mnih et al., 2016; the synchronous A2C of OpenAI Baselines / SB3)."""

from __future__ import annotations

from typing import Any, Literal

from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.policies.actor_critic import ActorCriticPolicy, per_sample
from lightning_rl.rl_utils import A2CData, a2c_error


class A2C(ActorCriticPolicy):
    """One gradient step per rollout on ``policy_loss + vf_coef * value_loss - ent_coef * entropy``.

    Pair it with an ``OnPolicyDataModule`` whose ``batch_size`` is the whole rollout
    (``n_envs * n_steps``) and ``n_epochs`` 1, short rollouts (``n_steps`` 5) and usually
    ``normalize_advantage: false``, as SB3's A2C.

    The optimizer defaults to RMSprop (SB3/Baselines: alpha 0.99, eps 1e-5); the other arguments are
    :class:`~lightning_rl.policies.actor_critic.ActorCriticPolicy`'s.
    """

    def __init__(self, lr: float = 7e-4, optimizer: Literal["adam", "rmsprop"] = "rmsprop", **kwargs: Any):
        super().__init__(lr=lr, optimizer=optimizer, **kwargs)

    def training_update(self, batch: TensorDict) -> None:
        samples = per_sample(
            *self.net.evaluate_actions(batch[keys.OBS], batch[keys.ACTION]),
            batch[keys.ADVANTAGE],
            batch[keys.RETURNS],
        )
        losses = a2c_error(A2CData(*samples))
        self.apply_update(losses)
