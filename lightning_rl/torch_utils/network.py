"""Network blocks: observation encoders (an MLP for vectors, the Nature-DQN CNN for images, a small
same-padding CNN for board games' planes) and init helpers.

Generic ``nn.Module`` building blocks; the RL models (``lightning_rl.models``) assemble them with heads.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "BoardCNNEncoder",
    "MLPEncoder",
    "NatureCNNEncoder",
    "make_encoder",
    "mlp_layers",
    "orthogonal_init_",
]


def mlp_layers(
    in_dim: int, hidden_sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU
) -> list[nn.Module]:
    """``Linear -> activation`` per hidden width, acting on the last dim (any leading dims).

    Shapes: (*B, in_dim) -> (*B, hidden_sizes[-1])
    """
    if not hidden_sizes or any(h < 1 for h in hidden_sizes):
        raise ValueError(f"hidden_sizes must be a non-empty list of positive ints, got {list(hidden_sizes)}")
    layers: list[nn.Module] = []
    for width in hidden_sizes:
        layers += [nn.Linear(in_dim, width), activation()]
        in_dim = width
    return layers


class MLPEncoder(nn.Module):
    """Flattened vector obs -> features.

    Shapes: obs (B, *obs_shape) -> (B, hidden_sizes[-1])
    """

    def __init__(
        self, obs_dim: int, hidden_sizes: Sequence[int] = (256, 256), activation: type[nn.Module] = nn.ReLU
    ):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), *mlp_layers(obs_dim, hidden_sizes, activation))
        self.out_dim = hidden_sizes[-1]

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs.float())


class NatureCNNEncoder(nn.Module):
    """The Atari encoder of Mnih et al. (2015): 3 conv layers + one dense layer.

    uint8 frames are scaled to [0, 1] here, so replay stores them compactly as uint8.
    Shapes: obs (B, C, H, W) -> (B, feature_dim)
    """

    def __init__(self, obs_shape: Sequence[int], feature_dim: int = 512):
        super().__init__()
        channels = obs_shape[0]
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 32, kernel_size=8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            conv_dim = self.convs(torch.zeros(1, *obs_shape)).shape[1]
        self.fc = nn.Sequential(nn.Linear(conv_dim, feature_dim), nn.ReLU())
        self.out_dim = feature_dim

    def forward(self, obs: Tensor) -> Tensor:
        x = obs.float() / 255.0 if obs.dtype == torch.uint8 else obs.float()
        return self.fc(self.convs(x))


class BoardCNNEncoder(nn.Module):
    """A board game's flattened ``(H, W, C)`` planes -> features: 3x3 same-padding convolutions (a line of
    pieces is the same threat anywhere on the board, which an MLP must learn square by square), then an
    MLP over every square's channels.

    Shapes: obs (B, H * W * C) -> (B, hidden_sizes[-1])
    """

    def __init__(
        self,
        board_shape: Sequence[int],
        hidden_sizes: Sequence[int] = (256,),
        channels: Sequence[int] = (32, 32, 32),
        activation: type[nn.Module] = nn.ReLU,
    ):
        super().__init__()
        if len(board_shape) != 3 or min(board_shape) < 1:
            raise ValueError(f"board_shape must be (H, W, C) of positive dims, got {tuple(board_shape)}")
        self.board_shape = tuple(int(d) for d in board_shape)
        height, width, planes = self.board_shape
        layers: list[nn.Module] = []
        for out_channels in channels:
            layers += [nn.Conv2d(planes, out_channels, kernel_size=3, padding=1), nn.ReLU()]
            planes = out_channels
        self.convs = nn.Sequential(*layers, nn.Flatten())
        self.fc = nn.Sequential(*mlp_layers(height * width * planes, hidden_sizes, activation))
        self.out_dim = hidden_sizes[-1]

    def forward(self, obs: Tensor) -> Tensor:
        board = obs.float().reshape(obs.shape[0], *self.board_shape).permute(0, 3, 1, 2)  # (B, C, H, W)
        return self.fc(self.convs(board))


def make_encoder(obs_shape: Sequence[int], hidden_sizes: Sequence[int] = (256, 256)) -> nn.Module:
    """Pick the encoder from the observation shape: 1-D -> MLP, 3-D (C, H, W) -> Nature CNN.

    For images ``hidden_sizes[-1]`` is the CNN's feature width.
    """
    obs_shape = tuple(obs_shape)
    if len(obs_shape) == 1:
        return MLPEncoder(obs_shape[0], hidden_sizes)
    if len(obs_shape) == 3:
        if min(obs_shape[1:]) < 36:
            raise ValueError(f"obs_shape {obs_shape}: image observations must be (C, H, W) with H, W >= 36")
        return NatureCNNEncoder(obs_shape, feature_dim=hidden_sizes[-1])
    raise ValueError(
        f"obs_shape {obs_shape} is not supported; allowed: (D,) vectors or (C, H, W) images "
        "(wrap other observations, e.g. with gymnasium.wrappers.FlattenObservation)"
    )


def orthogonal_init_(module: nn.Module, gain: float, bias: float = 0.0) -> None:
    """Orthogonal weights with ``gain`` and constant ``bias`` for every Linear / Conv2d in ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.orthogonal_(m.weight, gain)
            if m.bias is not None:
                nn.init.constant_(m.bias, bias)
