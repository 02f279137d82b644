"""Silence what our own use of libraries makes them print, and nothing else.

Each filter names one message that says nothing the user can act on:

* Lightning's ``_pytree`` deprecation: Lightning's own code calling an API torch deprecated; not ours.
* Lightning's "try installing litlogger" tip on every run: an advertisement.
* LightningCLI's "args parameter ... and command line arguments" when ``serial_pipeline`` or a script
  passes ``args=``: giving ``args`` from Python is what those entry points do.
* ModelCheckpoint's "manual optimization ... pre-optimization state" note: RL policies optimize
  manually on purpose, and ``last.ckpt`` is meant to hold the state after the update.
* "Total length of ... across ranks is zero": the empty validation list the fit runs with (the Evaluator
  evaluates whole episodes itself).

wandb's "anonymous setting" warning is avoided where it starts (``RLWandbLogger`` does not pass it).
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["quiet_libraries"]

_WARNINGS = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"LightningCLI's args parameter is intended to run from within Python",
    r"Using ModelCheckpoint with manual optimization and every_n_train_steps",
    r"Total length of `\w+` across ranks is zero",
)


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def quiet_libraries() -> None:
    """Install the filters (idempotent)."""
    for message in _WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not any(isinstance(f, _DropTips) for f in logger.filters):
        logger.addFilter(_DropTips())
