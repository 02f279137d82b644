"""Cooperative multi-agent actor-critics for the on-policy learners: agents sharing one actor (each fed its
one-hot id) with per-agent value critics (IA2C, IPPO, MAPPO-style) or COMA's centralized counterfactual
Q-critic.

Every network reads the packed observation of a :class:`~lightning_rl.envs.MultiAgentLayout` and
returns one value per agent: shapes below are ``(*B)`` batch dims, ``N`` agents, ``A`` actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_rl import keys
from lightning_rl.envs.multi_agent import MultiAgentLayout
from lightning_rl.models.distributions import CategoricalDist
from lightning_rl.models.multi_agent import AgentIds
from lightning_rl.models.value_ac import HIDDEN_GAIN, POLICY_GAIN, VALUE_GAIN
from lightning_rl.torch_utils import mask_illegal, mlp_layers, orthogonal_init_, with_all_legal_fallback

__all__ = ["COMACritic", "COMANet", "MultiAgentValueAC", "SharedAgentActor"]

CriticInput = Literal["independent", "centralized"]
_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def _mlp(
    in_dim: int, hidden_sizes: Sequence[int], out_dim: int, activation: str, out_gain: float
) -> nn.Module:
    """An MLP on the last dim (any leading dims), orthogonally initialized (PPO's gains)."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    body = nn.Sequential(*mlp_layers(in_dim, hidden_sizes, _ACTIVATIONS[activation]))
    orthogonal_init_(body, HIDDEN_GAIN)
    head = nn.Linear(hidden_sizes[-1], out_dim)
    orthogonal_init_(head, out_gain)
    return nn.Sequential(body, head)


def _require_discrete(layout: MultiAgentLayout, name: str) -> None:
    if not layout.discrete:
        raise ValueError(
            f"{name} needs discrete actions (each agent's Discrete(A)); the env's are continuous"
        )


class SharedAgentActor(nn.Module):
    """One policy MLP for all agents over ``[agent obs, one-hot id]``; an action the env's mask forbids
    gets probability 0 (an agent with nothing allowed, e.g. gone from the episode, acts on its own
    logits).

    Shapes: obs (*B, size) -> Categorical over (*B, N) with logits (*B, N, A)
    """

    def __init__(
        self, layout: MultiAgentLayout, hidden_sizes: Sequence[int] = (64, 64), activation: str = "tanh"
    ):
        super().__init__()
        _require_discrete(layout, "SharedAgentActor")
        self.layout = layout
        self.with_ids = AgentIds(layout.n_agents)
        self.net = _mlp(
            layout.obs_dim + layout.n_agents, hidden_sizes, layout.n_actions, activation, POLICY_GAIN
        )

    def forward(self, obs: Tensor) -> CategoricalDist:
        parts = self.layout.unpack(obs)
        logits = self.net(self.with_ids(parts[keys.AGENT_OBS]))
        allowed = parts[keys.ACTION_MASK]
        return CategoricalDist(mask_illegal(logits, with_all_legal_fallback(allowed)))


class MultiAgentValueAC(nn.Module):
    """:class:`SharedAgentActor` and one shared value MLP giving each agent ``V_i`` of the team return.

    ``critic``: ``"independent"`` values ``[agent obs, id]`` (IA2C / IPPO: each agent its own critic),
    ``"centralized"`` values ``[global state, id]`` (centralized training, decentralized execution, as
    MAPPO).

    Shapes: obs (*B, size), action (*B, N) int64 -> log_prob, entropy, value (*B, N)
    """

    def __init__(
        self,
        layout: MultiAgentLayout,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "tanh",
        critic: CriticInput = "independent",
    ):
        super().__init__()
        if critic not in ("independent", "centralized"):
            raise ValueError(f"critic must be 'independent' or 'centralized', got {critic!r}")
        self.layout, self.critic_input = layout, critic
        self.actor = SharedAgentActor(layout, hidden_sizes, activation)
        critic_dim = layout.obs_dim if critic == "independent" else layout.state_dim
        self.with_ids = AgentIds(layout.n_agents)
        self.critic = _mlp(critic_dim + layout.n_agents, hidden_sizes, 1, activation, VALUE_GAIN)

    def value(self, obs: Tensor) -> Tensor:
        parts = self.layout.unpack(obs)
        if self.critic_input == "independent":
            inputs = parts[keys.AGENT_OBS]
        else:
            state = parts[keys.GLOBAL_STATE].unsqueeze(-2)
            inputs = state.expand(*state.shape[:-2], self.layout.n_agents, -1)
        return self.critic(self.with_ids(inputs)).squeeze(-1)

    def forward(self, obs: Tensor) -> tuple[CategoricalDist, Tensor]:
        return self.actor(obs), self.value(obs)

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """For collection: ``(action, log_prob, value)``, each ``(*B, N)``."""
        dist, value = self(obs)
        action = dist.mode if deterministic else dist.sample()
        return action, dist.log_prob(action), value

    def evaluate_actions(self, obs: Tensor, action: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        dist, value = self(obs)
        return dist.log_prob(action), dist.entropy(), value


class COMACritic(nn.Module):
    """COMA's centralized critic (Foerster et al., 2018): for each agent ``a``, the team's Q of every
    action ``a`` could take while the others keep theirs, ``Q(s, u_{-a}, .)``, from ``[global state,
    agent obs, one-hot id, the other agents' one-hot actions]`` (the agent's own action block is zeroed).

    Shapes: obs (*B, size), action (*B, N) int64 -> q (*B, N, A)
    """

    def __init__(
        self, layout: MultiAgentLayout, hidden_sizes: Sequence[int] = (128, 128), activation: str = "relu"
    ):
        super().__init__()
        _require_discrete(layout, "COMACritic")
        self.layout = layout
        n, a = layout.n_agents, layout.n_actions
        self.with_ids = AgentIds(n)
        # others[i] keeps every agent's action block but agent i's
        self.register_buffer("others", (1.0 - torch.eye(n)).repeat_interleave(a, -1), persistent=False)
        in_dim = layout.state_dim + layout.obs_dim + n + n * a
        self.net = _mlp(in_dim, hidden_sizes, a, activation, VALUE_GAIN)

    def forward(self, obs: Tensor, action: Tensor) -> Tensor:
        parts = self.layout.unpack(obs)
        n = self.layout.n_agents
        joint = F.one_hot(action.long(), self.layout.n_actions).flatten(-2).to(obs.dtype)  # (*B, N * A)
        others = joint.unsqueeze(-2) * self.others  # (*B, N, N * A)
        state = parts[keys.GLOBAL_STATE].unsqueeze(-2).expand(*obs.shape[:-1], n, -1)
        return self.net(torch.cat([state, self.with_ids(parts[keys.AGENT_OBS]), others], -1))


class COMANet(nn.Module):
    """:class:`SharedAgentActor` and :class:`COMACritic`.

    At collection the stored ``value`` is the critic's ``Q(s, u)`` of the sampled joint action (one per
    agent), so the rollout's GAE returns are COMA's TD(lambda) targets; a bootstrap values a state by
    ``sum_a pi(a) Q(s, u_{-a}, a)`` with the others' actions sampled from the policy.
    """

    def __init__(
        self,
        layout: MultiAgentLayout,
        hidden_sizes: Sequence[int] = (64, 64),
        critic_hidden_sizes: Sequence[int] = (128, 128),
        activation: str = "relu",
    ):
        super().__init__()
        self.actor = SharedAgentActor(layout, hidden_sizes, activation)
        self.critic = COMACritic(layout, critic_hidden_sizes, activation)

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """``(action, log_prob, Q(s, u) per agent)``, each ``(*B, N)``."""
        dist = self.actor(obs)
        action = dist.mode if deterministic else dist.sample()
        q_taken = self.critic(obs, action).gather(-1, action.unsqueeze(-1)).squeeze(-1)
        return action, dist.log_prob(action), q_taken

    @torch.no_grad()
    def value(self, obs: Tensor) -> Tensor:
        """``(*B, N)``: each agent's expected Q under the policy (the others' actions sampled)."""
        dist = self.actor(obs)
        return (dist.probs * self.critic(obs, dist.sample())).sum(-1)
