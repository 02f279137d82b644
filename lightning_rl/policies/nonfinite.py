"""Detecting non-finite loss terms, gradient norms and parameters of a policy's updates.

:class:`NonFiniteGuard` finds the first update whose checked values were not all finite. On the CPU it
looks at once (reading a CPU tensor costs no more than keeping it); on an accelerator it keeps the
updates' value tensors, still on the device, and reads them all in one copy when the policy asks
(:meth:`NonFiniteGuard.first_bad`), so updates never wait for the host.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from lightning_rl.errors import ReportedError

__all__ = ["NONFINITE_MODES", "NonFinite", "NonFiniteError", "NonFiniteGuard", "NonFiniteMode"]

NonFiniteMode = Literal["stop", "skip_step"]
NONFINITE_MODES: tuple[str, ...] = ("stop", "skip_step")


class NonFiniteError(ReportedError):
    """A policy's update produced a non-finite loss term, gradient norm or parameter; the run stopped
    before any checkpoint held it. Exit status 1, as any run that failed while training: the config
    was valid (2 is for config errors), and a script that retries or sweeps reads the one line."""

    exit_code = 1


@dataclass(frozen=True)
class NonFinite:
    """The first non-finite value seen: at which ``update`` (``train_iter`` after it), which ``term``
    (``loss/td``, ``grad_norm``, ``parameters of net.0.weight``) and its ``value`` (nan or +-inf)."""

    update: int
    term: str
    value: float


class NonFiniteGuard:
    """The first update whose values were not all finite.

    :meth:`record` takes one update's scalars as a ``(N,)`` tensor with their ``N`` names. A CPU tensor is
    checked at once (one sum and a read); an accelerator's is only kept (no kernel, no sync) until
    :meth:`first_bad` reads all kept ones in one copy, or ``max_pending`` of them piled up.
    ``defer=True`` keeps CPU tensors too (the tests' way to run the accelerator's path on the CPU).
    """

    def __init__(self, max_pending: int = 256, defer: bool | None = None) -> None:
        self.max_pending = max_pending
        self.defer = defer
        self.records = 0  # record() calls so far
        self._found: NonFinite | None = None
        self._pending: list[tuple[int, tuple[str, ...], Tensor]] = []

    def record(self, update: int, names: tuple[str, ...], values: Tensor) -> bool:
        """Check ``values`` (``(N,)``, named by ``names``) of ``update``; the first bad update is kept.
        Returns whether a non-finite value is known now (always ``False`` for values kept unread)."""
        self.records += 1
        if self._found is None:
            if not self.checks_at_once(values):
                self._pending.append((update, names, values))
                if len(self._pending) < self.max_pending:
                    return False
                self.first_bad()
            elif not math.isfinite(values.sum().item()):  # a sum is non-finite if any value is
                self._found = _first_nonfinite([(update, names, values)])
        return self._found is not None

    def checks_at_once(self, values: Tensor) -> bool:
        """Whether :meth:`record` checks these values at once (CPU ones, unless ``defer``)."""
        return not self.defer if self.defer is not None else values.device.type == "cpu"

    def first_bad(self) -> NonFinite | None:
        """The first non-finite update recorded so far, or ``None`` (a host read only when device values
        were recorded since the last call)."""
        if self._pending:
            pending, self._pending = self._pending, []
            if self._found is None:
                self._found = _first_nonfinite(pending)
        return self._found


def _first_nonfinite(records: list[tuple[int, tuple[str, ...], Tensor]]) -> NonFinite | None:
    """The first non-finite value of ``(update, names, values)`` records (one device-to-host copy)."""
    flat = torch.cat([values.detach().reshape(-1) for _, _, values in records]).cpu()
    bad = (~torch.isfinite(flat)).nonzero()
    if len(bad) == 0:  # the sum of finite values overflowed: nothing is wrong
        return None
    labels = [(update, name) for update, names, _ in records for name in names]
    update, term = labels[int(bad[0])]
    return NonFinite(update, term, float(flat[int(bad[0])]))
