"""Env-backed DataModule for off-policy methods: collect with the live policy, replay, sample."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal

import torch
from numpy.random import SeedSequence
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.contract import Actor, StepBatches
from lightning_rl.data import PrioritizedBuffer
from lightning_rl.data.actor_mirror import ActorMirror
from lightning_rl.data.actors import RayActorPool
from lightning_rl.data.background import BackgroundCollection
from lightning_rl.data.collector import VectorCollector
from lightning_rl.data.frames import FrameStore
from lightning_rl.data.pipeline import TransitionPipeline
from lightning_rl.data.throttle import SampleInsertRatio
from lightning_rl.datamodules.base import EnvDataModule, Restartable, refuse_with_ray
from lightning_rl.torch_utils import Schedule
from lightning_rl.utils.checks import ConfigError, check_at_least, check_choice, check_positive, check_range
from lightning_rl.utils.integrity import CheckpointError, load_torch_file
from lightning_rl.utils.io import atomic_save

# frame_store turns on by itself for uint8 observations (k, H, W) with a stack of at most this many frames
MAX_AUTO_STACK = 16


class OffPolicyDataModule(EnvDataModule):
    """Vector envs + n-step transition builder + (prioritized) replay, served as a stream of batches.

    The stream yields the batches of each ``training_step`` (``lightning_rl.contract.StepBatches``).

    **Synchronous collection** (default): each pass of the stream collects ``train_freq`` env steps
    (whole vector steps) with the live policy (``policy.act(obs, mode="collect")``), then serves
    ``gradient_steps`` batches, each sampled after the previous update wrote its priorities back. The
    replay ratio is fixed: ``gradient_steps * batch_size / train_freq`` samples per inserted transition.

    **Asynchronous collection** (``async_collection=True``, nerveX's AsyncDataLoader): a background
    thread steps the envs with a copy of the policy (refreshed from the learner every
    ``actor_refresh_interval`` updates) while the learner trains, so env stepping overlaps with gradient
    steps. ``sample_insert_ratio`` keeps ``sampled / inserted`` items in a band by holding back whichever
    side runs ahead (unset: both run free). Items record the policy iteration of the actor that
    collected them (``max_staleness`` filters on it).

    **Remote actors** (``collection: ray``, Ape-X): ``ray.n_actors`` processes each step their own
    ``n_envs`` envs with a copy of the policy and send the n-step transitions of every ``train_freq`` env
    steps (per actor, whole vector steps); a thread here inserts them while the learner trains, the
    weights go out every ``actor_refresh_interval`` updates, ``sample_insert_ratio`` throttles as above,
    and DQN's actors explore with Ape-X's fixed epsilon each (``ray.exploration: spread``).

    The first ``learning_starts`` env steps are collected before any batch. Env state, buffer and
    counters live here, outside the iterator, so a new ``iter()`` (a new epoch, a resumed run) continues
    where the last one stopped.

    Checkpoints carry the buffer (contents, priorities, reuse counts, sampling RNG), counters and RNG
    states; with several ranks each rank's buffer is written into the run's log directory instead
    (``replay/iter<N>/rank<r>/``, written with :meth:`PrioritizedBuffer.save`) and reloaded by the same
    rank on resume; so is a ``storage: memmap`` buffer on one rank (never copied into memory). Envs
    restart their episodes on resume (an env's internal state is not checkpointable in general).

    Args (besides :class:`EnvDataModule`'s, passed on as ``**kwargs``):
        buffer_size: replay capacity per rank (transitions).
        batch_size: transitions per gradient step.
        learning_starts: env steps (global) collected before the first gradient step.
        train_freq: env steps (per rank) collected between training phases, rounded up to whole vector
            steps (synchronous collection); with ``collection: ray``, env steps per remote task.
        gradient_steps: gradient steps (batches) per training phase (synchronous collection).
        updates_per_step: gradient updates per Lightning ``training_step`` (amortizes Lightning's per-step
            cost); a phase's ``gradient_steps`` are split into steps of at most this many, so a step never
            straddles a collection. ``trainer.max_steps`` still counts single updates.
        nstep: length of n-step returns.
        prioritized: prioritized replay (Schaul et al. 2016) instead of uniform sampling.
        priority_alpha: priority exponent.
        priority_beta, priority_beta_final, priority_beta_steps: importance-sampling exponent annealed
            linearly over ``priority_beta_steps`` global env steps.
        max_use: evict a transition after it was sampled this many times (``None``: never).
        max_staleness: do not sample transitions collected more than this many policy updates ago
            (``None``: no limit).
        async_collection: collect in a background thread (see above).
        actor_refresh_interval: with ``async_collection`` or ``collection: ray``, send the learner's
            weights to the collecting policies every this many updates.
        sample_insert_ratio: with ``async_collection`` or ``collection: ray``, ``[min, max]`` band of
            sampled / inserted transitions; ``max`` may be ``.inf``.
        storage: ``"memory"`` or ``"memmap"`` (the buffer's rows in a file under ``memmap_dir``, paged by
            the OS: for replay larger than RAM; the file is unlinked at once, so nothing is left behind).
        memmap_dir: directory of the memmap file (required with ``storage: memmap``; a fast local disk).
        frame_store: keep stacked image observations ``(k, *frame)`` as frame ids into a
            :class:`~lightning_rl.data.FrameStore` (each frame stored once, lz4-compressed; batches are
            decoded back to frames when sampled); ``None``: on for uint8 observations ``(k, H, W)``
            with ``k <= 16`` (Atari's ``(4, 84, 84)``), not for ``(H, W, C)`` images.
        compress_obs: lz4-compress observations in checkpoints; ``None``: for uint8 observations that
            are not in a frame store.
        replay_dir: where multi-rank runs write per-rank buffers (default:
            ``<trainer.log_dir>/replay``, or ``<trainer.default_root_dir>/replay`` without a logger).
    """

    def __init__(
        self,
        buffer_size: int = 100_000,
        batch_size: int = 64,
        learning_starts: int = 1_000,
        train_freq: int = 8,
        gradient_steps: int = 4,
        updates_per_step: int = 4,
        nstep: int = 1,
        prioritized: bool = False,
        priority_alpha: float = 0.6,
        priority_beta: float = 0.4,
        priority_beta_final: float = 1.0,
        priority_beta_steps: int = 100_000,
        max_use: int | None = None,
        max_staleness: int | None = None,
        async_collection: bool = False,
        actor_refresh_interval: int = 4,
        sample_insert_ratio: Sequence[float] | None = None,
        storage: Literal["memory", "memmap"] = "memory",
        memmap_dir: str | None = None,
        frame_store: bool | None = None,
        compress_obs: bool | None = None,
        replay_dir: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        check_positive(
            buffer_size=buffer_size,
            batch_size=batch_size,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            updates_per_step=updates_per_step,
            nstep=nstep,
            priority_beta_steps=priority_beta_steps,
            actor_refresh_interval=actor_refresh_interval,
        )
        check_at_least("learning_starts", learning_starts, 0)
        if self.max_env_steps is not None and learning_starts > self.max_env_steps:
            raise ConfigError(
                f"learning_starts ({learning_starts}) must be <= max_env_steps ({self.max_env_steps}): "
                "no gradient update would run",
                "learning_starts",
                f"got {learning_starts}, more than max_env_steps (no gradient update would run)",
                f"<= max_env_steps ({self.max_env_steps})",
            )
        if batch_size > buffer_size:
            raise ConfigError(
                f"batch_size ({batch_size}) must be <= buffer_size ({buffer_size})",
                "batch_size",
                f"got {batch_size}, more than buffer_size",
                f"<= buffer_size ({buffer_size})",
            )
        check_positive(max_use=max_use)
        check_at_least("max_staleness", max_staleness, 0)
        check_range("priority_alpha", priority_alpha, 0.0, math.inf)
        check_range("priority_beta", priority_beta, 0.0, 1.0)
        check_range("priority_beta_final", priority_beta_final, 0.0, 1.0)
        check_choice("storage", storage, ("memory", "memmap"))
        if (storage == "memmap") != (memmap_dir is not None):
            raise ValueError(
                f"memmap_dir must be set exactly when storage is 'memmap', got storage={storage!r}"
            )
        remote = self.ray_settings is not None
        if sample_insert_ratio is not None and not (async_collection or remote):
            raise ValueError(
                "sample_insert_ratio only applies with async_collection: true or collection: ray; "
                "synchronous collection fixes the ratio at gradient_steps * batch_size / train_freq"
            )
        if remote:
            refuse_with_ray(
                "async_collection", async_collection, "remote actors always collect asynchronously"
            )
            refuse_with_ray("frame_store", bool(frame_store), "remote actors send whole observations")
        n_envs = self.n_envs
        # importance-sampling exponent as a function of global env steps
        self.beta = Schedule(priority_beta, priority_beta_final, "linear", priority_beta_steps)
        image_obs = self.env_spec["obs_dtype"] == "uint8"
        obs_shape = self.env_spec["obs_shape"]
        if frame_store is None:  # channel-first frame stacks only: an (H, W, C) image is not a stack
            stacks = len(obs_shape) == 3 and obs_shape[0] <= MAX_AUTO_STACK < obs_shape[1]
            frame_store = image_obs and stacks and not remote
        elif frame_store and (not image_obs or len(obs_shape) < 2):
            raise ValueError(
                "frame_store needs stacked uint8 image observations (k, *frame); env "
                f"'{self.env_name}' has obs_shape {obs_shape} dtype {self.env_spec['obs_dtype']}"
            )
        self._frame_store_capacity = (
            int(1.1 * buffer_size) + 4 * n_envs * (obs_shape[0] + nstep) if frame_store else 0
        )
        if compress_obs is None:
            compress_obs = image_obs and not frame_store
        self._compress_keys = (keys.OBS, keys.NEXT_OBS) if compress_obs else ()
        self.buffer: PrioritizedBuffer | None = None  # per rank, built in setup()
        self.frames: FrameStore | None = None  # per rank, built in setup() when frame_store is on
        self.pipeline: TransitionPipeline | None = None  # envs -> n-step transitions, built in setup()
        self.generator = torch.Generator()  # exploration randomness of this rank, seeded in setup()
        self._vector_steps_per_phase = math.ceil(train_freq / n_envs)
        # Sampling starts once every rank surely holds a batch: a rank-local buffer length would let
        # ranks disagree (n-step windows still pending) and desynchronize their steps under DDP.
        self._min_local_steps = batch_size + (nstep - 1) * n_envs
        # Guards buffer, pipeline and counters; uncontended (and nearly free) without async collection.
        self._cond = threading.Condition()
        self._throttle = SampleInsertRatio(sample_insert_ratio) if sample_insert_ratio is not None else None
        # the collecting copy of the policy (async collection), or the remote actors (collection: ray)
        self._mirror: ActorMirror | RayActorPool | None = None
        self._stream_ended = False  # a step's batches found the stream at its end (async collection)

    # --- Lightning hooks ----------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if stage != "fit" or self.collector is not None or self._remote is not None:
            return
        hp = self.hparams
        self.check_policy(self.trainer.lightning_module)
        # Independent streams for replay sampling and exploration, both derived from this rank's seed.
        replay_seed, explore_seed = (
            int(s.generate_state(1)[0]) for s in SeedSequence(self.rank_seed).spawn(2)
        )
        if self.buffer is None:  # a second fit() in the same process keeps the replay it has
            self.buffer = PrioritizedBuffer(
                hp.buffer_size,
                alpha=hp.priority_alpha,
                prioritized=hp.prioritized,
                seed=replay_seed,
                compress_keys=self._compress_keys,
                max_use=hp.max_use,
                max_staleness=hp.max_staleness,
                storage=hp.storage,
                memmap_dir=hp.memmap_dir,
            )
        if self._frame_store_capacity and self.frames is None:
            # ring headroom over the buffer: episode resets and the oldest stacks' older frames
            self.frames = FrameStore(self._frame_store_capacity, self.n_envs)
        self.generator.manual_seed(explore_seed)
        policy = self.trainer.lightning_module
        if self.ray_settings is not None:  # the actors start while Lightning sets up the rest
            self._remote = self.start_remote_actors(policy, self._remote_task, nstep=hp.nstep)
            return
        self.collector = VectorCollector(self.make_vector_env(self.n_envs), self.counters, self.world_size)
        self.pipeline = self.build_pipeline(policy)
        self.pipeline.reset(seed=self.rank_seed)

    def build_pipeline(self, policy: Actor) -> TransitionPipeline:
        """What turns :attr:`collector`'s steps into replay items: n-step transitions here."""
        return TransitionPipeline(self.collector, self.hparams.nstep, self.frames)

    def act_fn(self, policy: Actor) -> Callable[..., Any]:
        """The exploring act callable the pipeline steps the envs with: obs ``(E, *obs_shape)`` -> actions."""

        def act(obs: torch.Tensor) -> torch.Tensor:
            return policy.act(obs, mode="collect", env_steps=self.env_steps, generator=self.generator)

        return act

    def train_dataloader(self) -> Iterable[StepBatches]:
        concurrent = self.hparams.async_collection or self._remote is not None
        return Restartable(self._iter_async if concurrent else self.iter_steps)

    def iter_steps(self) -> Iterator[StepBatches]:
        """Collection phases and the batches of the training steps between them, forever (or until the
        env-step budget, which also ends training). A phase's ``gradient_steps`` batches are split into
        steps of at most ``updates_per_step``, so no step straddles a collection. Each batch is sampled
        only when the policy asks for it, i.e. after the previous update wrote its priorities back."""
        hp = self.hparams
        while True:
            if self.budget_reached():
                self.trainer.should_stop = True
                return
            self.collect(self._vector_steps_per_phase)
            if not self._warmed_up():
                continue
            remaining = hp.gradient_steps
            while remaining > 0 and not self._starved():  # a step cut short by starvation ends the phase
                n = min(hp.updates_per_step, remaining)
                yield self._step_batches(self._sample_unless_starved, n)
                remaining -= n

    def _step_batches(self, draw: Callable[[], TensorDict | None], n: int) -> Iterator[TensorDict]:
        """Up to ``n`` batches from ``draw()`` (``None``: no more for this step); the first draw is
        known to succeed."""
        for i in range(n):
            batch = self.sample() if i == 0 else draw()
            if batch is None:
                return
            yield batch

    def _sample_unless_starved(self) -> TensorDict | None:
        return None if self._starved() else self.sample()

    def _starved(self) -> bool:
        """Too few live items for a batch (max_use, max_staleness or the frame store evicted them): collect
        first. Ranks decide together, since their buffers differ and DDP needs the same number of steps
        on each."""
        hp = self.hparams
        starved = self.buffer.num_sampleable < hp.batch_size
        evicting = hp.max_use is not None or hp.max_staleness is not None or self.frames is not None
        if self.world_size > 1 and evicting:
            starved = self.trainer.strategy.reduce_boolean_decision(starved, all=False)
        return starved

    def _iter_async(self) -> Iterator[StepBatches]:
        """Steps of ``updates_per_step`` batches sampled while the background thread collects; stops at
        the env-step budget."""
        if self._background is None:
            self._start_background(self.trainer.lightning_module)
        self._stream_ended = False
        while not self._stream_ended:
            if not self._async_ready():
                break
            yield self._async_step_batches()
        self.trainer.should_stop = True

    def _async_step_batches(self) -> Iterator[TensorDict]:
        policy = self.trainer.lightning_module
        for i in range(self.hparams.updates_per_step):
            if i and not self._async_ready():
                self._stream_ended = True
                return
            with self._cond:
                batch = self.sample()
                self._cond.notify_all()  # the sample may have moved the ratio back into the collector's band
            yield batch
            if policy.train_iter - self._mirror.published_version >= self.hparams.actor_refresh_interval:
                self._mirror.publish(policy)

    def _async_ready(self) -> bool:
        """Wait until a batch can be sampled; ``False`` once the budget is spent (all ranks together)."""
        if self._remote is not None:
            self.sync_remote_steps()  # before the budget decision, on every rank alike
        with self._cond:
            ready = self._background.wait_until(lambda: self.budget_reached() or self._may_sample())
            stop = not ready or self.budget_reached()
        if self.world_size > 1:  # ranks collect at their own pace: stop together or deadlock in DDP
            stop = self.trainer.strategy.reduce_boolean_decision(stop, all=False)
        return not stop

    # --- collection and sampling ------------------------------------------------------------------
    def collect(self, vector_steps: int = 1) -> None:
        """Step every env ``vector_steps`` times with the live policy and store the n-step transitions."""
        policy = self.trainer.lightning_module
        for _ in range(vector_steps):
            self._collect_vector_step(policy, policy.train_iter)

    def _collect_vector_step(self, policy: Actor, policy_iter: int) -> None:
        """One vector step with ``policy`` (whose weights are from update ``policy_iter``) into the buffer."""
        step = self.pipeline.collect(self.act_fn(policy))  # outside the lock: the learner samples meanwhile
        with self._cond:
            transitions = self.pipeline.build(step)
            if transitions is not None:
                self.buffer.extend(transitions, policy_iter=policy_iter)
            self._cond.notify_all()

    def _warmed_up(self) -> bool:
        # with remote actors on several ranks env_steps moves only at the ranks' syncs: this rank's own
        # count decides here, or a rank waiting for data would wait for a sync that never comes
        steps = self.env_steps if self._remote is None else self.remote_steps_estimate()
        return steps >= self.hparams.learning_starts and steps // self.world_size >= self._min_local_steps

    def _has_data(self) -> bool:
        """Warmed up and enough live items for a batch: what only more collection can change."""
        return self._warmed_up() and self.buffer.num_sampleable >= self.hparams.batch_size

    def _may_sample(self) -> bool:
        return self._has_data() and (
            self._throttle is None or self._throttle.can_sample(self.buffer.sampled, self.buffer.pushed)
        )

    def sample(self) -> TensorDict:
        self.buffer.train_iter = self.trainer.lightning_module.train_iter
        while True:
            batch = self.buffer.sample(self.hparams.batch_size, beta=self.beta(self.env_steps))
            if self.frames is None:
                return batch
            # Items whose frames the ring already overwrote (rare with the default sizing): evict, redraw.
            held = self.frames.available(batch[keys.OBS]) & self.frames.available(batch[keys.NEXT_OBS])
            if bool(held.all()):
                return self._decode_frames(batch)
            self.buffer.evict(batch[keys.INDEX][~held])

    def _decode_frames(self, batch: TensorDict) -> TensorDict:
        """Frame ids (B, k) -> frames (B, k, *frame) for ``OBS`` and ``NEXT_OBS``, decoded in one call so
        that the frames they share are decompressed once."""
        frames = self.frames.decode(torch.stack((batch[keys.OBS], batch[keys.NEXT_OBS])))
        batch[keys.OBS], batch[keys.NEXT_OBS] = frames[0], frames[1]
        return batch

    def update_priority(self, index: torch.Tensor, priority: torch.Tensor) -> None:
        """Write new priorities (``|TD error|``, shape (B,)) for sampled storage indices (B,); a no-op
        for uniform replay."""
        if self.hparams.prioritized:
            index, priority = index.cpu(), priority.detach().cpu()
            with self._cond:
                self.buffer.update_priority(index, priority)

    # --- asynchronous collection --------------------------------------------------------------------
    def _remote_task(self, actor: int) -> tuple[str, tuple[int, int]]:
        """A remote actor's next task: ``train_freq`` env steps (whole vector steps) at the current count."""
        return "transitions", (self._vector_steps_per_phase, self.env_steps)

    def _start_background(self, policy: Actor) -> None:
        if self._remote is not None:  # the thread inserts what the remote actors send
            self._mirror = remote = self._remote
            remote.publish(policy)
            self.start_remote_tasks()

            def step() -> None:
                result = remote.next_result(timeout=1.0)  # a bounded wait: stop() is noticed
                if result is None:
                    return
                with self._cond:
                    if result.data is not None:
                        self.buffer.extend(result.data, policy_iter=result.version)
                    self.count_remote_steps(result)
                    self._cond.notify_all()
                remote.submit(result.actor)

        else:
            self._mirror = ActorMirror(policy)

            def step() -> None:  # the newest weights the learner published, then one vector step
                self._mirror.sync()
                self._collect_vector_step(self._mirror.actor, self._mirror.version)

        def may_step() -> bool:
            # Whenever the learner lacks data, only the collector can help: the ratio band must not hold
            # it back then, or both would wait (SampleInsertRatio alone guarantees one may go on).
            return (
                self._throttle is None
                or not self._has_data()
                or self._throttle.can_insert(self.buffer.sampled, self.buffer.pushed)
            )

        self._background = BackgroundCollection(self._cond, step, may_step, self.budget_reached)
        self._background.start()

    def metrics(self) -> dict[str, float]:
        with self._cond:
            metrics = super().metrics()
            if self.buffer is not None:
                metrics.update({f"buffer/{name}": value for name, value in self.buffer.stats().items()})
            if self.frames is not None:
                metrics.update({f"buffer/{name}": value for name, value in self.frames.stats().items()})
            if self._background is not None:
                metrics["collect/collector_wait_s"] = self._background.collector_wait_s
                metrics["collect/learner_wait_s"] = self._background.learner_wait_s
                metrics["collect/actor_lag"] = float(
                    self.trainer.lightning_module.train_iter - self._mirror.version
                )
        return metrics

    # --- checkpointing ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        with self._cond:  # the background collector pauses while the state is captured
            return self._state_dict()

    def _state_dict(self) -> dict[str, Any]:
        state = {
            **self.counters.state_dict(),
            "world_size": self.world_size,
            "generator": self.generator.get_state(),
        }
        if not self.include_replay_in_state:
            return state
        frames = None if self.frames is None else self.frames.state_dict()
        if self.world_size == 1 and self.hparams.storage == "memory":
            state["buffer"] = self.buffer.state_dict()
            state["frames"] = frames
            return state
        # Several ranks, or replay larger than RAM: each rank saves its own (buffer.save writes the
        # directory atomically, streaming the rows); the checkpoint, written by rank 0, records where.
        train_iter = self.trainer.lightning_module.train_iter
        run_dir = self.trainer.log_dir or self.trainer.default_root_dir  # a collective: every rank is here
        root = self.hparams.replay_dir or os.path.join(run_dir, "replay")
        state["buffer_dir"] = os.path.abspath(os.path.join(root, f"iter{train_iter}"))
        rank_dir = os.path.join(state["buffer_dir"], f"rank{self.rank}")
        self.buffer.save(os.path.join(rank_dir, "buffer"))
        atomic_save({"generator": state["generator"], "frames": frames}, os.path.join(rank_dir, "state.pt"))
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counters.load_state_dict(state)
        if self.buffer is None:  # validate/test: no replay, only the counters matter
            return
        if "buffer" not in state and "buffer_dir" not in state:
            raise CheckpointError(
                "this checkpoint holds no replay buffer (best.ckpt is saved without one); "
                "resume from last.ckpt"
            )
        if state["world_size"] != self.world_size:
            raise ValueError(
                f"checkpoint was written by {state['world_size']} ranks but this run has {self.world_size}; "
                "resume with the same world size (each rank owns its replay buffer)"
            )
        if self.pipeline is not None:  # new episodes on resume, from seeds the first ones did not use
            self.pipeline.reset(seed=self.rank_seed + self.env_steps)
        if "buffer" in state:
            self.buffer.load_state_dict(state["buffer"])
            rank_state = state
        else:
            rank_dir = os.path.join(state["buffer_dir"], f"rank{self.rank}")
            if not os.path.isdir(rank_dir):
                raise CheckpointError(f"replay buffer of rank {self.rank} not found at {rank_dir}")
            self.buffer.load(os.path.join(rank_dir, "buffer"))
            rank_state = load_torch_file(os.path.join(rank_dir, "state.pt"))
        self.generator.set_state(rank_state["generator"])
        if (rank_state.get("frames") is None) != (self.frames is None):
            raise ValueError(
                "the checkpoint's replay was saved with frame_store "
                f"{'off' if rank_state.get('frames') is None else 'on'}; set data.frame_store accordingly"
            )
        if self.frames is not None:
            self.frames.load_state_dict(rank_state["frames"])
            self.frames.reset()  # the envs restarted: their last stacks are not the saved ones
