"""Crash-safe file writing for checkpoints and replay-buffer files."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from lightning_rl.utils.integrity import write_manifest

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; stale temp files are then judged by age alone
    fcntl = None  # type: ignore[assignment]

__all__ = ["atomic_directory", "atomic_save", "remove_stale_temp_files"]

# Names mkstemp / mkdtemp give the temporary files and directories below: ".<name>.<8 chars>.tmp".
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
_PROCESS_START = time.time()  # this module is imported at start-up, before any save
_umask_lock = threading.Lock()

_AT_FDCWD = -100  # <fcntl.h>: paths relative to the current directory
_RENAME_EXCHANGE = 2  # <linux/fs.h>


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj, path)`` such that ``path`` is either the old file or the complete new one.

    Writes to a temporary file in the same directory (``os.replace`` is only atomic within one
    filesystem), fsyncs it, renames it over ``path`` and fsyncs the directory so the rename itself
    survives a power loss. If anything raises, the temporary file is removed and ``path`` is untouched.
    Missing parent directories are created. The file gets the permissions of the user's umask.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    if not torch.serialization.get_crc32_options():  # the CRCs are what verify_torch_file checks
        raise RuntimeError("torch.serialization.set_crc32_options(False) is set: checkpoints need CRCs")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            _lock(fd)  # held until closed, after the rename: a live writer's file is never cleaned up
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it 0600; a checkpoint follows the umask
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
def atomic_directory(path: str | os.PathLike[str], manifest: bool = True) -> Iterator[Path]:
    """Write a whole directory so that ``path`` is either the old complete one or the new complete one.

    Yields an empty temporary directory beside ``path`` (same filesystem) to write into. When the block
    exits normally, every file in it and the directory itself are fsynced, then it takes ``path``'s
    place: renamed into place if ``path`` does not exist, else atomically exchanged with it (Linux
    ``renameat2(RENAME_EXCHANGE)``) and the old copy deleted. Where the exchange is unsupported (other
    systems, some filesystems) the old directory is first renamed aside to ``.<name>.old-*``: a crash
    between those two renames leaves the old copy there rather than at ``path``. If the block raises,
    the temporary directory is removed and ``path`` is untouched. Missing parents are created.

    With ``manifest`` (the default), ``checksums.json`` with every file's size and CRC-32 is written
    into the directory before it is swapped in (:func:`~lightning_rl.utils.integrity.verify_manifest`
    checks it). The directory and ``atomic_save``'s files get the permissions of the user's umask.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path} exists and is not a directory")
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
    lock_fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        _lock(lock_fd)  # held until the end: a live writer's directory is never cleaned up
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700
        yield tmp
        if manifest:
            write_manifest(tmp)
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
    finally:
        os.close(lock_fd)
    if old is not None:
        with contextlib.suppress(FileNotFoundError):  # unlocked now: a cleanup may have taken it
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


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)


def _umask() -> int:
    """The process umask, read without changing it where Linux tells it (``/proc/self/status``)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _umask_lock:  # os.umask can only be read by setting it: restore it at once
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def remove_stale_temp_files(root: str | os.PathLike[str], recursive: bool = True) -> list[Path]:
    """Remove the temporary files and directories that interrupted saves left below ``root``
    (``.last.ckpt.<random>.tmp`` from :func:`atomic_save`, ``.<dir>.<random>.tmp`` from
    :func:`atomic_directory`); returns what was removed.

    Only leftovers no live writer can own are removed: last changed before this process started, and
    not locked (every writer holds an exclusive ``flock`` on its temporary file or directory until it
    is renamed into place or removed). ``.<dir>.old-*`` copies are kept: they may be the only copy.
    """
    removed: list[Path] = []
    root = Path(root)
    if not root.is_dir():
        return removed
    for directory, dirs, files in os.walk(root):
        for name in [*files, *dirs]:
            if _TEMP_NAME.match(name) and _remove_if_stale(Path(directory, name)):
                removed.append(Path(directory, name))
        # never descend into temporary directories (removed whole or owned by a writer)
        dirs[:] = [d for d in dirs if recursive and not _TEMP_NAME.match(d)]
    return removed


def _remove_if_stale(path: Path) -> bool:
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode) or info.st_mtime >= _PROCESS_START:
            return False
        is_dir = stat.S_ISDIR(info.st_mode)
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if is_dir else 0))
    except OSError:
        return False
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False  # a live writer holds it
        if is_dir:
            shutil.rmtree(path)
        else:
            os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
