"""Losses of off-policy continuous control: DDPG, TD3 and SAC (critic targets, critic, actor, temperature).

The conventions of :mod:`lightning_rl.rl_utils.td` hold (batch-first transitions, ``reward (B, n)``
zero-padded n-step windows, ``steps (B,)`` real steps in a window, bootstrap on ``terminated`` only,
``weight (B,)`` importance weights or ``None``). Critic outputs are ensembles ``(K, B)``: ``K = 1`` is
DDPG, ``K = 2`` TD3's and SAC's clipped double Q (the target takes the minimum over the members).

Actions are the normalized ones of :class:`lightning_rl.models.QValueAC` (in ``[-1, 1]``).
"""

from __future__ import annotations

import torch

from lightning_rl.rl_utils._checks import check_batch, check_dim, check_non_negative, check_unit_interval
from lightning_rl.rl_utils.td import _discounted_reward_and_bootstrap, _nstep_reward

__all__ = [
    "qac_target",
    "critic_loss",
    "ddpg_actor_loss",
    "sac_actor_loss",
    "sac_temperature_loss",
    "smoothed_target_action",
]


def _weighted_mean(x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    return (x if weight is None else x * weight).mean()


@torch.no_grad()
def qac_target(
    next_q: torch.Tensor,
    reward: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float,
    steps: torch.Tensor | None = None,
    next_log_prob: torch.Tensor | None = None,
    alpha: float | torch.Tensor = 0.0,
) -> torch.Tensor:
    """The critic target ``y = sum_k gamma^k r_{t+k} + gamma^steps (1 - terminated) V(s')``, no gradient.

    ``V(s') = min_k next_q[k] - alpha * next_log_prob``: the clipped double-Q value of the target
    critics at the next action (TD3, SAC), minus SAC's entropy term when ``next_log_prob`` is given.
    With one critic (DDPG) the minimum is that critic's value.

    Shapes:
        - next_q: :math:`(K, B)` target critics at ``(s_{t+steps}, a')``.
        - reward: :math:`(B, n)` (``(B,)`` reads as n = 1); terminated: :math:`(B,)`; steps: :math:`(B,)`
          or None (``n``).
        - next_log_prob: :math:`(B,)` log-density of ``a'`` (SAC) or None.
        - alpha: scalar (float or 0-dim tensor) entropy temperature.
        - output: :math:`(B,)`.
    """
    check_unit_interval("gamma", gamma)
    check_dim("next_q", next_q, 2, "(K, B)")
    batch_size = next_q.shape[1]
    check_batch(batch_size, terminated=terminated, steps=steps, next_log_prob=next_log_prob)
    reward = _nstep_reward(reward, batch_size)
    discounted_reward, bootstrap = _discounted_reward_and_bootstrap(reward, terminated, steps, gamma)
    next_value = next_q.min(dim=0).values
    if next_log_prob is not None:
        next_value = next_value - alpha * next_log_prob
    return discounted_reward + bootstrap * next_value


def critic_loss(
    q: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared-error loss of every critic towards one target (SB3's ``0.5 * sum_k MSE(Q_k, y)``).

    Returns ``(loss, abs_td_error)``: ``loss = 0.5 * sum_k mean_b(weight * (q[k] - target)^2)`` and the
    detached ``mean_k |target - q[k]|`` ``(B,)`` (the priorities of DI-engine's TD3).

    Shapes: q :math:`(K, B)`; target, weight :math:`(B,)`; loss :math:`()`; abs_td_error :math:`(B,)`.
    """
    check_dim("q", q, 2, "(K, B)")
    check_batch(q.shape[1], target=target, weight=weight)
    error = q - target.detach()
    per_sample = 0.5 * error.square().sum(0)
    return _weighted_mean(per_sample, weight), error.detach().abs().mean(0)


def ddpg_actor_loss(q: torch.Tensor) -> torch.Tensor:
    """The deterministic policy gradient's loss ``-mean(Q(s, mu(s)))`` (DDPG; TD3 with its first critic).

    ``q`` must come from critics whose parameters are detached (only the actor learns from it).
    Shapes: q :math:`(B,)` -> :math:`()`.
    """
    check_dim("q", q, 1, "(B,)")
    return -q.mean()


def sac_actor_loss(q: torch.Tensor, log_prob: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """SAC's policy loss ``mean(alpha * log pi(a|s) - min_k Q_k(s, a))`` with ``a ~ pi(.|s)``
    reparameterized; ``alpha`` carries no gradient here.

    Shapes: q :math:`(K, B)` (critics with detached parameters); log_prob :math:`(B,)`; output :math:`()`.
    """
    check_dim("q", q, 2, "(K, B)")
    check_batch(q.shape[1], log_prob=log_prob)
    alpha = alpha.detach() if isinstance(alpha, torch.Tensor) else alpha
    return (alpha * log_prob - q.min(dim=0).values).mean()


def sac_temperature_loss(
    log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float
) -> torch.Tensor:
    """Automatic entropy tuning (Haarnoja et al. 2018b), SB3's form on ``log alpha``:
    ``-mean(log_alpha * (log_prob + target_entropy))`` with ``log_prob`` detached. Its gradient raises
    ``alpha`` while the policy's entropy ``-E[log pi]`` is below ``target_entropy``.

    Shapes: log_alpha :math:`()`; log_prob :math:`(B,)`; output :math:`()`.
    """
    check_dim("log_prob", log_prob, 1, "(B,)")
    return -(log_alpha * (log_prob.detach() + target_entropy)).mean()


def smoothed_target_action(
    action: torch.Tensor, noise_std: float, noise_clip: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """TD3's target policy smoothing: ``clamp(action + clamp(N(0, noise_std^2), -c, c), -1, 1)`` with
    ``c = noise_clip``, on normalized actions; no gradient.

    Shapes: action :math:`(B, *action\\_shape)` -> same.
    """
    check_non_negative(noise_std=noise_std, noise_clip=noise_clip)
    device = generator.device if generator is not None else action.device
    noise = torch.randn(action.shape, generator=generator, device=device).to(action.device) * noise_std
    return (action.detach() + noise.clamp(-noise_clip, noise_clip)).clamp(-1.0, 1.0)
