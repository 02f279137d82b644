"""Hand-computed checks of the A2C loss in ``lightning_rl.rl_utils.a2c``."""

import pytest
import torch
from tensor_helpers import close, t

from lightning_rl.rl_utils import A2CData, A2CLoss, a2c_error


def a2c_data(**overrides):
    """log_prob = [-1, -0.5], advantage = [2, -1], value = [1, 3], returns = [2, 1], entropy = [0.5, 0.3]."""
    fields = dict(
        log_prob=t([-1.0, -0.5], requires_grad=True),
        entropy=t([0.5, 0.3], requires_grad=True),
        value=t([1.0, 3.0], requires_grad=True),
        advantage=t([2.0, -1.0], requires_grad=True),
        returns=t([2.0, 1.0], requires_grad=True),
    )
    fields.update(overrides)
    return A2CData(**fields)


def test_a2c_hand_example():
    data = a2c_data()
    loss = a2c_error(data)
    assert isinstance(loss, A2CLoss)
    close(loss.policy_loss, -(-2.0 + 0.5) / 2)  # -mean(log_prob * advantage) = 0.75
    close(loss.value_loss, 0.5 * (1.0 + 4.0) / 2)  # 1.25
    close(loss.entropy_loss, -0.4)
    (loss.policy_loss + 0.5 * loss.value_loss + 0.01 * loss.entropy_loss).backward()
    close(data.log_prob.grad, [-1.0, 0.5])  # -advantage / B
    close(data.value.grad, [0.5 * -0.5, 0.5 * 1.0])  # 0.5 * (value - returns) / B
    close(data.entropy.grad, [-0.005, -0.005])
    assert data.advantage.grad is None and data.returns.grad is None


def test_a2c_weight():
    loss = a2c_error(a2c_data(weight=t([2.0, 0.0])))
    close(loss.policy_loss, 2.0)  # -mean([2 * -2, 0])
    close(loss.value_loss, 0.5)  # 0.5 * mean([2 * 1, 0])
    close(loss.entropy_loss, -0.5)  # -mean([2 * 0.5, 0])


def test_a2c_bad_arguments():
    with pytest.raises(ValueError, match="returns"):
        a2c_error(a2c_data(returns=torch.zeros(3)))
    with pytest.raises(ValueError, match="log_prob"):
        a2c_error(a2c_data(log_prob=torch.zeros(2, 1)))
