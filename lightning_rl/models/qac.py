"""Actor and Q-critics for off-policy continuous control (nerveX / DI-engine's ``QAC``): DDPG, TD3, SAC.

``QValueAC`` holds a deterministic actor (DDPG / TD3) or a squashed-Gaussian actor (SAC) and an ensemble
of Q-critics evaluated in one batched forward (twin critics cost one pass of batched matmuls, not two).

Every action inside the model, the losses and the replay-side math is *normalized* to ``[-1, 1]``;
:class:`ActionScaler` maps it to the env's ``[low, high]`` and back, the only place that knows the
bounds. Replay stores env actions (what the envs got); the critic reads them back through ``normalize``.

Shapes: ``B`` batch, ``K`` critics, ``A`` action dims (``action_shape`` flattened).

- obs: ``(B, *obs_shape)``; action: ``(B, *action_shape)``.
- ``critic(obs, action)``: ``(K, B)``.
- ``actor(obs)``: deterministic ``(B, *action_shape)``; Gaussian ``(action, log_prob (B,))``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from lightning_rl.models.distributions import tanh_log_abs_det_jacobian
from lightning_rl.torch_utils.network import make_encoder

ActorKind = Literal["deterministic", "gaussian"]
ACTOR_KINDS: tuple[str, ...] = ("deterministic", "gaussian")
# SB3's clamp of the Gaussian actor's log-std (std in [2e-9, 7.4]).
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class ActionScaler(nn.Module):
    """Normalized actions ``[-1, 1]`` <-> env actions ``[low, high]`` (affine, per element).

    Args:
        low, high: finite bounds, one value per action element, ``low < high``.
        action_shape: shape of one action.
    """

    def __init__(self, low: Sequence[float], high: Sequence[float], action_shape: Sequence[int]):
        super().__init__()
        low_t = torch.as_tensor(low, dtype=torch.float32).reshape(tuple(action_shape))
        high_t = torch.as_tensor(high, dtype=torch.float32).reshape(tuple(action_shape))
        if not (torch.isfinite(low_t).all() and torch.isfinite(high_t).all()) or not (low_t < high_t).all():
            raise ValueError(
                "continuous-control policies need finite action bounds with low < high, got "
                f"low={list(low)}, high={list(high)} (wrap the env with gymnasium.wrappers.RescaleAction)"
            )
        self.register_buffer("center", (high_t + low_t) / 2)
        self.register_buffer("half_range", (high_t - low_t) / 2)

    def scale(self, action: Tensor) -> Tensor:
        """Normalized ``(*B, *action_shape)`` -> env actions (same shape)."""
        return self.center + self.half_range * action

    def normalize(self, action: Tensor) -> Tensor:
        """Env actions -> normalized (the inverse of :meth:`scale`)."""
        return (action - self.center) / self.half_range


class EnsembleMLP(nn.Module):
    """``K`` independent MLPs ``in_dim -> hidden_sizes -> 1`` evaluated together with batched matmuls.

    The first layer is one ``(in_dim, K * width)`` matmul (every member sees the same input); the later
    ones are ``baddbmm`` over the ``K`` members. Each member is initialized like ``nn.Linear``.

    Shapes: x ``(B, in_dim)`` -> ``(K, B)``.
    """

    def __init__(self, in_dim: int, hidden_sizes: Sequence[int], n_members: int):
        super().__init__()
        if not hidden_sizes or any(width < 1 for width in hidden_sizes):
            raise ValueError(
                f"hidden_sizes must be a non-empty list of positive ints, got {list(hidden_sizes)}"
            )
        self.n_members = n_members
        widths = [in_dim, *hidden_sizes, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
            bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default init
            self.weights.append(nn.Parameter(torch.empty(n_members, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(n_members, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, x: Tensor, detach_params: bool = False) -> Tensor:
        """``detach_params``: the same values with no gradient to the parameters (an actor's loss backs up
        through the critics to the action only)."""
        weights = [w.detach() for w in self.weights] if detach_params else list(self.weights)
        biases = [b.detach() for b in self.biases] if detach_params else list(self.biases)
        k, in_dim, width = weights[0].shape
        first = weights[0].permute(1, 0, 2).reshape(in_dim, k * width)
        h = (x @ first).view(-1, k, width).transpose(0, 1) + biases[0]  # (K, B, width)
        for weight, bias in zip(weights[1:], biases[1:], strict=True):
            h = torch.baddbmm(bias, torch.relu(h), weight)
        return h.squeeze(-1)


class QCritics(nn.Module):
    """``K`` Q-functions ``Q_k(obs, action)`` of normalized actions.

    Vector obs go straight into the ensemble with the action; image obs first pass one Nature CNN shared
    by the ``K`` members (its ``hidden_sizes[-1]``-wide features, then the ensemble's hidden layers).

    Shapes: obs ``(B, *obs_shape)``, action ``(B, *action_shape)`` -> ``(K, B)``.
    """

    def __init__(
        self, obs_shape: Sequence[int], action_dim: int, hidden_sizes: Sequence[int], n_critics: int
    ):
        super().__init__()
        obs_shape = tuple(obs_shape)
        self.encoder: nn.Module | None = None
        obs_dim = math.prod(obs_shape)
        if len(obs_shape) == 3:
            self.encoder = make_encoder(obs_shape, hidden_sizes)
            obs_dim = self.encoder.out_dim
        self.members = EnsembleMLP(obs_dim + action_dim, hidden_sizes, n_critics)

    def forward(self, obs: Tensor, action: Tensor, detach_params: bool = False) -> Tensor:
        features = obs.flatten(1).float() if self.encoder is None else self.encoder(obs)
        if detach_params and self.encoder is not None:
            features = features.detach()  # an actor loss trains no critic encoder either
        return self.members(torch.cat((features, action.flatten(1)), dim=1), detach_params)


class DeterministicActor(nn.Module):
    """``obs -> tanh(head(encoder(obs)))``: DDPG's / TD3's normalized action ``(B, *action_shape)``."""

    def __init__(self, obs_shape: Sequence[int], action_shape: Sequence[int], hidden_sizes: Sequence[int]):
        super().__init__()
        self.action_shape = tuple(action_shape)
        self.encoder = make_encoder(obs_shape, hidden_sizes)
        self.head = nn.Linear(self.encoder.out_dim, math.prod(self.action_shape))

    def forward(self, obs: Tensor) -> Tensor:
        return torch.tanh(self.head(self.encoder(obs))).view(-1, *self.action_shape)


class GaussianActor(nn.Module):
    """SAC's actor: a ``tanh``-squashed diagonal Gaussian with a state-dependent log-std clamped to
    [-20, 2] (SB3's bounds); everything in the normalized action space."""

    def __init__(self, obs_shape: Sequence[int], action_shape: Sequence[int], hidden_sizes: Sequence[int]):
        super().__init__()
        self.action_shape = tuple(action_shape)
        self.encoder = make_encoder(obs_shape, hidden_sizes)
        self.head = nn.Linear(self.encoder.out_dim, 2 * math.prod(self.action_shape))  # mean, log-std

    def forward(self, obs: Tensor) -> Tensor:
        """The deterministic action ``tanh(mean)`` ``(B, *action_shape)``."""
        mean = self.head(self.encoder(obs)).chunk(2, dim=-1)[0]
        return torch.tanh(mean).view(-1, *self.action_shape)

    def sample(self, obs: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """A reparameterized sample ``(B, *action_shape)`` and its exact log-density ``(B,)`` in the
        normalized space (``tanh``'s Jacobian included, computed from the pre-squash value)."""
        mean, log_std = self.head(self.encoder(obs)).chunk(2, dim=-1)
        log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        device = generator.device if generator is not None else mean.device
        noise = torch.randn(mean.shape, generator=generator, device=device).to(mean.device)
        u = mean + log_std.exp() * noise
        log_prob = (-0.5 * noise.square() - log_std - _HALF_LOG_2PI - tanh_log_abs_det_jacobian(u)).sum(-1)
        return torch.tanh(u).view(-1, *self.action_shape), log_prob


class QValueAC(nn.Module):
    """Actor + ``n_critics`` Q-critics + the action scaler (nerveX's ``QAC``).

    Args:
        obs_shape: one observation's shape, ``(D,)`` or ``(C, H, W)`` (uint8 frames are scaled to [0, 1]).
        action_shape: shape of one action, e.g. ``(6,)``.
        action_low, action_high: the env's bounds, one value per action element.
        actor: ``"deterministic"`` (:class:`DeterministicActor`, DDPG / TD3) or ``"gaussian"``
            (:class:`GaussianActor`, SAC).
        n_critics: Q-functions (1: DDPG; 2: TD3 / SAC's clipped double Q; more for ensembles).
        actor_hidden_sizes, critic_hidden_sizes: MLP widths; for image obs the last one is the CNN's feature
            width (the actor and the critics have a Nature CNN each; the critics share theirs).

    Attributes: ``actor``, ``critics`` (:class:`QCritics`), ``scaler`` (:class:`ActionScaler`).
    """

    def __init__(
        self,
        obs_shape: Sequence[int],
        action_shape: Sequence[int],
        action_low: Sequence[float],
        action_high: Sequence[float],
        actor: ActorKind = "gaussian",
        n_critics: int = 2,
        actor_hidden_sizes: Sequence[int] = (256, 256),
        critic_hidden_sizes: Sequence[int] = (256, 256),
    ):
        super().__init__()
        if actor not in ACTOR_KINDS:
            raise ValueError(f"actor must be one of {ACTOR_KINDS}, got {actor!r}")
        if n_critics < 1:
            raise ValueError(f"n_critics must be >= 1, got {n_critics}")
        self.scaler = ActionScaler(action_low, action_high, action_shape)
        actor_type = GaussianActor if actor == "gaussian" else DeterministicActor
        self.actor = actor_type(obs_shape, action_shape, actor_hidden_sizes)
        self.critics = QCritics(obs_shape, math.prod(tuple(action_shape)), critic_hidden_sizes, n_critics)
