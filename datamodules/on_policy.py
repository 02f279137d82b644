"""Env-backed DataModule for on-policy methods: collect a rollout, compute advantages, serve minibatches."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from numpy.random import SeedSequence
from tensordict import TensorDict
from torch import Tensor

from lightning_rl import keys
from lightning_rl.contract import Minibatch, RolloutActor, StepBatches
from lightning_rl.data.actor_mirror import ActorMirror
from lightning_rl.data.actors import RayActorPool
from lightning_rl.data.background import BackgroundCollection
from lightning_rl.data.collector import VectorCollector
from lightning_rl.data.normalizer import RewardScaler, RunningMeanStd, standardize
from lightning_rl.data.rollout import RolloutCollector
from lightning_rl.datamodules.base import EnvDataModule, Restartable, refuse_with_ray
from lightning_rl.utils.checks import ConfigError, check_choice, check_int, check_positive


class OnPolicyDataModule(EnvDataModule):
    """Rollouts of ``n_envs x n_steps`` with the live policy, turned into shuffled minibatches.

    The policy is a :class:`~lightning_rl.contract.RolloutActor` (its ``gamma`` and ``gae_lambda`` are
    the advantages'). Each pass of the stream: collect ``n_steps`` vector steps with
    ``policy.collect(obs)`` and compute bootstrapped GAE advantages and returns
    (:class:`~lightning_rl.data.rollout.RolloutCollector`), then serve ``n_epochs`` shuffled passes of
    ``batch_size`` minibatches over the ``n_envs * n_steps`` samples, one minibatch per training step. A
    policy may end the epochs early (target KL) with :meth:`stop_epochs`.

    Recurrent policies: whatever ``collect`` returns besides the action (e.g. the hidden state the step
    started from) is stored per step, so the learner can replay the sequence from it, and the policy's
    ``reset_recurrent_state(done (E,) bool)`` is told after every vector step which envs start a new episode.

    Steps an env manager dropped (a faulted env) are left out of the minibatches, and the step before ends
    its advantage trace there (see :mod:`lightning_rl.envs.manager.base`).

    Normalization (running statistics, checkpointed with the DataModule): ``normalize_obs`` standardizes
    observations for collection, training and evaluation alike; ``normalize_reward`` divides rewards by the
    running std of the discounted return (with the policy's ``gamma``). Episode statistics are always of
    the raw rewards.

    Args (besides :class:`EnvDataModule`'s, passed on as ``**kwargs``):
        n_steps: vector steps per rollout (per rank).
        n_epochs: passes over each rollout.
        batch_size: samples per minibatch; ``n_envs * n_steps`` must be a multiple of it.
        minibatch: ``"steps"``: shuffled env steps, ``(batch_size,)`` (PPO, A2C); ``"trajectories"``: whole
            env trajectories of the rollout, time-major ``(n_steps, batch_size // n_steps)``, with the
            true next observations kept for the learner's own bootstraps (IMPALA's V-trace). Dropped
            steps then stay in place with ``mask`` False.
        normalize_advantage: standardize advantages per minibatch (PPO's usual practice).
        normalize_obs, normalize_reward: see above; ``clip_obs`` / ``clip_reward`` bound the results.
        async_collection: collect the next rollout in a background thread while the learner trains on the
            current one (IMPALA's actor/learner split; the data layer's ``BackgroundCollection``). The actor
            is a copy of the policy whose weights the learner publishes each time it takes a rollout, so
            rollouts come from a policy one rollout behind: use it with IMPALA, whose V-trace corrects for
            that lag. One rollout waits at most.

    **Remote actors** (``collection: ray``): ``ray.n_actors`` processes each collect ``(n_steps, n_envs)``
    rollouts of their own envs with a copy of the policy, one in flight per actor; the learner trains on
    each rollout as it arrives, and the actor that sent it starts its next one with the learner's newest
    weights. Rollouts lag by up to ``n_actors`` versions: use it with IMPALA (V-trace).
    """

    policy_protocol = RolloutActor
    policy_hint = (
        "use an actor-critic policy (PPO, A2C, IMPALA) or implement lightning_rl.contract.RolloutActor"
    )

    def __init__(
        self,
        n_steps: int = 128,
        n_epochs: int = 4,
        batch_size: int = 256,
        minibatch: Minibatch = "steps",
        normalize_advantage: bool = True,
        normalize_obs: bool = False,
        normalize_reward: bool = False,
        clip_obs: float = 10.0,
        clip_reward: float = 10.0,
        async_collection: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        n_envs = self.n_envs
        check_int("n_steps", n_steps, 1)
        check_int("n_epochs", n_epochs, 1)
        check_int("batch_size", batch_size, 1)
        check_positive(clip_obs=clip_obs, clip_reward=clip_reward)
        check_choice("minibatch", minibatch, ("steps", "trajectories"))
        if (n_envs * n_steps) % batch_size:
            raise ValueError(
                f"batch_size must divide n_envs * n_steps = {n_envs * n_steps} (whole minibatches), "
                f"got {batch_size}"
            )
        if minibatch == "trajectories" and batch_size % n_steps:
            raise ValueError(
                f"batch_size must be a multiple of n_steps = {n_steps} with minibatch 'trajectories' "
                f"(whole trajectories), got {batch_size}"
            )
        if normalize_obs and self.env_spec["obs_dtype"] == "uint8":
            raise ValueError("normalize_obs: image (uint8) observations are scaled by the encoder; set false")
        if normalize_obs and self.env_spec.get("multi_agent"):
            raise ConfigError(
                "normalize_obs: a multi-agent env's packed observation holds its action masks, which "
                "standardizing would break; set false",
                "normalize_obs",
                "a multi-agent env's packed observation holds its action masks, which standardizing "
                "would break",
                "false",
            )
        if self.ray_settings is not None:
            refuse_with_ray(
                "async_collection", async_collection, "remote actors always collect asynchronously"
            )
            own_statistics = "each actor would keep running statistics of its own"
            refuse_with_ray("normalize_obs", normalize_obs, own_statistics)
            refuse_with_ray("normalize_reward", normalize_reward, own_statistics)
        self.obs_stats = RunningMeanStd(tuple(self.env_spec["obs_shape"])) if normalize_obs else None
        self.reward_scaler: RewardScaler | None = None  # with normalize_reward: built in setup(), with gamma
        self.generator = torch.Generator()
        self.minibatch = minibatch
        self.rollouts = 0
        self.rollout_env_steps = 0  # global env steps when the current rollout started (for schedules)
        self._stop_epochs = False
        self._rollouts: RolloutCollector | None = None  # the training envs' rollout collector
        # async collection: finished rollouts, the collecting copy of the policy, the collector thread
        self._cond = threading.Condition()
        self._ready: deque[TensorDict] = deque()
        self._mirror: ActorMirror | RayActorPool | None = None  # or the remote actors (collection: ray)

    # --- what the policy calls (lightning_rl.contract.RolloutSource) -------------------------------
    def stop_epochs(self) -> None:
        """End this rollout's epochs after the current minibatch (e.g. PPO's target-KL stop); under DDP
        the caller makes it a decision of all ranks, so every rank takes the same number of steps."""
        self._stop_epochs = True

    # --- env and rollout ---------------------------------------------------------------------------
    @property
    def policy(self) -> RolloutActor:
        return self.check_policy(self.trainer.lightning_module)  # type: ignore[return-value]  # policy_protocol

    def setup(self, stage: str) -> None:
        policy = self.policy
        if self.hparams.normalize_reward and self.reward_scaler is None:  # before a checkpoint loads
            self.reward_scaler = RewardScaler(self.n_envs, policy.gamma, self.hparams.clip_reward)
        if stage != "fit" or self.collector is not None or self._remote is not None:
            return
        (shuffle_seed,) = (int(s.generate_state(1)[0]) for s in SeedSequence(self.rank_seed).spawn(1))
        self.generator.manual_seed(shuffle_seed)
        if self.ray_settings is not None:  # the actors start while Lightning sets up the rest
            task = ("rollout", (self.hparams.n_steps,))
            keep_next_obs = self.minibatch == "trajectories"
            self._remote = self.start_remote_actors(policy, lambda actor: task, keep_next_obs=keep_next_obs)
            return
        self.collector = VectorCollector(self.make_vector_env(self.n_envs), self.counters, self.world_size)
        self.collector.reset(seed=self.rank_seed)
        self._rollouts = RolloutCollector(
            self.collector,
            self.obs_stats,
            self.hparams.clip_obs,
            self.reward_scaler,
            keep_next_obs=self.minibatch == "trajectories",
        )

    def preprocess_obs(self, obs: Tensor) -> Tensor:
        """What the policy sees: observations standardized by the running statistics, if enabled."""
        return standardize(obs, self.obs_stats, self.hparams.clip_obs)

    def collect_rollout(self, policy: RolloutActor) -> TensorDict:
        """``n_steps`` vector steps with ``policy`` (see :class:`~lightning_rl.data.RolloutCollector`)."""
        self.rollout_env_steps = self.env_steps
        return self._rollouts.collect(policy, self.hparams.n_steps)

    # --- the stream ----------------------------------------------------------------------------------
    def train_dataloader(self) -> Iterable[StepBatches]:
        return Restartable(self.iter_steps)

    def iter_steps(self) -> Iterator[StepBatches]:
        """Rollout, then ``n_epochs`` shuffled passes of minibatches, one per training step; forever, or
        until the budget."""
        hp = self.hparams
        policy = self.policy
        while True:
            rollout = self._next_rollout(policy)
            if rollout is None:
                self.trainer.should_stop = True
                return
            self.rollouts += 1
            self._stop_epochs = False
            for _ in range(hp.n_epochs):
                for batch in self._minibatches(rollout):
                    yield (batch,)
                    if self._stop_epochs:
                        break
                if self._stop_epochs:
                    break

    def _next_rollout(self, policy: RolloutActor) -> TensorDict | None:
        """A fresh rollout (synchronous), or the oldest one the collector thread finished; ``None`` once
        the env-step budget is spent (all ranks stop together)."""
        if self._remote is not None:
            return self._next_remote_rollout(policy)
        if not self.hparams.async_collection:
            return None if self.budget_reached() else self.collect_rollout(policy)
        if self._background is None:
            self._start_background(policy)
        with self._cond:
            self._background.wait_until(lambda: bool(self._ready) or self.budget_reached())
            rollout = self._ready.popleft() if self._ready else None
            self._mirror.publish(policy)
            self._cond.notify_all()
        stop = rollout is None
        if self.world_size > 1:  # ranks collect at their own pace: stop together or deadlock in DDP
            stop = self.trainer.strategy.reduce_boolean_decision(stop, all=False)
        return None if stop else rollout

    def _next_remote_rollout(self, policy: RolloutActor) -> TensorDict | None:
        """The next rollout a remote actor finished; that actor starts another with the newest weights."""
        remote = self._remote
        if not remote.started:  # the first rollout of this fit: every actor starts one
            self._mirror = remote
            remote.publish(policy)
            self.start_remote_tasks()
        result = None if self.budget_reached() else remote.next_result()
        if result is not None:
            self.rollout_env_steps = self.env_steps
            self.count_remote_steps(result)
            remote.publish(policy)
            remote.submit(result.actor)
        self.sync_remote_steps()  # on every rank alike, before the budget decision
        stop = result is None
        if self.world_size > 1:  # ranks collect at their own pace: stop together or deadlock in DDP
            stop = self.trainer.strategy.reduce_boolean_decision(stop, all=False)
        return None if stop else result.data

    def _start_background(self, policy: RolloutActor) -> None:
        self._mirror = ActorMirror(policy)
        self._ready.clear()  # rollouts a stopped thread left behind belong to an earlier fit

        def collect() -> None:
            self._mirror.sync()
            rollout = self.collect_rollout(self._mirror.actor)
            with self._cond:
                self._ready.append(rollout)
                self._cond.notify_all()

        def may_collect() -> bool:
            return not self._ready  # one rollout waits at most: the actor lags by one rollout

        self._background = BackgroundCollection(self._cond, collect, may_collect, self.budget_reached)
        self._background.start()

    def _minibatches(self, rollout: TensorDict) -> Iterator[TensorDict]:
        """One epoch of shuffled minibatches of the ``(n_steps, n_envs)`` rollout."""
        hp = self.hparams
        if hp.minibatch == "trajectories":
            envs = torch.randperm(self.n_envs, generator=self.generator)
            per_batch = hp.batch_size // hp.n_steps
            for start in range(0, self.n_envs, per_batch):
                yield rollout[:, envs[start : start + per_batch]]
            return
        samples = rollout.reshape(-1)
        samples = samples[samples[keys.MASK]]  # dropped steps are no samples
        order = torch.randperm(len(samples), generator=self.generator)
        for start in range(0, len(order) - hp.batch_size + 1, hp.batch_size):
            batch = samples[order[start : start + hp.batch_size]]
            if hp.normalize_advantage:
                adv = batch[keys.ADVANTAGE]
                batch[keys.ADVANTAGE] = (adv - adv.mean()) / (adv.std() + 1e-8)
            yield batch

    # --- evaluation, metrics and checkpoints --------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        return {**super().metrics(), "collect/rollouts": float(self.rollouts)}

    def state_dict(self) -> dict[str, Any]:
        return {
            **self.counters.state_dict(),
            "rollouts": self.rollouts,
            "generator": self.generator.get_state(),
            "obs_stats": None if self.obs_stats is None else self.obs_stats.state_dict(),
            "reward_scaler": None if self.reward_scaler is None else self.reward_scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counters.load_state_dict(state)
        self.rollouts = int(state["rollouts"])
        self.generator.set_state(state["generator"])
        for name, stats in (("obs_stats", self.obs_stats), ("reward_scaler", self.reward_scaler)):
            if (state[name] is None) != (stats is None):
                flag = name.replace("obs_stats", "normalize_obs").replace("reward_scaler", "normalize_reward")
                raise ValueError(
                    f"the checkpoint was written with {flag} {'off' if state[name] is None else 'on'}; "
                    f"set data.{flag} accordingly"
                )
            if stats is not None:
                stats.load_state_dict(state[name])
        if self.collector is not None:  # new episodes on resume, from seeds the run has not used
            self.collector.reset(seed=self.rank_seed + self.env_steps)
