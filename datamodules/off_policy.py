"""Env-backed DataModule for off-policy methods: collect with the live policy, replay, sample."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from numpy.random import SeedSequence
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.data import NStepTransitionBuilder, PrioritizedReplayBuffer, linear_beta
from lightning_rl.data.collector import VectorCollector
from lightning_rl.datamodules.base import EnvDataModule
from lightning_rl.envs import make_vector_env
from lightning_rl.envs.vector import EnvFactory, Vectorization
from lightning_rl.utils.checks import check_positive, check_range
from lightning_rl.utils.io import atomic_save


class OffPolicyDataModule(EnvDataModule):
    """Vector envs + n-step transition builder + (prioritized) replay, served as a stream of batches.

    Each pass of the stream collects ``train_freq`` env steps (whole vector steps) with the live policy
    (``policy.act(obs, mode="collect")``), then yields ``gradient_steps`` batches, each sampled after the
    previous update wrote its priorities back. The first ``learning_starts`` env steps are collected
    before any batch. Env state, buffer and counters live here, outside the iterator, so a new
    ``iter()`` (a new epoch, a resumed run) continues where the last one stopped.

    Checkpoints carry the buffer (contents, priorities, sampling RNG), counters and RNG states; with
    several ranks each rank's buffer is written into the run's log directory instead
    (``replay/iter<N>/rank<r>.pt``) and reloaded by the same rank on resume. Envs restart their episodes
    on resume (an env's internal state is not checkpointable in general).

    Args (besides :class:`EnvDataModule`'s):
        buffer_size: replay capacity per rank (transitions).
        batch_size: transitions per gradient step.
        learning_starts: env steps (global) collected before the first gradient step.
        train_freq: env steps (per rank) collected between training phases, rounded up to whole vector steps.
        gradient_steps: gradient steps (batches) per training phase. ``gradient_steps / train_freq`` is the
            replay ratio.
        nstep: length of n-step returns.
        prioritized: prioritized replay (Schaul et al. 2016) instead of uniform sampling.
        priority_alpha: priority exponent.
        priority_beta, priority_beta_final, priority_beta_steps: importance-sampling exponent annealed
            linearly over ``priority_beta_steps`` global env steps.
        compress_obs: lz4-compress observations in checkpoints; ``None`` = only for image (uint8) obs.
        replay_dir: where multi-rank runs write per-rank buffers (default:
            ``<trainer.log_dir>/replay``, or ``<trainer.default_root_dir>/replay`` without a logger).
    """

    def __init__(
        self,
        env_id: str | None = "CartPole-v1",
        env_fn: EnvFactory | None = None,
        env_kwargs: dict[str, Any] | None = None,
        n_envs: int = 8,
        vectorization: Vectorization = "sync",
        seed: int = 0,
        max_env_steps: int | None = None,
        eval_episodes: int = 20,
        eval_seed: int = 10_000,
        buffer_size: int = 100_000,
        batch_size: int = 64,
        learning_starts: int = 1_000,
        train_freq: int = 8,
        gradient_steps: int = 4,
        nstep: int = 1,
        prioritized: bool = False,
        priority_alpha: float = 0.6,
        priority_beta: float = 0.4,
        priority_beta_final: float = 1.0,
        priority_beta_steps: int = 100_000,
        compress_obs: bool | None = None,
        replay_dir: str | None = None,
    ):
        super().__init__(
            env_id, env_fn, env_kwargs, n_envs, vectorization, seed, max_env_steps, eval_episodes, eval_seed
        )
        check_positive(
            buffer_size=buffer_size,
            batch_size=batch_size,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            nstep=nstep,
            priority_beta_steps=priority_beta_steps,
        )
        if learning_starts < 0:
            raise ValueError(f"learning_starts must be >= 0, got {learning_starts}")
        if batch_size > buffer_size:
            raise ValueError(f"batch_size ({batch_size}) must be <= buffer_size ({buffer_size})")
        check_range("priority_alpha", priority_alpha, 0.0, math.inf)
        check_range("priority_beta", priority_beta, 0.0, 1.0)
        check_range("priority_beta_final", priority_beta_final, 0.0, 1.0)
        self.save_hyperparameters()
        # importance-sampling exponent as a function of global env steps
        self.beta = linear_beta(priority_beta, priority_beta_final, priority_beta_steps)
        if compress_obs is None:
            compress_obs = self.env_spec["obs_dtype"] == "uint8"
        self._compress_keys = (keys.OBS, keys.NEXT_OBS) if compress_obs else ()
        self.buffer: PrioritizedReplayBuffer | None = None  # per rank, built in setup()
        self.builder = NStepTransitionBuilder(n_envs, nstep)
        self.collector: VectorCollector | None = None
        self.generator = torch.Generator()  # exploration randomness of this rank, seeded in setup()
        self._vector_steps_per_phase = math.ceil(train_freq / n_envs)
        # Sampling starts once every rank surely holds a batch: a rank-local buffer length would let
        # ranks disagree (n-step windows still pending) and desynchronize their steps under DDP.
        self._min_local_steps = batch_size + (nstep - 1) * n_envs

    # --- Lightning hooks ----------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if stage != "fit" or self.collector is not None:
            return
        hp = self.hparams
        # Independent streams for replay sampling and exploration, both derived from this rank's seed.
        replay_seed, explore_seed = (
            int(s.generate_state(1)[0]) for s in SeedSequence(self.rank_seed).spawn(2)
        )
        if self.buffer is None:  # a second fit() in the same process keeps the replay it has
            self.buffer = PrioritizedReplayBuffer(
                hp.buffer_size,
                alpha=hp.priority_alpha,
                prioritized=hp.prioritized,
                seed=replay_seed,
                compress_keys=self._compress_keys,
            )
        self.generator.manual_seed(explore_seed)
        self.collector = VectorCollector(make_vector_env(self.make_env, self.n_envs, self.vectorization))
        self.reset_envs(seed=self.rank_seed)

    def reset_envs(self, seed: int) -> None:
        """Start new episodes in every training env; pending n-step windows belong to the old ones."""
        self.collector.reset(seed=seed)
        self.builder.reset()

    def train_dataloader(self) -> Iterable[TensorDict]:
        return _Restartable(self.iter_batches)

    def iter_batches(self) -> Iterator[TensorDict]:
        """Collection phases and sampled batches, forever (or until the env-step budget, which also ends
        training). Sampling happens only when the consumer asks for the next batch, i.e. after the
        previous update wrote its priorities back."""
        hp = self.hparams
        while True:
            if self.budget_reached():
                self.trainer.should_stop = True
                return
            self.collect(self._vector_steps_per_phase)
            if (
                self.env_steps < hp.learning_starts
                or self.env_steps // self.world_size < self._min_local_steps
            ):
                continue
            for _ in range(hp.gradient_steps):
                yield self.sample()

    def teardown(self, stage: str) -> None:
        super().teardown(stage)
        if self.collector is not None:
            self.collector.env.close()
            self.collector = None

    # --- collection and sampling ------------------------------------------------------------------
    def collect(self, vector_steps: int = 1) -> None:
        """Step every env ``vector_steps`` times with the live policy and store the n-step transitions."""
        policy = self.trainer.lightning_module

        def act(obs: torch.Tensor) -> torch.Tensor:
            return policy.act(obs, mode="collect", env_steps=self.env_steps, generator=self.generator)

        episodes_before = self.collector.episodes
        for _ in range(vector_steps):
            transitions = self.builder.add(*self.collector.step(act))
            if transitions is not None:
                self.buffer.extend(transitions)
            self.env_steps += self.n_envs * self.world_size
        self.episodes += self.collector.episodes - episodes_before

    def sample(self) -> TensorDict:
        return self.buffer.sample(self.hparams.batch_size, beta=self.beta(self.env_steps))

    def update_priority(self, index: torch.Tensor, priority: torch.Tensor) -> None:
        """Write new priorities (``|TD error|``, shape (B,)) for sampled storage indices (B,); a no-op
        for uniform replay."""
        if self.hparams.prioritized:
            self.buffer.update_priority(index.cpu(), priority.detach().cpu())

    def metrics(self) -> dict[str, float]:
        metrics = {"collect/episodes": float(self.episodes)}
        if self.collector is not None:
            metrics.update(self.collector.episode_stats())
        if self.buffer is not None:
            metrics.update({f"buffer/{name}": value for name, value in self.buffer.stats().items()})
        return metrics

    # --- checkpointing ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "world_size": self.world_size,
            "generator": self.generator.get_state(),
        }
        if not self.include_replay_in_state:
            return state
        if self.world_size == 1:
            state["buffer"] = self.buffer.state_dict()
            return state
        # Several ranks: each saves its own buffer; the checkpoint (written by rank 0) records where.
        train_iter = self.trainer.lightning_module.train_iter
        run_dir = self.trainer.log_dir or self.trainer.default_root_dir  # a collective: every rank is here
        root = self.hparams.replay_dir or os.path.join(run_dir, "replay")
        state["buffer_dir"] = os.path.abspath(os.path.join(root, f"iter{train_iter}"))
        atomic_save(
            {"buffer": self.buffer.state_dict(), "generator": state["generator"]},
            os.path.join(state["buffer_dir"], f"rank{self.rank}.pt"),
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env_steps, self.episodes = int(state["env_steps"]), int(state["episodes"])
        if self.buffer is None:  # validate/test: no replay, only the counters matter
            return
        if "buffer" not in state and "buffer_dir" not in state:
            raise ValueError(
                "this checkpoint holds no replay buffer (best.ckpt is saved without one); "
                "resume from last.ckpt"
            )
        if state["world_size"] != self.world_size:
            raise ValueError(
                f"checkpoint was written by {state['world_size']} ranks but this run has {self.world_size}; "
                "resume with the same world size (each rank owns its replay buffer)"
            )
        # New episodes on resume, from seeds the original run did not use for its first ones.
        self.reset_envs(seed=self.rank_seed + self.env_steps)
        if "buffer" in state:
            self.buffer.load_state_dict(state["buffer"])
            self.generator.set_state(state["generator"])
            return
        path = os.path.join(state["buffer_dir"], f"rank{self.rank}.pt")
        if not os.path.exists(path):
            raise FileNotFoundError(f"replay buffer of rank {self.rank} not found at {path}")
        rank_state = torch.load(path, weights_only=True)
        self.buffer.load_state_dict(rank_state["buffer"])
        self.generator.set_state(rank_state["generator"])


class _Restartable:
    """An iterable whose every ``iter()`` starts a new generator (Lightning calls ``iter()`` per epoch);
    the state the generator works on lives in the DataModule, so a new one continues the same run."""

    def __init__(self, make_iterator: Callable[[], Iterator[TensorDict]]):
        self.make_iterator = make_iterator

    def __iter__(self) -> Iterator[TensorDict]:
        return self.make_iterator()
