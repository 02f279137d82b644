"""Env-backed DataModule for on-policy methods: collect a rollout, compute advantages, serve minibatches."""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import torch
from numpy.random import SeedSequence
from tensordict import TensorDict
from torch import Tensor

from lightning_rl import keys
from lightning_rl.data.background import BackgroundCollection
from lightning_rl.data.collector import VectorCollector
from lightning_rl.data.normalizer import RewardScaler, RunningMeanStd
from lightning_rl.datamodules.base import EnvDataModule, Restartable
from lightning_rl.envs.vector import EnvFactory, Vectorization
from lightning_rl.rl_utils import gae
from lightning_rl.utils.checks import check_choice, check_int, check_positive, check_range

if TYPE_CHECKING:
    from lightning_rl.policies.base import RLPolicy


class OnPolicyDataModule(EnvDataModule):
    """Rollouts of ``n_envs x n_steps`` with the live policy, turned into shuffled minibatches.

    Each pass of the stream: collect ``n_steps`` vector steps with ``policy.collect(obs)`` (a dict with
    ``action`` ``(E, ...)``, ``log_prob`` ``(E,)``, ``value`` ``(E,)`` and any extra per-env tensors the
    policy wants back, e.g. behaviour logits; an optional ``env_action`` is what the envs get instead of
    ``action``, e.g. clipped to the bounds), bootstrap the value of every true next observation with
    ``policy.predict_value(obs)`` (so a time-limit truncation bootstraps from its final observation), compute
    GAE advantages and returns, then yield ``n_epochs`` shuffled passes of ``batch_size`` minibatches over the
    ``n_envs * n_steps`` samples. A policy may end the epochs early (target KL) with :meth:`stop_epochs`.

    Recurrent policies: whatever ``collect`` returns besides the action (e.g. the hidden state the step
    started from) is stored per step, so the learner can replay the sequence from it, and a policy with a
    ``reset_recurrent_state(done_mask (E,) bool)`` method is told after every vector step which envs start
    a new episode.

    Steps an env manager dropped (a faulted env) are left out of the minibatches, and the step before ends
    its advantage trace there (see :mod:`lightning_rl.envs.manager.base`).

    Normalization (running statistics, checkpointed with the DataModule): ``normalize_obs`` standardizes
    observations for collection, training and evaluation alike; ``normalize_reward`` divides rewards by the
    running std of the discounted return. Episode statistics are always of the raw rewards.

    Args (besides :class:`EnvDataModule`'s):
        n_steps: vector steps per rollout (per rank).
        n_epochs: passes over each rollout.
        batch_size: samples per minibatch; ``n_envs * n_steps`` must be a multiple of it.
        minibatch: ``"steps"``: shuffled env steps, ``(batch_size,)`` (PPO, A2C); ``"trajectories"``: whole
            env trajectories of the rollout, time-major ``(n_steps, batch_size // n_steps)``, with the
            true next observations kept for the learner's own bootstraps (IMPALA's V-trace). Dropped
            steps then stay in place with ``mask`` False.
        gamma, gae_lambda: discount and GAE lambda.
        normalize_advantage: standardize advantages per minibatch (PPO's usual practice).
        normalize_obs, normalize_reward: see above; ``clip_obs`` / ``clip_reward`` bound the results.
        async_collection: collect the next rollout in a background thread while the learner trains on the
            current one (IMPALA's actor/learner split; the data layer's ``BackgroundCollection``). The actor
            is a copy of the policy whose weights the learner publishes each time it takes a rollout, so
            rollouts come from a policy one rollout behind: use it with IMPALA, whose V-trace corrects for
            that lag. One rollout waits at most.
    """

    def __init__(
        self,
        env_id: str | None = "CartPole-v1",
        env_fn: EnvFactory | None = None,
        env_kwargs: dict[str, Any] | None = None,
        n_envs: int = 8,
        vectorization: Vectorization = "sync",
        env_manager: dict[str, Any] | None = None,
        seed: int = 0,
        max_env_steps: int | None = None,
        eval_episodes: int = 20,
        eval_seed: int = 10_000,
        eval_env_kwargs: dict[str, Any] | None = None,
        n_steps: int = 128,
        n_epochs: int = 4,
        batch_size: int = 256,
        minibatch: Literal["steps", "trajectories"] = "steps",
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        normalize_advantage: bool = True,
        normalize_obs: bool = False,
        normalize_reward: bool = False,
        clip_obs: float = 10.0,
        clip_reward: float = 10.0,
        async_collection: bool = False,
    ):
        super().__init__(
            env_id,
            env_fn,
            env_kwargs,
            n_envs,
            vectorization,
            env_manager,
            seed,
            max_env_steps,
            eval_episodes,
            eval_seed,
            eval_env_kwargs,
        )
        check_int("n_steps", n_steps, 1)
        check_int("n_epochs", n_epochs, 1)
        check_int("batch_size", batch_size, 1)
        check_range("gamma", gamma, 0.0, 1.0)
        check_range("gae_lambda", gae_lambda, 0.0, 1.0)
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
        self.save_hyperparameters()
        self.obs_stats = RunningMeanStd(tuple(self.env_spec["obs_shape"])) if normalize_obs else None
        self.reward_scaler = RewardScaler(n_envs, gamma, clip_reward) if normalize_reward else None
        self.generator = torch.Generator()
        self.rollouts = 0
        self.rollout_env_steps = 0  # global env steps when the current rollout started (for schedules)
        self._stop_epochs = False
        # async collection: finished rollouts, the weights the learner last published, the collector thread
        self._cond = threading.Condition()
        self._ready: deque[TensorDict] = deque()
        self._published: dict[str, Tensor] | None = None
        self._actor: RLPolicy | None = None

    # --- env and rollout ---------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if stage != "fit" or self.collector is not None:
            return
        (shuffle_seed,) = (int(s.generate_state(1)[0]) for s in SeedSequence(self.rank_seed).spawn(1))
        self.generator.manual_seed(shuffle_seed)
        self.collector = VectorCollector(self.make_vector_env(self.n_envs))
        self.collector.reset(seed=self.rank_seed)

    def preprocess_obs(self, obs: Tensor) -> Tensor:
        """What the policy sees: observations standardized by the running statistics, if enabled."""
        if self.obs_stats is None:
            return obs
        return self.obs_stats.normalize(obs, self.hparams.clip_obs)

    def collect_rollout(self, policy: RLPolicy) -> TensorDict:
        """``n_steps`` vector steps with ``policy``; returns a ``(n_steps, n_envs)`` TensorDict with
        ``obs``, ``action``, ``log_prob``, ``value``, the policy's extra keys, ``reward`` (scaled if
        enabled), ``terminated``, ``truncated``, ``mask`` (False on dropped steps), ``advantage`` and
        ``returns``."""
        hp = self.hparams
        self.rollout_env_steps = self.env_steps
        steps: list[dict[str, Tensor]] = []
        for _ in range(hp.n_steps):
            out: dict[str, Tensor] = {}

            def act(obs: Tensor, out: dict[str, Tensor] = out) -> Tensor:
                if self.obs_stats is not None:
                    self.obs_stats.update(obs)
                out[keys.OBS] = self.preprocess_obs(obs)
                with torch.no_grad():
                    out.update(policy.collect(out[keys.OBS]))
                return out.pop("env_action", out[keys.ACTION])  # e.g. clipped to the action bounds

            episodes_before = self.collector.episodes
            step = self.collector.step(act)
            if hasattr(policy, "reset_recurrent_state"):  # recurrent policies: new episodes start fresh
                policy.reset_recurrent_state(step.terminated | step.truncated | step.dropped)
            self.episodes += self.collector.episodes - episodes_before
            self.env_steps += self.n_envs * self.world_size
            reward = step.reward
            if self.reward_scaler is not None:
                reward = self.reward_scaler(reward, step.terminated | step.truncated | step.dropped)
            steps.append(
                {
                    **out,
                    keys.REWARD: reward,
                    keys.TERMINATED: step.terminated,
                    keys.TRUNCATED: step.truncated,
                    keys.NEXT_OBS: self.preprocess_obs(step.next_obs),
                    "dropped": step.dropped,
                }
            )
        rollout = TensorDict(
            {k: torch.stack([s[k] for s in steps]) for k in steps[0]}, [hp.n_steps, self.n_envs]
        )
        return self._add_advantages(rollout, policy)

    def _add_advantages(self, rollout: TensorDict, policy: RLPolicy) -> TensorDict:
        """Next-state values (the next step's value inside an episode, a bootstrap elsewhere) and GAE."""
        hp = self.hparams
        dropped = rollout.pop("dropped")
        terminated, truncated = rollout[keys.TERMINATED], rollout[keys.TRUNCATED].clone()
        # A dropped step is no transition: the step before it ends its trace (bootstrapping from the obs
        # the failed action was taken from, which is that step's true next observation).
        truncated[:-1] |= dropped[1:]
        next_value = torch.empty_like(rollout[keys.VALUE])
        next_value[:-1] = rollout[keys.VALUE][1:]
        ended = terminated | truncated
        ended[-1] = True  # the rollout's last step: bootstrap from its next observation
        if ended.any():
            with torch.no_grad():
                bootstrap = policy.predict_value(rollout[keys.NEXT_OBS][ended])
            next_value[ended] = bootstrap.to(next_value.dtype)
        advantage, returns = gae(
            rollout[keys.REWARD],
            rollout[keys.VALUE],
            next_value,
            terminated,
            truncated,
            hp.gamma,
            hp.gae_lambda,
        )
        rollout[keys.ADVANTAGE], rollout[keys.RETURNS] = advantage, returns
        rollout[keys.TRUNCATED] = truncated
        rollout[keys.MASK] = ~dropped
        if self.hparams.minibatch == "steps":
            del rollout[keys.NEXT_OBS]
        return rollout

    # --- the stream ----------------------------------------------------------------------------------
    def train_dataloader(self) -> Iterable[TensorDict]:
        return Restartable(self.iter_batches)

    def iter_batches(self) -> Iterator[TensorDict]:
        """Rollout, then ``n_epochs`` shuffled passes of minibatches; forever, or until the budget."""
        hp = self.hparams
        policy = self.trainer.lightning_module
        while True:
            rollout = self._next_rollout(policy)
            if rollout is None:
                self.trainer.should_stop = True
                return
            self.rollouts += 1
            self._stop_epochs = False
            for _ in range(hp.n_epochs):
                for batch in self._minibatches(rollout):
                    yield batch
                    if self._stop_epochs:
                        break
                if self._stop_epochs:
                    break

    def _next_rollout(self, policy: RLPolicy) -> TensorDict | None:
        """A fresh rollout (synchronous), or the oldest one the collector thread finished; ``None`` once
        the env-step budget is spent (all ranks stop together)."""
        if not self.hparams.async_collection:
            return None if self.budget_reached() else self.collect_rollout(policy)
        if self._background is None:
            self._start_background(policy)
        with self._cond:
            self._background.wait_until(lambda: bool(self._ready) or self.budget_reached())
            rollout = self._ready.popleft() if self._ready else None
            self._published = {k: v.detach().clone() for k, v in policy.state_dict().items()}
            self._cond.notify_all()
        stop = rollout is None
        if self.world_size > 1:  # ranks collect at their own pace: stop together or deadlock in DDP
            stop = self.trainer.strategy.reduce_boolean_decision(stop, all=False)
        return None if stop else rollout

    def _start_background(self, policy: RLPolicy) -> None:
        self._actor = copy.deepcopy(policy).requires_grad_(False)
        self._published = None
        self._ready.clear()  # rollouts a stopped thread left behind belong to an earlier fit

        def collect() -> None:
            with self._cond:
                published, self._published = self._published, None
            if published is not None:
                self._actor.load_state_dict(published)
            rollout = self.collect_rollout(self._actor)
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

    def stop_epochs(self) -> None:
        """End this rollout's epochs after the current minibatch (e.g. PPO's target-KL stop); under DDP
        the caller makes it a decision of all ranks, so every rank takes the same number of steps."""
        self._stop_epochs = True

    # --- evaluation, metrics and checkpoints --------------------------------------------------------------
    def metrics(self) -> dict[str, float]:
        metrics = {"collect/episodes": float(self.episodes), "collect/rollouts": float(self.rollouts)}
        if self.collector is not None:
            metrics.update(self.collector.episode_stats())
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "rollouts": self.rollouts,
            "generator": self.generator.get_state(),
            "obs_stats": None if self.obs_stats is None else self.obs_stats.state_dict(),
            "reward_scaler": None if self.reward_scaler is None else self.reward_scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.env_steps, self.episodes = int(state["env_steps"]), int(state["episodes"])
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
