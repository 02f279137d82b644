"""Remote actors: collection in other processes, on this machine or across a Ray cluster."""

from lightning_rl.data.actors.ray_pool import RayActorPool, RaySettings, RemoteActorError
from lightning_rl.data.actors.worker import CollectorWorker, WorkerResult

__all__ = ["CollectorWorker", "RayActorPool", "RaySettings", "RemoteActorError", "WorkerResult"]
