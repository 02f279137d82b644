"""ATOC (Jiang & Lu, 2018): attentional communication between DDPG agents, and its baseline IDDPG (the same
agents without communication), on the ``OffPolicyDataModule`` over a multi-agent env with continuous
actions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_rl.envs.multi_agent import MultiAgentLayout
from lightning_rl.models.atoc import MultiAgentQAC
from lightning_rl.policies.ddpg import DDPG
from lightning_rl.rl_utils import atoc_attention_loss, ddpg_actor_loss
from lightning_rl.utils.checks import check_int, check_range

__all__ = ["ATOC", "IDDPG"]


class ATOC(DDPG):
    """Actor-critic agents that learn when to communicate and how to integrate what they hear.

    Each agent's actor (:class:`~lightning_rl.models.atoc.ATOCActor`, shared by the agents, fed their ids)
    forms a thought from its observation; an attention unit decides whether it initiates communication;
    a bidirectional LSTM integrates the thoughts of the initiator's group (itself and its
    ``group_size - 1`` nearest agents); the action comes from the thought and its integration. The
    critic ``Q(o_i, id_i, a_i)`` (:class:`~lightning_rl.models.atoc.AgentQCritics`) is each agent's value
    of the team return, trained as DDPG's (per agent, the team reward); the actor and the channel learn
    from the deterministic policy gradient through it, with the initiators the attention unit chose.

    The attention unit learns from :func:`~lightning_rl.rl_utils.atoc_attention_loss`: for every agent
    as the only initiator, the mean rise of its group's Q over nobody communicating (the critic's,
    without gradient), normalized over the batch, is the label of its initiation probability.

    Everything else is :class:`~lightning_rl.policies.DDPG`'s: exploration noise on the agents' normalized
    actions, uniform warm-up actions, target actor and critic with Polyak averaging, n-step targets,
    prioritized replay (an item's priority is its agents' mean TD error).

    Args (besides :class:`~lightning_rl.policies.DDPG`'s):
        communication: use the attention unit and the channel (``False``: :class:`IDDPG`).
        group_size: agents in a communication group, the initiator included (2 .. N).
        threshold: an agent initiates when its attention probability exceeds this.
    """

    multi_agent = True

    def __init__(
        self,
        communication: bool = True,
        group_size: int = 2,
        threshold: float = 0.5,
        actor_hidden_sizes: Sequence[int] = (64, 64),
        critic_hidden_sizes: Sequence[int] = (64, 64),
        **kwargs: Any,
    ):
        check_int("group_size", group_size, 2)
        check_range("threshold", threshold, 0.0, 1.0)
        super().__init__(
            actor_hidden_sizes=actor_hidden_sizes, critic_hidden_sizes=critic_hidden_sizes, **kwargs
        )

    def build_model(self) -> MultiAgentQAC:
        hp = self.hparams
        return MultiAgentQAC(
            MultiAgentLayout.from_dict(self.spec.multi_agent),
            hp.actor_hidden_sizes,
            hp.critic_hidden_sizes,
            self.n_critics,
            hp.communication,
            hp.group_size,
            hp.threshold,
        )

    def actor_losses(self, obs: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        actor = self.model.actor
        thoughts = actor.think(obs)
        initiators = actor.initiators(thoughts)
        q = self.model.critics(obs, actor.act_with(thoughts, initiators), detach_params=True)[0]
        losses = {"actor": ddpg_actor_loss(q)}
        if initiators is None:
            return losses, {}
        thoughts = thoughts.detach()  # the attention unit learns from its own loss only
        gain = self.communication_gain(obs, thoughts)
        losses["attention"] = atoc_attention_loss(actor.initiate_prob(thoughts), gain)
        return losses, {"initiate_rate": initiators.float().mean(), "communication_gain": gain.mean()}

    @torch.no_grad()
    def communication_gain(self, obs: Tensor, thoughts: Tensor) -> Tensor:
        """``(B, N)``: for each agent ``i`` as the only initiator, the mean over its group of the members'
        ``Q(o_j, a_j | i's group communicates) - Q(o_j, a_j | nobody does)`` (the first critic)."""
        actor, critics = self.model.actor, self.model.critics
        batch, n = thoughts.shape[:2]
        alone = critics(obs, actor.act_with(thoughts, None))[0].view(batch, n)
        only = torch.eye(n, dtype=torch.bool, device=obs.device).repeat_interleave(batch, 0)  # (N * B, N)
        together = critics(obs.repeat(n, 1), actor.act_with(thoughts.repeat(n, 1, 1), only))[0]
        gain = (together.view(n, batch, n) - alone).transpose(0, 1)  # (B, initiator, member)
        return gain.gather(-1, actor.groups(thoughts)).mean(-1)


class IDDPG(ATOC):
    """Independent DDPG: :class:`ATOC`'s agents (the same actor, critic and training) with the
    communication channel off, each acting on its own thought. ATOC's baseline."""

    def __init__(self, communication: bool = False, **kwargs: Any):
        if communication:
            raise ValueError("IDDPG does not communicate (communication must be false); use ATOC for that")
        super().__init__(communication=False, **kwargs)
