"""Callbacks (installed as ``lightning_rl.callbacks``): evaluation, progress, league and self-play, …"""

from lightning_rl.callbacks.data_metrics import DataMetrics
from lightning_rl.callbacks.evaluator import Evaluator
from lightning_rl.callbacks.league import LeagueCallback, PolicyOpponent, SelfPlayCallback
from lightning_rl.callbacks.progress import RLProgressBar

__all__ = [
    "DataMetrics",
    "Evaluator",
    "LeagueCallback",
    "PolicyOpponent",
    "RLProgressBar",
    "SelfPlayCallback",
]
