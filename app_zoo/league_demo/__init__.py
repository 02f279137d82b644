"""The league's matrix-game check (nerveX's and DI-engine's ``league_demo``): a two-action zero-sum game
with a mixed Nash equilibrium, as a PettingZoo AEC game (``env_id: app_zoo.league_demo.matrix_game``) and
as a seconds-long run of :class:`~lightning_rl.league.League` matchmaking (:mod:`.demo`)."""

from app_zoo.league_demo.matrix_game import NASH, PAYOFF, MatrixGame, env, exploitability

__all__ = ["NASH", "PAYOFF", "MatrixGame", "env", "exploitability"]
