"""SUMO traffic-signal control envs: ``from app_zoo.sumo.envs import TrafficSignalEnv``."""

# sumo_process first: without TraCI its import error says what to install
from app_zoo.sumo.envs.sumo_process import SumoSimulation, sumo_unavailable_reason
from app_zoo.sumo.envs.traffic_signal_env import TrafficSignalEnv, TrafficSignalSim

__all__ = ["SumoSimulation", "TrafficSignalEnv", "TrafficSignalSim", "sumo_unavailable_reason"]
