"""What PPO, A2C and IMPALA share: a ValueAC network, the on-policy collection interface, schedules and
the update step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn

from lightning_rl import keys
from lightning_rl.contract import ActMode, Rng, RolloutSource
from lightning_rl.models import ValueAC
from lightning_rl.models.value_ac import ENCODERS, Encoder
from lightning_rl.policies.base import RLPolicy
from lightning_rl.spec import EnvSpec
from lightning_rl.torch_utils import Schedule
from lightning_rl.utils.checks import check_choice, check_positive, check_range

BudgetSchedule = Literal["constant", "linear"]  # a knob's schedule over the env-step budget


def per_sample(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Per-sample ``(B,)`` tensors as they are, a multi-agent policy's per-agent ``(B, N)`` ones as the
    losses' ``(B * N,)`` samples: each agent's step is a sample of its own (independent learners)."""
    return tuple(t.flatten() for t in tensors)


class ActorCriticLosses(Protocol):
    """What the on-policy losses of :mod:`lightning_rl.rl_utils` return (``ppo_error``, ``a2c_error``,
    ``vtrace_error``): scalar terms, each already signed to be minimized."""

    policy_loss: Tensor
    value_loss: Tensor
    entropy_loss: Tensor


class ActorCriticPolicy(RLPolicy):
    """Base of the on-policy actor-critic policies (driven by ``OnPolicyDataModule``): a
    :class:`~lightning_rl.contract.RolloutActor` reading a :class:`~lightning_rl.contract.RolloutSource`.

    Args (besides :class:`~lightning_rl.policies.RLPolicy`'s ``env_spec``, ``gamma``, ``log_interval``):
        hidden_sizes, shared_encoder, activation, log_std, log_std_init, squash, encoder: the
            :class:`ValueAC` network (defaults: separate (64, 64) tanh MLPs for vectors, one shared Nature
            CNN for images; ``encoder: board_cnn`` convolves over a board game's planes first).
        gae_lambda: lambda of the GAE advantages the collector computes (and of V-trace's traces for
            IMPALA).
        optimizer: ``"adam"`` (eps 1e-5) or ``"rmsprop"`` (Baselines/SB3: alpha 0.99, eps 1e-5).
        lr, lr_final, lr_schedule: learning rate and its schedule over the env-step budget.
        vf_coef: value loss weight.
        ent_coef, ent_coef_final, ent_schedule: entropy bonus weight and its schedule.
        max_grad_norm: global gradient-norm clip (``None``: off).
    """

    data_protocol = RolloutSource
    action_masks = True  # ValueAC's masked categorical (multi-agent nets mask from their layout)

    def __init__(
        self,
        hidden_sizes: Sequence[int] | None = None,
        shared_encoder: bool | None = None,
        activation: Literal["tanh", "relu"] = "tanh",
        log_std: Literal["independent", "state_dependent"] = "independent",
        log_std_init: float = 0.0,
        squash: bool = False,
        encoder: Encoder = "auto",
        gae_lambda: float = 0.95,
        optimizer: Literal["adam", "rmsprop"] = "adam",
        lr: float = 3e-4,
        lr_final: float | None = None,
        lr_schedule: BudgetSchedule = "constant",
        vf_coef: float = 0.5,
        ent_coef: float = 0.0,
        ent_coef_final: float | None = None,
        ent_schedule: BudgetSchedule = "constant",
        max_grad_norm: float | None = 0.5,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        check_choice("encoder", encoder, ENCODERS)
        check_range("gae_lambda", gae_lambda, 0.0, 1.0)
        check_choice("optimizer", optimizer, ("adam", "rmsprop"))
        check_positive(lr=lr, max_grad_norm=max_grad_norm)
        check_range("vf_coef", vf_coef, 0.0, float("inf"))
        check_range("ent_coef", ent_coef, 0.0, float("inf"))
        check_choice("lr_schedule", lr_schedule, ("constant", "linear"))
        check_choice("ent_schedule", ent_schedule, ("constant", "linear"))
        self.gae_lambda = gae_lambda
        self.lr, self.lr_final, self.lr_schedule = lr, lr_final, lr_schedule
        self.ent_coef, self.ent_coef_final, self.ent_schedule = ent_coef, ent_coef_final, ent_schedule
        self.vf_coef, self.max_grad_norm = vf_coef, max_grad_norm
        self.squash = squash
        self.require_agent_kind()
        self.net = self.build_net(self.spec)

    def build_net(self, spec: EnvSpec) -> nn.Module:
        """The actor-critic: a :class:`ValueAC` from the network arguments (multi-agent policies build
        their own)."""
        hp = self.hparams
        return ValueAC.from_spec(
            spec,
            hidden_sizes=None if hp.hidden_sizes is None else tuple(hp.hidden_sizes),
            shared_encoder=hp.shared_encoder,
            activation=hp.activation,
            log_std=hp.log_std,
            log_std_init=hp.log_std_init,
            squash=hp.squash,
            encoder=hp.encoder,
        )

    @property
    def data(self) -> RolloutSource:
        """The DataModule, as the contract's :class:`~lightning_rl.contract.RolloutSource`."""
        return self.trainer.datamodule

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.hparams.optimizer == "rmsprop":
            return torch.optim.RMSprop(self.net.parameters(), lr=self.lr, alpha=0.99, eps=1e-5)
        return torch.optim.Adam(self.net.parameters(), lr=self.lr, eps=1e-5)

    # --- what the DataModule calls ---------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Tensor, mode: ActMode = "eval", env_steps: int = 0, generator: Rng = None) -> Tensor:
        action, _, _ = self.net.act(obs.to(self.device), deterministic=mode == "eval")
        return self.to_env_action(action)

    @torch.no_grad()
    def collect(self, obs: Tensor) -> dict[str, Tensor]:
        """One exploring step: the sampled ``action`` (stored), its ``log_prob`` and ``value`` ``(E,)``, and
        ``env_action`` (clipped to the action bounds when the Gaussian is not squashed)."""
        self.check_finite()  # no rollout from non-finite weights (a host read only after new updates)
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

    def reset_recurrent_state(self, done: Tensor) -> None:
        """Feed-forward networks keep no state between steps; recurrent policies override this."""

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
        budget = self.data.max_env_steps
        return self.data.rollout_env_steps / budget if budget else 0.0

    def current_ent_coef(self) -> float:
        return Schedule(self.ent_coef, self.ent_coef_final, self.ent_schedule)(self.progress())

    def apply_update(
        self, losses: ActorCriticLosses, extra: Callable[[], dict[str, float]] | None = None
    ) -> None:
        """One optimizer step on ``policy_loss + vf_coef * value_loss + ent_coef * entropy_loss`` at the
        scheduled learning rate and entropy weight (each term checked for non-finite values as
        ``loss/policy``, ``loss/value``, ``loss/entropy``); every ``log_interval`` updates it logs the
        losses, the schedules' values and whatever ``extra()`` adds (called only then)."""
        optimizer = self.optimizers()
        lr = Schedule(self.lr, self.lr_final, self.lr_schedule)(self.progress())
        ent_coef = self.current_ent_coef()
        loss = losses.policy_loss + self.vf_coef * losses.value_loss + ent_coef * losses.entropy_loss
        for group in optimizer.param_groups:
            group["lr"] = lr
        terms = {
            "loss/policy": losses.policy_loss,
            "loss/value": losses.value_loss,
            "loss/entropy": losses.entropy_loss,
            "loss": loss,
        }
        if not self.optimizer_update(optimizer, loss, self.max_grad_norm, terms):
            return  # skipped (on_nonfinite="skip_step")
        self.train_iter += 1
        if self.should_log():
            metrics = {
                "train/loss": loss.item(),
                "train/policy_loss": losses.policy_loss.item(),
                "train/value_loss": losses.value_loss.item(),
                "train/entropy": -losses.entropy_loss.item(),
                "train/lr": lr,
                "train/ent_coef": ent_coef,
            }
            self.log_metrics({**metrics, **(extra() if extra is not None else {})})
