"""The fault budget of an env manager: when an env that keeps failing counts as broken.

Sporadic faults (a simulator that raises on 1% of its steps) are survived however long the episodes
are; a permanently broken env stops the run. An env is broken when

* ``max_retries + 1`` of its faults follow each other without a single successful step in between
  (an env that raises on every step, or on every reset or rebuild), or
* at least ``max_fault_rate`` of its last ``fault_window`` outcomes (successful steps and faults) are
  faults (an env that fails every other step never finishes a long episode).

Counting costs one vectorized add per step; the rest happens only when a fault occurs.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, fields

import numpy as np

from lightning_rl.errors import ReportedError
from lightning_rl.utils.checks import ConfigError, check_int, check_range


class EnvManagerError(ReportedError, RuntimeError):
    """An env is broken (its fault budget is spent) or the manager was misused; one line, exit code 1."""


@dataclass(frozen=True)
class FaultLimits:
    """The knobs of an env manager's fault budget, checked here (their one home).

    Args:
        max_retries: faults of one env in a row, without a successful step in between, that are retried;
            one more raises :class:`EnvManagerError`.
        max_fault_rate: an env whose faults make up at least this fraction of its last ``fault_window``
            outcomes is broken (``None``: no rate bound).
        fault_window: outcomes (steps and faults) of one env the rate is taken over.
    """

    max_retries: int = 3
    max_fault_rate: float | None = 0.5
    fault_window: int = 100

    def __post_init__(self) -> None:
        rate = self.max_fault_rate
        try:
            check_int("env_manager.max_retries", self.max_retries, 0)
            check_int("env_manager.fault_window", self.fault_window, 1)
            if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float)):
                raise ValueError(
                    f"env_manager.max_fault_rate must be a number in (0, 1] or null, got {rate!r}"
                )
            if rate is not None:
                check_range("env_manager.max_fault_rate", rate, 0, 1, low_open=True)
        except ValueError as err:  # a ConfigError: one line through the CLI, also from a DataModule
            raise ConfigError(str(err)) from None

    @property
    def faults_per_window(self) -> int | None:
        """Faults within ``fault_window`` outcomes that make an env broken (``None``: no rate bound)."""
        if self.max_fault_rate is None:
            return None
        return max(1, math.ceil(self.max_fault_rate * self.fault_window - 1e-9))


FAULT_KNOBS: tuple[str, ...] = tuple(field.name for field in fields(FaultLimits))


class FaultBudget:
    """Per-env fault accounting against :class:`FaultLimits` (see the module docstring).

    The manager calls :meth:`stepped` after every step with the envs whose step succeeded, and
    :meth:`fault` at every fault, which returns why the env now counts as broken (or ``None``).
    """

    def __init__(self, limits: FaultLimits, n_envs: int):
        self.limits = limits
        self.faults = np.zeros(n_envs, dtype=np.int64)  # per env, since the manager was built
        self.in_a_row = np.zeros(n_envs, dtype=np.int64)  # faults since the env's last successful step
        self._ok_steps = np.zeros(n_envs, dtype=np.int64)  # successful steps per env: the clock
        self._ok_at_fault = np.full(n_envs, -1, dtype=np.int64)  # the clock at the env's last fault
        k = limits.faults_per_window
        self._recent: list[deque[int]] | None = (
            None if k is None else [deque(maxlen=k) for _ in range(n_envs)]
        )

    def stepped(self, index: np.ndarray, ok: np.ndarray | None = None) -> None:
        """Envs ``index`` took a step; those where ``ok`` (default: all) succeeded."""
        self._ok_steps[index] += 1 if ok is None else ok

    def fault(self, i: int, after_step: bool = False) -> str | None:
        """Count a fault of env ``i``; ``after_step``: it directly follows a successful step of that env
        not yet reported to :meth:`stepped` (the reset after an episode ended). Returns why env ``i`` is
        broken now, or ``None`` while it is within budget."""
        clock = int(self._ok_steps[i]) + int(after_step)
        self.in_a_row[i] = 1 if clock != self._ok_at_fault[i] else self.in_a_row[i] + 1
        self._ok_at_fault[i] = clock
        self.faults[i] += 1
        limits = self.limits
        if self.in_a_row[i] > limits.max_retries:
            in_a_row = f"{self.in_a_row[i]} faults in a row without a successful step"
            return f"{in_a_row} (max_retries={limits.max_retries})"
        if self._recent is not None:
            outcomes = clock + int(self.faults[i])  # steps and faults of env i so far
            recent = self._recent[i]
            recent.append(outcomes)
            if len(recent) == recent.maxlen and outcomes - recent[0] < limits.fault_window:
                return (
                    f"{len(recent)} faults in its last {limits.fault_window} steps "
                    f"(max_fault_rate={limits.max_fault_rate}, fault_window={limits.fault_window})"
                )
        return None
