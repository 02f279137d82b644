"""Offline RL data (nerveX's dataset + dataloader + sampler + collate): transition datasets on disk.

A dataset is a directory::

    <dir>/dataset.json      metadata: format, size, nstep, env spec, per-field shapes/dtypes, episode
                            returns of the rollout, source checkpoint, epsilon, seed
    <dir>/transitions/      the transitions as a memory-mapped TensorDict (``TensorDict.memmap``):
                            one ``<key>.memmap`` file per field plus tensordict's own ``meta.json``

The fields are those of :class:`~lightning_rl.data.NStepTransitionBuilder` (``lightning_rl.keys``), so
a DQN loss consumes offline batches exactly like replay batches. :func:`collect_dataset` writes one by
rolling out a policy; :class:`TransitionDataset` reads it (memory-mapped: nothing is loaded up front);
:class:`RandomBatchSampler` and :func:`collate_transitions` turn it into a ``torch.utils.data.DataLoader``
of replay-like batches.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torch.utils.data import Dataset, Sampler

from lightning_rl import keys
from lightning_rl.data.collector import VectorCollector
from lightning_rl.data.nstep import NStepTransitionBuilder
from lightning_rl.envs import make_vector_env, probe_env_spec
from lightning_rl.spec import EnvSpec
from lightning_rl.utils.checks import check_int, check_positive, check_range
from lightning_rl.utils.io import atomic_directory

if TYPE_CHECKING:
    from lightning_rl.datamodules import EnvDataModule
    from lightning_rl.policies import RLPolicy

__all__ = [
    "RandomBatchSampler",
    "TransitionDataset",
    "collate_transitions",
    "collect_dataset",
    "write_dataset",
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
    with _staging_dir(path, overwrite) as tmp:
        transitions.memmap(prefix=tmp / TRANSITIONS_DIR)
        _write_metadata(tmp, transitions, metadata)
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


def _write_metadata(directory: Path, transitions: TensorDictBase, metadata: dict[str, Any]) -> None:
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


def _staging_dir(path: Path, overwrite: bool) -> contextlib.AbstractContextManager[Path]:
    """A temporary directory that atomically replaces ``path`` when the block ends without error
    (:func:`~lightning_rl.utils.io.atomic_directory`: fsynced, swapped in, removed if the block raises)."""
    if path.exists() and not overwrite:
        raise FileExistsError(f"dataset directory {path} already exists; pass overwrite=True to replace it")
    return atomic_directory(path)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# --- collecting -----------------------------------------------------------------------------------
def collect_dataset(
    policy: RLPolicy,
    env: EnvDataModule | Callable[[], gym.Env],
    n_steps: int,
    out: str | os.PathLike,
    epsilon: float | Sequence[float] = 0.0,
    nstep: int = 1,
    n_envs: int = 8,
    seed: int = 0,
    source_ckpt: str | None = None,
    overwrite: bool = False,
) -> TransitionDataset:
    """Roll out ``policy.act(obs, mode="eval")`` and write ``n_steps`` transitions to ``out``.

    With probability ``epsilon`` (per env step) the action is replaced by a uniformly random one
    (discrete actions only), for state-action coverage beyond the greedy policy's. One epsilon per env
    (a list of ``n_envs``) mixes behaviors of several qualities in one dataset, which offline Q-learning
    needs: it learns what failing looks like only from data that fails (a near-greedy rollout of a
    good policy has almost no terminal transitions, and the Q-values of the actions it never takes are
    extrapolated and diverge). Transitions stream into the memory-mapped files as they are produced, so
    the dataset need not fit in memory.

    Args:
        policy: any :class:`~lightning_rl.policies.RLPolicy` whose spec matches the env's.
        env: an ``EnvDataModule`` (its env factory and spec are used) or a factory returning a
            ``gymnasium.Env``.
        n_steps: number of transitions to write (``N``); with ``nstep == 1`` also the env steps taken.
        out: dataset directory to create.
        epsilon: probability of a random action, in [0, 1]: one for all envs, or a list of ``n_envs``
            (env ``i`` acts with ``epsilon[i]``; e.g. ``[0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0]``).
        nstep: length of the stored n-step returns (reward ``(N, nstep)``); 1 keeps the data free of the
            behavior policy's bias in multi-step targets.
        n_envs: envs stepped together (a ``sync`` vector env).
        seed: seed of the env resets and of the random actions.
        source_ckpt: the checkpoint the policy came from, recorded in the metadata.
        overwrite: replace an existing ``out``.

    Returns:
        The written dataset, opened. Its metadata holds the returns and lengths of the episodes that
        finished during the rollout (``episode_returns``, ``episode_lengths``), the number of
        ``terminations`` in the data and ``epsilon`` as given.
    """
    check_positive(n_steps=n_steps, nstep=nstep, n_envs=n_envs)
    env_epsilon = _env_epsilon(epsilon, n_envs)  # (n_envs,)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    if hasattr(env, "make_env"):  # an EnvDataModule
        make_env, env_spec = env.make_env, dict(env.env_spec)
        env_kwargs = getattr(env, "hparams", {}).get("env_kwargs")
    else:
        make_env, env_kwargs = env, None
        env_spec = probe_env_spec(getattr(env, "__qualname__", repr(env)), env).to_dict()
    _check_policy_matches(policy.spec.to_dict(), env_spec)
    if bool(env_epsilon.any()) and env_spec["action_type"] != "discrete":
        raise ValueError(
            f"epsilon must be 0 for continuous actions (env '{env_spec['env_id']}'), got {epsilon}; "
            "random actions are drawn for discrete action spaces only"
        )
    vector_env = make_vector_env(make_env, n_envs, "sync")
    vector_steps = math.ceil(n_steps / n_envs) + nstep - 1  # enough for n_steps complete windows
    # keep every finished episode (at most one per env step) for the metadata
    collector = VectorCollector(vector_env, stats_window=vector_steps * n_envs)
    builder = NStepTransitionBuilder(n_envs, nstep)
    generator = torch.Generator().manual_seed(seed)
    n_actions = env_spec["n_actions"]

    def act(obs: torch.Tensor) -> torch.Tensor:
        action = policy.act(obs, mode="eval").cpu()
        if not env_epsilon.any():
            return action
        explore = torch.rand(action.shape, generator=generator) < env_epsilon
        return torch.where(explore, torch.randint(n_actions, action.shape, generator=generator), action)

    was_training = policy.training
    policy.eval()
    started = time.perf_counter()
    try:
        with _staging_dir(Path(out), overwrite) as tmp:
            collector.reset(seed=seed)
            storage: TensorDictBase | None = None
            written = env_steps = 0
            while written < n_steps:
                transitions = builder.add(*collector.step(act))
                env_steps += n_envs
                if transitions is None:
                    continue
                if storage is None:  # allocate the files from the first item's shapes and dtypes
                    storage = transitions[0].expand(n_steps).memmap_like(prefix=tmp / TRANSITIONS_DIR)
                take = min(len(transitions), n_steps - written)
                storage[written : written + take] = transitions[:take]
                written += take
            metadata = {
                "env_spec": env_spec,
                "env_kwargs": env_kwargs,
                "env_steps": env_steps,
                "episodes": collector.episodes,
                "episode_returns": list(collector.recent_returns),
                "episode_lengths": list(collector.recent_lengths),
                "return_mean": float(np.mean(collector.recent_returns)) if collector.recent_returns else None,
                "terminations": int(storage[keys.TERMINATED].sum()),
                "source_ckpt": None if source_ckpt is None else os.path.abspath(source_ckpt),
                "policy": type(policy).__qualname__,
                "epsilon": epsilon if isinstance(epsilon, (int, float)) else list(epsilon),
                "seed": seed,
                "n_envs": n_envs,
                "collect_time_s": round(time.perf_counter() - started, 2),
            }
            _write_metadata(tmp, storage, metadata)
    finally:
        vector_env.close()
        policy.train(was_training)
    return TransitionDataset(out)


def _env_epsilon(epsilon: float | Sequence[float], n_envs: int) -> torch.Tensor:
    """``epsilon`` (one value or one per env) as a ``(n_envs,)`` float64 tensor, validated."""
    if isinstance(epsilon, (int, float)) and not isinstance(epsilon, bool):
        check_range("epsilon", epsilon, 0.0, 1.0)
        return torch.full((n_envs,), float(epsilon), dtype=torch.float64)
    if not isinstance(epsilon, Sequence) or isinstance(epsilon, str):
        raise TypeError(
            f"epsilon must be a float or a list of {n_envs} floats (one per env), got {epsilon!r}"
        )
    if len(epsilon) != n_envs:
        raise ValueError(
            f"epsilon must hold one value per env: a list of n_envs={n_envs} floats, got {len(epsilon)} "
            f"({list(epsilon)})"
        )
    for i, value in enumerate(epsilon):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"epsilon[{i}] must be a float in [0, 1], got {value!r}")
        check_range(f"epsilon[{i}]", value, 0.0, 1.0)
    return torch.tensor([float(value) for value in epsilon], dtype=torch.float64)


def _check_policy_matches(policy_spec: dict[str, Any], env_spec: dict[str, Any]) -> None:
    for field in ("obs_shape", "action_type", "n_actions", "action_shape"):
        if policy_spec[field] != env_spec[field]:
            raise ValueError(
                f"the policy was built for {field}={policy_spec[field]} (env '{policy_spec['env_id']}') but "
                f"env '{env_spec['env_id']}' has {field}={env_spec[field]}"
            )


# --- reading --------------------------------------------------------------------------------------
class TransitionDataset(Dataset):
    """Map-style dataset over a dataset directory written by :func:`write_dataset` / :func:`collect_dataset`.

    The directory is validated on opening (metadata, every field's file, shape and dtype); a missing
    or corrupt part raises an error naming the file or field. Data stays memory-mapped.

    ``dataset[i]`` (int) gives one transition (batch ``[]``); ``dataset[idx]`` with an index tensor
    ``(B,)`` (or a list / slice) gives a batch ``[B]``: ``OBS`` ``(B, *obs_shape)``, ``ACTION`` ``(B,)``
    int64 (discrete), ``REWARD`` ``(B, nstep)`` float32, ``NEXT_OBS``, ``TERMINATED`` ``(B,)`` bool,
    ``STEPS`` ``(B,)`` int64, plus ``INDEX`` ``(B,)`` int64, the dataset indices (as replay samples
    carry storage indices). Batches are copies, not views of the files.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.metadata = read_metadata(self.path)
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
