"""Proximal policy optimization loss (Schulman et al., 2017): a pure, distribution-agnostic tensor function.

Conventions (shared with :mod:`~lightning_rl.rl_utils.a2c` and :func:`~lightning_rl.rl_utils.vtrace_error`):

* Samples are flat ``(B,)``. The policy evaluates its action distribution and passes per-sample
  ``log_prob`` (summed over action dimensions for a multi-dimensional continuous action) and ``entropy``;
  nothing here depends on the kind of distribution, so discrete and continuous actions work alike.
* Every returned loss is a quantity to *minimize*, and the total loss is a plain weighted sum::

      loss = policy_loss + value_weight * value_loss + entropy_weight * entropy_loss

  ``entropy_loss = -mean(weight * entropy)`` is the *negative* entropy, so a positive ``entropy_weight``
  is an entropy bonus. (The mean entropy is ``-entropy_loss``.)
* ``value_loss`` carries a factor 0.5: ``0.5 * mean(weight * (returns - value)^2)``.
* ``weight: (B,)`` or ``None`` (all ones) multiplies every per-sample term before the mean.
* ``advantage`` and ``returns`` are targets: they are detached here. Advantage normalization (if any) is
  the caller's job.
* Only ``log_prob``, ``value`` and ``entropy`` receive gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from lightning_rl.rl_utils._checks import check_batch, check_dim
from lightning_rl.utils.checks import check_positive

__all__ = ["PPOData", "PPOLoss", "PPOInfo", "ppo_error"]


class PPOData(NamedTuple):
    """A PPO minibatch. See :func:`ppo_error` for shapes.

    ``old_value`` may be ``None`` unless the value loss is clipped.
    """

    log_prob: torch.Tensor
    old_log_prob: torch.Tensor
    entropy: torch.Tensor
    value: torch.Tensor
    old_value: torch.Tensor | None
    advantage: torch.Tensor
    returns: torch.Tensor
    weight: torch.Tensor | None = None


class PPOLoss(NamedTuple):
    """PPO losses, each 0-dim; ``loss = policy_loss + vf_coef * value_loss + ent_coef * entropy_loss``."""

    policy_loss: torch.Tensor
    value_loss: torch.Tensor
    entropy_loss: torch.Tensor


class PPOInfo(NamedTuple):
    """Detached 0-dim diagnostics: the k3 estimate of KL(old || new) and the fraction of clipped ratios."""

    approx_kl: torch.Tensor
    clip_fraction: torch.Tensor


def _weighted_mean(per_sample: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    return (per_sample if weight is None else per_sample * weight).mean()


def ppo_error(
    data: PPOData,
    clip_ratio: float = 0.2,
    dual_clip: float | None = None,
    value_clip_ratio: float | None = None,
) -> tuple[PPOLoss, PPOInfo]:
    """PPO-clip loss with optional dual clip and PPO2-style value clipping.

    With ``ratio = exp(log_prob - old_log_prob)`` and ``A = advantage``:

    * surrogate ``S = min(ratio * A, clip(ratio, 1 - clip_ratio, 1 + clip_ratio) * A)``;
    * dual clip (Ye et al., 2020, ``dual_clip = c > 1``): where ``A < 0``, ``S = max(S, c * A)``, bounding
      the loss of a sample whose ratio has grown far above 1 with a negative advantage;
    * ``policy_loss = -mean(weight * S)``;
    * ``value_loss = 0.5 * mean(weight * (value - returns)^2)``, or with ``value_clip_ratio = eps_v``
      ``0.5 * mean(weight * max((value - returns)^2, (v_clip - returns)^2))`` where
      ``v_clip = old_value + clip(value - old_value, -eps_v, eps_v)``;
    * ``entropy_loss = -mean(weight * entropy)`` (negative: see the module docstring);
    * ``approx_kl = mean((ratio - 1) - log ratio)`` (Schulman's k3 estimator of KL(old || new), >= 0);
    * ``clip_fraction = mean(|ratio - 1| > clip_ratio)``.

    The diagnostics are unweighted and detached.

    Args:
        data: :class:`PPOData`.
        clip_ratio: epsilon of the clipped surrogate, > 0.
        dual_clip: ``c > 1`` or None (off).
        value_clip_ratio: ``eps_v > 0`` or None (unclipped value loss); needs ``data.old_value``.

    Returns:
        ``(PPOLoss(policy_loss, value_loss, entropy_loss), PPOInfo(approx_kl, clip_fraction))``.

    Shapes:
        - log_prob: :math:`(B,)` new policy, with gradient; old_log_prob: :math:`(B,)` behaviour policy.
        - entropy: :math:`(B,)` new policy, with gradient.
        - value: :math:`(B,)` new critic, with gradient; old_value: :math:`(B,)` or None.
        - advantage, returns: :math:`(B,)`.
        - weight: :math:`(B,)` or None.
        - every output: :math:`()`.
    """
    check_positive(clip_ratio=clip_ratio)
    if dual_clip is not None and not dual_clip > 1:
        raise ValueError(f"dual_clip must be > 1 (or None), got {dual_clip}")
    if value_clip_ratio is not None and not value_clip_ratio > 0:
        raise ValueError(f"value_clip_ratio must be > 0 (or None), got {value_clip_ratio}")
    log_prob, old_log_prob, entropy, value, old_value, advantage, returns, weight = data
    check_dim("log_prob", log_prob, 1, "(B,)")
    check_batch(log_prob.shape[0], **data._asdict())  # every field is per sample (old_value may be None)
    if value_clip_ratio is not None and old_value is None:
        raise ValueError("old_value must be given when value_clip_ratio is set")

    old_log_prob = old_log_prob.detach()
    advantage = advantage.detach()
    returns = returns.detach()

    log_ratio = log_prob - old_log_prob
    ratio = torch.exp(log_ratio)
    surrogate = torch.min(ratio * advantage, ratio.clamp(1.0 - clip_ratio, 1.0 + clip_ratio) * advantage)
    if dual_clip is not None:
        surrogate = torch.where(advantage < 0, torch.max(surrogate, dual_clip * advantage), surrogate)
    policy_loss = -_weighted_mean(surrogate, weight)

    value_error = (value - returns).pow(2)
    if value_clip_ratio is not None:
        old_value = old_value.detach()
        clipped_value = old_value + (value - old_value).clamp(-value_clip_ratio, value_clip_ratio)
        value_error = torch.max(value_error, (clipped_value - returns).pow(2))
    value_loss = 0.5 * _weighted_mean(value_error, weight)

    entropy_loss = -_weighted_mean(entropy, weight)

    with torch.no_grad():
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
        clip_fraction = ((ratio - 1.0).abs() > clip_ratio).to(ratio.dtype).mean()
    return PPOLoss(policy_loss, value_loss, entropy_loss), PPOInfo(approx_kl, clip_fraction)
