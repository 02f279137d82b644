"""Callbacks (installed as ``lightning_rl.callbacks``): evaluation, progress display, …"""

from lightning_rl.callbacks.evaluator import Evaluator
from lightning_rl.callbacks.progress import RLProgressBar

__all__ = ["Evaluator", "RLProgressBar"]
