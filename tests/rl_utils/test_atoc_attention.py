"""Hand-computed checks of ATOC's attention loss in ``lightning_rl.rl_utils.atoc``."""

import math

import pytest
import torch
from tensor_helpers import close, t

from lightning_rl.rl_utils import atoc_attention_loss


def test_labels_are_the_min_max_normalized_gains():
    prob = t([[0.8, 0.3], [0.5, 0.6]], requires_grad=True)
    gain = t([[1.0, 3.0], [2.0, 1.0]])  # labels [[0, 1], [0.5, 0]]
    loss = atoc_attention_loss(prob, gain)
    expected = (
        -(math.log(0.2) + math.log(0.3) + 0.5 * math.log(0.5) + 0.5 * math.log(0.5) + math.log(0.4)) / 4
    )
    close(loss, expected)
    loss.backward()
    # d BCE / d p = (p - y) / (p (1 - p)) / n
    close(prob.grad, [[0.8 / (0.8 * 0.2) / 4, (0.3 - 1) / (0.3 * 0.7) / 4], [0.0, 0.6 / (0.6 * 0.4) / 4]])


def test_equal_gains_teach_no_initiation_and_shapes_must_match():
    loss = atoc_attention_loss(t([[0.5, 0.5]]), t([[2.0, 2.0]]))
    close(loss, math.log(2.0))  # labels 0 everywhere
    with pytest.raises(ValueError, match="delta_q"):
        atoc_attention_loss(torch.full((2, 3), 0.5), torch.zeros(2, 2))
