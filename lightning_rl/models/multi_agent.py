"""Cooperative multi-agent value networks: shared recurrent agents and the mixers of VDN and QMIX."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_rl import keys
from lightning_rl.envs.multi_agent import MultiAgentLayout
from lightning_rl.models.recurrent import DRQN

__all__ = ["AgentIds", "MultiAgentQNet", "QMixer", "VDNMixer"]


class AgentIds(nn.Module):
    """Appends each agent's one-hot id, so networks shared by the agents still act per agent.

    Shapes: (*B, N, D) -> (*B, N, D + N)
    """

    def __init__(self, n_agents: int):
        super().__init__()
        self.register_buffer("ids", torch.eye(n_agents), persistent=False)  # derived: not checkpointed

    def forward(self, per_agent: Tensor) -> Tensor:
        return torch.cat([per_agent, self.ids.expand(*per_agent.shape[:-1], -1)], -1)


class VDNMixer(nn.Module):
    """Value decomposition (Sunehag et al., 2018): ``Q_tot = sum_i Q_i``.

    Shapes: agent_q (..., N), state (..., S) -> (...)"""

    def forward(self, agent_q: Tensor, state: Tensor) -> Tensor:
        return agent_q.sum(-1)


class QMixer(nn.Module):
    """QMIX's monotonic mixer (Rashid et al., 2018): a two-layer network over the agents' Q-values whose
    weights hypernetworks produce from the global state, made non-negative (absolute value), so
    ``dQ_tot / dQ_i >= 0`` and the agents' greedy actions are the joint greedy action.

    Args:
        n_agents, state_dim: ``N``, ``S``.
        embed_dim: width of the mixing layer.
        hypernet_hidden: hidden width of the weight hypernetworks.

    Shapes: agent_q (..., N), state (..., S) -> q_tot (...)
    """

    def __init__(self, n_agents: int, state_dim: int, embed_dim: int = 32, hypernet_hidden: int = 64):
        super().__init__()
        self.n_agents, self.embed_dim = n_agents, embed_dim

        def hyper(out: int) -> nn.Module:
            return nn.Sequential(
                nn.Linear(state_dim, hypernet_hidden), nn.ReLU(), nn.Linear(hypernet_hidden, out)
            )

        self.hyper_w1, self.hyper_w2 = hyper(n_agents * embed_dim), hyper(embed_dim)
        self.hyper_b1 = nn.Linear(state_dim, embed_dim)
        self.hyper_b2 = nn.Sequential(nn.Linear(state_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, 1))

    def forward(self, agent_q: Tensor, state: Tensor) -> Tensor:
        lead = agent_q.shape[:-1]
        w1 = self.hyper_w1(state).abs().view(*lead, self.n_agents, self.embed_dim)
        hidden = F.elu(agent_q.unsqueeze(-2) @ w1 + self.hyper_b1(state).unsqueeze(-2))  # (..., 1, E)
        w2 = self.hyper_w2(state).abs().view(*lead, self.embed_dim, 1)
        return (hidden @ w2).view(lead) + self.hyper_b2(state).view(lead)


class MultiAgentQNet(nn.Module):
    """Recurrent agents sharing one :class:`~lightning_rl.models.DRQN` (each agent's input is its
    observation and its one-hot id, so shared weights still act per agent) and a mixer of their Q-values.

    Args:
        layout: the env's :class:`~lightning_rl.envs.MultiAgentLayout` (discrete actions).
        hidden_sizes, lstm_size: the agent network's encoder widths and LSTM width.
        mixer: ``"qmix"``, ``"vdn"`` or ``"none"`` (independent learners: :meth:`mix` is not used).
        embed_dim, hypernet_hidden: :class:`QMixer`'s.

    The recurrent state is ``(B, N, 2, lstm_size)``: one LSTM state per agent.
    """

    def __init__(
        self,
        layout: MultiAgentLayout,
        hidden_sizes: Sequence[int] = (64,),
        lstm_size: int = 64,
        mixer: str = "qmix",
        embed_dim: int = 32,
        hypernet_hidden: int = 64,
    ):
        super().__init__()
        if not layout.discrete:
            raise ValueError("MultiAgentQNet needs discrete actions")
        self.layout = layout
        n = layout.n_agents
        self.agents = DRQN((layout.obs_dim + n,), layout.n_actions, hidden_sizes, lstm_size, dueling=False)
        self.with_ids = AgentIds(n)
        mixers = {
            "qmix": lambda: QMixer(n, layout.state_dim, embed_dim, hypernet_hidden),
            "vdn": VDNMixer,
            "none": lambda: None,
        }
        if mixer not in mixers:
            raise ValueError(f"mixer must be one of {sorted(mixers)}, got {mixer!r}")
        self.mixer = mixers[mixer]()

    def initial_state(self, batch: int) -> Tensor:
        return self.agents.initial_state(batch * self.layout.n_agents).unflatten(
            0, (batch, self.layout.n_agents)
        )

    def agent_q(self, obs: Tensor, state: Tensor, reset: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Unroll every agent over ``T`` packed observations.

        Shapes: obs (B, T, size), state (B, N, 2, H), reset (B, T) bool or None -> q (B, T, N, A), state
        """
        batch, n = obs.shape[0], self.layout.n_agents
        agent_obs = self.with_ids(self.layout.unpack(obs)[keys.AGENT_OBS])  # (B, T, N, O + N)
        inputs = agent_obs.transpose(1, 2).flatten(0, 1)  # (B * N, T, O + N)
        agent_reset = None if reset is None else reset.repeat_interleave(n, 0)
        q, state = self.agents(inputs, state.flatten(0, 1), agent_reset)
        return q.unflatten(0, (batch, n)).transpose(1, 2), state.unflatten(0, (batch, n))

    def step(self, obs: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Shapes: obs (B, size), state (B, N, 2, H) -> q (B, N, A), state"""
        q, state = self.agent_q(obs.unsqueeze(1), state)
        return q.squeeze(1), state

    def mix(self, agent_q: Tensor, obs: Tensor) -> Tensor:
        """Q_tot of the agents' chosen Q-values in the global states of the packed ``obs``.

        Shapes: agent_q (..., N), obs (..., size) -> (...)"""
        return self.mixer(agent_q, self.layout.unpack(obs)[keys.GLOBAL_STATE])
