"""Signal timing of one intersection: its green phases, the yellow between them and the min-green rule.

Pure bookkeeping, no SUMO calls. States are SUMO's signal strings, one character per controlled link
(``G``/``g`` green, ``y`` yellow, ``r`` red; see the SUMO docs on traffic lights). The env installs
:meth:`TrafficLight.program` in SUMO once per episode: every green held until the env switches, and a
yellow for each ordered pair of greens that hands over to the target green by itself. A switch is then
one ``setPhase`` call, and SUMO times the yellow within the simulation step it is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

GREEN = "Gg"
GREEN_HOLD_S = 1e6  # a green of the env's program lasts until the env switches it


class ProgramPhase(NamedTuple):
    """One phase of a SUMO signal program; ``next``: the index of the phase that follows it (empty:
    the next one in the program), as ``traci.trafficlight.Phase`` takes it."""

    duration: float
    state: str
    next: tuple[int, ...] = ()


def green_phases(states: Sequence[str]) -> tuple[str, ...]:
    """The green phases of a signal program: states with a green link and no yellow one, in order."""
    return tuple(s for s in states if any(c in GREEN for c in s) and "y" not in s)


def yellow_between(current: str, target: str) -> str:
    """The transition from green state ``current`` to ``target``: links that lose green show yellow."""
    if len(current) != len(target):
        raise ValueError(f"signal states differ in length: {current!r} and {target!r}")
    return "".join("y" if c in GREEN and t not in GREEN else c for c, t in zip(current, target, strict=True))


@dataclass
class TrafficLight:
    """One intersection under the env's control.

    Attributes:
        tls_id: SUMO's id of the traffic light.
        greens: the green states it chooses from (index = phase number in the observation and action).
        lanes: its incoming lanes, in the order the observation lists their queues.
        phase: the current (or, during a yellow, the next) green phase.
        green_start: sim time at which the current green began (after its yellow).
    """

    tls_id: str
    greens: tuple[str, ...]
    lanes: tuple[str, ...]
    phase: int = 0
    green_start: float = 0.0

    def __post_init__(self) -> None:
        if len(self.greens) < 2:
            raise ValueError(
                f"traffic light {self.tls_id!r} has {len(self.greens)} green phase(s) in its program; "
                "the env needs at least 2 to choose from"
            )

    @property
    def n_phases(self) -> int:
        return len(self.greens)

    def program(self, yellow_time: float) -> list[ProgramPhase]:
        """The env's program: greens ``0..n-1`` (held), then, when ``yellow_time > 0``, the yellow from
        ``i`` to ``j`` for each ``i != j`` (ordered by ``i``, then ``j``), followed by green ``j``."""
        phases = [ProgramPhase(GREEN_HOLD_S, state) for state in self.greens]
        if yellow_time > 0:
            phases += [
                ProgramPhase(yellow_time, yellow_between(self.greens[i], self.greens[j]), next=(j,))
                for i in range(self.n_phases)
                for j in range(self.n_phases)
                if i != j
            ]
        return phases

    def switch_index(self, target: int, yellow_time: float) -> int:
        """The index in :meth:`program` to jump to for a switch to green ``target``."""
        if yellow_time <= 0:
            return target
        n = self.n_phases
        return n + self.phase * (n - 1) + (target if target < self.phase else target - 1)

    def restart(self, now: float) -> None:
        """Back to green phase 0, begun at ``now``."""
        self.phase = 0
        self.green_start = now

    def may_switch(self, now: float, min_green: float) -> bool:
        """Whether the current green has lasted ``min_green`` seconds (a switch is honoured)."""
        return now - self.green_start >= min_green

    def switch(self, target: int, green_start: float) -> None:
        """Record a switch to ``target``, whose green begins at ``green_start``."""
        self.phase = target
        self.green_start = green_start
