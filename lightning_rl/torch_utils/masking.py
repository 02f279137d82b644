"""Legal-action masks carried in the observation: splitting them off and applying them.

An env with an action mask (``EnvSpec.action_mask``, e.g. a board game's legal moves) appends it to its
flat observation: ``[features (D) | mask (A)]``, 1 for a legal action. Networks see the features; the
mask decides which logits or Q-values count. A row with no legal action (the observation after a game
ended, which is never acted on) counts every action as legal, so nothing downstream meets ``-inf``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["mask_illegal", "random_legal_actions", "split_action_mask", "with_all_legal_fallback"]


def with_all_legal_fallback(legal: Tensor) -> Tensor:
    """``legal (*B, A)`` bool with every action legal in the rows that have none (a finished game's)."""
    return legal | ~legal.any(-1, keepdim=True)


def split_action_mask(obs: Tensor, n_actions: int) -> tuple[Tensor, Tensor]:
    """``obs (*B, D + A)`` -> ``features (*B, D)`` and ``legal (*B, A)`` bool (views of ``obs``)."""
    return obs[..., :-n_actions], with_all_legal_fallback(obs[..., -n_actions:] > 0.5)


def mask_illegal(values: Tensor, legal: Tensor) -> Tensor:
    """``values (*B, A)`` (logits or Q-values) with illegal actions at the dtype's lowest finite value:
    they get probability 0 under a softmax and never win an argmax or a max, and no ``-inf`` makes a
    product with 0 (a terminal bootstrap) NaN."""
    return values.masked_fill(~legal, torch.finfo(values.dtype).min)


def random_legal_actions(legal: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A uniformly random legal action per row of ``legal (B, A)`` (at least one True per row): the largest
    of i.i.d. uniform scores among the legal actions; ``(B,)`` int64 on ``legal``'s device."""
    scores = torch.rand(legal.shape, generator=generator, device=legal.device)
    return scores.masked_fill(~legal, -1.0).argmax(dim=-1)
