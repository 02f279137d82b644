"""Crash-safe, verified checkpoint files for Lightning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightning_fabric.utilities.types import _PATH
from pytorch_lightning.plugins.io import TorchCheckpointIO

from lightning_rl.utils.integrity import verify_torch_file
from lightning_rl.utils.io import atomic_save, remove_stale_temp_files


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves go to a temporary file renamed over the target, and whose loads
    verify the file first.

    A crash (or a full disk) during a save leaves the previous ``last.ckpt`` / ``best.ckpt`` intact,
    together with the replay buffer it carries; the temporary files such a crash leaves are removed by
    the next run that saves into the same directory or resumes from it (:func:`clean_run_dir`). A
    damaged checkpoint (any member's CRC-32, truncation, not a checkpoint at all) fails to load with a
    one-line :class:`~lightning_rl.utils.integrity.CheckpointError` naming the file. Local paths only:
    remote ``storage_options`` are refused.
    """

    def __init__(self) -> None:
        super().__init__()
        self._cleaned: set[Path] = set()

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}")
        self._clean_once(Path(path).parent, recursive=False)
        atomic_save(checkpoint, path)

    def load_checkpoint(
        self,
        path: _PATH,
        map_location: Callable | Any = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        verify_torch_file(path)
        self._clean_once(run_dir_of(path), recursive=True)
        return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)

    def _clean_once(self, directory: Path, recursive: bool) -> None:
        key = directory.resolve()
        if key not in self._cleaned:
            self._cleaned.add(key)
            clean_run_dir(directory, recursive)


def run_dir_of(ckpt_path: _PATH) -> Path:
    """The run directory a checkpoint belongs to: ``<run>/checkpoints/x.ckpt`` → ``<run>``."""
    parent = Path(ckpt_path).parent
    return parent.parent if parent.name == "checkpoints" else parent


def clean_run_dir(directory: _PATH, recursive: bool = True) -> None:
    """Remove what interrupted saves left in a run directory (temporary checkpoint files, replay
    directories half written); files a live writer may own are kept
    (:func:`~lightning_rl.utils.io.remove_stale_temp_files`). Call it when a run starts in or resumes
    from ``directory``."""
    for path in remove_stale_temp_files(directory, recursive=recursive):
        print(f"removed {path}: left by an interrupted save")
