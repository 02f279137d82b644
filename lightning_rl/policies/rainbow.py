"""Rainbow (Hessel et al., 2018): DQN with noisy nets and a distributional value head, on top of
DQN's double Q, dueling head, n-step returns and prioritized replay; and QR-DQN on the same parts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from tensordict import TensorDict
from torch import Tensor, nn
from torchrl.modules import reset_noise

from lightning_rl import keys
from lightning_rl.contract import ActMode, Rng
from lightning_rl.models import DQNNet
from lightning_rl.policies.dqn import DQN
from lightning_rl.rl_utils import (
    DistNStepData,
    QNStepData,
    dist_nstep_td_error,
    epsilon_greedy,
    qr_nstep_td_error,
)
from lightning_rl.spec import EnvSpec
from lightning_rl.utils.checks import check_at_least, check_int, check_positive, invalid

Distributional = Literal["categorical", "quantile"]
DISTRIBUTIONAL = ("categorical", "quantile", None)


class Rainbow(DQN):
    """Rainbow: every component is a switch, so the paper's ablations are config changes, not code.

    ================  ==================================================  ===========================
    component         switch                                              off
    ================  ==================================================  ===========================
    noisy nets        ``model.noisy`` (factorized Gaussian, sigma_0)      ``false`` (epsilon-greedy)
    distributional    ``model.distributional``: ``categorical`` (C51)     ``null`` (expected-value Q)
                      or ``quantile`` (QR-DQN)
    dueling           ``model.dueling``                                   ``false``
    double Q          ``model.double``                                    ``false``
    n-step returns    ``data.nstep``                                      ``1``
    prioritized       ``data.prioritized`` (priority: the per-sample      ``false``
    replay            cross-entropy / quantile loss / |TD error|)
    ================  ==================================================  ===========================

    Noisy layers (the head's; torchrl's ``NoisyLinear``) draw new noise before every gradient update
    (online and target nets independently) and before every collection step; evaluation uses the mean
    weights. The noise buffers are checkpointed with the weights.

    C51 (``categorical``) predicts probabilities on ``n_atoms`` atoms ``linspace(v_min, v_max,
    n_atoms)`` and learns by cross-entropy against the projected n-step target distribution
    (:func:`~lightning_rl.rl_utils.dist_nstep_td_error`); ``[v_min, v_max]`` must cover the discounted
    returns. QR-DQN (``quantile``) predicts ``n_atoms`` quantiles and learns by the quantile Huber loss
    (:func:`~lightning_rl.rl_utils.qr_nstep_td_error`, threshold ``kappa``); it needs no value range. Both
    act greedily on the expected value.

    Args (besides :class:`DQN`'s, whose ``dueling`` defaults to true here and whose ``loss_type`` applies
    only with ``distributional: null``):
        noisy: noisy linear layers in the head instead of epsilon-greedy exploration.
        noisy_std: the noisy layers' sigma_0 (the paper's 0.5).
        distributional: ``"categorical"``, ``"quantile"`` or ``None``.
        n_atoms: atoms (C51) or quantiles (QR-DQN) per action.
        v_min, v_max: C51's support.
        kappa: QR-DQN's Huber threshold (0: the plain quantile loss).
        head_hidden_size: a hidden layer of this width in each head stream (0: none), noisy with ``noisy``
            (the paper's Atari net has one of 512).
        eps_start, eps_end: DQN's epsilon schedule; ``None`` means 0 with ``noisy`` (the noise explores)
            and DQN's 1.0 -> 0.05 without.
    """

    action_masks = False  # no masked heads yet: a masked env is an error, not ignored

    def __init__(
        self,
        noisy: bool = True,
        noisy_std: float = 0.5,
        distributional: Distributional | None = "categorical",
        n_atoms: int = 51,
        v_min: float = -10.0,
        v_max: float = 10.0,
        kappa: float = 1.0,
        head_hidden_size: int = 0,
        dueling: bool = True,
        eps_start: float | None = None,
        eps_end: float | None = None,
        **kwargs: Any,
    ):
        if distributional not in DISTRIBUTIONAL:
            raise invalid("distributional", distributional, "'categorical', 'quantile' or null")
        check_positive(noisy_std=noisy_std)
        check_int("n_atoms", n_atoms, 2)
        check_at_least("kappa", kappa, 0.0)
        check_int("head_hidden_size", head_hidden_size, 0)
        if not v_min < v_max:
            raise invalid("v_max", v_max, f"> v_min ({v_min})")
        super().__init__(
            dueling=dueling,
            eps_start=(0.0 if noisy else 1.0) if eps_start is None else eps_start,
            eps_end=(0.0 if noisy else 0.05) if eps_end is None else eps_end,
            **kwargs,
        )
        self.register_buffer("support", torch.linspace(v_min, v_max, n_atoms), persistent=False)

    def build_net(self, spec: EnvSpec) -> nn.Module:
        """obs (B, *obs_shape) -> (B, n_actions, n_atoms) atom logits / quantiles, or (B, n_actions) Q."""
        hp = self.hparams
        return DQNNet(
            spec.obs_shape,
            spec.n_actions,
            hp.hidden_sizes,
            hp.dueling,
            head_hidden_size=hp.head_hidden_size,
            n_atoms=None if hp.distributional is None else hp.n_atoms,
            noisy_std=hp.noisy_std if hp.noisy else None,
        )

    def q_values(self, out: Tensor) -> Tensor:
        """The net's output -> expected Q-values (B, n_actions)."""
        distributional = self.hparams.distributional
        if distributional == "categorical":
            return (out.softmax(-1) * self.support).sum(-1)
        if distributional == "quantile":
            return out.mean(-1)
        return out

    def spread_exploration(self, actor: int, n_actors: int) -> None:
        """Ape-X's per-actor epsilon (:meth:`DQN.spread_exploration`); with noisy nets the noise explores
        alike in every actor, and epsilon stays as configured."""
        if not self.hparams.noisy:
            super().spread_exploration(actor, n_actors)

    @torch.no_grad()
    def act(self, obs: Tensor, mode: ActMode = "eval", env_steps: int = 0, generator: Rng = None) -> Tensor:
        obs = obs.to(self.device)
        if mode == "eval":
            with _mean_weights(self.net):
                return self.q_values(self.net(obs)).argmax(dim=-1)
        if self.hparams.noisy:
            self.net.apply(reset_noise)
        return epsilon_greedy(self.q_values(self.net(obs)), self.epsilon(env_steps), generator)

    def td_loss(self, batch: TensorDict) -> tuple[Tensor, Tensor, Tensor]:
        """``(q (B, A) expected online Q-values, loss (), priority (B,))``: the cross-entropy (C51), the
        quantile loss (QR-DQN) or |TD error| per sample."""
        distributional = self.hparams.distributional
        if distributional is None:
            return super().td_loss(batch)
        out = self.net(batch[keys.OBS])
        with torch.no_grad():
            next_out = self.target_net(batch[keys.NEXT_OBS])
            chooser = self.net(batch[keys.NEXT_OBS]) if self.hparams.double else next_out
            next_action = self.q_values(chooser).argmax(dim=-1)
        action, reward, terminated = batch[keys.ACTION], batch[keys.REWARD], batch[keys.TERMINATED]
        steps, weight = batch[keys.STEPS], batch.get(keys.WEIGHT, None)
        if distributional == "categorical":
            dist = out.softmax(-1)
            data = DistNStepData(
                dist, next_out.softmax(-1), action, next_action, reward, terminated, steps, weight
            )
            hp = self.hparams
            loss, priority = dist_nstep_td_error(data, self.gamma, hp.v_min, hp.v_max, hp.n_atoms)
            return (dist.detach() * self.support).sum(-1), loss, priority
        data = QNStepData(out, next_out, action, reward, terminated, next_action, steps, weight)
        loss, priority = qr_nstep_td_error(data, self.gamma, self.hparams.kappa)
        return self.q_values(out.detach()), loss, priority

    def training_update(self, batch: TensorDict) -> None:
        if self.hparams.noisy:  # a fresh noise sample for each update, independent for the target net
            self.net.apply(reset_noise)
            self.target_net.apply(reset_noise)
        super().training_update(batch)


@contextmanager
def _mean_weights(net: nn.Module) -> Iterator[None]:
    """Noisy layers use their mean weights in eval mode: act deterministically even while training."""
    was_training = net.training
    net.eval()
    try:
        yield
    finally:
        net.train(was_training)
