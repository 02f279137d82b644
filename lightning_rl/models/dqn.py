"""Q-network for discrete actions (nerveX's FCDQN / ConvDQN / RainbowDQN in one class)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lightning_rl.models.heads import DuelingHead, QHead, noisy_layer
from lightning_rl.torch_utils.network import make_encoder


class DQNNet(nn.Module):
    """Encoder chosen from the observation shape + plain or dueling Q head, optionally noisy and
    distributional (Rainbow's network).

    Args:
        obs_shape, n_actions: the env's.
        hidden_sizes: encoder widths (for images the last is the CNN's feature width).
        dueling: dueling head.
        head_hidden_size: a hidden layer of this width in each head stream (0: none).
        n_atoms: output this many values per action (C51 logits or QR-DQN quantiles); None: one.
        noisy_std: factorized-Gaussian noisy layers in the head with this sigma_0 (None: plain linear).

    Shapes: obs (B, *obs_shape) -> q (B, n_actions), or (B, n_actions, n_atoms) with ``n_atoms``
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        n_actions: int,
        hidden_sizes: Sequence[int] = (256, 256),
        dueling: bool = False,
        head_hidden_size: int = 0,
        n_atoms: int | None = None,
        noisy_std: float | None = None,
    ):
        super().__init__()
        if n_actions < 1:
            raise ValueError(f"n_actions must be >= 1, got {n_actions}")
        self.encoder = make_encoder(obs_shape, hidden_sizes)
        head = DuelingHead if dueling else QHead
        layer = nn.Linear if noisy_std is None else noisy_layer(noisy_std)
        self.head = head(self.encoder.out_dim, n_actions, head_hidden_size, n_atoms, layer)

    def forward(self, obs: Tensor) -> Tensor:
        return self.head(self.encoder(obs))
