"""Q-network for discrete actions (nerveX's FCDQN / ConvDQN in one class)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lightning_rl.models.heads import DuelingHead, QHead
from lightning_rl.torch_utils.network import make_encoder


class DQNNet(nn.Module):
    """Encoder chosen from the observation shape + plain or dueling Q head.

    Shapes: obs (B, *obs_shape) -> q (B, n_actions)
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        n_actions: int,
        hidden_sizes: Sequence[int] = (256, 256),
        dueling: bool = False,
    ):
        super().__init__()
        if n_actions < 1:
            raise ValueError(f"n_actions must be >= 1, got {n_actions}")
        self.encoder = make_encoder(obs_shape, hidden_sizes)
        head = DuelingHead if dueling else QHead
        self.head = head(self.encoder.out_dim, n_actions)

    def forward(self, obs: Tensor) -> Tensor:
        return self.head(self.encoder(obs))
