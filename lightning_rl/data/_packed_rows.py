"""Packed row storage of the replay buffer: every field of an item in one row of a ``(capacity,
row_bytes)`` uint8 tensor, each key a strided typed view of it (one cache miss per sampled item instead
of one per key)."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

NestedKey = str | tuple[str, ...]
Schema = list[tuple[NestedKey, tuple[int, ...], torch.dtype]]  # [(key, per-item shape, dtype)]


def row_layout(schema: Schema) -> tuple[list[int], int]:
    """Byte offset of each field in a packed row, and the row size.

    Largest itemsize first: every offset is then a multiple of its field's itemsize (itemsizes are
    powers of two), as typed views of the byte rows require; rows are padded to the largest itemsize.
    """
    offsets = [0] * len(schema)
    row_bytes = 0
    for i in sorted(range(len(schema)), key=lambda i: -schema[i][2].itemsize):
        _, shape, dtype = schema[i]
        offsets[i] = row_bytes
        row_bytes += math.prod(shape) * dtype.itemsize
    align = max(dtype.itemsize for _, _, dtype in schema)
    return offsets, max(align, -(-row_bytes // align) * align)


def structured_rows(
    rows: torch.Tensor, schema: Schema, offsets: list[int], row_bytes: int
) -> tuple[np.ndarray | None, list[tuple[NestedKey, str]]]:
    """The packed ``(capacity, row_bytes)`` rows as a ``(capacity,)`` numpy structured array whose field
    ``f{i}`` is key ``i`` (typed, with its per-item shape), sharing memory with ``rows``, and
    ``[(key, field name)]``; ``(None, [])`` where numpy cannot view them (device storage, a dtype numpy
    lacks such as bfloat16, zero-size items). ``take`` on it gathers whole rows in one cheap call."""
    if rows.device.type != "cpu":
        return None, []
    names, formats = [], []
    for i, (_, shape, dtype) in enumerate(schema):
        try:
            np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        except (TypeError, RuntimeError):
            return None, []
        if math.prod(shape) == 0:
            return None, []
        names.append(f"f{i}")
        formats.append((np_dtype, shape) if shape else np_dtype)
    struct = np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": row_bytes})
    structured = rows.numpy().view(struct).reshape(rows.shape[0])
    return structured, [(key, name) for (key, _, _), name in zip(schema, names, strict=True)]


def memmap_rows(directory: Path, capacity: int, row_bytes: int) -> torch.Tensor:
    """``(capacity, row_bytes)`` uint8 CPU tensor backed by a new file in ``directory``.

    The file is unlinked as soon as it is mapped: the mapping keeps it alive, the OS frees its disk
    space when the tensor is freed, and no stray file outlives a crash. The OS pages rows out to the
    file under memory pressure, so the buffer can exceed RAM.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="replay_rows.", suffix=".bin", dir=directory)
    os.close(fd)
    try:
        flat = torch.from_file(name, shared=True, size=capacity * row_bytes, dtype=torch.uint8)
    finally:
        os.unlink(name)
    return flat.view(capacity, row_bytes)
