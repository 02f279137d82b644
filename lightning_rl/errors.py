"""Failures ``lightning-rl`` reports as one ``error:`` line, without a traceback.

Every error a user can cause or fix (a bad config, a damaged checkpoint, a diverged run, a broken env)
derives from :class:`ReportedError`; ``lightning_rl.cli.main`` prints it as ``error: <message>`` and
exits with its ``exit_code``. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["ReportedError"]


class ReportedError(Exception):
    """A failure with a message that says what is wrong and where; exits with ``exit_code``."""

    exit_code: int = 1
