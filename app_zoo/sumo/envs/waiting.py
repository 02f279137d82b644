"""The waiting time of every vehicle of an episode, read from SUMO through one TraCI subscription.

A vehicle *waits* while its speed is below 0.1 m/s (SUMO's definition). SUMO's accumulated waiting time
of a vehicle covers the last ``--waiting-time-memory`` seconds; the env sets that longer than an episode,
so it is the vehicle's whole waiting time so far (the ``waitingTime`` of SUMO's tripinfo output). A
vehicle that has left the network keeps the last value read, so measure often enough that no vehicle
waits between its last reading and its arrival (on this app's networks vehicles arrive at the end of a
free-flowing exit road).

All vehicles are read at once by a context subscription: the vehicles within a radius around a junction,
the radius spanning the whole network. SUMO then sends every vehicle's value with each simulation step's
answer, with no per-vehicle call (subscribing vehicle by vehicle costs a round trip each).
"""

from __future__ import annotations

import traci
import traci.constants as tc


class WaitingTimes:
    """Per-vehicle waiting times (s) of one simulation; call :meth:`update` after each advance.

    Args:
        conn: the simulation's TraCI connection.
        junction_id: centre of the context subscription (any junction of the network).
        radius: a distance (m) from the junction that reaches every point of the network.
    """

    def __init__(self, conn: traci.Connection, junction_id: str, radius: float) -> None:
        self._conn = conn
        self._junction_id = junction_id
        conn.junction.subscribeContext(
            junction_id, tc.CMD_GET_VEHICLE_VARIABLE, radius, [tc.VAR_ACCUMULATED_WAITING_TIME]
        )
        self._waiting: dict[str, float] = {}  # every vehicle that entered the network: its last reading
        self.update()

    def update(self) -> None:
        """Take the latest reading of every vehicle now in the network."""
        results = self._conn.junction.getContextSubscriptionResults(self._junction_id)
        for veh_id, values in results.items():
            self._waiting[veh_id] = values[tc.VAR_ACCUMULATED_WAITING_TIME]

    @property
    def n_vehicles(self) -> int:
        """Vehicles that entered the network so far."""
        return len(self._waiting)

    @property
    def total(self) -> float:
        """Total waiting time of all vehicles so far (s)."""
        return sum(self._waiting.values())

    @property
    def mean(self) -> float:
        """Mean waiting time per vehicle (s); 0 before the first vehicle enters."""
        return self.total / self.n_vehicles if self._waiting else 0.0
