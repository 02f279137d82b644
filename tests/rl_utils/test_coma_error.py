"""Hand-computed checks of COMA's counterfactual loss in ``lightning_rl.rl_utils.coma``."""

import math

import pytest
import torch
from tensor_helpers import close, t

from lightning_rl.rl_utils import COMAData, COMALoss, coma_error


def coma_data(**overrides):
    """One step, two agents, two actions: pi_0 = [0.5, 0.5], pi_1 = [0.75, 0.25]; Q_0 = [1, 3], Q_1 = [2, -2];
    actions (1, 0); TD(lambda) targets (2, 1)."""
    fields = dict(
        logits=t([[[0.0, 0.0], [math.log(3.0), 0.0]]], requires_grad=True),
        action=torch.tensor([[1, 0]]),
        q_value=t([[[1.0, 3.0], [2.0, -2.0]]], requires_grad=True),
        returns=t([[2.0, 1.0]]),
    )
    fields.update(overrides)
    return COMAData(**fields)


def test_coma_hand_example():
    data = coma_data()
    loss = coma_error(data)
    assert isinstance(loss, COMALoss)
    # Q taken (3, 2); baselines 0.5 * 1 + 0.5 * 3 = 2 and 0.75 * 2 + 0.25 * -2 = 1: advantages (1, 1)
    close(loss.policy_loss, -(math.log(0.5) + math.log(0.75)) / 2)
    close(loss.value_loss, 0.5 * ((3 - 2) ** 2 + (2 - 1) ** 2) / 2)
    entropy_1 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    close(loss.entropy_loss, -(math.log(2.0) + entropy_1) / 2)
    (loss.policy_loss + loss.value_loss).backward()
    # d policy / d logits = -advantage * (onehot - pi) / (B * N); the baseline is detached
    close(data.logits.grad, [[[0.25, -0.25], [-0.125, 0.125]]])
    # only the taken actions' Q regress on the targets: (Q - returns) / (B * N)
    close(data.q_value.grad, [[[0.0, 0.5], [0.5, 0.0]]])


def test_a_masked_action_adds_nothing_to_the_baseline():
    logits = t([[[0.0, 0.0, torch.finfo(torch.float32).min]] * 2])
    q = t([[[1.0, 3.0, 1e6]] * 2])
    loss = coma_error(coma_data(logits=logits, q_value=q, action=torch.tensor([[1, 0]])))
    # advantages 3 - 2 = 1 and 1 - 2 = -1 with pi = (0.5, 0.5, 0)
    close(loss.policy_loss, -(math.log(0.5) * 1 + math.log(0.5) * -1) / 2)


def test_coma_weight_and_bad_shapes():
    loss = coma_error(coma_data(weight=t([[2.0, 0.0]])))
    close(loss.value_loss, 0.5 * 2.0 / 2)
    with pytest.raises(ValueError, match="q_value"):
        coma_error(coma_data(q_value=torch.zeros(1, 2, 3)))
    with pytest.raises(ValueError, match="returns"):
        coma_error(coma_data(returns=torch.zeros(1, 3)))
    with pytest.raises(ValueError, match="logits"):
        coma_error(coma_data(logits=torch.zeros(2, 2)))
