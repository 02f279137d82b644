"""Output heads that map encoder features to per-action values (or per-action value distributions).

Every head takes a ``layer`` factory ``(in_dim, out_dim) -> nn.Module`` for its linear layers:
``nn.Linear``, or :func:`noisy_layer` for NoisyNet exploration (Fortunato et al., 2018). With
``n_atoms`` set, a head outputs ``n_atoms`` values per action: the logits of a categorical value
distribution (C51) or the quantiles of one (QR-DQN), read by the policy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import Tensor, nn
from torchrl.modules import NoisyLinear

__all__ = ["DuelingHead", "LayerFactory", "QHead", "noisy_layer"]

LayerFactory = Callable[[int, int], nn.Module]


def noisy_layer(std_init: float = 0.5) -> LayerFactory:
    """A factory of torchrl's factorized-Gaussian ``NoisyLinear`` layers (sigma_0 = ``std_init``, the
    paper's 0.5). Their noise is on in train mode and off (mean weights) in eval mode, per module, so a
    collecting copy in another thread never changes what the evaluator sees; it is resampled only by
    ``module.apply(torchrl.modules.reset_noise)``, and is part of the state dict (buffers)."""
    return functools.partial(NoisyLinear, std_init=std_init, use_exploration_type=False)


def _stream(in_dim: int, hidden_dim: int, out_dim: int, layer: LayerFactory) -> nn.Module:
    if hidden_dim <= 0:
        return layer(in_dim, out_dim)
    return nn.Sequential(layer(in_dim, hidden_dim), nn.ReLU(), layer(hidden_dim, out_dim))


class _Head(nn.Module):
    def __init__(self, n_actions: int, n_atoms: int | None):
        super().__init__()
        if n_atoms is not None and n_atoms < 2:
            raise ValueError(f"n_atoms must be >= 2 (or None for one value per action), got {n_atoms}")
        self.n_actions = n_actions
        self.n_atoms = n_atoms

    def _per_action(self, flat: Tensor, n: int) -> Tensor:
        """(B, n * atoms) -> (B, n) or (B, n, n_atoms)."""
        return flat if self.n_atoms is None else flat.unflatten(-1, (n, self.n_atoms))


class QHead(_Head):
    """Plain Q head. Shapes: features (B, F) -> q (B, A), or (B, A, n_atoms) with ``n_atoms``."""

    def __init__(
        self,
        in_dim: int,
        n_actions: int,
        hidden_dim: int = 0,
        n_atoms: int | None = None,
        layer: LayerFactory = nn.Linear,
    ):
        super().__init__(n_actions, n_atoms)
        self.linear = _stream(in_dim, hidden_dim, n_actions * (n_atoms or 1), layer)

    def forward(self, features: Tensor) -> Tensor:
        return self._per_action(self.linear(features), self.n_actions)


class DuelingHead(_Head):
    """Dueling head (Wang et al., 2016): Q = V + A - mean_a(A), per atom with ``n_atoms`` (C51's and
    QR-DQN's dueling variant: the combination is over the atoms' logits or quantiles).

    Shapes: features (B, F) -> q (B, A), or (B, A, n_atoms) with ``n_atoms``.
    """

    def __init__(
        self,
        in_dim: int,
        n_actions: int,
        hidden_dim: int = 0,
        n_atoms: int | None = None,
        layer: LayerFactory = nn.Linear,
    ):
        super().__init__(n_actions, n_atoms)
        atoms = n_atoms or 1
        self.value = _stream(in_dim, hidden_dim, atoms, layer)
        self.advantage = _stream(in_dim, hidden_dim, n_actions * atoms, layer)

    def forward(self, features: Tensor) -> Tensor:
        value = self._per_action(self.value(features), 1)  # (B, 1) or (B, 1, N)
        advantage = self._per_action(self.advantage(features), self.n_actions)
        return value + advantage - advantage.mean(dim=1, keepdim=True)
