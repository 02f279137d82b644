"""Crash-safe file writing for checkpoints and replay-buffer files."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

__all__ = ["atomic_directory", "atomic_save"]

_AT_FDCWD = -100  # <fcntl.h>: paths relative to the current directory
_RENAME_EXCHANGE = 2  # <linux/fs.h>


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj, path)`` such that ``path`` is either the old file or the complete new one.

    Writes to a temporary file in the same directory (``os.replace`` is only atomic within one
    filesystem), fsyncs it, renames it over ``path`` and fsyncs the directory so the rename itself
    survives a power loss. If anything raises, the temporary file is removed and ``path`` is untouched.
    Missing parent directories are created.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        # BaseException too: a KeyboardInterrupt mid-save must not leave a stray temp file.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    # Directory fsync is POSIX-only; on platforms without O_DIRECTORY (Windows) the rename is
    # already as durable as the OS allows.
    flags = getattr(os, "O_DIRECTORY", None)
    if flags is None:
        return
    try:
        dir_fd = os.open(directory, os.O_RDONLY | flags)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Write a whole directory so that ``path`` is either the old complete one or the new complete one.

    Yields an empty temporary directory beside ``path`` (same filesystem) to write into. When the block
    exits normally, every file in it and the directory itself are fsynced, then it takes ``path``'s
    place: renamed into place if ``path`` does not exist, else atomically exchanged with it (Linux
    ``renameat2(RENAME_EXCHANGE)``) and the old copy deleted. Where the exchange is unsupported (other
    systems, some filesystems) the old directory is first renamed aside to ``.<name>.old-*``: a crash
    between those two renames leaves the old copy there rather than at ``path``. If the block raises,
    the temporary directory is removed and ``path`` is untouched. Missing parents are created.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path} exists and is not a directory")
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
    try:
        yield tmp
        _fsync_tree(tmp)
        if not path.exists():
            os.rename(tmp, path)
            old = None
        elif _exchange(tmp, path):
            old = tmp  # the exchange left the previous copy under the temporary name
        else:
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=parent))
            os.replace(path, old)  # onto the empty directory just made: allowed by POSIX rename
            try:
                os.rename(tmp, path)
            except BaseException:
                os.replace(old, path)  # put the old copy back
                raise
        _fsync_dir(parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
        raise
    if old is not None:
        shutil.rmtree(old)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths; ``False`` where the system or filesystem cannot."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)  # glibc >= 2.28
    if renameat2 is None:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_tree(root: Path) -> None:
    for directory, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(directory))
