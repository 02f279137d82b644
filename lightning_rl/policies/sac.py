"""SAC (Haarnoja et al. 2018): a squashed-Gaussian actor, twin Q-critics and an automatic temperature."""

from __future__ import annotations

import math
from typing import Any

import torch
from tensordict import TensorDict
from torch import Tensor, nn

from lightning_rl import keys
from lightning_rl.contract import Rng
from lightning_rl.policies.off_policy_ac import OffPolicyActorCritic
from lightning_rl.rl_utils import qac_target, sac_actor_loss, sac_temperature_loss
from lightning_rl.utils.checks import check_positive


class SAC(OffPolicyActorCritic):
    """Soft actor-critic with clipped double Q and automatic entropy tuning (the 2018b version, as SB3,
    DI-engine and TorchRL run it; no state-value network).

    Exploration samples the actor's distribution; evaluation takes ``tanh(mean)``. The temperature
    ``alpha = exp(log_alpha)`` is learned towards ``target_entropy`` (``auto_alpha``) or fixed.

    Args (besides :class:`OffPolicyActorCritic`'s):
        alpha: the initial (or, without ``auto_alpha``, the fixed) temperature, > 0.
        auto_alpha: learn the temperature.
        target_entropy: the entropy the temperature steers towards (``None``: ``-action_dim``, the
            usual heuristic; SB3's ``"auto"``).
        alpha_lr: the temperature's Adam learning rate.
    """

    actor_kind = "gaussian"
    n_critics = 2

    def __init__(
        self,
        alpha: float = 1.0,
        auto_alpha: bool = True,
        target_entropy: float | None = None,
        alpha_lr: float = 1e-3,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        check_positive(alpha=alpha, alpha_lr=alpha_lr)
        self.auto_alpha, self.alpha_lr = auto_alpha, alpha_lr
        self.target_entropy = (
            -float(math.prod(self.spec.action_shape)) if target_entropy is None else target_entropy
        )
        # a parameter either way, so a checkpoint carries it; fixed, it gets no gradient and no optimizer
        self.log_alpha = nn.Parameter(torch.tensor(math.log(alpha)), requires_grad=auto_alpha)

    @property
    def alpha(self) -> Tensor:
        """The temperature, detached (a 0-dim tensor)."""
        return self.log_alpha.detach().exp()

    def param_groups(self) -> list[dict[str, Any]]:
        groups = super().param_groups()
        if self.auto_alpha:
            groups.append({"params": [self.log_alpha], "lr": self.alpha_lr, "name": "alpha"})
        return groups

    def explore(self, obs: Tensor, generator: Rng) -> Tensor:
        return self.model.actor.sample(obs, generator)[0]

    @torch.no_grad()
    def critic_target(self, batch: TensorDict) -> Tensor:
        next_obs = batch[keys.NEXT_OBS]
        next_action, next_log_prob = self.model.actor.sample(next_obs)
        next_q = self.target_critics(next_obs, next_action)
        return qac_target(
            next_q,
            batch[keys.REWARD],
            batch[keys.TERMINATED],
            self.gamma,
            batch[keys.STEPS],
            next_log_prob=next_log_prob,
            alpha=self.alpha,
        )

    def actor_losses(self, obs: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        action, log_prob = self.model.actor.sample(obs)
        q = self.model.critics(obs, action, detach_params=True)
        alpha = self.alpha
        losses = {"actor": sac_actor_loss(q, log_prob, alpha)}
        if self.auto_alpha:
            losses["alpha"] = sac_temperature_loss(self.log_alpha, log_prob, self.target_entropy)
        return losses, {"alpha": alpha, "entropy": -log_prob.detach().mean()}
