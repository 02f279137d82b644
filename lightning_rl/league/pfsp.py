"""Prioritized fictitious self-play (Vinyals et al., 2019): which opponents to play, by win rate."""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["Weighting", "pfsp_probabilities"]

Weighting = Literal["squared", "variance", "linear", "uniform"]


def pfsp_probabilities(win_rates: np.ndarray, weighting: Weighting = "squared") -> np.ndarray:
    """Matchmaking probabilities over opponents from the learner's win rates ``x`` against them.

    * ``"squared"``: ``(1 - x)^2``, the hardest opponents most (AlphaStar's main agents);
    * ``"variance"``: ``x (1 - x)``, the opponents the learner beats about half of the time (exploiters,
      and a main agent's games against opponents it struggles with);
    * ``"linear"``: ``1 - x``;
    * ``"uniform"``: every opponent alike (fictitious self-play).

    Where every weight is 0 (e.g. ``squared`` after beating everyone), the probabilities are uniform.

    Shapes: win_rates (K,) in [0, 1] -> (K,) summing to 1.
    """
    x = np.asarray(win_rates, dtype=np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"win_rates must be a non-empty 1-d array, got shape {x.shape}")
    if ((x < 0) | (x > 1)).any():
        raise ValueError(f"win rates must lie in [0, 1], got {x.tolist()}")
    weights = {
        "squared": lambda: (1 - x) ** 2,
        "variance": lambda: x * (1 - x),
        "linear": lambda: 1 - x,
        "uniform": lambda: np.ones_like(x),
    }
    if weighting not in weights:
        raise ValueError(f"weighting must be one of {sorted(weights)}, got {weighting!r}")
    w = weights[weighting]()
    total = w.sum()
    return w / total if total > 0 else np.full_like(x, 1.0 / len(x))
