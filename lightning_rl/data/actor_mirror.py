"""A versioned copy of the learner's policy for collection that runs beside training (nerveX's actor).

Both asynchronous paths use it: the off-policy collector thread refreshes its actor every few updates,
the on-policy one before each rollout. The learner :meth:`~ActorMirror.publish`\\ es a snapshot of its
weights with their version (``train_iter``); the collector :meth:`~ActorMirror.sync`\\ s the newest
snapshot into its actor before acting. The copy lives on the CPU and never receives gradients, so the
optimizer's in-place updates never race with acting. Remote actors on Ray take the same two calls,
with the snapshot sent through Ray's object store (:mod:`lightning_rl.data.actors.ray_pool`).
"""

from __future__ import annotations

import copy
import threading

import torch

from lightning_rl.contract import Actor

__all__ = ["ActorMirror", "collecting_copy", "weights_snapshot"]


def collecting_copy(policy: Actor) -> Actor:
    """A copy of ``policy`` to collect with: on the CPU, no gradients (``deepcopy`` drops a
    ``LightningModule``'s trainer reference)."""
    return copy.deepcopy(policy).cpu().requires_grad_(False)


def weights_snapshot(policy: Actor) -> dict[str, torch.Tensor]:
    """``policy``'s state dict as detached CPU copies (safe from the optimizer's in-place updates)."""
    return {name: value.detach().to("cpu", copy=True) for name, value in policy.state_dict().items()}


class ActorMirror:
    """The collecting copy of a policy and the newest weights the learner published for it.

    Args:
        policy: the learner's policy (a ``LightningModule``: ``deepcopy`` drops its trainer reference).
    """

    def __init__(self, policy: Actor):
        self.actor = collecting_copy(policy)
        self.version = policy.train_iter  # train_iter of the weights the actor holds
        self._published: tuple[dict[str, torch.Tensor], int] | None = None
        self._lock = threading.Lock()

    @property
    def published_version(self) -> int:
        """Version of the newest published weights (the actor's own when nothing is pending)."""
        with self._lock:
            return self.version if self._published is None else self._published[1]

    def publish(self, policy: Actor) -> None:
        """Learner side: snapshot ``policy``'s weights (copies, on the CPU) as version ``train_iter``."""
        state = weights_snapshot(policy)
        with self._lock:
            self._published = (state, policy.train_iter)

    def sync(self) -> bool:
        """Collector side: load the newest published weights into :attr:`actor`; ``False`` if none."""
        with self._lock:
            published, self._published = self._published, None
        if published is None:
            return False
        state, self.version = published
        self.actor.load_state_dict(state)
        return True
