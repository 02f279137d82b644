"""Google Research Football envs (needs the ``gfootball`` engine: see ``app_zoo/gfootball/README.md``)."""

from app_zoo.gfootball.envs.football import INSTALL, FootballEnv, football_unavailable_reason

__all__ = ["INSTALL", "FootballEnv", "football_unavailable_reason"]
