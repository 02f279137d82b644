"""ATOC's networks (Jiang & Lu, 2018): agents that decide when to communicate and integrate their group's
thoughts with a bidirectional LSTM, deterministic continuous actions and per-agent Q-critics.

Shapes: ``(B)`` batch, ``N`` agents, ``H`` thought width, ``m`` group size, ``d`` one agent's action.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lightning_rl import keys
from lightning_rl.envs.multi_agent import MultiAgentLayout
from lightning_rl.models.multi_agent import AgentIds
from lightning_rl.models.qac import ActionScaler, QCritics
from lightning_rl.torch_utils import mlp_layers

__all__ = ["ATOCActor", "AgentQCritics", "MultiAgentQAC"]


class ATOCActor(nn.Module):
    """Each agent's actor in two parts around a communication channel.

    1. ``thought = f([o_i, id_i])`` (an MLP shared by the agents, ``H = hidden_sizes[-1]`` wide).
    2. The attention unit ``p_i = sigmoid(g(thought_i))``: agent ``i`` initiates communication when
       ``p_i > threshold``. Its group is itself and the ``group_size - 1`` agents whose thoughts are
       nearest to its own (the packed observation carries no positions, so nearness is in thought space).
    3. The channel, a bidirectional LSTM over the group's thoughts (initiator first, then by nearness),
       gives each member an integrated thought; a member of several groups averages them, an agent in no
       group keeps its own thought.
    4. ``action = tanh(head([thought_i, integrated_i]))``, normalized to ``[-1, 1]``.

    With ``communication=False`` there is no attention unit or channel: every agent's integrated thought
    is its own (independent DDPG with the same actor).
    """

    def __init__(
        self,
        layout: MultiAgentLayout,
        hidden_sizes: Sequence[int] = (64, 64),
        communication: bool = True,
        group_size: int = 2,
        threshold: float = 0.5,
    ):
        super().__init__()
        if layout.discrete:
            raise ValueError("ATOCActor needs continuous actions (each agent's Box)")
        if not hidden_sizes or any(h < 1 for h in hidden_sizes) or hidden_sizes[-1] % 2:
            raise ValueError(
                f"hidden_sizes must be positive ints, the last one even, got {list(hidden_sizes)}"
            )
        if not 2 <= group_size <= layout.n_agents:
            raise ValueError(f"group_size must be in [2, {layout.n_agents}] (the agents), got {group_size}")
        self.layout, self.communication = layout, communication
        self.group_size, self.threshold = group_size, threshold
        width = hidden_sizes[-1]
        self.with_ids = AgentIds(layout.n_agents)
        self.thought = nn.Sequential(*mlp_layers(layout.obs_dim + layout.n_agents, hidden_sizes))
        if communication:
            self.attention = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1))
            self.channel = nn.LSTM(width, width // 2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * width, layout.action_dim)

    def think(self, obs: Tensor) -> Tensor:
        """Packed obs ``(B, size)`` -> thoughts ``(B, N, H)``."""
        return self.thought(self.with_ids(self.layout.unpack(obs)[keys.AGENT_OBS]))

    def initiate_prob(self, thoughts: Tensor) -> Tensor:
        """The attention unit's probability that each agent initiates communication, ``(B, N)``."""
        return torch.sigmoid(self.attention(thoughts)).squeeze(-1)

    def groups(self, thoughts: Tensor) -> Tensor:
        """``(B, N, m)`` agent indices: each agent's would-be group, itself first, then by nearness."""
        distance = torch.cdist(thoughts.detach(), thoughts.detach())
        distance.diagonal(dim1=-2, dim2=-1).fill_(-1.0)  # the initiator first, even against a tie
        return distance.topk(self.group_size, dim=-1, largest=False).indices

    def integrate(self, thoughts: Tensor, initiators: Tensor) -> Tensor:
        """The integrated thoughts ``(B, N, H)`` when the agents ``initiators (B, N) bool`` communicate."""
        if not self.communication:
            return thoughts
        batch, n, width = thoughts.shape
        row, initiator = initiators.nonzero(as_tuple=True)  # only the K active groups pass the channel
        members = self.groups(thoughts)[row, initiator]  # (K, m)
        out, _ = self.channel(thoughts[row.unsqueeze(-1), members])  # (K, m, H)
        slot = (row.unsqueeze(-1) * n + members).flatten()  # each member's row of (B * N, H)
        total = thoughts.new_zeros(batch * n, width).index_add(0, slot, out.reshape(-1, width))
        count = thoughts.new_zeros(batch * n).index_add(0, slot, thoughts.new_ones(slot.shape))
        heard = (total / count.clamp(min=1).unsqueeze(-1)).view(batch, n, width)
        return torch.where(count.view(batch, n, 1) > 0, heard, thoughts)

    def act_with(self, thoughts: Tensor, initiators: Tensor | None) -> Tensor:
        """Normalized actions ``(B, N, d)`` with the given initiators (``None``: nobody communicates)."""
        integrated = thoughts if initiators is None else self.integrate(thoughts, initiators)
        return torch.tanh(self.head(torch.cat([thoughts, integrated], -1)))

    def initiators(self, thoughts: Tensor) -> Tensor | None:
        """Who initiates now: ``p_i > threshold`` (``None`` without communication)."""
        if not self.communication:
            return None
        return self.initiate_prob(thoughts) > self.threshold

    def forward(self, obs: Tensor) -> Tensor:
        """Packed obs ``(B, size)`` -> normalized actions ``(B, N, d)``, communicating as decided."""
        thoughts = self.think(obs)
        return self.act_with(thoughts, self.initiators(thoughts))


class AgentQCritics(nn.Module):
    """``K`` Q-functions of each agent's own observation, id and action, shared by the agents (ATOC's
    critic, and independent DDPG's): every agent's value of the team return.

    Shapes: obs (B, size), action (B, N, d) normalized -> (K, B * N), agent-major within each item
    (``b * N + i``).
    """

    def __init__(self, layout: MultiAgentLayout, hidden_sizes: Sequence[int], n_critics: int = 1):
        super().__init__()
        self.layout = layout
        self.with_ids = AgentIds(layout.n_agents)
        self.members = QCritics(
            (layout.obs_dim + layout.n_agents,), layout.action_dim, hidden_sizes, n_critics
        )

    def forward(self, obs: Tensor, action: Tensor, detach_params: bool = False) -> Tensor:
        agent_obs = self.with_ids(self.layout.unpack(obs)[keys.AGENT_OBS])
        return self.members(agent_obs.flatten(0, 1), action.flatten(0, 1), detach_params)


class MultiAgentQAC(nn.Module):
    """:class:`ATOCActor`, :class:`AgentQCritics` and one agent's :class:`~lightning_rl.models.ActionScaler`
    (it broadcasts over the agents): the interface of :class:`~lightning_rl.models.QValueAC` for the
    off-policy actor-critic policies."""

    def __init__(
        self,
        layout: MultiAgentLayout,
        actor_hidden_sizes: Sequence[int] = (64, 64),
        critic_hidden_sizes: Sequence[int] = (64, 64),
        n_critics: int = 1,
        communication: bool = True,
        group_size: int = 2,
        threshold: float = 0.5,
    ):
        super().__init__()
        self.scaler = ActionScaler(layout.action_low, layout.action_high, (layout.action_dim,))
        self.actor = ATOCActor(layout, actor_hidden_sizes, communication, group_size, threshold)
        self.critics = AgentQCritics(layout, critic_hidden_sizes, n_critics)
