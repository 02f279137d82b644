"""Output heads that map encoder features to per-action values."""

from __future__ import annotations

from torch import Tensor, nn


class QHead(nn.Module):
    """Plain Q head. Shapes: features (B, F) -> q (B, A)"""

    def __init__(self, in_dim: int, n_actions: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, n_actions)

    def forward(self, features: Tensor) -> Tensor:
        return self.linear(features)


class DuelingHead(nn.Module):
    """Dueling head (Wang et al., 2016): Q = V + A - mean(A).

    Shapes: features (B, F) -> q (B, A)
    """

    def __init__(self, in_dim: int, n_actions: int, hidden_dim: int = 0):
        super().__init__()

        def stream(out_dim: int) -> nn.Module:
            if hidden_dim <= 0:
                return nn.Linear(in_dim, out_dim)
            return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))

        self.value = stream(1)
        self.advantage = stream(n_actions)

    def forward(self, features: Tensor) -> Tensor:
        advantage = self.advantage(features)
        return self.value(features) + advantage - advantage.mean(dim=-1, keepdim=True)
