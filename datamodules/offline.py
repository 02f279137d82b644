"""DataModule for offline RL: batches from a transition dataset on disk, evaluation on the live env."""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from tensordict import TensorDict
from torch.utils.data import DataLoader

from lightning_rl.contract import StepBatches
from lightning_rl.data.offline import RandomBatchSampler, TransitionDataset, collate_transitions
from lightning_rl.datamodules.base import EnvDataModule, Restartable
from lightning_rl.envs.vector import EnvFactory
from lightning_rl.utils.checks import check_positive

# num_workers=0 is deliberate (DESIGN.md §6 "Workers and threads"); Lightning suggests more on big hosts.
warnings.filterwarnings(
    "ignore", message=".*" + re.escape("The 'train_dataloader' does not have many workers")
)


class OfflineDataModule(EnvDataModule):
    """Trains from a fixed dataset (written by ``lightning-rl collect``); the env serves evaluation only.

    ``train_dataloader()`` is a ``torch.utils.data.DataLoader`` over a :class:`TransitionDataset` with a
    :class:`RandomBatchSampler` (uniform with replacement, endless: ``trainer.max_steps`` is the budget)
    and :func:`collate_transitions`, so batches look like uniform replay samples (``index``, ``weight``
    ones) and off-policy policies train on them unchanged. ``update_priority`` is a no-op.

    No env steps are taken: ``env_steps`` stays 0 and learning curves of offline runs are read against
    ``train_iter`` (on every logged row, next to ``env_steps``).

    Args:
        dataset_dir: the dataset directory.
        env_id: the evaluation env; ``None`` (and no ``env_fn``) takes the id and ``env_kwargs`` recorded
            in the dataset. Whatever is given must have the dataset's observation and action spaces.
        env_fn, env_kwargs: as in :class:`EnvDataModule`.
        batch_size: transitions per gradient step.
        updates_per_step: gradient updates per Lightning ``training_step`` (amortizes Lightning's cost).
        kwargs: :class:`EnvDataModule`'s ``vectorization``, ``env_manager``, ``eval_env_kwargs`` and
            ``seed`` (of batch sampling). One process only for now: Lightning's DDP would wrap the
            endless sampler in a ``DistributedSampler``, which needs a length.
    """

    x_axis = "train_iter"  # no env steps are taken

    def __init__(
        self,
        dataset_dir: str,
        env_id: str | None = None,
        env_fn: EnvFactory | None = None,
        env_kwargs: dict[str, Any] | None = None,
        batch_size: int = 256,
        updates_per_step: int = 4,
        **kwargs: Any,
    ):
        dataset = TransitionDataset(dataset_dir)  # validated before anything else is built
        recorded = dataset.env_spec["env_id"]
        if env_id is None and env_fn is None:
            env_id = recorded
            env_kwargs = dataset.metadata.get("env_kwargs") if env_kwargs is None else env_kwargs
        # n_envs=1: there are no training envs (evaluation sizes its own vector env), and no env steps
        super().__init__(
            env_id=env_id, env_fn=env_fn, env_kwargs=env_kwargs, n_envs=1, max_env_steps=None, **kwargs
        )
        check_positive(batch_size=batch_size, updates_per_step=updates_per_step)
        for field in ("obs_shape", "obs_dtype", "action_type", "n_actions", "action_shape"):
            if self.env_spec[field] != dataset.env_spec[field]:
                raise ValueError(
                    f"data.env_id: env '{self.env_name}' has {field}={self.env_spec[field]} but dataset "
                    f"{dataset_dir} was collected on '{recorded}' with {field}={dataset.env_spec[field]}"
                )
        self.dataset = dataset
        self.batch_size = batch_size
        self.generator = torch.Generator()  # sampling randomness of this rank, seeded in setup()
        self.batches_sampled = 0
        self._seeded = False

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.world_size > 1:
            raise ValueError(
                f"OfflineDataModule trains on one process; this run has {self.world_size} "
                "(set trainer.devices: 1 and trainer.num_nodes: 1)"
            )
        if stage == "fit" and not self._seeded:  # a second fit() in the same process continues the stream
            self.generator.manual_seed(self.rank_seed)
            self._seeded = True

    def train_dataloader(self) -> Iterable[StepBatches]:
        sampler = RandomBatchSampler(len(self.dataset), self.batch_size, generator=self.generator)
        # batch_size=None: the sampler yields whole index batches, the dataset gathers each in one go
        loader = DataLoader(
            self.dataset,
            batch_size=None,
            sampler=sampler,
            collate_fn=self._collate,
            num_workers=0,  # nothing to parallelize: a gather from the memory map is ~30 µs
        )
        return Restartable(lambda: self._steps(iter(loader)))

    def _steps(self, batches: Iterator[TensorDict]) -> Iterator[StepBatches]:
        """The endless batch stream in training steps of ``updates_per_step`` (each drawn on demand)."""
        while True:
            yield itertools.islice(batches, self.hparams.updates_per_step)

    def _collate(self, batch: Any) -> Any:
        self.batches_sampled += 1
        return collate_transitions(batch)

    def metrics(self) -> dict[str, float]:
        """``buffer/size`` (dataset transitions) and ``buffer/passes`` (sampled transitions / size)."""
        size = len(self.dataset)
        return {"buffer/size": float(size), "buffer/passes": self.batches_sampled * self.batch_size / size}

    def state_dict(self) -> dict[str, Any]:
        return {
            **self.counters.state_dict(),
            "batches_sampled": self.batches_sampled,
            "dataset_id": self.dataset.metadata.get("id"),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("dataset_id") != self.dataset.metadata.get("id"):
            raise ValueError(
                f"the checkpoint was trained on another dataset (id {state.get('dataset_id')}) than "
                f"data.dataset_dir={self.hparams.dataset_dir} (id {self.dataset.metadata.get('id')})"
            )
        self.counters.load_state_dict(state)
        self.batches_sampled = int(state["batches_sampled"])
        self.generator.set_state(state["generator"])
        self._seeded = True
