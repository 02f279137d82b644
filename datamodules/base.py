"""The common base of env-backed DataModules: env spec, counters, per-rank seeding, evaluation."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

import gymnasium as gym
import pytorch_lightning as pl
import torch
from numpy.random import SeedSequence
from pytorch_lightning.trainer.states import TrainerFn
from tensordict import TensorDict
from torch import Tensor, nn

from lightning_rl.contract import Actor, RecurrentActor, require
from lightning_rl.data.actors import RayActorPool, RaySettings, WorkerResult
from lightning_rl.data.collector import CollectCounters
from lightning_rl.data.recurrent import RecurrentStates
from lightning_rl.envs import (
    EnvManager,
    EnvManagerError,
    EpisodeStats,
    make_vector_env,
    probe_env_spec,
    resolve_env_factory,
    run_episodes,
)
from lightning_rl.envs.two_player import Opponent, OpponentPool, TwoPlayerEnv
from lightning_rl.envs.vector import EnvFactory, Vectorization, check_manager_kwargs
from lightning_rl.envs.video import EpisodeVideo, enable_rgb_frames, record_episode
from lightning_rl.utils.checks import ConfigError, check_at_least, check_choice, check_positive

if TYPE_CHECKING:
    from lightning_rl.data.background import BackgroundCollection
    from lightning_rl.data.collector import VectorCollector

Collection = Literal["local", "ray"]  # where the training envs run
# Ranks' env seeds are this far apart so that no two ranks' envs share a seed.
RANK_SEED_STRIDE = 100_003
# What an env manager's stats() contributes to the logged metrics (as env/<name>).
ENV_FAULT_METRICS = ("faults/crash", "faults/timeout", "faults/error", "dropped_episodes")


class EnvDataModule(pl.LightningDataModule):
    """Owns the environments of a run; subclasses add collection and the training data stream.

    The env is resolved (and one instance built to read its spaces) in ``__init__``, so an unknown
    id or an unsupported space fails before any training starts.

    Args:
        env_id: a registered gymnasium id, e.g. ``"CartPole-v1"``.
        env_fn: instead of ``env_id``: a callable (dotted import path in YAML) returning a ``gymnasium.Env``.
        env_kwargs: keyword arguments for ``gymnasium.make`` / ``env_fn``.
        n_envs: training envs per rank.
        vectorization: ``"sync"`` (:class:`~lightning_rl.envs.SyncEnvManager`, in-process) or
            ``"subprocess"`` (:class:`~lightning_rl.envs.SubprocessEnvManager`, one process per env).
        env_manager: settings of the env manager, for training and evaluation envs alike: its fault
            budget ``max_retries``, ``max_fault_rate``, ``fault_window``
            (:class:`~lightning_rl.envs.manager.FaultLimits`); for ``"subprocess"`` also ``n_workers``,
            ``step_timeout``, ``reset_timeout`` and ``context`` (seconds, start method). A broken
            training env stops the run; a broken evaluation env fails that evaluation only (``Evaluator``).
        seed: base seed of envs and sampling; rank ``r`` uses ``seed + r * 100003`` for its envs.
        max_env_steps: stop training after this many global env steps (``None``: no env-step budget).
        eval_env_kwargs: entries that override ``env_kwargs`` for the evaluation envs only, e.g. Atari's
            ``{is_train: false}`` to score whole games with unclipped rewards; the spaces must not change.
            (How many episodes, from which seed and how often: the ``Evaluator``'s knobs.)
        collection: ``"local"``: the training envs run in this process (or its env workers);
            ``"ray"``: in remote actor processes on Ray (:mod:`lightning_rl.data.actors`), ``ray.n_actors``
            per rank, each with ``n_envs`` envs behind its own env manager (``vectorization`` and
            ``env_manager`` apply per actor), streaming transitions or rollouts to this DataModule.
        ray: with ``collection: ray``: ``n_actors`` (2), ``address`` (``None``: a local cluster for the run),
            ``max_restarts`` (3), ``num_cpus`` and ``exploration`` (``"spread"``: Ape-X's per-actor
            epsilon) (:class:`~lightning_rl.data.actors.RaySettings`).

    Two-player games (``env_id: connect_four_v3``, any PettingZoo AEC game; ``EnvSpec.two_player``): the
    training envs draw their opponents from this DataModule's :class:`~lightning_rl.envs.OpponentPool`
    (uniformly random legal moves until a league callback sets the matchmaking,
    :meth:`set_matchmaking`), and evaluation plays the random opponent, the learner's seat alternating.
    They run in-process (``vectorization: sync``): the opponents are networks in this process.

    Subclasses state only their own arguments and pass the rest on (``**kwargs``); LightningCLI resolves
    them to these, and :meth:`save_hyperparameters` here records the whole chain.
    """

    x_axis = "env_steps"  # the counter learning curves are plotted against (wandb's step metric)
    policy_protocol: type[Actor] = Actor  # what this DataModule needs of its policy
    policy_hint = "subclass RLPolicy"  # what to do when a policy is not one

    def check_policy(self, policy: Any) -> Actor:
        """``policy`` if this DataModule can drive it, else a
        :class:`~lightning_rl.contract.ContractError` (the CLI checks it before the Trainer exists)."""
        return require(policy, self.policy_protocol, f"{type(self).__name__}'s policy", self.policy_hint)

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
        eval_env_kwargs: dict[str, Any] | None = None,
        collection: Collection = "local",
        ray: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        check_positive(n_envs=n_envs, max_env_steps=max_env_steps)
        check_at_least("seed", seed, 0)
        check_choice("vectorization", vectorization, ("sync", "subprocess"))
        check_manager_kwargs(vectorization, dict(env_manager or {}))
        check_choice("collection", collection, ("local", "ray"))
        if ray is not None and collection != "ray":
            raise ConfigError(
                "ray: its settings apply with collection: ray only",
                "ray",
                f"set with collection {collection!r}",
                "null, or collection: ray",
            )
        self.ray_settings = RaySettings.from_config(ray) if collection == "ray" else None
        self.env_name, self.make_env = resolve_env_factory(env_id, env_fn, env_kwargs)
        self.env_spec: dict[str, Any] = probe_env_spec(self.env_name, self.make_env).to_dict()
        self.make_eval_env = self.make_env
        self.opponents: OpponentPool | None = None  # the training envs' opponents (two-player games)
        if self.env_spec.get("two_player"):
            if vectorization != "sync":
                raise ConfigError(
                    "vectorization: two-player games run in-process (their opponents are networks of this "
                    "process); set sync",
                    "vectorization",
                    f"two-player games run in-process (their opponents are networks of this process), got "
                    f"{vectorization!r}",
                    "'sync'",
                )
            if collection == "ray":
                raise ConfigError(
                    "collection: two-player games run in-process (their opponents are networks of this "
                    "process); set local",
                    "collection",
                    "two-player games run in-process (their opponents are networks of this process)",
                    "'local'",
                )
            self.opponents = OpponentPool(seed)
        if eval_env_kwargs:
            _, self.make_eval_env = resolve_env_factory(
                env_id, env_fn, {**(env_kwargs or {}), **eval_env_kwargs}
            )
            eval_spec = probe_env_spec(self.env_name, self.make_eval_env).to_dict()
            if eval_spec != self.env_spec:
                raise ValueError(
                    f"eval_env_kwargs {eval_env_kwargs} change the env's spaces: training {self.env_spec}, "
                    f"evaluation {eval_spec}; they must be the same"
                )
        self.n_envs = n_envs
        self.vectorization = vectorization
        self.env_manager = dict(env_manager or {})
        self.seed = seed
        self.max_env_steps = max_env_steps
        self.counters = CollectCounters()  # env steps (global) and episodes (this rank's), checkpointed
        self._eval_env: gym.vector.VectorEnv | None = None
        self.collector: VectorCollector | None = None  # training envs, built by collecting subclasses
        self._background: BackgroundCollection | None = None  # their collector thread, if asynchronous
        self._remote: RayActorPool | None = None  # the remote actors (collection: ray)
        self._remote_steps_base, self._remote_steps = 0, 0  # env_steps at their start; this rank's since
        self.include_replay_in_state = True  # see `without_replay`

    # --- what the policy reads (lightning_rl.contract.DataSource) ---------------------------------
    @property
    def env_steps(self) -> int:
        return self.counters.env_steps

    def update_priority(self, index: Tensor, priority: Tensor) -> None:
        """No priorities here (on-policy and uniform data); prioritized replay overrides it."""

    # --- two-player games (lightning_rl.contract.OpponentSource) -----------------------------------
    def set_matchmaking(self, choose: Callable[[], str], opponents: dict[str, Opponent]) -> None:
        """Every new game of the training envs plays ``choose()``, an id of ``opponents`` or ``"random"``."""
        self._require_opponents().set_matchmaking(choose, opponents)

    def game_results(self) -> list[tuple[str, str, int]]:
        """``(opponent, outcome for the learner, learner's seat)`` of the games finished since last called."""
        return [(r.opponent, r.outcome, r.seat) for r in self._require_opponents().drain()]

    def _require_opponents(self) -> OpponentPool:
        if self.opponents is None:
            raise ConfigError(
                f"env '{self.env_name}' is no two-player game: league and self-play need one (a PettingZoo "
                "AEC game id such as connect_four_v3 or tictactoe_v3)",
                "data.init_args.env_id",
                f"env '{self.env_name}' is no two-player game",
                "a PettingZoo AEC game id, e.g. connect_four_v3 or tictactoe_v3",
            )
        return self.opponents

    def metrics(self) -> dict[str, float]:
        """``collect/…`` figures of the training envs (logged by the ``DataMetrics`` callback)."""
        metrics = {"collect/episodes": float(self.counters.episodes)}
        faults: dict[str, float] = {}
        if self.collector is not None:
            metrics.update(self.collector.episode_stats())
            faults = self.collector.env.stats()
        if self._remote is not None:
            metrics.update(self._remote.metrics())
            faults = self._remote.env_stats()
        metrics.update({f"env/{k}": v for k, v in faults.items() if k in ENV_FAULT_METRICS})
        return metrics

    @property
    def rank(self) -> int:
        return self.trainer.global_rank if self.trainer is not None else 0

    @property
    def world_size(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    @property
    def rank_seed(self) -> int:
        return self.seed + self.rank * RANK_SEED_STRIDE

    def budget_reached(self) -> bool:
        return self.max_env_steps is not None and self.env_steps >= self.max_env_steps

    @contextmanager
    def without_replay(self) -> Iterator[None]:
        """Checkpoints saved inside leave the replay buffer out (counters stay): for ``best.ckpt``,
        which serves evaluation and deployment, not resume."""
        self.include_replay_in_state = False
        try:
            yield
        finally:
            self.include_replay_in_state = True

    # --- evaluation ------------------------------------------------------------------------------
    def make_vector_env(self, n_envs: int, evaluation: bool = False) -> EnvManager:
        """``n_envs`` training (or ``evaluation``) envs behind this DataModule's env manager."""
        make, manager_kwargs = self.make_env, self.env_manager
        if self.opponents is not None and not evaluation:  # training games draw from the pool
            make = functools.partial(_with_opponents, make, self.opponents)
        if evaluation:  # as many workers as configured, but never more than the (fewer) eval envs
            make, manager_kwargs = self.make_eval_env, dict(self.env_manager)
            if "n_workers" in manager_kwargs:
                manager_kwargs["n_workers"] = min(manager_kwargs["n_workers"], n_envs)
        return make_vector_env(make, n_envs, self.vectorization, manager_kwargs, env_name=self.env_name)

    def start_remote_actors(
        self, policy: Actor, task: Callable[[int], tuple[str, tuple[Any, ...]]], **worker_kwargs: Any
    ) -> RayActorPool:
        """:attr:`ray_settings`'s actors with this DataModule's envs and a copy of ``policy``, actor ``i``'s
        envs seeded from this rank's seed (an independent stream per actor); ``task(i)`` is its next task
        and ``worker_kwargs`` the rest of :class:`~lightning_rl.data.actors.CollectorWorker`'s arguments."""
        settings = self.ray_settings
        seeds = [int(s.generate_state(1)[0]) for s in SeedSequence(self.rank_seed).spawn(settings.n_actors)]
        make_envs = functools.partial(
            make_vector_env,
            self.make_env,
            self.n_envs,
            self.vectorization,
            self.env_manager,
            env_name=self.env_name,
        )
        spread = settings.exploration == "spread"
        n_actors = settings.n_actors * self.world_size  # Ape-X spreads epsilon over every rank's actors

        def kwargs(actor: int) -> dict[str, Any]:
            exploration = (self.rank * settings.n_actors + actor, n_actors) if spread else None
            return {"make_envs": make_envs, "seed": seeds[actor], "exploration": exploration, **worker_kwargs}

        return RayActorPool(settings, policy, kwargs, task)

    def start_remote_tasks(self) -> None:
        """Every remote actor starts a task; this rank's remote env steps count from here."""
        self._remote_steps_base, self._remote_steps = self.env_steps, 0
        self._remote.start()

    def count_remote_steps(self, result: WorkerResult) -> None:
        """Add a remote task's env steps and finished episodes. One rank counts exactly; with several,
        whose actors collect at their own paces, ``env_steps`` changes only in :meth:`sync_remote_steps`."""
        self._remote_steps += result.vector_steps * self.n_envs
        if self.world_size == 1:
            self.counters.env_steps = self._remote_steps_base + self._remote_steps
        self.counters.episodes += len(result.returns)

    def remote_steps_estimate(self) -> int:
        """``env_steps`` as this rank's remote steps tell it (exact on one rank; with several, the others
        assumed to collect alike, as between two :meth:`sync_remote_steps`)."""
        return self._remote_steps_base + self._remote_steps * self.world_size

    def sync_remote_steps(self) -> None:
        """With several ranks: ``env_steps`` becomes the sum of every rank's remote env steps (a collective:
        every rank calls it at the same point of each training step)."""
        if self.world_size > 1:
            local = torch.tensor(float(self._remote_steps), dtype=torch.float64)  # exact past 2 ** 24
            total = int(self.trainer.strategy.reduce(local, reduce_op="sum").item())
            self.counters.env_steps = self._remote_steps_base + total

    def preprocess_obs(self, obs: Tensor) -> Tensor:
        """What the policy sees of an observation (identity here; on-policy normalization overrides it)."""
        return obs

    def evaluate(self, policy: Actor, n_episodes: int, seed: int) -> EpisodeStats:
        """``n_episodes`` deterministic episodes with ``policy.act(obs, mode="eval")`` on envs separate
        from training, reset with ``seed`` (the same seed every time makes evaluations comparable); an
        ``nn.Module`` policy runs in eval mode meanwhile. A broken eval env raises
        :class:`~lightning_rl.envs.EnvManagerError` and is closed (the next evaluation builds new ones)."""
        # in-process eval envs are cheap; worker processes are not: no more than the training envs
        n_eval_envs = min(n_episodes, 32 if self.vectorization == "sync" else self.n_envs)
        if self._eval_env is None or self._eval_env.num_envs != n_eval_envs:
            self._close_eval_env()
            self._eval_env = self.make_vector_env(n_eval_envs, evaluation=True)
        act, on_done = self._eval_actor(policy, n_eval_envs)
        try:
            with _eval_mode(policy):
                return run_episodes(
                    lambda obs: act(self.preprocess_obs(obs)), self._eval_env, n_episodes, seed, on_done
                )
        except EnvManagerError:
            self._close_eval_env()
            raise

    def make_render_env(self) -> gym.Env:
        """One evaluation env whose ``render()`` returns ``rgb_array`` frames (a ``ValueError`` naming its
        render modes when it has none)."""
        env = self.make_eval_env()
        try:
            return enable_rgb_frames(env)
        except ValueError:
            env.close()
            raise

    def record_episode(self, policy: Actor, seed: int, max_frames: int, path: str) -> EpisodeVideo:
        """One deterministic episode of ``policy`` (as :meth:`evaluate` plays them) on a fresh
        :meth:`make_render_env`, reset with ``seed``, written to the mp4 ``path``."""
        env = self.make_render_env()
        act, _ = self._eval_actor(policy, 1)
        try:
            with _eval_mode(policy):
                return record_episode(lambda obs: act(self.preprocess_obs(obs)), env, seed, max_frames, path)
        finally:
            env.close()

    @staticmethod
    def _eval_actor(
        policy: Actor, n_envs: int
    ) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], None] | None]:
        """``(obs -> actions, on_done)`` of ``policy`` in eval mode over ``n_envs`` envs: a recurrent
        policy keeps one state per env, reset at its episodes' starts (``on_done``)."""
        if isinstance(policy, RecurrentActor):
            states = RecurrentStates(policy, n_envs, mode="eval")
            return states.act, states.reset
        return functools.partial(policy.act, mode="eval"), None

    def val_dataloader(self) -> list[int]:
        # One "batch" per `validate` run, so that Lightning runs the loop whose end the Evaluator callback
        # evaluates whole episodes at; during fit the Evaluator evaluates by itself, so no batches.
        return [0] if self.trainer is not None and self.trainer.state.fn == TrainerFn.VALIDATING else []

    def teardown(self, stage: str) -> None:
        self._close_envs()

    def on_exception(self, exception: BaseException) -> None:
        # Lightning skips teardown when fit fails or is interrupted: a collector thread must not go on
        # writing (a resume in this process would race with it) and env worker processes must not linger.
        self._close_envs()

    def _close_envs(self) -> None:
        """Stop background collection, then close the training and evaluation envs."""
        if self._background is not None:
            self._background.stop()
            self._background = None
        if self._remote is not None:
            self._remote.close()
            self._remote = None
        if self.collector is not None:
            self.collector.env.close()
            self.collector = None
        self._close_eval_env()

    def _close_eval_env(self) -> None:
        if self._eval_env is not None:
            self._eval_env.close()
            self._eval_env = None


def refuse_with_ray(flag: str, value: bool, why: str) -> None:
    """A one-line config error if ``flag`` is on although the DataModule collects with ``collection: ray``."""
    if value:
        raise ConfigError(
            f"{flag}: {why} with collection: ray; set false",
            flag,
            f"true with collection: ray ({why})",
            "false",
        )


@contextmanager
def _eval_mode(policy: Actor) -> Iterator[None]:
    """An ``nn.Module`` policy in eval mode meanwhile: dropout / batch norm in user networks must not make
    evaluation random."""
    module = policy if isinstance(policy, nn.Module) else nn.Module()
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _with_opponents(make: Callable[[], gym.Env], pool: OpponentPool) -> gym.Env:
    """A two-player env from ``make()`` whose games draw their opponents from ``pool``."""
    env = make()
    game = env.unwrapped
    if not isinstance(game, TwoPlayerEnv):
        raise TypeError(f"the env spec says two-player, but the env built is a {type(game).__name__}")
    game.attach(pool)
    return env


class Restartable:
    """An iterable whose every ``iter()`` starts a new generator (Lightning calls ``iter()`` per epoch);
    the state the generator works on lives in the DataModule, so a new one continues the same run."""

    def __init__(self, make_iterator: Callable[[], Iterator[TensorDict]]):
        self.make_iterator = make_iterator

    def __iter__(self) -> Iterator[TensorDict]:
        return self.make_iterator()
