"""Shared by the policy tests: CartPole's env spec, a hand-made n-step replay batch, and a small discrete
multi-agent layout (2 agents, 3 obs features, 4 state features, 3 actions) with packed observations."""

from __future__ import annotations

import torch
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.envs import MultiAgentLayout

CARTPOLE = {
    "env_id": "CartPole-v1",
    "obs_shape": [4],
    "obs_dtype": "float32",
    "action_type": "discrete",
    "n_actions": 2,
}


def cartpole_batch(batch_size: int = 5) -> TensorDict:
    """Five 3-step transitions (two terminated, windows of 1-3 real steps) with importance weights."""
    generator = torch.Generator().manual_seed(1)
    return TensorDict(
        {
            keys.OBS: torch.randn(batch_size, 4, generator=generator),
            keys.ACTION: torch.randint(0, 2, (batch_size,), generator=generator),
            keys.REWARD: torch.rand(batch_size, 3, generator=generator),
            keys.NEXT_OBS: torch.randn(batch_size, 4, generator=generator),
            keys.TERMINATED: torch.tensor([True, False, False, False, True]),
            keys.STEPS: torch.tensor([1, 3, 2, 3, 3]),
            keys.WEIGHT: torch.tensor([1.0, 0.5, 2.0, 1.0, 0.1]),
        },
        batch_size=[batch_size],
    )


TEAM_LAYOUT = MultiAgentLayout(n_agents=2, obs_dim=3, state_dim=4, n_actions=3)
TEAM_SPEC = {
    "env_id": "fake",
    "obs_shape": [TEAM_LAYOUT.size],
    "obs_dtype": "float32",
    "action_type": "discrete",
    "n_actions": 3,
    "multi_agent": TEAM_LAYOUT.to_dict(),
}


def packed(batch_shape, mask=None, generator=None):
    """Random packed observations (*batch_shape, size) of TEAM_LAYOUT with the action mask (N, A)
    (default: all allowed)."""
    agent_obs = torch.randn(*batch_shape, 2 * 3, generator=generator)
    state = torch.randn(*batch_shape, 4, generator=generator)
    allowed = torch.ones(2, 3) if mask is None else mask.float()
    return torch.cat([agent_obs, state, allowed.flatten().expand(*batch_shape, 6)], -1)
