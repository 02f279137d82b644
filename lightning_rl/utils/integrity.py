"""Checksums of saved files, verified before anything is loaded from them.

- ``torch.save`` files (checkpoints, a replay directory's ``state.pt``) are zip archives whose members
  carry CRC-32s (torch writes real ones: ``torch.serialization.get_crc32_options()``), but ``torch.load``
  never checks them, so a flipped byte in tensor data loads silently. :func:`verify_torch_file` reads
  every member through :mod:`zipfile`, which checks each CRC (~1 GB/s); the file stays a plain
  ``torch.load(path, weights_only=True)`` file, and checkpoints written before this check are verified
  the same way.
- Directories (replay buffers, offline datasets) get a manifest, ``checksums.json``, with the size and
  CRC-32 of every file, written by :func:`~lightning_rl.utils.io.atomic_directory` and checked by
  :func:`verify_manifest`. Directories written before manifests existed have none: their loaders' own
  checks (sizes, the replay rows' CRC in ``state.pt``) are all that is verified then.

CRC-32 detects accidental damage (bit rot, truncation, an editor, a partial copy), not tampering.
Every failure is a :class:`CheckpointError`: one line naming the file and what is wrong.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch

from lightning_rl.errors import ReportedError

__all__ = [
    "MANIFEST_FILE",
    "CheckpointError",
    "file_crc32",
    "load_torch_file",
    "verify_manifest",
    "verify_torch_file",
    "write_manifest",
]

MANIFEST_FILE = "checksums.json"
_MANIFEST_FORMAT = "lightning_rl.checksums"
_CHUNK_BYTES = 16 << 20


class CheckpointError(ReportedError, ValueError):
    """A saved file (checkpoint, replay or dataset directory) that is missing, damaged or not what it
    should be; ``lightning-rl`` reports it as one line naming the file and exits with status 2."""

    exit_code = 2


def verify_torch_file(path: str | os.PathLike[str]) -> None:
    """Check that ``path`` is a complete, undamaged ``torch.save`` archive (every member's CRC-32)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{path} is not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is {_not_an_archive(path)}")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if not any(m.filename.endswith("/data.pkl") or m.filename == "data.pkl" for m in members):
                raise CheckpointError(f"{path} is not a checkpoint (a zip archive without data.pkl)")
            for member in members:
                _read_member(archive, member, path)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise CheckpointError(f"{path} is damaged: {err}") from err


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, path: Path) -> None:
    name = member.filename.partition("/")[2] or member.filename  # torch's members: "<archive>/data/12"
    try:
        with archive.open(member) as f:  # zipfile raises at the member's end if its CRC-32 differs
            while f.read(_CHUNK_BYTES):
                pass
    except zipfile.BadZipFile as err:
        if "CRC" in str(err):
            raise CheckpointError(
                f"{path} is damaged: checksum mismatch in {name} (the file was changed after it was written)"
            ) from err
        raise CheckpointError(f"{path} is damaged: {name}: {err}") from err


def _not_an_archive(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(4096)
    if head.startswith(b"PK"):
        return "damaged: a truncated zip archive (its end is missing)"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "not a checkpoint (not a zip archive written by torch.save)"
    return "not a checkpoint (a text file?)"


def load_torch_file(path: str | os.PathLike[str], map_location: Any = "cpu") -> Any:
    """:func:`verify_torch_file`, then ``torch.load(path, weights_only=True)``; an unpickling failure
    (a pickle that is not plain tensors and primitives) is a :class:`CheckpointError` too."""
    verify_torch_file(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle, zip and torch errors alike
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{path} cannot be loaded with torch.load(weights_only=True): {first_line}"
        ) from err


def file_crc32(path: str | os.PathLike[str]) -> int:
    """CRC-32 of a file's bytes, read in chunks."""
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(_CHUNK_BYTES):
            crc = zlib.crc32(block, crc)
    return crc


def write_manifest(directory: str | os.PathLike[str]) -> None:
    """Write ``directory/checksums.json``: the size and CRC-32 of every file below ``directory``."""
    directory = Path(directory)
    files = {}
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in sorted(names):
            file = Path(root, name)
            rel = file.relative_to(directory).as_posix()
            if rel != MANIFEST_FILE:
                files[rel] = {"size": file.stat().st_size, "crc32": file_crc32(file)}
    with open(directory / MANIFEST_FILE, "w") as f:
        json.dump({"format": _MANIFEST_FORMAT, "version": 1, "files": files}, f, indent=1)


def verify_manifest(directory: str | os.PathLike[str], what: str = "directory") -> bool:
    """Check every file ``directory/checksums.json`` lists; ``False`` if there is no manifest (a
    directory written before manifests existed), ``True`` if all match. ``what`` names the directory's
    kind in messages (``"replay directory"``)."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        if manifest.get("format") != _MANIFEST_FORMAT or not isinstance(files, dict):
            raise ValueError("not a checksum manifest")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise CheckpointError(
            f"{what} {directory} is damaged: {MANIFEST_FILE} is unreadable ({err})"
        ) from err
    for rel, entry in files.items():
        file = directory / rel
        if not file.is_file():
            raise CheckpointError(f"{what} {directory} is damaged: {rel} is missing")
        size = file.stat().st_size
        if size != entry.get("size"):
            raise CheckpointError(
                f"{what} {directory} is damaged: {rel} has {size} bytes, {entry.get('size')} were written"
            )
        if file_crc32(file) != entry.get("crc32"):
            raise CheckpointError(
                f"{what} {directory} is damaged: checksum mismatch in {rel} "
                "(the file was changed after it was written)"
            )
    return True
