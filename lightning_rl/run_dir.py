"""Claiming a run directory: concurrent runs in one ``default_root_dir`` never share one.

Lightning's loggers pick the next ``version_N`` by listing the directory, so two runs started together
both take ``version_0`` and overwrite each other's checkpoints, ``config.yaml`` and ``result.json``.
:func:`claim_version` creates the directory itself with an exclusive ``mkdir`` (atomic on POSIX and
Windows filesystems alike, NFS included): of several runs racing for ``version_N`` exactly one succeeds
and the others move on to ``N+1``. An existing directory is never reused, so a resumed run
(``fit --ckpt_path <old run>/checkpoints/last.ckpt``) writes into a new version and the old run's files
stay as they were.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from lightning_fabric.utilities.rank_zero import _get_rank

from lightning_rl.errors import ReportedError

__all__ = ["RunDirError", "claim_version"]

_VERSION = re.compile(r"^version_(\d+)$")


class RunDirError(ReportedError, OSError):
    """The run root cannot hold a new run directory (read-only, full, not a directory); one line naming
    the path, exit status 2."""

    exit_code = 2


def claim_version(root: str | os.PathLike[str]) -> int | None:
    """Create ``root/version_N`` for the lowest free ``N`` above every existing version and return
    ``N``; ``None`` on ranks other than 0 (Lightning broadcasts rank 0's log directory to them).

    Raises :class:`RunDirError` if ``root`` cannot be created or written.
    """
    if (_get_rank() or 0) != 0:
        return None
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        version = 1 + max((int(m[1]) for p in root.iterdir() if (m := _VERSION.match(p.name))), default=-1)
        while True:
            try:
                os.mkdir(root / f"version_{version}")  # exclusive: exactly one claimant succeeds
                return version
            except FileExistsError:
                version += 1
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            reason += " (the disk is full)"
        raise RunDirError(f"cannot create a run directory under {root}: {reason}") from err
