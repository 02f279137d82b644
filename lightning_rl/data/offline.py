"""Offline RL data (nerveX's dataset + dataloader + sampler + collate): transition datasets on disk.

A dataset is a directory::

    <dir>/dataset.json      metadata: format, size, nstep, env spec, per-field shapes/dtypes, episode
                            returns of the rollout, source checkpoint, epsilon, seed
    <dir>/transitions/      the transitions as a memory-mapped TensorDict (``TensorDict.memmap``):
                            one ``<key>.memmap`` file per field plus tensordict's own ``meta.json``

The fields are those of :class:`~lightning_rl.data.NStepTransitionBuilder` (``lightning_rl.keys``), so
a DQN loss consumes offline batches exactly like replay batches. :func:`write_dataset` writes one;
:func:`lightning_rl.collect.collect_dataset` (the ``lightning-rl collect`` subcommand) writes one by
rolling out a policy; :class:`TransitionDataset` reads it (memory-mapped: nothing is loaded up front);
:class:`RandomBatchSampler` and :func:`collate_transitions` turn it into a
``torch.utils.data.DataLoader`` of replay-like batches.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase
from torch.utils.data import Dataset, Sampler

from lightning_rl import keys
from lightning_rl.spec import EnvSpec
from lightning_rl.utils.checks import check_int, check_positive
from lightning_rl.utils.integrity import verify_manifest
from lightning_rl.utils.io import atomic_directory

__all__ = [
    "RandomBatchSampler",
    "TransitionDataset",
    "collate_transitions",
    "staging_dir",
    "write_dataset",
    "write_metadata",
]

FORMAT = "lightning_rl.TransitionDataset"
VERSION = 1
METADATA_FILE = "dataset.json"
TRANSITIONS_DIR = "transitions"
FIELDS = (keys.OBS, keys.ACTION, keys.REWARD, keys.NEXT_OBS, keys.TERMINATED, keys.STEPS)
_REQUIRED_METADATA = ("format", "version", "size", "nstep", "env_spec", "fields")


# --- writing --------------------------------------------------------------------------------------
def write_dataset(
    path: str | os.PathLike,
    transitions: TensorDictBase,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``transitions`` (batch ``[N]``, the :data:`FIELDS`) and ``metadata`` as a dataset directory.

    ``nstep`` is read from the reward width ``(N, nstep)``. The directory appears complete or not at all:
    everything is written to a temporary sibling that is renamed into place. ``metadata`` holds JSON
    values (provenance such as the source checkpoint); ``env_spec`` (``EnvSpec.to_dict()``) is required.
    """
    path = Path(path)
    metadata = dict(metadata or {})
    if "env_spec" not in metadata:
        raise ValueError("metadata must hold 'env_spec' (EnvSpec.to_dict() of the env the data came from)")
    _check_transitions(transitions)
    with staging_dir(path, overwrite) as tmp:
        transitions.memmap(prefix=tmp / TRANSITIONS_DIR)
        write_metadata(tmp, transitions, metadata)
    return path


def _check_transitions(transitions: TensorDictBase) -> None:
    if transitions.batch_dims != 1 or transitions.numel() == 0:
        raise ValueError(f"transitions must have a non-empty batch [N], got {list(transitions.batch_size)}")
    missing = [key for key in FIELDS if transitions.get(key, None) is None]
    if missing:
        raise ValueError(f"transitions lack the fields {missing}; required: {list(FIELDS)}")
    extra = sorted(set(transitions.keys()) - set(FIELDS))
    if extra:
        raise ValueError(f"transitions have unknown fields {extra}; allowed: {list(FIELDS)}")
    if transitions[keys.REWARD].dim() != 2:
        raise ValueError(f"reward must have shape (N, nstep), got {tuple(transitions[keys.REWARD].shape)}")


def write_metadata(directory: Path, transitions: TensorDictBase, metadata: dict[str, Any]) -> None:
    header = {
        "format": FORMAT,
        "version": VERSION,
        "id": uuid.uuid4().hex,  # lets a resumed run check it still reads the same dataset
        "size": transitions.shape[0],
        "nstep": transitions[keys.REWARD].shape[1],
        "fields": {
            key: {"shape": list(transitions[key].shape[1:]), "dtype": _dtype_name(transitions[key].dtype)}
            for key in FIELDS
        },
    }
    with open(directory / METADATA_FILE, "w") as f:  # fsynced with the rest by atomic_directory
        json.dump({**header, **metadata}, f, indent=1)


def staging_dir(path: Path, overwrite: bool) -> contextlib.AbstractContextManager[Path]:
    """A temporary directory that atomically replaces ``path`` when the block ends without error
    (:func:`~lightning_rl.utils.io.atomic_directory`: fsynced, swapped in, removed if the block raises)."""
    if path.exists() and not overwrite:
        raise FileExistsError(f"dataset directory {path} already exists; pass overwrite=True to replace it")
    return atomic_directory(path)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# --- reading --------------------------------------------------------------------------------------
class TransitionDataset(Dataset):
    """Map-style dataset over a dataset directory written by :func:`write_dataset` / :func:`collect_dataset`.

    The directory is validated on opening (metadata, every file's CRC-32 in ``checksums.json``, every
    field's file, shape and dtype); a missing or corrupt part raises an error naming the file or field.
    Data stays memory-mapped (the CRCs are read once, at about 1 GB/s).

    ``dataset[i]`` (int) gives one transition (batch ``[]``); ``dataset[idx]`` with an index tensor
    ``(B,)`` (or a list / slice) gives a batch ``[B]``: ``OBS`` ``(B, *obs_shape)``, ``ACTION`` ``(B,)``
    int64 (discrete), ``REWARD`` ``(B, nstep)`` float32, ``NEXT_OBS``, ``TERMINATED`` ``(B,)`` bool,
    ``STEPS`` ``(B,)`` int64, plus ``INDEX`` ``(B,)`` int64, the dataset indices (as replay samples
    carry storage indices). Batches are copies, not views of the files.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.metadata = read_metadata(self.path)
        verify_manifest(self.path, "dataset")  # every file's CRC-32 (datasets written since manifests)
        self._data = _open_transitions(self.path, self.metadata)

    @property
    def env_spec(self) -> dict[str, Any]:
        return self.metadata["env_spec"]

    @property
    def nstep(self) -> int:
        return self.metadata["nstep"]

    def __len__(self) -> int:
        return self.metadata["size"]

    def __getitem__(self, index: int | slice | Sequence[int] | torch.Tensor) -> TensorDict:
        if isinstance(index, int):
            if not -len(self) <= index < len(self):
                raise IndexError(f"index {index} out of range for a dataset of {len(self)} transitions")
            index = index % len(self)
            item = self._data[index].to_tensordict()  # a copy, off the memory map
            item[keys.INDEX] = torch.tensor(index)
            return item
        if isinstance(index, slice):
            index = torch.arange(len(self))[index]
        index = torch.as_tensor(index, dtype=torch.int64)
        batch = self._data[index]  # a gather: plain tensors
        batch[keys.INDEX] = index
        return batch

    def __repr__(self) -> str:
        return (
            f"TransitionDataset({str(self.path)!r}, size={len(self)}, nstep={self.nstep}, "
            f"env={self.env_spec['env_id']!r})"
        )


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The validated ``dataset.json`` of a dataset directory."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"dataset directory {path} does not exist")
    file = path / METADATA_FILE
    if not file.is_file():
        raise FileNotFoundError(
            f"{file} is missing: {path} is not a transition dataset (write one with `lightning-rl collect` "
            "or lightning_rl.data.offline.collect_dataset)"
        )
    try:
        metadata = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{file} is corrupt (not valid JSON): {err}") from err
    if not isinstance(metadata, dict):
        raise ValueError(f"{file} must hold a JSON object, got {type(metadata).__name__}")
    missing = [field for field in _REQUIRED_METADATA if field not in metadata]
    if missing:
        raise ValueError(f"{file} lacks the fields {missing}; required: {list(_REQUIRED_METADATA)}")
    if metadata["format"] != FORMAT or metadata["version"] != VERSION:
        raise ValueError(
            f"{file}: format {metadata['format']!r} version {metadata['version']!r} is not supported; "
            f"expected {FORMAT!r} version {VERSION}"
        )
    size, nstep = metadata["size"], metadata["nstep"]
    check_int(f"{file}: 'size'", size, 1)
    check_int(f"{file}: 'nstep'", nstep, 1)
    fields = metadata["fields"]
    if not isinstance(fields, dict) or sorted(fields) != sorted(FIELDS):
        found = sorted(fields) if isinstance(fields, dict) else fields
        raise ValueError(f"{file}: 'fields' must describe exactly {sorted(FIELDS)}, got {found}")
    for key, field in fields.items():
        if (
            not isinstance(field, dict)
            or not isinstance(field.get("shape"), list)
            or not isinstance(field.get("dtype"), str)
        ):
            raise ValueError(
                f"{file}: fields.{key} must be {{'shape': [int, ...], 'dtype': str}}, got {field!r}"
            )
    try:
        EnvSpec.from_dict(metadata["env_spec"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{file}: 'env_spec' is not a valid EnvSpec dict: {err}") from err
    return metadata


def _open_transitions(path: Path, metadata: dict[str, Any]) -> TensorDictBase:
    # tensordict's load_memmap silently recreates missing files and maps truncated ones (measured with
    # tensordict 0.14.3), so each file is checked against the metadata before mapping it.
    directory = path / TRANSITIONS_DIR
    size = metadata["size"]
    for key, field in metadata["fields"].items():
        file = directory / f"{key}.memmap"
        expected = size * math.prod(field["shape"]) * _itemsize(field["dtype"], path)
        if not file.is_file():
            raise FileNotFoundError(f"dataset {path}: the file of field '{key}' is missing ({file})")
        if file.stat().st_size != expected:
            raise ValueError(
                f"dataset {path}: {file} holds {file.stat().st_size} bytes but field '{key}' "
                f"({size} x {field['shape']} {field['dtype']}) needs {expected}: the file is corrupt"
            )
    try:
        data = TensorDict.load_memmap(directory)
    except Exception as err:  # tensordict raises assorted types for a damaged meta.json
        raise ValueError(
            f"dataset {path}: {directory} cannot be loaded as a memory-mapped TensorDict: {err!r}"
        ) from err
    for key, field in metadata["fields"].items():
        tensor = data.get(key, None)
        expected_shape = [size, *field["shape"]]
        if (
            tensor is None
            or list(tensor.shape) != expected_shape
            or _dtype_name(tensor.dtype) != field["dtype"]
        ):
            found = "missing" if tensor is None else f"{list(tensor.shape)} {_dtype_name(tensor.dtype)}"
            raise ValueError(
                f"dataset {path}: field '{key}' is {found} in {directory / 'meta.json'} but "
                f"{METADATA_FILE} says {expected_shape} {field['dtype']}"
            )
    obs_shape = metadata["env_spec"].get("obs_shape")
    if metadata["fields"][keys.OBS]["shape"] != obs_shape:
        raise ValueError(
            f"dataset {path}: field 'obs' has per-item shape {metadata['fields'][keys.OBS]['shape']} but "
            f"env_spec.obs_shape is {obs_shape}"
        )
    if metadata["fields"][keys.REWARD]["shape"] != [metadata["nstep"]]:
        raise ValueError(
            f"dataset {path}: field 'reward' must have per-item shape [nstep={metadata['nstep']}]"
        )
    return data


def _itemsize(dtype: str, path: Path) -> int:
    torch_dtype = getattr(torch, dtype, None)
    if not isinstance(torch_dtype, torch.dtype):
        raise ValueError(f"dataset {path}: {METADATA_FILE} names an unknown dtype {dtype!r}")
    return torch_dtype.itemsize


# --- batching -------------------------------------------------------------------------------------
def collate_transitions(items: TensorDictBase | Sequence[TensorDictBase]) -> TensorDictBase:
    """A replay-like batch: the transitions (one batch ``[B]``, or ``B`` items stacked) plus
    ``WEIGHT`` ``(B,)`` float32 ones (offline data is sampled uniformly: no importance correction).

    Works as the ``collate_fn`` of a DataLoader with automatic batching (a list of items) or with
    ``batch_size=None`` and :class:`RandomBatchSampler` (one gathered batch).
    """
    batch = items if isinstance(items, TensorDictBase) else torch.stack(list(items))
    batch[keys.WEIGHT] = torch.ones(batch.shape[0], dtype=torch.float32)
    return batch


class RandomBatchSampler(Sampler[torch.Tensor]):
    """Batches of indices drawn uniformly with replacement: ``(batch_size,)`` int64 tensors.

    Sampling with replacement matches how replay is sampled online and needs no notion of epochs:
    the budget is a number of batches (gradient steps), ``num_batches`` per ``iter()``, or endless
    when ``None`` (then the sampler has no length and a Lightning run's budget is ``max_steps``).
    The generator's state carries across ``iter()`` calls, so it can be checkpointed.
    """

    def __init__(
        self,
        data_size: int,
        batch_size: int,
        num_batches: int | None = None,
        generator: torch.Generator | None = None,
    ):
        check_positive(data_size=data_size, batch_size=batch_size, num_batches=num_batches)
        self.data_size = data_size
        self.batch_size = batch_size
        self.num_batches = num_batches
        self.generator = generator if generator is not None else torch.Generator()

    def __iter__(self) -> Iterator[torch.Tensor]:
        drawn = 0
        while self.num_batches is None or drawn < self.num_batches:
            yield torch.randint(self.data_size, (self.batch_size,), generator=self.generator)
            drawn += 1

    def __len__(self) -> int:
        if self.num_batches is None:
            # TypeError is how `len()` says "no length": DataLoader and Lightning treat it as endless
            raise TypeError("an endless RandomBatchSampler (num_batches=None) has no length")
        return self.num_batches
