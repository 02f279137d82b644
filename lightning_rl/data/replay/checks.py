"""Validation of the replay buffer's arguments and saved state: every error names the field."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from lightning_rl import keys
from lightning_rl.utils.checks import describe

NestedKey = str | tuple[str, ...]
Schema = list[tuple[NestedKey, tuple[int, ...], torch.dtype]]  # [(key, per-item shape, dtype)]

RESERVED_KEYS = (keys.INDEX, keys.WEIGHT)  # added by sample(); never stored


class StateReader:
    """Typed access to the fields of a replay state dict; a missing or mistyped field raises ``ValueError``
    naming it."""

    def __init__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise ValueError(f"replay state must be a dict, got {type(state).__name__}")
        self.state = state

    def get(self, name: str, kind: type) -> Any:
        if name not in self.state:
            raise ValueError(f"replay state: missing field {name!r}")
        value = self.state[name]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ValueError(f"replay state: {name!r} must be {kind.__name__}, got {type(value).__name__}")
        return value

    def optional_int(self, name: str) -> int | None:
        if name not in self.state:
            raise ValueError(f"replay state: missing field {name!r}")
        return None if self.state[name] is None else self.get(name, int)

    def tensor(self, name: str, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
        value = self.state.get(name)
        if not isinstance(value, torch.Tensor) or value.dtype != dtype or tuple(value.shape) != shape:
            raise ValueError(
                f"replay state: {name!r} must be a {dtype} tensor of shape {shape}, got {describe(value)}"
            )
        return value

    def same(self, name: str, mine: Any) -> None:
        """The saved config field ``name`` equals this buffer's ``mine`` (an int, float, bool or ``None``)."""
        if mine is None or isinstance(mine, int) and not isinstance(mine, bool):
            theirs = self.optional_int(name)
        else:
            theirs = self.get(name, type(mine))
        if theirs != mine:
            raise ValueError(f"replay state: '{name}' is {theirs!r} but this buffer has {mine!r}")


def read_schema(storage: Any, allow_empty: bool = False) -> Schema:
    """Validate ``storage['keys' / 'shapes' / 'dtypes']`` into ``[(key, per-item shape, dtype)]`` (empty only
    with ``allow_empty``: a dict-mode buffer whose items hold no tensors)."""
    if not isinstance(storage, dict):
        raise ValueError(f"replay state: 'storage' must be a dict when size > 0, got {describe(storage)}")
    lists = []
    for f in ("keys", "shapes", "dtypes"):
        v = storage.get(f)
        if not isinstance(v, list):
            raise ValueError(f"replay state: 'storage.{f}' must be a list, got {type(v).__name__}")
        lists.append(v)
    if len({len(v) for v in lists}) != 1 or not (lists[0] or allow_empty):
        raise ValueError("replay state: 'storage.keys/shapes/dtypes' must be non-empty, of equal length")
    schema: Schema = []
    for name, shape, dtype_name in zip(*lists, strict=True):
        if not (isinstance(name, list) and name and all(isinstance(p, str) for p in name)):
            raise ValueError(f"replay state: 'storage.keys' entries must be lists of str, got {name!r}")
        key: NestedKey = name[0] if len(name) == 1 else tuple(name)
        if key in RESERVED_KEYS:
            raise ValueError(f"replay state: 'storage.keys' contains the reserved key {key!r}")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise ValueError(f"replay state: 'storage.shapes' of {key!r} must list ints >= 0, got {shape!r}")
        dtype = getattr(torch, dtype_name, None) if isinstance(dtype_name, str) else None
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"replay state: 'storage.dtypes' of {key!r}: not a torch dtype: {dtype_name!r}")
        schema.append((key, tuple(shape), dtype))
    if len({k for k, _, _ in schema}) != len(schema):
        raise ValueError("replay state: 'storage.keys' has duplicates")
    return schema


def index_array(values: torch.Tensor, name: str) -> np.ndarray:
    """``(N,)`` integer tensor ``name`` (any integer dtype, any device) as contiguous CPU int64 numpy
    (the C++ trees read the raw buffer: a strided view would be misread)."""
    if values.dtype is not torch.int64 or not values.is_cpu:
        if values.dtype.is_floating_point or values.dtype is torch.bool or values.dtype.is_complex:
            raise ValueError(f"{name} must be an integer tensor, got dtype {values.dtype}")
        values = values.to("cpu", torch.int64)
    return np.ascontiguousarray(values.numpy())


def priority_array(priority: Any, n: int) -> np.ndarray:
    """``priority`` of any kind (a tensor of any dtype, shape or device, a sequence) as ``(n,)`` float32
    CPU numpy; the values are not range-checked here."""
    if not isinstance(priority, torch.Tensor):
        priority = torch.as_tensor(priority)
    if priority.ndim != 1 or priority.requires_grad:
        priority = priority.detach().reshape(-1)
    if priority.shape[0] != n:
        raise ValueError(f"priority must have one element per index: expected {n}, got {priority.shape[0]}")
    if priority.dtype is not torch.float32 or not priority.is_cpu:
        priority = priority.to("cpu", torch.float32)
    return priority.numpy()


def index_and_priority(index: Any, priority: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(index, priority)`` of any kind as ``(N,)`` int64 and float32 CPU numpy arrays."""
    if not isinstance(index, torch.Tensor):
        index = torch.as_tensor(index)
    if index.ndim != 1:
        index = index.reshape(-1)
    prio = priority_array(priority, index.shape[0])
    return index_array(index, "index"), prio


def normalize_key(key: Any, what: str) -> NestedKey:
    if isinstance(key, str):
        return key
    if isinstance(key, tuple) and key and all(isinstance(k, str) for k in key):
        return key[0] if len(key) == 1 else key
    raise ValueError(f"{what} entries must be str or a non-empty tuple of str, got {key!r}")


def checked_int(name: str, value: Any, lo: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int{'' if lo is None else f' >= {lo}'}, got {value!r}")
    value = int(value)
    if lo is not None and value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    return value


def checked_float(
    name: str, value: Any, lo: float | None = None, hi: float | None = None, lo_open: bool = False
) -> float:
    allowed = (
        f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
    )
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a float in {allowed}, got {value!r}")
    value = float(value)
    if (
        not math.isfinite(value)
        or (lo is not None and (value < lo or (lo_open and value == lo)))
        or (hi is not None and value > hi)
    ):
        raise ValueError(f"{name} must be in {allowed}, got {value}")
    return value
