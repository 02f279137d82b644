"""Shared by the value-based policy tests: CartPole's env spec and a hand-made n-step replay batch."""

from __future__ import annotations

import torch
from tensordict import TensorDict

from lightning_rl import keys

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
