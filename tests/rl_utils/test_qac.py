"""Hand-computed checks of the DDPG / TD3 / SAC losses in ``lightning_rl.rl_utils.qac``."""

import math

import pytest
import torch
from tensor_helpers import close, t

from lightning_rl.rl_utils import (
    critic_loss,
    ddpg_actor_loss,
    qac_target,
    sac_actor_loss,
    sac_temperature_loss,
    smoothed_target_action,
)

# next_q of K=2 target critics on B=2 transitions: the clipped double Q takes min_k = [1, 2]
NEXT_Q = [[1.0, 5.0], [3.0, 2.0]]


def test_target_clipped_double_q_one_step():
    # y = r + gamma * (1 - term) * min_k Q = [1 + 0.9 * 1, -1 + 0] = [1.9, -1]
    target = qac_target(t(NEXT_Q), t([1.0, -1.0]), t([0.0, 1.0]), gamma=0.9)
    close(target, [1.9, -1.0])


def test_target_single_critic_is_that_critic():
    target = qac_target(t([[4.0, 8.0]]), t([0.0, 1.0]), t([0.0, 0.0]), gamma=0.5)
    close(target, [2.0, 5.0])


def test_target_sac_entropy_term():
    # V = min_k Q - alpha * logp = [1 - 0.2 * 0.5, 2 + 0.2 * 1] = [0.9, 2.2]
    # y = [1 + 0.9 * 0.9, -1 + 0.9 * 2.2]
    target = qac_target(
        t(NEXT_Q), t([1.0, -1.0]), t([0.0, 0.0]), gamma=0.9, next_log_prob=t([0.5, -1.0]), alpha=0.2
    )
    close(target, [1.81, 0.98])
    # a 0-dim tensor temperature gives the same, and no gradient flows anywhere
    alpha = torch.tensor(0.2, requires_grad=True)
    tensor_alpha = qac_target(
        t(NEXT_Q), t([1.0, -1.0]), t([0.0, 0.0]), 0.9, next_log_prob=t([0.5, -1.0]), alpha=alpha
    )
    close(tensor_alpha, [1.81, 0.98])
    assert not tensor_alpha.requires_grad


def test_target_nstep_windows():
    # gamma 0.5; row 0: 2 real steps 1 + 0.5 * 2 + 0.25 * 4 = 3; row 1: 1 real step (padded), 1 + 0.5 * 8 = 5;
    # row 2: terminated inside its 2-step window, 1 + 0.5 * 2 = 2 (no bootstrap)
    target = qac_target(
        t([[4.0, 8.0, 100.0]]),
        t([[1.0, 2.0], [1.0, 0.0], [1.0, 2.0]]),
        t([0.0, 0.0, 1.0]),
        gamma=0.5,
        steps=t([2, 1, 2], dtype=torch.int64),
    )
    close(target, [3.0, 5.0, 2.0])


def test_target_checks_shapes():
    with pytest.raises(ValueError, match=r"next_q"):
        qac_target(t([1.0, 2.0]), t([1.0, 1.0]), t([0.0, 0.0]), 0.9)
    with pytest.raises(ValueError, match=r"next_log_prob"):
        qac_target(t(NEXT_Q), t([1.0, 1.0]), t([0.0, 0.0]), 0.9, next_log_prob=t([1.0, 2.0, 3.0]))


def test_critic_loss_sums_critics_and_weights():
    # errors q - y = [[-1, 1], [2, -1]]: per sample 0.5 * (1 + 4) = 2.5 and 0.5 * (1 + 1) = 1
    q = t([[1.0, 2.0], [4.0, 0.0]], requires_grad=True)
    target = t([2.0, 1.0])
    loss, abs_td = critic_loss(q, target)
    close(loss, 1.75)
    close(abs_td, [1.5, 1.0])
    loss.backward()
    close(q.grad, [[-0.5, 0.5], [1.0, -0.5]])  # error / B
    weighted, _ = critic_loss(q, target, weight=t([2.0, 0.5]))
    close(weighted, (2.0 * 2.5 + 0.5 * 1.0) / 2)


def test_critic_loss_does_not_train_the_target():
    target = t([2.0, 1.0], requires_grad=True)
    loss, _ = critic_loss(t([[1.0, 2.0]], requires_grad=True), target)
    loss.backward()
    assert target.grad is None


def test_ddpg_actor_loss():
    q = t([1.0, 3.0], requires_grad=True)
    loss = ddpg_actor_loss(q)
    close(loss, -2.0)
    loss.backward()
    close(q.grad, [-0.5, -0.5])
    with pytest.raises(ValueError, match=r"\(B,\)"):
        ddpg_actor_loss(t([[1.0, 3.0]]))


def test_sac_actor_loss():
    # mean(alpha * logp - min_k Q) = mean(0.1 - 1, -0.2 - 2) = -1.55
    q = t(NEXT_Q, requires_grad=True)
    log_prob = t([0.5, -1.0], requires_grad=True)
    alpha = torch.tensor(0.2, requires_grad=True)
    loss = sac_actor_loss(q, log_prob, alpha)
    close(loss, -1.55)
    loss.backward()
    close(log_prob.grad, [0.1, 0.1])
    close(q.grad, [[-0.5, 0.0], [0.0, -0.5]])  # the minimum critic of each sample
    assert alpha.grad is None  # the temperature learns from its own loss only


def test_sac_temperature_loss_moves_alpha_towards_target_entropy():
    # entropy estimate -mean(logp) = 0 above the target -1: the gradient lowers log alpha
    log_alpha = torch.tensor(math.log(0.5), requires_grad=True)
    loss = sac_temperature_loss(log_alpha, t([-1.0, 1.0]), target_entropy=-1.0)
    close(loss, math.log(0.5))  # -(log 0.5 * mean(-2, 0))
    loss.backward()
    close(log_alpha.grad, 1.0)
    # entropy -2 below the target -1: the gradient raises log alpha
    log_alpha.grad = None
    sac_temperature_loss(log_alpha, t([2.0, 2.0]), target_entropy=-1.0).backward()
    close(log_alpha.grad, -1.0)


def test_sac_temperature_loss_does_not_train_the_actor():
    log_prob = t([2.0, 2.0], requires_grad=True)
    sac_temperature_loss(torch.tensor(0.0, requires_grad=True), log_prob, -1.0).backward()
    assert log_prob.grad is None


def test_smoothed_target_action_clips_noise_then_action():
    action = t([[0.0, 0.9], [-0.95, 0.3]])
    seed = torch.Generator().manual_seed(3)
    result = smoothed_target_action(action, noise_std=0.2, noise_clip=0.5, generator=seed)
    noise = (torch.randn(action.shape, generator=torch.Generator().manual_seed(3)) * 0.2).clamp(-0.5, 0.5)
    close(result, (action + noise).clamp(-1.0, 1.0))
    wide = smoothed_target_action(action, 100.0, 0.5, torch.Generator().manual_seed(0))
    assert torch.all((wide - action).abs() <= 0.5 + 1e-6) and torch.all(wide.abs() <= 1.0)
    close(smoothed_target_action(t([[1.5, -3.0]]), 0.0, 0.5), [[1.0, -1.0]])
    with pytest.raises(ValueError, match="noise_std"):
        smoothed_target_action(action, -0.1, 0.5)
