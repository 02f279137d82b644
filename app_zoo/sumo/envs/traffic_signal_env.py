"""Traffic-signal control of every signalized intersection of a SUMO network (nerveX's app_zoo/sumo).

One env step is one decision for all intersections, every ``delta_t`` simulated seconds:

* **action**: the green phase each intersection shows next, as one joint ``Discrete(n_1 * ... * n_K)``
  action (so a DQN drives the whole network): intersection ``k`` (traffic lights sorted by id) gets
  phase ``(action // (n_1 * ... * n_{k-1})) % n_k``. On the shipped 2x2 grid every intersection has two
  green phases (north-south, east-west): 16 actions, ``action = sum_k phase_k * 2**k`` with k over
  A0, A1, B0, B1. An intersection asked for a different phase switches only once its current green has
  lasted ``min_green`` seconds (else the request is ignored); a switch shows ``yellow_time`` seconds of
  yellow first (links that lose their green), inside the same ``delta_t`` window.
* **observation** (float32 in [0, 1]), per intersection in the same order: the queue of each incoming
  lane (halting vehicles / lane capacity at 7.5 m per vehicle), the current green phase one-hot, and
  1 if a switch would be honoured now (min green reached), else 0.
* **reward**: the reduction of the total waiting time of the episode's vehicles over the step,
  ``(W_before - W_after) * reward_scale`` (never positive), where ``W`` sums each vehicle's accumulated
  waiting time (speed < 0.1 m/s) since it entered, over all vehicles that entered, also those that
  left. The episode return is thus ``-reward_scale * W`` at the horizon: minimizing total waiting time.
* **episode**: ``episode_seconds`` of simulation, then truncated (never terminated).
* **info**: ``sim_time``, ``mean_waiting_time`` (``W`` / vehicles that entered: the metric the
  baseline comparison reports), ``total_waiting_time`` (``W``), ``vehicles`` (entered so far),
  ``halting`` (stopped on incoming lanes now) and ``pending`` (vehicles not yet inserted: a backlog).

The reset seed is SUMO's ``--seed``, which draws the random arrivals of the route file's flows, so the
same seed replays the same traffic for every controller (``sumo --seed S`` replays it outside the env).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import sumolib
import traci
import traci.constants as tc

from app_zoo.sumo.envs.signals import TrafficLight, green_phases
from app_zoo.sumo.envs.sumo_process import SumoSimulation
from app_zoo.sumo.envs.waiting import WaitingTimes
from lightning_rl.envs import BaseEnv, EnvInfo
from lightning_rl.utils.checks import check_int, check_positive

NETWORKS_DIR = Path(__file__).resolve().parents[1] / "networks"
VEHICLE_SPACE_M = 7.5  # lane length per queued vehicle (5 m car + 2.5 m gap): a lane's queue capacity
SEED_HIGH = 2**31 - 1  # SUMO's --seed is an int
PROGRAM_ID = "lightning_rl"  # the signal program the env installs (TrafficLight.program)
HALTING = tc.LAST_STEP_VEHICLE_HALTING_NUMBER  # vehicles slower than 0.1 m/s on a lane


def resolve_network_file(field: str, path: str | Path) -> Path:
    """``path`` as is when absolute, else relative to ``app_zoo/sumo/networks``; it must exist."""
    resolved = Path(path) if Path(path).is_absolute() else NETWORKS_DIR / path
    if not resolved.is_file():
        raise ValueError(
            f"{field}: {str(path)!r} is not a file (relative paths are resolved against {NETWORKS_DIR})"
        )
    return resolved


@dataclass
class NetworkLayout:
    """What the env reads from a network file.

    Attributes:
        lights: the traffic lights, sorted by id, with the green phases of their (first) program.
        lane_capacity: queue capacity (vehicles) of each of their incoming lanes.
        junction: a junction of the network (the centre of the env's vehicle subscription).
        radius: a distance from any junction that reaches every point of the network (m).
    """

    lights: list[TrafficLight]
    lane_capacity: dict[str, float]
    junction: str
    radius: float


def read_network(net_file: Path) -> NetworkLayout:
    """The traffic lights and geometry of ``net_file``."""
    net = sumolib.net.readNet(str(net_file), withPrograms=True)
    lights = []
    for tls in sorted(net.getTrafficLights(), key=lambda t: t.getID()):
        programs = tls.getPrograms()
        program = programs[min(programs)]
        links = sorted(tls.getConnections(), key=lambda link: link[2])  # (in lane, out lane, link index)
        lights.append(
            TrafficLight(
                tls.getID(),
                green_phases([phase.state for phase in program.getPhases()]),
                tuple(dict.fromkeys(in_lane.getID() for in_lane, _, _ in links)),
            )
        )
    if not lights:
        raise ValueError(f"net_file: {net_file} has no traffic lights to control")
    capacity = {
        lane: max(1.0, net.getLane(lane).getLength() / VEHICLE_SPACE_M) for tl in lights for lane in tl.lanes
    }
    return NetworkLayout(lights, capacity, net.getNodes()[0].getID(), net.getBBoxDiameter() + 1.0)


class TrafficSignalSim(gym.Env):
    """The SUMO env itself; build it through :class:`TrafficSignalEnv` (config dict, ``info()``).

    Args: as :attr:`TrafficSignalEnv.default_config` documents.
    """

    def __init__(
        self,
        net_file: str,
        route_file: str,
        delta_t: int,
        yellow_time: int,
        min_green: int,
        episode_seconds: int,
        reward_scale: float,
        use_gui: bool,
    ) -> None:
        check_int("delta_t", delta_t, 1)
        check_int("yellow_time", yellow_time, 0)
        check_int("min_green", min_green, 0)
        check_int("episode_seconds", episode_seconds, delta_t)
        check_positive(reward_scale=reward_scale)
        if yellow_time >= delta_t:
            raise ValueError(f"yellow_time must be < delta_t ({delta_t}), got {yellow_time}")
        if episode_seconds % delta_t:
            raise ValueError(
                f"episode_seconds must be a multiple of delta_t ({delta_t}), got {episode_seconds}"
            )
        self.net_file = resolve_network_file("net_file", net_file)
        self.route_file = resolve_network_file("route_file", route_file)
        self.delta_t = delta_t
        self.yellow_time = yellow_time
        self.min_green = min_green
        self.episode_seconds = episode_seconds
        self.reward_scale = reward_scale
        self.use_gui = use_gui
        self.layout = read_network(self.net_file)
        self.lights = self.layout.lights
        obs_size = sum(len(tl.lanes) + tl.n_phases + 1 for tl in self.lights)
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(obs_size,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(math.prod(tl.n_phases for tl in self.lights))
        self.max_steps = episode_seconds // delta_t
        self.sim: SumoSimulation | None = None
        self._now = 0.0
        self._waiting: WaitingTimes | None = None

    # --- gymnasium API ---------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        sumo_seed = seed if seed is not None else int(self.np_random.integers(SEED_HIGH))
        self._close_sim()
        self.sim = SumoSimulation(self._sumo_args(sumo_seed), gui=self.use_gui)
        conn = self.sim.conn
        self._now = 0.0
        for tl in self.lights:
            tl.restart(self._now)
            phases = [
                traci.trafficlight.Phase(p.duration, p.state, next=p.next)
                for p in tl.program(self.yellow_time)
            ]
            program = traci.trafficlight.Logic(PROGRAM_ID, 0, 0, phases)  # starts in green 0
            conn.trafficlight.setProgramLogic(tl.tls_id, program)
            for lane in tl.lanes:
                conn.lane.subscribe(lane, [HALTING])
        conn.simulation.subscribe([tc.VAR_PENDING_VEHICLES])
        self._waiting = WaitingTimes(conn, self.layout.junction, self.layout.radius)
        return self._observe(), self._info()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.sim is None:
            raise RuntimeError("step() called before reset()")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an int in [0, {self.action_space.n}), got {action!r}")
        conn = self.sim.conn
        switching = [
            (tl, target)
            for tl, target in zip(self.lights, self.decode_action(int(action)), strict=True)
            if target != tl.phase and tl.may_switch(self._now, self.min_green)
        ]
        for tl, target in switching:  # SUMO shows the yellow, then the green (see TrafficLight.program)
            conn.trafficlight.setPhase(tl.tls_id, tl.switch_index(target, self.yellow_time))
            tl.switch(target, green_start=self._now + self.yellow_time)
        self._now += self.delta_t
        conn.simulationStep(self._now)
        before = self._waiting.total
        self._waiting.update()
        reward = (before - self._waiting.total) * self.reward_scale
        truncated = self._now >= self.episode_seconds
        return self._observe(), reward, False, truncated, self._info()

    def close(self) -> None:
        self._close_sim()

    # --- helpers ---------------------------------------------------------------------------------
    def decode_action(self, action: int) -> list[int]:
        """The green phase of each intersection that joint ``action`` asks for (traffic-light order)."""
        phases = []
        for tl in self.lights:
            action, phase = divmod(action, tl.n_phases)
            phases.append(phase)
        return phases

    def encode_action(self, phases: Sequence[int]) -> int:
        """The joint action asking intersection ``k`` for ``phases[k]`` (inverse of :meth:`decode_action`)."""
        action = 0
        for tl, phase in zip(reversed(self.lights), reversed(phases), strict=True):
            action = action * tl.n_phases + phase
        return action

    def _sumo_args(self, seed: int) -> list[str]:
        return [
            *("--net-file", str(self.net_file), "--route-files", str(self.route_file)),
            *("--seed", str(seed)),
            # accumulated waiting time = the whole waiting time of a vehicle (not only its last 100 s)
            *("--waiting-time-memory", str(self.episode_seconds + 1)),
            *("--time-to-teleport", "-1"),  # jammed vehicles stay and wait: no teleports hiding a jam
            # no schema lookups (without SUMO_HOME SUMO would fetch the schemas from its website)
            *("--xml-validation", "never", "--xml-validation.routes", "never"),
            *("--no-step-log", "--no-warnings"),
            *(("--start", "--quit-on-end") if self.use_gui else ()),
        ]

    def _observe(self) -> np.ndarray:
        halting = self.sim.conn.lane.getAllSubscriptionResults()
        capacity = self.layout.lane_capacity
        parts = []
        for tl in self.lights:
            queues = [halting[lane][HALTING] / capacity[lane] for lane in tl.lanes]
            parts.append(np.minimum(queues, 1.0))
            parts.append(np.eye(tl.n_phases)[tl.phase])
            parts.append([float(tl.may_switch(self._now, self.min_green))])
        return np.concatenate(parts).astype(np.float32)

    def _info(self) -> dict[str, float]:
        conn = self.sim.conn
        halting = conn.lane.getAllSubscriptionResults()
        return {
            "sim_time": self._now,
            "mean_waiting_time": self._waiting.mean,
            "total_waiting_time": self._waiting.total,
            "vehicles": self._waiting.n_vehicles,
            "halting": sum(values[HALTING] for values in halting.values()),
            "pending": len(conn.simulation.getSubscriptionResults()[tc.VAR_PENDING_VEHICLES]),
        }

    def _close_sim(self) -> None:
        if self.sim is not None:
            self.sim.close()
            self.sim = None


class TrafficSignalEnv(BaseEnv):
    """Signal control of a SUMO network from a config dict: ``TrafficSignalEnv(cfg={"delta_t": 5})``.

    Config (defaults: the shipped 2x2 grid):
        net_file: SUMO network (``.net.xml``); every traffic light in it is controlled. Relative paths
            are resolved against ``app_zoo/sumo/networks``.
        route_file: SUMO demand (``.rou.xml``), resolved the same way.
        delta_t: simulated seconds per env step (one decision).
        yellow_time: seconds of yellow when an intersection switches (< ``delta_t``).
        min_green: seconds a green must last before a switch is honoured.
        episode_seconds: simulated seconds per episode (a multiple of ``delta_t``).
        reward_scale: factor on the waiting-time reward.
        use_gui: run ``sumo-gui`` to watch (one window per env).
    """

    default_config: ClassVar[Mapping[str, Any]] = {
        "net_file": "grid2x2/grid2x2.net.xml",
        "route_file": "grid2x2/grid2x2.rou.xml",
        "delta_t": 5,
        "yellow_time": 3,
        "min_green": 10,
        "episode_seconds": 1800,
        "reward_scale": 0.01,
        "use_gui": False,
    }

    def _build(self, cfg: dict[str, Any]) -> gym.Env:
        return TrafficSignalSim(**cfg)

    def reward_space(self) -> gym.spaces.Box:
        return gym.spaces.Box(-np.inf, 0.0, shape=(), dtype=np.float32)

    def info(self) -> EnvInfo:  # type: ignore[override]
        return replace(super().info(), max_episode_steps=self.env.max_steps)
