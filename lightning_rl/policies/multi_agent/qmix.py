"""QMIX (Rashid et al., 2018), VDN, and independent Q-learners: recurrent agents sharing parameters,
trained on whole episodes of the sequence replay."""

from __future__ import annotations

import functools
from typing import Any, Literal

import torch
from tensordict import TensorDict
from torch import Tensor, nn

from lightning_rl import keys
from lightning_rl.contract import ActMode, Rng
from lightning_rl.data.sequence import sequence_priority
from lightning_rl.envs.multi_agent import MultiAgentLayout
from lightning_rl.models.multi_agent import MultiAgentQNet
from lightning_rl.policies.r2d2 import R2D2, unroll_inputs
from lightning_rl.rl_utils import QSequenceData, q_nstep_sequence_td_error
from lightning_rl.spec import EnvSpec
from lightning_rl.utils.checks import check_choice, check_int

Mixer = Literal["qmix", "vdn", "none"]


class QMIX(R2D2):
    """Value-decomposition Q-learning for cooperative teams: each agent's recurrent Q-network (one
    :class:`~lightning_rl.models.DRQN` shared by all, fed the agent's id) acts on its own observation; a
    mixer turns the agents' Q-values into the team's ``Q_tot``, which learns the team reward.

    ``mixer``: ``"qmix"`` (:class:`~lightning_rl.models.multi_agent.QMixer`: monotonic, its weights from
    the global state), ``"vdn"`` (their sum) or ``"none"`` (:class:`IQL`: each agent learns alone from
    the team reward).

    It runs on a :class:`~lightning_rl.datamodules.SequenceReplayDataModule` over a multi-agent env, with
    ``seq_len`` the episode length and ``burn_in: 0`` (whole episodes, as QMIX's episode buffer; longer
    episodes work as R2D2's overlapping sequences). Everything else is :class:`R2D2`'s: the n-step
    targets (``data.nstep``), double Q (the online agents pick each agent's next action, the target
    agents and target mixer value it), optional value rescaling (off by default here), target updates,
    epsilon-greedy exploration per agent, per-sequence priorities. Actions respect the env's action
    masks: a masked action is never chosen, greedily or at random, and never bootstrapped from.

    Args (besides :class:`R2D2`'s; ``dueling`` does not apply):
        mixer: ``"qmix"``, ``"vdn"`` or ``"none"``.
        mixing_embed_dim, hypernet_hidden: the QMIX mixer's widths.
    """

    multi_agent = True

    def __init__(
        self,
        mixer: Mixer = "qmix",
        mixing_embed_dim: int = 32,
        hypernet_hidden: int = 64,
        hidden_sizes: tuple[int, ...] = (64,),
        lstm_size: int = 64,
        value_rescale: bool = False,
        **kwargs: Any,
    ):
        check_choice("mixer", mixer, ("qmix", "vdn", "none"))
        check_int("mixing_embed_dim", mixing_embed_dim, 1)
        check_int("hypernet_hidden", hypernet_hidden, 1)
        super().__init__(
            hidden_sizes=hidden_sizes, lstm_size=lstm_size, value_rescale=value_rescale, **kwargs
        )

    @functools.cached_property
    def layout(self) -> MultiAgentLayout:
        return MultiAgentLayout.from_dict(self.spec.multi_agent)

    def build_net(self, spec: EnvSpec) -> nn.Module:
        hp = self.hparams
        return MultiAgentQNet(
            MultiAgentLayout.from_dict(spec.multi_agent),
            hp.hidden_sizes,
            hp.lstm_size,
            hp.mixer,
            hp.mixing_embed_dim,
            hp.hypernet_hidden,
        )

    @torch.no_grad()
    def act_recurrent(
        self, obs: Tensor, state: Tensor, mode: ActMode = "eval", env_steps: int = 0, generator: Rng = None
    ) -> tuple[Tensor, Tensor]:
        """Joint actions (E, N) for packed observations (E, size), each agent's among its allowed ones."""
        obs = obs.to(self.device)
        q, state = self.net.step(obs, state.to(self.device))
        allowed = self.layout.unpack(obs)[keys.ACTION_MASK]  # (E, N, A)
        greedy = q.masked_fill(~allowed, -torch.inf).argmax(-1)
        if mode == "eval":
            return greedy, state
        epsilon = self.epsilon(env_steps)
        rows = allowed.flatten(0, 1).float()
        rows[rows.sum(-1) == 0] = 1.0  # an agent with nothing allowed (gone from the episode): any action
        random = torch.multinomial(rows.cpu(), 1, generator=generator).view(greedy.shape).to(greedy.device)
        explore = torch.rand(greedy.shape, generator=generator).to(greedy.device) < epsilon
        return torch.where(explore, random, greedy), state

    def td_loss(self, batch: TensorDict) -> tuple[Tensor, Tensor, Tensor]:
        """``(q (M, N, A) the agents' Q at the M real training steps, loss (), priority (B,))``.

        Batch shapes: obs (B, L, size), action (B, L, N), reward / terminated / mask (B, L),
        recurrent_state (B, N, 2, H), final_obs (B, size).
        """
        burn_in = self.data.burn_in
        mask = batch[keys.MASK]
        batch_size, length = mask.shape
        inputs, reset = unroll_inputs(batch)  # (B, L + 1, size), (B, L + 1)
        state = batch[keys.RECURRENT_STATE]
        with torch.no_grad():
            target_q, _ = self.target_net.agent_q(inputs, state, reset)  # (B, L + 1, N, A)
            if burn_in > 0:
                _, state = self.net.agent_q(inputs[:, :burn_in], state, reset[:, :burn_in])
        q, _ = self.net.agent_q(inputs[:, burn_in:], state, reset[:, burn_in:])  # (B, T + 1, N, A)
        next_obs = inputs[:, burn_in + 1 :]
        next_allowed = self.layout.unpack(next_obs)[keys.ACTION_MASK]  # (B, T, N, A)
        chooser = q[:, 1:].detach() if self.hparams.double else target_q[:, burn_in + 1 :]
        next_action = chooser.masked_fill(~next_allowed, -torch.inf).argmax(-1, keepdim=True)  # (B, T, N, 1)
        next_q = target_q[:, burn_in + 1 :].gather(-1, next_action).squeeze(-1)  # (B, T, N)
        action = batch[keys.ACTION][:, burn_in:]  # (B, T, N)
        train = mask[:, burn_in:]
        hp = self.hparams
        common = {
            "reward": batch[keys.REWARD][:, burn_in:],
            "terminated": batch[keys.TERMINATED][:, burn_in:],
        }
        if self.net.mixer is not None:  # one TD error per step, on Q_tot
            taken = q[:, :-1].gather(-1, action.unsqueeze(-1)).squeeze(-1)
            data = QSequenceData(
                q=self.net.mix(taken, inputs[:, burn_in:length]).unsqueeze(-1),
                bootstrap_q=self.target_net.mix(next_q, next_obs).unsqueeze(-1),
                action=torch.zeros_like(train, dtype=torch.int64),
                mask=train,
                weight=batch.get(keys.WEIGHT, None),
                **common,
            )
        else:  # independent learners: each agent a sequence of its own, all learning the team reward
            n = self.layout.n_agents

            def per_agent(x: Tensor) -> Tensor:  # (B, T, N, ...) -> (B * N, T, ...)
                return x.transpose(1, 2).flatten(0, 1)

            weight = batch.get(keys.WEIGHT, None)
            data = QSequenceData(
                q=per_agent(q[:, :-1]),
                bootstrap_q=per_agent(target_q[:, burn_in + 1 :]),
                action=per_agent(action),
                bootstrap_action=per_agent(next_action.squeeze(-1)),
                mask=train.repeat_interleave(n, 0),
                weight=None if weight is None else weight.repeat_interleave(n, 0),
                reward=common["reward"].repeat_interleave(n, 0),
                terminated=common["terminated"].repeat_interleave(n, 0),
            )
        loss, td_error = q_nstep_sequence_td_error(
            data, self.gamma, self.data.nstep, hp.loss_type, hp.rescale_eps if hp.value_rescale else None
        )
        if self.net.mixer is None:
            td_error = td_error.unflatten(0, (batch_size, self.layout.n_agents)).mean(1)
        priority = sequence_priority(td_error, train, hp.priority_eta)
        return q[:, :-1].detach()[train], loss, priority


class IQL(QMIX):
    """Independent Q-learning: :class:`QMIX`'s recurrent agents (shared parameters, agent ids) without a
    mixer, each learning the team reward on its own: the baseline QMIX must beat."""

    def __init__(self, mixer: Mixer = "none", **kwargs: Any):
        if mixer != "none":
            raise ValueError(f"IQL has no mixer (mixer must be 'none', got {mixer!r}); use QMIX for one")
        super().__init__(mixer=mixer, **kwargs)
