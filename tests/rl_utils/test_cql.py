"""Hand-computed checks of the conservative Q-learning penalty ``lightning_rl.rl_utils.cql_penalty``."""

import math

import pytest
import torch

from lightning_rl.rl_utils import cql_penalty


def test_cql_penalty_matches_a_hand_computed_value_and_gradient():
    q = torch.tensor([[1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    action = torch.tensor([0, 1])
    penalty = cql_penalty(q, action)
    # row 0: log(e^1 + e^2) - 1 = log(1 + e) = 1.3133; row 1: log(e^0 + e^0) - 0 = log 2
    expected = (math.log(1 + math.e) + math.log(2)) / 2
    assert penalty.item() == pytest.approx(expected, rel=1e-6)
    penalty.backward()
    # d/dq = (softmax(q) - onehot(action)) / B: down on the soft maximum, up on the data action
    softmax0 = torch.softmax(torch.tensor([1.0, 2.0]), 0)
    expected_grad = torch.stack([softmax0 - torch.tensor([1.0, 0.0]), torch.tensor([0.5, -0.5])]) / 2
    torch.testing.assert_close(q.grad, expected_grad)


def test_cql_penalty_weights_samples_and_ignores_a_constant_shift():
    q = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    action = torch.tensor([0, 1])
    weighted = cql_penalty(q, action, weight=torch.tensor([2.0, 0.0]))
    assert weighted.item() == pytest.approx(math.log(1 + math.e), rel=1e-6)  # (2 * row 0 + 0 * row 1) / 2
    shifted = cql_penalty(q + torch.tensor([[5.0], [-3.0]]), action)
    torch.testing.assert_close(shifted, cql_penalty(q, action))


def test_cql_penalty_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"q must have shape \(B, A\), got \(3,\)"):
        cql_penalty(torch.zeros(3), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"action must have shape \(B,\) = \(2,\), got \(3,\)"):
        cql_penalty(torch.zeros(2, 4), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"weight must have shape \(B,\) = \(2,\), got \(2, 1\)"):
        cql_penalty(torch.zeros(2, 4), torch.zeros(2, dtype=torch.int64), weight=torch.ones(2, 1))
