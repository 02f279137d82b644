"""DDPG (Lillicrap et al. 2016) and TD3 (Fujimoto et al. 2018): deterministic actors on Q-critics."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pytorch_lightning.strategies import DDPStrategy, Strategy
from tensordict import TensorDict
from torch import Tensor

from lightning_rl import keys
from lightning_rl.contract import Rng
from lightning_rl.policies.off_policy_ac import OffPolicyActorCritic
from lightning_rl.rl_utils import (
    GaussianNoise,
    NoiseGenerator,
    OUNoise,
    add_action_noise,
    ddpg_actor_loss,
    qac_target,
    smoothed_target_action,
)
from lightning_rl.utils.checks import ConfigError, check_choice, check_int, check_range

EXPLORATION_NOISES = ("gaussian", "ou")


class DDPG(OffPolicyActorCritic):
    """Deep deterministic policy gradient: one critic, a target actor and a target critic.

    Exploration adds noise to the actor's normalized action and clips to ``[-1, 1]`` (as SB3's action
    noise): i.i.d. Gaussian ``N(0, noise_sigma^2)`` or an Ornstein-Uhlenbeck process (DDPG's paper;
    :class:`~lightning_rl.rl_utils.OUNoise`, one state per env, not restarted at episode ends, since
    ``act`` does not see them, and not checkpointed).

    Args (besides :class:`OffPolicyActorCritic`'s):
        exploration: ``"gaussian"`` or ``"ou"``.
        noise_sigma: the noise's standard deviation (the OU process's ``sigma``), in normalized units
            (0.1 on a ``[-2, 2]`` box is 0.2 in env units).
        ou_theta, ou_dt: the OU process's mean reversion and time step.
    """

    actor_kind = "deterministic"
    n_critics = 1

    def __init__(
        self,
        exploration: Literal["gaussian", "ou"] = "gaussian",
        noise_sigma: float = 0.1,
        ou_theta: float = 0.15,
        ou_dt: float = 1e-2,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        check_choice("exploration", exploration, EXPLORATION_NOISES)
        check_range("noise_sigma", noise_sigma, 0.0, float("inf"))
        self.noise: NoiseGenerator = (
            GaussianNoise(sigma=noise_sigma)
            if exploration == "gaussian"
            else OUNoise(sigma=noise_sigma, theta=ou_theta, dt=ou_dt)
        )
        self.target_actor = self.add_target(self.model.actor)

    def explore(self, obs: Tensor, generator: Rng) -> Tensor:
        action = self.model.actor(obs)
        return add_action_noise(action, self.noise(action.shape, generator), -1.0, 1.0)

    def target_action(self, next_obs: Tensor) -> Tensor:
        """The target actor's normalized action at ``next_obs`` (TD3 smooths it)."""
        return self.target_actor(next_obs)

    @torch.no_grad()
    def critic_target(self, batch: TensorDict) -> Tensor:
        next_obs = batch[keys.NEXT_OBS]
        next_q = self.target_critics(next_obs, self.target_action(next_obs))
        reward, terminated, steps = (
            self.per_agent(batch[k]) for k in (keys.REWARD, keys.TERMINATED, keys.STEPS)
        )
        return qac_target(next_q, reward, terminated, self.gamma, steps)

    def actor_losses(self, obs: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        # the first critic, as DDPG and TD3 do (the ensemble's forward computes all in one pass)
        q = self.model.critics(obs, self.model.actor(obs), detach_params=True)[0]
        return {"actor": ddpg_actor_loss(q)}, {}


class TD3(DDPG):
    """Twin delayed DDPG: clipped double Q (two critics, the target takes their minimum), target policy
    smoothing and a delayed actor.

    The actor and all target networks update once every ``policy_delay`` critic updates (updates
    ``policy_delay``, ``2 * policy_delay``, ...), as in the paper and SB3.

    Under DDP the actor gets no gradient on the updates in between, so the strategy must allow unused
    parameters: ``trainer.strategy: ddp_find_unused_parameters_true`` (a plain ``ddp`` stops with that
    advice; ``policy_delay: 1`` needs neither).

    Args (besides :class:`DDPG`'s):
        policy_delay: critic updates per actor (and target) update.
        target_noise, target_noise_clip: the smoothing noise's std and clip, in normalized units.
    """

    n_critics = 2

    def __init__(
        self,
        policy_delay: int = 2,
        target_noise: float = 0.2,
        target_noise_clip: float = 0.5,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.policy_delay = check_int("policy_delay", policy_delay, 1)
        check_range("target_noise", target_noise, 0.0, float("inf"))
        check_range("target_noise_clip", target_noise_clip, 0.0, float("inf"))
        self.target_noise, self.target_noise_clip = target_noise, target_noise_clip

    def target_action(self, next_obs: Tensor) -> Tensor:
        return smoothed_target_action(self.target_actor(next_obs), self.target_noise, self.target_noise_clip)

    def actor_losses(self, obs: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        if (self.train_iter + 1) % self.policy_delay:
            return {}, {}
        return super().actor_losses(obs)

    def after_update(self, trained_actor: bool) -> None:
        if trained_actor:
            self.update_targets()

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.check_strategy(self.trainer.strategy)

    def check_strategy(self, strategy: Strategy) -> None:
        """A :class:`ConfigError` for DDP that does not allow the delayed actor's unused parameters."""
        if self.policy_delay == 1 or not isinstance(strategy, DDPStrategy):
            return
        if not strategy._ddp_kwargs.get("find_unused_parameters", False):
            raise ConfigError(
                f"TD3 under DDP trains its actor on every {self.policy_delay}th update only: use "
                "trainer.strategy: ddp_find_unused_parameters_true (or model.init_args.policy_delay: 1)",
                "trainer.strategy",
                "DDP without find_unused_parameters cannot skip TD3's actor on the delayed updates",
                "ddp_find_unused_parameters_true",
            )
