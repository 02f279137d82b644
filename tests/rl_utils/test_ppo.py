"""Hand-computed checks of the PPO loss in ``lightning_rl.rl_utils.ppo``."""

import math

import pytest
import torch
from tensor_helpers import close, t
from torch.distributions import Categorical, Normal

from lightning_rl.rl_utils import PPOData, PPOInfo, PPOLoss, ppo_error

RATIOS = [1.1, 1.5, 0.5, 4.0]


def ppo_data(**overrides):
    """B=4, clip_ratio 0.2 (used below).

    ratio = [1.1, 1.5, 0.5, 4.0], advantage = [2, 1, -1, -1]
      0: unclipped:        min(2.2, 2.2)      = 2.2
      1: clipped above:    min(1.5, 1.2)      = 1.2
      2: clipped below:    min(-0.5, -0.8)    = -0.8
      3: large ratio, A<0: min(-4, -1.2)      = -4    (dual clip 3: max(-4, -3) = -3)
    value = [1, 2, 3, 0], old_value = [0.5, 2.5, 3, 1], returns = [2, 1, 3.5, 0]
    entropy = [0.5, 1, 1.5, 2]
    """
    old_log_prob = t([0.0, -1.0, -2.0, -0.5])
    fields = dict(
        log_prob=(old_log_prob + torch.log(t(RATIOS))).requires_grad_(),
        old_log_prob=old_log_prob.requires_grad_(),
        entropy=t([0.5, 1.0, 1.5, 2.0], requires_grad=True),
        value=t([1.0, 2.0, 3.0, 0.0], requires_grad=True),
        old_value=t([0.5, 2.5, 3.0, 1.0], requires_grad=True),
        advantage=t([2.0, 1.0, -1.0, -1.0], requires_grad=True),
        returns=t([2.0, 1.0, 3.5, 0.0], requires_grad=True),
    )
    fields.update(overrides)
    return PPOData(**fields)


def test_ppo_policy_loss_clipped_and_unclipped():
    data = ppo_data()
    loss, info = ppo_error(data, clip_ratio=0.2)
    assert isinstance(loss, PPOLoss) and isinstance(info, PPOInfo)
    close(loss.policy_loss, -(2.2 + 1.2 - 0.8 - 4.0) / 4)  # 0.35
    loss.policy_loss.backward()
    # d/dlog_prob of -ratio * A / B where the unclipped branch is the min, 0 where the clipped one is
    close(data.log_prob.grad, [-2.0 * 1.1 / 4, 0.0, 0.0, 4.0 / 4])


def test_ppo_dual_clip():
    data = ppo_data()
    loss, _ = ppo_error(data, clip_ratio=0.2, dual_clip=3.0)
    # only sample 3 changes: -4 -> max(-4, 3 * -1) = -3; positive advantages are never dual-clipped
    close(loss.policy_loss, -(2.2 + 1.2 - 0.8 - 3.0) / 4)  # 0.1
    loss.policy_loss.backward()
    close(data.log_prob.grad, [-2.0 * 1.1 / 4, 0.0, 0.0, 0.0])
    # a dual clip larger than the ratio changes nothing
    close(ppo_error(ppo_data(), dual_clip=5.0)[0].policy_loss, 0.35)


def test_ppo_value_loss_plain_and_clipped():
    data = ppo_data()
    loss, _ = ppo_error(data)
    # 0.5 * mean([1, 1, 0.25, 0])
    close(loss.value_loss, 0.5 * 2.25 / 4)
    loss.value_loss.backward()
    close(data.value.grad, [-0.25, 0.25, -0.125, 0.0])  # (value - returns) / B

    data = ppo_data()
    loss, _ = ppo_error(data, value_clip_ratio=0.2)
    # v_clip = old + clip(v - old, +-0.2) = [0.7, 2.3, 3.0, 0.8]
    # max(unclipped, clipped) = [max(1, 1.69), max(1, 1.69), 0.25, max(0, 0.64)]
    close(loss.value_loss, 0.5 * (1.69 + 1.69 + 0.25 + 0.64) / 4)  # 0.53375
    loss.value_loss.backward()
    # where the clipped (constant) error wins there is no gradient; sample 2 is inside the clip range
    close(data.value.grad, [0.0, 0.0, -0.125, 0.0])


def test_ppo_entropy_loss_is_negative_mean_entropy():
    loss, _ = ppo_error(ppo_data())
    close(loss.entropy_loss, -1.25)


def test_ppo_weight():
    loss, _ = ppo_error(ppo_data(weight=t([1.0, 0.0, 2.0, 1.0])), value_clip_ratio=0.2)
    close(loss.policy_loss, -(2.2 - 1.6 - 4.0) / 4)
    close(loss.value_loss, 0.5 * (1.69 + 0.5 + 0.64) / 4)
    close(loss.entropy_loss, -(0.5 + 3.0 + 2.0) / 4)


def test_ppo_kl_and_clip_fraction():
    loss, info = ppo_error(ppo_data(), clip_ratio=0.2)
    expected_kl = sum((r - 1.0) - math.log(r) for r in RATIOS) / 4  # 0.4765194
    close(info.approx_kl, expected_kl)
    close(info.clip_fraction, 0.75)  # |ratio - 1| = [0.1, 0.5, 0.5, 3] > 0.2
    close(ppo_error(ppo_data(), clip_ratio=0.6)[1].clip_fraction, 0.25)
    assert not info.approx_kl.requires_grad and not info.clip_fraction.requires_grad
    # identical policies: kl 0, nothing clipped, and the surrogate is -mean(A)
    data = ppo_data()
    same = data._replace(log_prob=data.old_log_prob.detach().clone().requires_grad_())
    loss, info = ppo_error(same)
    close(info.approx_kl, 0.0)
    close(info.clip_fraction, 0.0)
    close(loss.policy_loss, -(2.0 + 1.0 - 1.0 - 1.0) / 4)


def test_ppo_gradient_only_to_new_log_prob_value_and_entropy():
    data = ppo_data()
    loss, _ = ppo_error(data, dual_clip=3.0, value_clip_ratio=0.2)
    (loss.policy_loss + 0.5 * loss.value_loss + 0.01 * loss.entropy_loss).backward()
    assert data.log_prob.grad is not None and data.value.grad is not None
    close(data.entropy.grad, torch.full((4,), -0.01 / 4))
    for name in ("old_log_prob", "old_value", "advantage", "returns"):
        assert getattr(data, name).grad is None, name


def vanilla_policy_gradient(params, log_prob_fn, advantage):
    """Gradient of -mean(A * log pi(a)) w.r.t. params: what PPO must give at ratio 1."""
    (grad,) = torch.autograd.grad(-(advantage * log_prob_fn()).mean(), params)
    return grad


def test_ppo_with_categorical_distribution():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 3, generator=gen).requires_grad_()
    action = torch.randint(0, 3, (6,), generator=gen)
    advantage = torch.randn(6, generator=gen)
    old_logits = logits.detach() + 0.3 * torch.randn(6, 3, generator=gen)

    dist = Categorical(logits=logits)
    old_log_prob = Categorical(logits=old_logits).log_prob(action)
    data = PPOData(
        dist.log_prob(action), old_log_prob, dist.entropy(), torch.zeros(6), None, advantage, torch.zeros(6)
    )
    loss, info = ppo_error(data, clip_ratio=0.2)
    # reference from the probabilities directly
    new_p = torch.softmax(logits.detach(), -1).gather(-1, action.unsqueeze(-1)).squeeze(-1)
    old_p = torch.softmax(old_logits, -1).gather(-1, action.unsqueeze(-1)).squeeze(-1)
    ratio = new_p / old_p
    expected = -torch.min(ratio * advantage, ratio.clamp(0.8, 1.2) * advantage).mean()
    close(loss.policy_loss, expected)
    close(info.clip_fraction, ((ratio - 1).abs() > 0.2).float().mean())
    loss.policy_loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0

    # at ratio 1 the PPO gradient is the vanilla policy gradient
    logits.grad = None
    on_policy = PPOData(
        Categorical(logits=logits).log_prob(action),
        Categorical(logits=logits.detach()).log_prob(action),
        dist.entropy().detach(),
        torch.zeros(6),
        None,
        advantage,
        torch.zeros(6),
    )
    (grad,) = torch.autograd.grad(ppo_error(on_policy)[0].policy_loss, logits)
    close(
        grad, vanilla_policy_gradient(logits, lambda: Categorical(logits=logits).log_prob(action), advantage)
    )


def test_ppo_with_normal_distribution():
    gen = torch.Generator().manual_seed(1)
    mean = torch.randn(5, 2, generator=gen).requires_grad_()
    log_std = torch.full((2,), -0.5, requires_grad=True)
    action = torch.randn(5, 2, generator=gen)
    advantage = torch.randn(5, generator=gen)
    old_mean = mean.detach() + 0.2 * torch.randn(5, 2, generator=gen)

    def new_dist():
        return Normal(mean, log_std.exp())

    old_log_prob = Normal(old_mean, log_std.detach().exp()).log_prob(action).sum(-1)
    data = PPOData(
        new_dist().log_prob(action).sum(-1),
        old_log_prob,
        new_dist().entropy().sum(-1),
        torch.zeros(5),
        None,
        advantage,
        torch.zeros(5),
    )
    loss, info = ppo_error(data, clip_ratio=0.2)
    # reference with the Gaussian density written out
    std = log_std.detach().exp()

    def log_density(mu):
        return (-0.5 * ((action - mu) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)

    ratio = torch.exp(log_density(mean.detach()) - log_density(old_mean))
    expected = -torch.min(ratio * advantage, ratio.clamp(0.8, 1.2) * advantage).mean()
    close(loss.policy_loss, expected)
    close(info.approx_kl, ((ratio - 1) - ratio.log()).mean())
    # entropy of a diagonal Gaussian: sum_d 0.5 * log(2 pi e sigma^2), the same for every sample
    close(loss.entropy_loss, -2 * (0.5 * math.log(2 * math.pi * math.e) - 0.5))
    (loss.policy_loss + 0.01 * loss.entropy_loss).backward()
    assert mean.grad is not None and log_std.grad is not None

    on_policy = data._replace(
        log_prob=new_dist().log_prob(action).sum(-1),
        old_log_prob=new_dist().log_prob(action).sum(-1).detach(),
    )
    (grad,) = torch.autograd.grad(ppo_error(on_policy)[0].policy_loss, mean)
    close(grad, vanilla_policy_gradient(mean, lambda: new_dist().log_prob(action).sum(-1), advantage))


def test_ppo_bad_arguments():
    data = ppo_data()
    with pytest.raises(ValueError, match="clip_ratio"):
        ppo_error(data, clip_ratio=0.0)
    with pytest.raises(ValueError, match="dual_clip"):
        ppo_error(data, dual_clip=1.0)
    with pytest.raises(ValueError, match="value_clip_ratio"):
        ppo_error(data, value_clip_ratio=-0.1)
    with pytest.raises(ValueError, match="old_value"):
        ppo_error(data._replace(old_value=None), value_clip_ratio=0.2)
    with pytest.raises(ValueError, match="advantage"):
        ppo_error(data._replace(advantage=torch.zeros(4, 1)))
    with pytest.raises(ValueError, match="weight"):
        ppo_error(data._replace(weight=torch.ones(3)))
    with pytest.raises(ValueError, match="log_prob"):
        ppo_error(data._replace(log_prob=torch.zeros(4, 2)))
