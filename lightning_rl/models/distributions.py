"""Action distributions with one interface for discrete and continuous actions.

Every distribution here is built from network outputs with a batch shape ``(*B)`` (any number of
leading dims, usually ``(B,)`` or ``(T, B)``) and exposes:

- ``sample() -> action``: no gradient. Discrete: ``(*B)`` int64. Continuous: ``(*B, *action_shape)``.
- ``log_prob(action) -> (*B)``: summed over the action dims (the joint density of the action vector).
- ``entropy() -> (*B)``: summed over the action dims (see `SquashedDiagGaussian` for its convention).
- ``mode``: the deterministic action (argmax / mean / squashed mean), same shape as ``sample()``.
- ``sample_with_log_prob() -> (action, log_prob)`` and, for the Gaussians, ``rsample()`` /
  ``rsample_with_log_prob()`` with the reparameterization gradient.

They carry no parameters; `lightning_rl.models.ValueAC` builds them in ``forward``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.distributions import Categorical, Normal

_LOG2 = math.log(2.0)


def tanh_log_abs_det_jacobian(u: Tensor) -> Tensor:
    """``log(1 - tanh(u)^2)`` elementwise, computed stably as ``2 * (log 2 - u - softplus(-2u))``.

    The naive form is ``-inf`` once ``tanh(u)`` rounds to +-1 (|u| > ~9 in float32); this one is exact.
    """
    return 2.0 * (_LOG2 - u - F.softplus(-2.0 * u))


class CategoricalDist:
    """Categorical over ``n_actions`` from unnormalized logits ``(*B, n_actions)``.

    Actions are int64 indices ``(*B)``; ``log_prob`` accepts any integer or integral-float tensor
    of shape ``(*B)``. Entropy is in nats.
    """

    def __init__(self, logits: Tensor):
        self.dist = Categorical(logits=logits, validate_args=False)

    @property
    def logits(self) -> Tensor:
        """Normalized log-probabilities ``(*B, n_actions)`` (log-softmax of the raw logits)."""
        return self.dist.logits

    @property
    def probs(self) -> Tensor:
        return self.dist.probs

    @property
    def mode(self) -> Tensor:
        return self.dist.logits.argmax(dim=-1)

    def sample(self) -> Tensor:
        return self.dist.sample()

    def log_prob(self, action: Tensor) -> Tensor:
        return self.dist.log_prob(action.long())

    def entropy(self) -> Tensor:
        return self.dist.entropy()

    def sample_with_log_prob(self) -> tuple[Tensor, Tensor]:
        action = self.sample()
        return action, self.log_prob(action)


class DiagGaussian:
    """Diagonal Gaussian with mean and log-std ``(*B, *action_shape)``; unbounded actions.

    ``event_ndims = len(action_shape)`` trailing dims are summed in ``log_prob`` and ``entropy``.
    Samples are NOT clipped to the action bounds: the env side clips when stepping, and the
    log-prob is that of the unclipped sample (store and evaluate the unclipped action).
    """

    def __init__(self, mean: Tensor, log_std: Tensor, event_ndims: int = 1):
        if event_ndims < 1:
            raise ValueError(f"event_ndims must be >= 1, got {event_ndims}")
        self.mean = mean
        self.log_std = log_std.expand_as(mean)
        self.event_dims = tuple(range(-event_ndims, 0))
        self.base = Normal(mean, self.log_std.exp())

    @property
    def std(self) -> Tensor:
        return self.base.scale

    @property
    def mode(self) -> Tensor:
        return self.mean

    def sample(self) -> Tensor:
        return self.base.sample()

    def rsample(self) -> Tensor:
        return self.base.rsample()

    def log_prob(self, action: Tensor) -> Tensor:
        return self.base.log_prob(action).sum(self.event_dims)

    def entropy(self) -> Tensor:
        return self.base.entropy().sum(self.event_dims)

    def sample_with_log_prob(self) -> tuple[Tensor, Tensor]:
        action = self.sample()
        return action, self.log_prob(action)

    def rsample_with_log_prob(self) -> tuple[Tensor, Tensor]:
        action = self.rsample()
        return action, self.log_prob(action)


class SquashedDiagGaussian:
    """``action = low + (high - low) * (tanh(u) + 1) / 2`` with ``u ~ N(mean, std)``.

    Actions lie in ``[low, high]`` (closed: ``tanh`` rounds to +-1 in float32 once |u| > ~9).
    ``low``/``high`` broadcast against ``(*action_shape)``.

    Log-probabilities use the change of variables
    ``log p(a) = sum[log N(u) - log(1 - tanh(u)^2) - log((high - low) / 2)]``:

    - ``sample_with_log_prob`` / ``rsample_with_log_prob`` and ``log_prob_pre_tanh(u)`` are exact,
      computed from the pre-squash sample ``u``.
    - ``log_prob(action)`` recovers ``u = atanh(y)`` from the action, with ``y`` clamped to
      ``+-(1 - 1e-6)``. In float32 it is accurate for |u| < ~5 (error ~1e-3 there, ~2e-2 at |u| = 7);
      beyond |u| ~ 7.5 the clamp caps u, so the log-prob stays finite but overestimates.
      Use it for stored actions (PPO ratios): computing old and new log-probs the same way keeps
      the ratio exactly 1 before the first update.

    ``entropy()`` has no closed form; it returns the entropy of the base Gaussian ``N(mean, std)``
    summed over action dims (no squash or rescale correction). It is deterministic, differentiable,
    and bounds the true entropy: ``H(action) <= entropy() + sum log((high - low) / 2)``; it serves
    as the usual entropy bonus. ``entropy_estimate()`` gives the one-sample Monte-Carlo ``-log p(a)``.
    """

    EPS = 1e-6

    def __init__(self, mean: Tensor, log_std: Tensor, low: Tensor, high: Tensor, event_ndims: int = 1):
        self.gaussian = DiagGaussian(mean, log_std, event_ndims)
        self.event_dims = self.gaussian.event_dims
        self.low = low
        self.high = high
        self.half_range = (high - low) / 2.0
        # log|d action / d y| of the affine rescale, summed over the action dims (a constant).
        self._log_scale = torch.log(self.half_range).expand_as(mean).sum(self.event_dims)

    @property
    def mean(self) -> Tensor:
        """Mean of the pre-squash Gaussian (not of the action)."""
        return self.gaussian.mean

    @property
    def std(self) -> Tensor:
        return self.gaussian.std

    @property
    def mode(self) -> Tensor:
        """The squashed Gaussian mean ``squash(mean)`` (the deterministic action)."""
        return self.squash(self.gaussian.mean)

    def squash(self, u: Tensor) -> Tensor:
        return self.low + self.half_range * (torch.tanh(u) + 1.0)

    def unsquash(self, action: Tensor) -> Tensor:
        y = (action - self.low) / self.half_range - 1.0
        return torch.atanh(y.clamp(-1.0 + self.EPS, 1.0 - self.EPS))

    def log_prob_pre_tanh(self, u: Tensor) -> Tensor:
        """Exact log-density of the action ``squash(u)``, given the pre-squash value ``u``."""
        correction = tanh_log_abs_det_jacobian(u).sum(self.event_dims)
        return self.gaussian.log_prob(u) - correction - self._log_scale

    def log_prob(self, action: Tensor) -> Tensor:
        return self.log_prob_pre_tanh(self.unsquash(action))

    def sample(self) -> Tensor:
        return self.squash(self.gaussian.sample())

    def rsample(self) -> Tensor:
        return self.squash(self.gaussian.rsample())

    def sample_with_log_prob(self) -> tuple[Tensor, Tensor]:
        u = self.gaussian.sample()
        return self.squash(u), self.log_prob_pre_tanh(u)

    def rsample_with_log_prob(self) -> tuple[Tensor, Tensor]:
        u = self.gaussian.rsample()
        return self.squash(u), self.log_prob_pre_tanh(u)

    def entropy(self) -> Tensor:
        return self.gaussian.entropy()

    def entropy_estimate(self) -> Tensor:
        """One-sample estimate ``-log p(a)``, ``a`` reparameterized (differentiable)."""
        return -self.rsample_with_log_prob()[1]


ActionDist = CategoricalDist | DiagGaussian | SquashedDiagGaussian
