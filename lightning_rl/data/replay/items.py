"""Dict items (nerveX's ``buffer.append({'data': ...})``): plain dicts whose tensor values go to the packed
storage and whose other values (strings, numbers, any object) to object columns beside it.

A buffer stores either ``TensorDict`` batches or dict items, fixed by its first ``append`` / ``extend``
(until :meth:`~lightning_rl.data.replay.PrioritizedBuffer.clear`). Every dict item has the keys of the
first one (top-level ``str`` keys); a key's value is a tensor in every item (same shape and dtype) or in
none. Object values are stored by reference, as in a ``collections.deque``.

Checkpoints (``state_dict`` / ``save``) hold the object values as they are, so they must be what
``torch.load(weights_only=True)`` loads back: ``None``, ``bool``, ``int``, ``float``, ``str`` and lists,
tuples and ``str``-keyed dicts of them; any other value makes the checkpoint call raise ``ValueError``
naming the key and the slot (store such data as tensors instead).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from lightning_rl import keys
from lightning_rl.data.replay.checks import RESERVED_KEYS
from lightning_rl.utils.checks import describe

_PRIMITIVES = (type(None), bool, int, float, str)


@dataclasses.dataclass
class DictBatch:
    """``N`` validated dict items, split."""

    names: tuple[str, ...]  # every item's keys, in order
    tensors: TensorDictBase  # [N]: the tensor values, stacked
    objects: dict[str, list[Any]]  # other key -> N values


class DictItems:
    """Key layout and object columns of a dict-mode buffer (:attr:`names` ``None``: not in dict mode)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self.reset()

    def reset(self) -> None:
        self.names: tuple[str, ...] | None = None  # every item's keys, in the first item's order
        self._columns: dict[str, list[Any]] = {}  # non-tensor key -> (capacity,) values

    # ------------------------------------------------------------------ adding
    def split(self, items: Sequence[Any]) -> DictBatch:
        """Validate ``N`` dict items against the first ones stored; raises ``ValueError`` naming the item
        and key that do not fit."""
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise ValueError(f"batch item {i} must be a dict, got {type(item).__name__}")
        if not items:
            return DictBatch((), TensorDict(batch_size=[0]), {})
        if self.names is None:
            names = tuple(items[0])
            for k in names:
                if not isinstance(k, str):
                    raise ValueError(f"dict item keys must be str, got {k!r}")
                if k in RESERVED_KEYS:
                    raise ValueError(f"dict items must not contain the key {k!r}: sample() adds it")
            object_keys = {k for k in names if not isinstance(items[0][k], torch.Tensor)}
        else:
            names, object_keys = self.names, self._columns.keys()
        for i, item in enumerate(items):
            if len(item) != len(names) or any(k not in item for k in names):
                raise ValueError(
                    f"dict item {i} has keys {sorted(map(str, item))}; items have {sorted(names)}"
                )
        tensors, objects = {}, {}
        for k in names:
            values = [item[k] for item in items]
            is_tensor = [isinstance(v, torch.Tensor) for v in values]
            if k in object_keys:
                if any(is_tensor):
                    raise ValueError(
                        f"dict item {is_tensor.index(True)} key {k!r} is a tensor; the items' {k!r} are not"
                    )
                objects[k] = values
                continue
            if not all(is_tensor):
                raise ValueError(
                    f"dict item {is_tensor.index(False)} key {k!r} must be a tensor like the items' {k!r}, "
                    f"got {type(values[is_tensor.index(False)]).__name__}"
                )
            first = values[0]
            for i, v in enumerate(values):
                if v.shape != first.shape or v.dtype != first.dtype:
                    raise ValueError(
                        f"dict item {i} key {k!r} is {describe(v)}; item 0's is {describe(first)}"
                    )
            tensors[k] = torch.stack(values)
        return DictBatch(names, TensorDict(tensors, batch_size=[len(items)]), objects)

    def write(self, slots: np.ndarray, batch: DictBatch) -> None:
        """Store the object values of ``batch``, the last ``M = len(slots)`` items at ``slots`` (the first
        write fixes the key layout)."""
        if self.names is None:
            self.names = batch.names
            self._columns = {k: [None] * self._capacity for k in batch.objects}
        for k, values in batch.objects.items():
            column = self._columns[k]
            for slot, value in zip(slots.tolist(), values[len(values) - slots.size :], strict=True):
                column[slot] = value

    # ------------------------------------------------------------------ reading
    def join(self, batch: TensorDictBase) -> list[dict[str, Any]]:
        """The gathered ``[B]`` batch (tensor values, ``keys.INDEX``, ``keys.WEIGHT``) as ``B`` dict items:
        the item's keys in order (tensor values as ``(*item)`` views of the batch's), then ``keys.INDEX``
        (``int``) and ``keys.WEIGHT`` (``float``)."""
        index = batch[keys.INDEX].tolist()
        columns = {
            k: [self._columns[k][i] for i in index] if k in self._columns else batch[k].unbind(0)
            for k in self.names
        }
        weight = batch[keys.WEIGHT].tolist()
        return [
            {**{k: column[j] for k, column in columns.items()}, keys.INDEX: i, keys.WEIGHT: w}
            for j, (i, w) in enumerate(zip(index, weight, strict=True))
        ]

    # ------------------------------------------------------------------ checkpoints
    def state(self, size: int) -> dict[str, Any]:
        """``{"names": [...], "columns": {key: [size values]}}`` of slots ``[0, size)``."""
        columns = {}
        for k, column in self._columns.items():
            for slot, value in enumerate(column[:size]):
                if not _checkpointable(value):
                    raise ValueError(
                        f"cannot checkpoint dict items: key {k!r} at storage index {slot} holds a "
                        f"{type(value).__name__}; state_dict() and save() keep non-tensor values only if "
                        "they are None, bool, int, float, str or lists, tuples or str-keyed dicts of them "
                        "(torch.load(weights_only=True) loads nothing else): store it as a tensor"
                    )
            columns[k] = column[:size]
        return {"names": list(self.names), "columns": columns}

    def read_state(self, entry: Any, size: int, tensor_keys: Sequence[Any]) -> Callable[[], None]:
        """Validate a saved ``objects`` entry of ``size`` items whose storage holds ``tensor_keys``;
        returns what loads it."""
        names = entry.get("names") if isinstance(entry, dict) else None
        columns = entry.get("columns") if isinstance(entry, dict) else None
        if not (
            isinstance(names, list) and all(isinstance(k, str) for k in names) and isinstance(columns, dict)
        ):
            raise ValueError(
                "replay state: 'storage.objects' must hold 'names' (a list of str) and 'columns' (a dict)"
            )
        if (
            len(set(names)) != len(names)
            or set(names) != {*columns, *tensor_keys}
            or set(columns) & {*tensor_keys}
        ):
            raise ValueError(
                f"replay state: 'storage.objects.names' {names} must be the object columns "
                f"{sorted(columns)} and the stored tensor keys {sorted(map(str, tensor_keys))}, once each"
            )
        for k, values in columns.items():
            if not (isinstance(values, list) and len(values) == size):
                raise ValueError(
                    f"replay state: 'storage.objects.columns' {k!r} must be a list of {size} values"
                )

        def apply() -> None:
            self.names = tuple(names)
            self._columns = {k: [*values, *[None] * (self._capacity - size)] for k, values in columns.items()}

        return apply


def _checkpointable(value: Any) -> bool:
    """Whether ``torch.load(weights_only=True)`` loads ``value`` back."""
    # Exact types: subclasses (numpy scalars are floats, namedtuples tuples) are pickled as their class.
    if type(value) in _PRIMITIVES:
        return True
    if type(value) in (list, tuple):
        return all(_checkpointable(v) for v in value)
    if type(value) is dict:
        return all(isinstance(k, str) and _checkpointable(v) for k, v in value.items())
    return False
