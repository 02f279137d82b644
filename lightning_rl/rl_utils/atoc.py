"""ATOC's attention-unit loss (Jiang & Lu, 2018): learn when communicating helps, a pure tensor function."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lightning_rl.rl_utils._checks import check_shape

__all__ = ["atoc_attention_loss"]


def atoc_attention_loss(
    initiate_prob: torch.Tensor, delta_q: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """Binary cross-entropy of the attention unit's initiation probabilities against how much each agent's
    communication raised its group's Q.

    ``delta_q[b, i] = mean_{j in G_i} (Q_j(o_j, a_j | i's group communicates) - Q_j(o_j, a_j))``; the
    labels are ``delta_q`` min-max normalized over the batch to ``[0, 1]`` (detached), as in the paper, so
    the agents whose communication helps most learn to initiate::

        loss = -mean(y log p + (1 - y) log(1 - p)),  y = (delta_q - min) / (max - min + eps)

    Shapes: initiate_prob, delta_q :math:`(B, N)` -> :math:`()`.
    """
    check_shape("delta_q", delta_q, initiate_prob.shape, "(B, N)")
    delta_q = delta_q.detach()
    label = (delta_q - delta_q.min()) / (delta_q.max() - delta_q.min() + eps)
    return F.binary_cross_entropy(initiate_prob, label)
