"""League training (nerveX's league): players, payoff, PFSP matchmaking, snapshots and ratings, as pure code
over state dicts (the callbacks that drive it are in ``lightning_rl.callbacks``)."""

from lightning_rl.league.league import League, Player, Role
from lightning_rl.league.payoff import Outcome, Payoff
from lightning_rl.league.pfsp import Weighting, pfsp_probabilities
from lightning_rl.league.ratings import EloRatings, TrueSkillRatings

__all__ = [
    "EloRatings",
    "League",
    "Outcome",
    "Payoff",
    "Player",
    "Role",
    "TrueSkillRatings",
    "Weighting",
    "pfsp_probabilities",
]
