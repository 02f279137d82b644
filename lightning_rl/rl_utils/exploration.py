"""Exploration helpers: epsilon-greedy action selection and action noise (epsilon schedules are
:class:`lightning_rl.torch_utils.Schedule`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from lightning_rl.rl_utils._checks import check_dim, check_non_negative, check_unit_interval
from lightning_rl.torch_utils.masking import random_legal_actions
from lightning_rl.utils.checks import check_positive

__all__ = [
    "apex_epsilon",
    "epsilon_greedy",
    "NoiseGenerator",
    "GaussianNoise",
    "OUNoise",
    "add_action_noise",
]


def apex_epsilon(actor: int, n_actors: int, base: float = 0.4, alpha: float = 7.0) -> float:
    """Ape-X's fixed epsilon of actor ``actor`` of ``n_actors`` (Horgan et al. 2018):
    ``base ** (1 + alpha * actor / (n_actors - 1))``, from ``base`` (actor 0) down to ``base ** (1 + alpha)``
    (the last actor: 0.4 ** 8 = 0.00066); a lone actor gets ``base``."""
    if not 0 <= actor < n_actors:
        raise ValueError(f"actor must be in [0, n_actors = {n_actors}), got {actor}")
    check_unit_interval("base", base)
    check_non_negative(alpha=alpha)
    return base if n_actors == 1 else base ** (1.0 + alpha * actor / (n_actors - 1))


def epsilon_greedy(
    q: torch.Tensor,
    epsilon: float,
    generator: torch.Generator | None = None,
    legal: torch.Tensor | None = None,
) -> torch.Tensor:
    """Greedy actions, each row independently replaced by a uniform random action with probability epsilon.

    The random action is drawn from all actions (it may coincide with the greedy one), as in DQN, or,
    with ``legal``, from the legal ones (``q`` is then expected masked already, see
    :func:`lightning_rl.torch_utils.mask_illegal`, so the greedy action is legal too).
    Random numbers are drawn on the generator's device (CPU by default) and moved to ``q``'s device.

    Shapes:
        - q: :math:`(B, A)`.
        - legal: :math:`(B, A)` bool, at least one True per row, or ``None``.
        - output: :math:`(B,)` int64.
    """
    check_dim("q", q, 2, "(B, A)")
    check_unit_interval("epsilon", epsilon)
    batch_size, action_dim = q.shape
    device = generator.device if generator is not None else q.device
    explore = torch.rand(batch_size, generator=generator, device=device) < epsilon
    if legal is None:
        random_action = torch.randint(action_dim, (batch_size,), generator=generator, device=device)
    else:
        random_action = random_legal_actions(legal.to(device), generator)
    greedy_action = q.argmax(dim=-1)
    return torch.where(explore.to(q.device), random_action.to(q.device), greedy_action)


class NoiseGenerator:
    """Interface of action-noise processes: ``noise(shape, generator=None) -> Tensor`` and ``reset()``."""

    def __call__(self, shape: Sequence[int], generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def reset(self) -> None:
        """Start a new episode. Stateless processes do nothing."""


class GaussianNoise(NoiseGenerator):
    """I.i.d. Gaussian noise ``N(mu, sigma^2)`` (float32, CPU unless the generator lives elsewhere)."""

    def __init__(self, mu: float = 0.0, sigma: float = 1.0) -> None:
        check_non_negative(sigma=sigma)
        self.mu = mu
        self.sigma = sigma

    def __call__(self, shape: Sequence[int], generator: torch.Generator | None = None) -> torch.Tensor:
        device = generator.device if generator is not None else None
        return self.mu + self.sigma * torch.randn(tuple(shape), generator=generator, device=device)

    def __repr__(self) -> str:
        return f"GaussianNoise(mu={self.mu}, sigma={self.sigma})"


class OUNoise(NoiseGenerator):
    """Ornstein-Uhlenbeck process (temporally correlated noise, as in DDPG).

    Each call advances ``x += theta * (mu - x) * dt + sigma * sqrt(dt) * N(0, 1)`` and returns a copy of
    ``x``. The state starts at ``x0`` (``None`` -> ``mu``), restarts there on :meth:`reset`, and also
    restarts when called with a different shape.
    """

    def __init__(
        self,
        mu: float = 0.0,
        sigma: float = 0.3,
        theta: float = 0.15,
        dt: float = 1e-2,
        x0: float | torch.Tensor | None = None,
    ) -> None:
        check_non_negative(sigma=sigma, theta=theta)
        check_positive(dt=dt)
        self.mu = mu
        self.sigma = sigma
        self.theta = theta
        self.dt = dt
        self.x0 = x0
        self._x: torch.Tensor | None = None

    def reset(self) -> None:
        self._x = None

    def _initial_state(self, shape: tuple[int, ...], device: torch.device | None) -> torch.Tensor:
        start = self.mu if self.x0 is None else self.x0
        return torch.as_tensor(start, dtype=torch.float32, device=device).expand(shape).clone()

    def __call__(self, shape: Sequence[int], generator: torch.Generator | None = None) -> torch.Tensor:
        shape = tuple(shape)
        device = generator.device if generator is not None else None
        if self._x is None or tuple(self._x.shape) != shape:
            self._x = self._initial_state(shape, device)
        gaussian = torch.randn(shape, generator=generator, device=self._x.device)
        drift = self.theta * (self.mu - self._x) * self.dt
        self._x = self._x + drift + self.sigma * math.sqrt(self.dt) * gaussian
        return self._x.clone()

    def __repr__(self) -> str:
        return f"OUNoise(mu={self.mu}, sigma={self.sigma}, theta={self.theta}, dt={self.dt}, x0={self.x0})"


def add_action_noise(
    action: torch.Tensor,
    noise: torch.Tensor | NoiseGenerator,
    low: float | torch.Tensor,
    high: float | torch.Tensor,
    noise_clip: float | None = None,
) -> torch.Tensor:
    """``clamp(action + noise, low, high)``.

    ``noise`` is a tensor broadcastable to ``action`` or a :class:`NoiseGenerator` (called with
    ``action.shape``). ``noise_clip`` first clips the noise to ``[-noise_clip, noise_clip]`` (TD3 target
    policy smoothing). ``low``/``high`` may be floats or tensors broadcastable to ``action``.

    Shapes:
        - action: :math:`(B, action\\_dim)` (any shape works); output: same as action.
    """
    if isinstance(noise, NoiseGenerator):
        noise = noise(action.shape)
    noise = noise.to(device=action.device, dtype=action.dtype)
    if noise_clip is not None:
        check_non_negative(noise_clip=noise_clip)
        noise = noise.clamp(-noise_clip, noise_clip)
    if not isinstance(low, torch.Tensor) and not isinstance(high, torch.Tensor) and low > high:
        raise ValueError(f"low must be <= high, got low={low}, high={high}")
    if isinstance(low, torch.Tensor) or isinstance(high, torch.Tensor):
        # torch.clamp takes either two numbers or two tensors, not a mix
        low = torch.as_tensor(low, device=action.device, dtype=action.dtype)
        high = torch.as_tensor(high, device=action.device, dtype=action.dtype)
    return torch.clamp(action + noise, low, high)
