"""The replay buffer's two persistence formats, validated field by field on the way in.

- ``state_dict`` / ``load_state_dict``: one dict of tensors and primitives (loadable with
  ``torch.load(weights_only=True)``), each stored field copied out of the packed rows, ``compress_keys``
  as lists of lz4-compressed ``uint8`` chunks.
- ``save`` / ``load``: a directory, written atomically: ``state.pt`` (the same dict without the items)
  and ``rows.bin`` (the packed rows of slots ``[0, size)``, raw, streamed in chunks so a memmap buffer
  larger than RAM can be saved; its CRC-32 is in ``state.pt``) and ``checksums.json`` (every file's
  size and CRC-32, checked before anything is read).

Dict items' object values go into the dict as they are (see :mod:`~lightning_rl.data.replay.items`).
Loading validates everything before changing anything: a corrupt or incompatible state raises
``ValueError`` naming the field and leaves the buffer as it was.
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lightning_rl.data.replay.checks import Schema, StateReader, normalize_key, read_schema
from lightning_rl.data.replay.eviction import Eviction
from lightning_rl.data.replay.items import DictItems
from lightning_rl.data.replay.sampler import Sampler
from lightning_rl.data.replay.storage import PackedStorage, row_layout
from lightning_rl.utils.checks import describe
from lightning_rl.utils.compression import lz4_compress_chunks, lz4_decompress_chunks
from lightning_rl.utils.integrity import CheckpointError, load_torch_file, verify_manifest
from lightning_rl.utils.io import atomic_directory

FORMAT = "lightning_rl.PrioritizedBuffer"
VERSION = 3  # 3: dict items ("storage.objects"); 2 had none and loads as is
_READABLE = (2, 3)
STATE_FILE = "state.pt"  # save(): everything but the rows, loadable with weights_only=True
ROWS_FILE = "rows.bin"  # save(): the packed rows of slots [0, size), raw
_IO_CHUNK_BYTES = 64 << 20  # load() checks the rows file's CRC in chunks of this size


@dataclasses.dataclass
class ReplayParts:
    """What a replay buffer is made of, as persistence sees it."""

    storage: PackedStorage
    sampler: Sampler
    eviction: Eviction
    items: DictItems
    generator: torch.Generator

    def reset(self) -> None:
        """Empty every part (the generator and ``train_iter`` are kept)."""
        self.storage.reset()
        self.sampler.reset()
        self.eviction.reset()
        self.items.reset()


# ---------------------------------------------------------------------- writing
def state_dict(parts: ReplayParts) -> dict[str, Any]:
    state = _meta_state(parts)
    storage = _storage_entry(parts)
    if storage is not None:
        data, chunks, per_chunk = [], [], []
        for key, store in parts.storage.leaves:
            filled = store[: parts.storage.size]
            if normalize_key(key, "key") in parts.storage.compress_keys:
                c, k = lz4_compress_chunks(filled)  # copies chunk by chunk, never the whole field
                data.append(None)
                chunks.append(c)
                per_chunk.append(k)
            else:
                # A view would serialize the whole packed storage: copy the field out.
                data.append(filled.to("cpu", copy=True, memory_format=torch.contiguous_format))
                chunks.append(None)
                per_chunk.append(0)
        storage.update({"data": data, "lz4_chunks": chunks, "lz4_items_per_chunk": per_chunk})
    state["storage"] = storage
    return state


def save(parts: ReplayParts, directory: str | os.PathLike[str]) -> None:
    state = _meta_state(parts)
    storage = _storage_entry(parts)
    with atomic_directory(directory) as tmp:
        if storage is not None:
            storage["row_bytes"] = parts.storage.row_bytes
            crc = 0
            with open(tmp / ROWS_FILE, "wb") as f:
                for chunk in parts.storage.row_chunks():
                    f.write(memoryview(chunk))
                    crc = zlib.crc32(chunk, crc)
            storage["rows_crc32"] = crc
        state["storage"] = storage
        torch.save(state, tmp / STATE_FILE)


def _meta_state(parts: ReplayParts) -> dict[str, Any]:
    st = parts.storage
    return {
        "format": FORMAT,
        "version": VERSION,
        "capacity": st.capacity,
        "prioritized": parts.sampler.prioritized,
        "cursor": st.cursor,
        "size": st.size,
        "pushed": st.pushed,
        "sampled": st.sampled,
        **parts.eviction.state_dict(),
        **parts.sampler.state_dict(),
        "rng_state": parts.generator.get_state(),
        "storage": None,
    }


def _storage_entry(parts: ReplayParts) -> dict[str, Any] | None:
    """The schema of the stored items (``None`` when empty) and, for dict items, their object values."""
    st = parts.storage
    if st.size == 0:
        return None
    names, shapes, dtypes = [], [], []
    for key, store in st.leaves:
        nkey = normalize_key(key, "key")
        names.append([nkey] if isinstance(nkey, str) else list(nkey))
        shapes.append(list(store.shape[1:]))
        dtypes.append(str(store.dtype).removeprefix("torch."))
    objects = None if parts.items.names is None else parts.items.state(st.size)
    return {"keys": names, "shapes": shapes, "dtypes": dtypes, "objects": objects}


# ---------------------------------------------------------------------- reading
def load_state_dict(parts: ReplayParts, state: Any) -> None:
    size, apply = _read_state(parts, state)
    storage = state.get("storage")
    schema, objects = _read_storage_entry(parts, storage, size)
    fields = [] if schema is None else _read_fields(storage, schema, size)
    apply(schema, objects)
    for (_, store), value in zip(parts.storage.leaves, fields, strict=True):
        store[:size] = value


def load(parts: ReplayParts, directory: str | os.PathLike[str]) -> None:
    directory = Path(directory)
    state_path = directory / STATE_FILE
    if not directory.is_dir():
        raise CheckpointError(f"no saved replay buffer at {directory}: not a directory")
    if not state_path.is_file():
        raise CheckpointError(f"no saved replay buffer at {directory}: {STATE_FILE} is missing")
    verify_manifest(directory, "replay directory")  # every file's CRC-32 (directories since manifests)
    state = load_torch_file(state_path)
    size, apply = _read_state(parts, state)
    schema, objects = _read_storage_entry(parts, state.get("storage"), size)
    if schema is not None:
        _check_rows_file(state["storage"], schema, size, directory)
    apply(schema, objects)
    if schema is None:
        return
    try:
        with open(directory / ROWS_FILE, "rb") as f:
            for chunk in parts.storage.row_chunks():
                if f.readinto(memoryview(chunk)) != chunk.nbytes:
                    raise ValueError(
                        f"{directory / ROWS_FILE} changed while loading: it is shorter than before"
                    )
    except BaseException:  # an I/O error after validation: empty rather than half-loaded
        parts.reset()
        raise


_Commit = Callable[[Schema | None, Callable[[], None] | None], None]


def _read_state(parts: ReplayParts, state: Any) -> tuple[int, _Commit]:
    """Validate everything in ``state`` but the storage; returns the item count and what commits it all
    (given the validated schema and object columns)."""
    r = StateReader(state)
    if r.get("format", str) != FORMAT:
        raise ValueError(f"replay state: 'format' must be {FORMAT!r}, got {state.get('format')!r}")
    if r.get("version", int) not in _READABLE:
        raise ValueError(
            f"replay state: unsupported 'version' {state.get('version')!r} (supported: {_READABLE})"
        )
    st = parts.storage
    r.same("capacity", st.capacity)
    r.same("prioritized", parts.sampler.prioritized)
    apply_rules = parts.eviction.read_config(r)
    cap = st.capacity
    pushed, sampled = r.get("pushed", int), r.get("sampled", int)
    for name, value in (("pushed", pushed), ("sampled", sampled)):
        if value < 0:
            raise ValueError(f"replay state: '{name}' must be >= 0, got {value}")
    size, cursor = r.get("size", int), r.get("cursor", int)
    if size != min(pushed, cap):
        raise ValueError(f"replay state: 'size' {size} must equal min(pushed={pushed}, capacity={cap})")
    if cursor != pushed % cap:
        raise ValueError(f"replay state: 'cursor' {cursor} must equal pushed % capacity = {pushed % cap}")
    rng_state = r.get("rng_state", torch.Tensor)
    try:
        torch.Generator().set_state(rng_state)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"replay state: 'rng_state' is not a valid torch.Generator state: {err}") from err
    sampler = parts.sampler.read_state(r, size)
    apply_items = parts.eviction.read_items(r, size, sampler)

    def apply(schema: Schema | None, objects: Callable[[], None] | None) -> None:
        parts.reset()
        if schema is not None:
            st.allocate(schema, torch.device("cpu"))
        st.cursor, st.size, st.pushed, st.sampled = cursor, size, pushed, sampled
        sampler.apply()
        apply_rules()
        apply_items()
        if objects is not None:
            objects()
        parts.generator.set_state(rng_state)

    return size, apply


def _read_storage_entry(
    parts: ReplayParts, storage: Any, size: int
) -> tuple[Schema | None, Callable[[], None] | None]:
    """Validate the schema (and the dict items' object columns) of a saved ``storage`` entry."""
    if size == 0:
        if storage is not None:
            raise ValueError("replay state: 'storage' must be None when 'size' is 0")
        return None, None
    objects = storage.get("objects") if isinstance(storage, dict) else None
    schema = read_schema(storage, allow_empty=objects is not None)
    if objects is None:
        return schema, None
    return schema, parts.items.read_state(objects, size, [key for key, _, _ in schema])


def _read_fields(storage: dict[str, Any], schema: Schema, size: int) -> list[torch.Tensor]:
    """The ``(size, *shape)`` values of every stored key in a ``state_dict``'s ``storage`` entry."""
    lists = []
    for f in ("data", "lz4_chunks", "lz4_items_per_chunk"):
        v = storage.get(f)
        if not isinstance(v, list) or len(v) != len(schema):
            raise ValueError(
                f"replay state: 'storage.{f}' must be a list with one entry per key, got {describe(v)}"
            )
        lists.append(v)
    out = []
    for (key, shape, dtype), data, chunks, per_chunk in zip(schema, *lists, strict=True):
        full = (size, *shape)
        if data is not None:
            if not isinstance(data, torch.Tensor) or data.dtype != dtype or tuple(data.shape) != full:
                raise ValueError(
                    f"replay state: 'storage.data' of {key!r} must be a {dtype} tensor of shape {full}, "
                    f"got {describe(data)}"
                )
            out.append(data)
        elif chunks is not None:
            try:
                out.append(lz4_decompress_chunks(chunks, per_chunk, full, dtype))
            except ValueError as err:
                raise ValueError(f"replay state: lz4 data of {key!r}: {err}") from err
        else:
            raise ValueError(f"replay state: key {key!r} has neither 'data' nor 'lz4_chunks'")
    return out


def _check_rows_file(storage: dict[str, Any], schema: Schema, size: int, directory: Path) -> None:
    """``rows.bin`` has the length and CRC-32 that ``state.pt`` records."""
    _, row_bytes = row_layout(schema)
    saved_row_bytes, crc = storage.get("row_bytes"), storage.get("rows_crc32")
    if saved_row_bytes != row_bytes or not isinstance(crc, int):
        raise ValueError(
            f"replay state: 'storage.row_bytes' {saved_row_bytes!r} / 'storage.rows_crc32' {crc!r} "
            f"do not match the schema (row_bytes {row_bytes}, an int CRC)"
        )
    path = directory / ROWS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no saved replay buffer at {directory}: {ROWS_FILE} is missing")
    expected = size * row_bytes
    if path.stat().st_size != expected:
        raise ValueError(
            f"replay directory {directory}: {ROWS_FILE} has {path.stat().st_size} bytes, "
            f"expected {expected} (size {size} x row_bytes {row_bytes})"
        )
    actual = 0
    with open(path, "rb") as f:
        while block := f.read(_IO_CHUNK_BYTES):
            actual = zlib.crc32(block, actual)
    if actual != crc:
        raise CheckpointError(f"replay directory {directory}: {ROWS_FILE} is corrupt (CRC-32 mismatch)")
