"""R2D2 (Kapturowski et al., 2019): recurrent DQN trained on stored sequences with burn-in."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from tensordict import TensorDict
from torch import Tensor, nn

from lightning_rl import keys
from lightning_rl.contract import ActMode, Rng, SequenceSource
from lightning_rl.data.sequence import last_real_step, sequence_priority
from lightning_rl.models import DRQN
from lightning_rl.policies.dqn import DQN
from lightning_rl.rl_utils import QSequenceData, epsilon_greedy, q_nstep_sequence_td_error
from lightning_rl.spec import EnvSpec
from lightning_rl.utils.checks import ConfigError, check_int, check_positive, check_range


class R2D2(DQN):
    """Recurrent replay distributed DQN: a :class:`~lightning_rl.models.DRQN` (encoder -> LSTM -> dueling
    head) acting with one recurrent state per env and learning from the sequences of a
    :class:`~lightning_rl.datamodules.SequenceReplayDataModule`.

    Each update, for a batch of ``B`` sequences of ``L = burn_in + seq_len`` steps (the DataModule's
    ``burn_in``):

    1. the online net unrolls from each item's stored state over the burn-in positions without gradient
       (refreshing a state that older weights produced), then over the training positions with gradient;
       the target net unrolls over the whole item. A state is reset where an item's episode starts.
    2. n-step double-Q targets are taken within the sequence (the DataModule's ``nstep``; the window
       shortens at the item's end, whose bootstrap is the stored final observation), in value-rescaled
       space with ``value_rescale`` (:func:`~lightning_rl.rl_utils.q_nstep_sequence_td_error`).
    3. the loss averages over the real training steps, importance-weighted per sequence; the sequence's
       priority is ``priority_eta * max |td| + (1 - priority_eta) * mean |td|``.

    Collection explores epsilon-greedily on DQN's schedule (R2D2's per-actor epsilons belong to
    distributed actors); evaluation is greedy, each eval env carrying its own state.

    Args (besides :class:`DQN`'s, whose ``dueling`` defaults to true and ``hidden_sizes`` to ``(256,)``
    here; ``cql_alpha`` does not apply):
        lstm_size: the LSTM's width.
        head_hidden_size: a hidden layer of this width in each head stream (0: none).
        value_rescale: learn ``h(Q)`` with ``h(x) = sign(x)(sqrt(|x| + 1) - 1) + eps x`` (Pohlen et al.).
        rescale_eps: the ``eps`` of ``h``.
        priority_eta: the max / mean mix of a sequence's priority.
    """

    action_masks = False  # no masked heads yet: a masked env is an error, not ignored

    data_protocol = SequenceSource

    def __init__(
        self,
        lstm_size: int = 256,
        head_hidden_size: int = 0,
        value_rescale: bool = True,
        rescale_eps: float = 1e-3,
        priority_eta: float = 0.9,
        hidden_sizes: Sequence[int] = (256,),
        dueling: bool = True,
        **kwargs: Any,
    ):
        check_int("lstm_size", lstm_size, 1)
        check_int("head_hidden_size", head_hidden_size, 0)
        check_positive(rescale_eps=rescale_eps)
        check_range("priority_eta", priority_eta, 0.0, 1.0)
        if kwargs.get("cql_alpha"):
            raise ConfigError(
                "cql_alpha does not apply to R2D2 (CQL is for offline DQN); leave it at 0",
                "cql_alpha",
                f"got {kwargs['cql_alpha']!r}",
                "0",
            )
        super().__init__(hidden_sizes=hidden_sizes, dueling=dueling, **kwargs)

    @property
    def data(self) -> SequenceSource:
        return self.trainer.datamodule

    def build_net(self, spec: EnvSpec) -> nn.Module:
        """obs (B, T, *obs_shape), state (B, 2, lstm_size) -> q (B, T, n_actions), state."""
        hp = self.hparams
        return DRQN(
            spec.obs_shape, spec.n_actions, hp.hidden_sizes, hp.lstm_size, hp.dueling, hp.head_hidden_size
        )

    # --- acting (contract.RecurrentActor) -------------------------------------------------------------
    def initial_state(self, n: int) -> Tensor:
        return self.net.initial_state(n)

    @torch.no_grad()
    def act_recurrent(
        self, obs: Tensor, state: Tensor, mode: ActMode = "eval", env_steps: int = 0, generator: Rng = None
    ) -> tuple[Tensor, Tensor]:
        q, state = self.net.step(obs.to(self.device), state.to(self.device))
        if mode == "eval":
            return q.argmax(dim=-1), state
        return epsilon_greedy(q, self.epsilon(env_steps), generator), state

    def act(self, obs: Tensor, mode: ActMode = "eval", env_steps: int = 0, generator: Rng = None) -> Tensor:
        raise TypeError(
            "R2D2 is recurrent: act with act_recurrent(obs, state), one state per env from "
            "initial_state(n) (lightning_rl.data.recurrent.RecurrentStates keeps them)"
        )

    # --- learning ---------------------------------------------------------------------------------------
    def td_loss(self, batch: TensorDict) -> tuple[Tensor, Tensor, Tensor]:
        """``(q (N, A) online Q at the N real training steps, loss (), priority (B,) per sequence)``.

        Batch shapes: obs (B, L, *obs_shape), action / reward / terminated / mask (B, L),
        recurrent_state (B, 2, H), final_obs (B, *obs_shape).
        """
        burn_in = self.data.burn_in
        mask = batch[keys.MASK]
        inputs, reset = unroll_inputs(batch)
        state = batch[keys.RECURRENT_STATE]
        with torch.no_grad():
            target_q, _ = self.target_net(inputs, state, reset)
            if burn_in > 0:
                _, state = self.net(inputs[:, :burn_in], state, reset[:, :burn_in])
        q, _ = self.net(inputs[:, burn_in:], state, reset[:, burn_in:])  # (B, seq_len + 1, A)
        train = mask[:, burn_in:]
        data = QSequenceData(
            q=q[:, :-1],
            bootstrap_q=target_q[:, burn_in + 1 :],
            action=batch[keys.ACTION][:, burn_in:],
            reward=batch[keys.REWARD][:, burn_in:],
            terminated=batch[keys.TERMINATED][:, burn_in:],
            mask=train,
            bootstrap_action=q[:, 1:].detach().argmax(-1) if self.hparams.double else None,
            weight=batch.get(keys.WEIGHT, None),
        )
        hp = self.hparams
        loss, td_error = q_nstep_sequence_td_error(
            data,
            self.gamma,
            self.data.nstep,
            loss_type=hp.loss_type,
            rescale_eps=hp.rescale_eps if hp.value_rescale else None,
        )
        priority = sequence_priority(td_error, train, hp.priority_eta)
        return q[:, :-1].detach()[train], loss, priority


def unroll_inputs(batch: TensorDict) -> tuple[Tensor, Tensor]:
    """What to unroll a recurrent net over for a batch of sequence items: each item's observations and
    then, after its last real step, its final observation, so position ``t + 1`` is the state step ``t``
    led to; and where to reset the state (an episode starting after front padding).

    Shapes: obs (B, L, *obs_shape), mask (B, L), final_obs (B, *obs_shape)
        -> inputs (B, L + 1, *obs_shape), reset (B, L + 1) bool
    """
    obs, mask = batch[keys.OBS], batch[keys.MASK]
    batch_size, length = mask.shape
    inputs = torch.cat([obs, torch.zeros_like(obs[:, :1])], 1)
    inputs[torch.arange(batch_size, device=obs.device), last_real_step(mask) + 1] = batch[keys.FINAL_OBS]
    reset = torch.zeros(batch_size, length + 1, dtype=torch.bool, device=mask.device)
    reset[:, 1:length] = mask[:, 1:] & ~mask[:, :-1]
    return inputs, reset
