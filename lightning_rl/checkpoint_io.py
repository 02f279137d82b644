"""Crash-safe checkpoint files for Lightning."""

from __future__ import annotations

from typing import Any

from lightning_fabric.utilities.types import _PATH
from pytorch_lightning.plugins.io import TorchCheckpointIO

from lightning_rl.utils.io import atomic_save


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves go to a temporary file renamed over the target.

    A crash (or a full disk) during a save leaves the previous ``last.ckpt`` / ``best.ckpt`` intact,
    together with the replay buffer it carries. Local paths only: remote ``storage_options`` are refused.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}")
        atomic_save(checkpoint, path)
