"""The typed contract between policies and DataModules: what each offers the other, and nothing more.

A policy never reads its DataModule's attributes and a DataModule never probes a policy with
``hasattr``: each side names the other by one of these ``Protocol``s. A DataModule checks at setup
that its policy is the kind it drives (:func:`require`), and a policy checks its data source the same
way, so a PPO paired with an off-policy DataModule fails before training with one line saying what is
missing. Static type checkers verify the rest. This module is a leaf: it imports nothing from the
library but the key names.

Shapes: ``E`` envs, ``B`` batch, ``T`` time steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import torch
from tensordict import TensorDict
from torch import Tensor

from lightning_rl.errors import ReportedError

ActMode = Literal["collect", "eval"]
Rng = torch.Generator | None  # the exploration randomness a collector hands to ``act``
Minibatch = Literal["steps", "trajectories"]

__all__ = [
    "ActMode",
    "Actor",
    "DataSource",
    "Minibatch",
    "OpponentSource",
    "RecurrentActor",
    "RolloutActor",
    "ContractError",
    "SpreadExplorer",
    "RolloutSource",
    "SequenceSource",
    "Rng",
    "StepBatches",
    "require",
]

# One item of every DataModule's training stream: the batches of one ``training_step``, drawn lazily (a
# batch is sampled only when the policy asks for it, after the previous update wrote its priorities back).
StepBatches = Iterable[TensorDict]


# --- what a policy offers collectors and evaluators ------------------------------------------------
@runtime_checkable
class Actor(Protocol):
    """A policy that acts in envs (every ``RLPolicy``)."""

    train_iter: int  # gradient updates so far: the version of the weights (staleness, actor lag)

    def act(self, obs: Tensor, mode: ActMode = "eval", env_steps: int = 0, generator: Rng = None) -> Tensor:
        """Actions ``(E,)`` (discrete) or ``(E, *action_shape)`` for observations ``(E, *obs_shape)``;
        ``"collect"`` explores on a schedule of the global ``env_steps``, ``"eval"`` is deterministic."""
        ...


@runtime_checkable
class RolloutActor(Actor, Protocol):
    """An on-policy actor-critic: what a rollout collector needs besides :meth:`act`."""

    gamma: float  # discount of the returns and advantages (the policy's knob; the collector uses it)
    gae_lambda: float  # GAE's lambda for the advantages computed at collection

    def collect(self, obs: Tensor) -> dict[str, Tensor]:
        """One exploring step: ``action`` (stored), ``log_prob`` ``(E,)``, ``value`` ``(E,)``, any extra
        per-env tensors to store (e.g. a recurrent state) and optionally ``env_action`` (what the envs
        get instead of ``action``, e.g. clipped to the bounds)."""
        ...

    def predict_value(self, obs: Tensor) -> Tensor:
        """Critic values ``(N,)`` of observations ``(N, *obs_shape)`` (bootstraps)."""
        ...

    def reset_recurrent_state(self, done: Tensor) -> None:
        """Envs where ``done`` ``(E,)`` bool is True start a new episode (a no-op for feed-forward nets)."""
        ...


@runtime_checkable
class RecurrentActor(Actor, Protocol):
    """A policy with a recurrent state per env (R2D2): collectors and evaluators keep one state per env,
    start every episode from :meth:`initial_state` and act through :meth:`act_recurrent`."""

    def initial_state(self, n: int) -> Tensor:
        """The state ``(n, *state_shape)`` an episode starts from."""
        ...

    def act_recurrent(
        self, obs: Tensor, state: Tensor, mode: ActMode = "eval", env_steps: int = 0, generator: Rng = None
    ) -> tuple[Tensor, Tensor]:
        """Actions as :meth:`Actor.act` for observations ``(E, *obs_shape)`` in states ``(E,
        *state_shape)``, and the states after them."""
        ...


@runtime_checkable
class SpreadExplorer(Actor, Protocol):
    """A policy whose parallel collecting copies explore each in its own way (Ape-X's per-actor epsilon):
    remote actors call this on their own copy, never on the learner."""

    def spread_exploration(self, actor: int, n_actors: int) -> None:
        """From now on ``act(mode="collect")`` explores as actor ``actor`` of ``n_actors``, whatever the
        env-step count."""
        ...


# --- what a DataModule offers its policy -----------------------------------------------------------
@runtime_checkable
class DataSource(Protocol):
    """What every DataModule offers its policy: counters, the env-step budget and priority write-back.
    Attributes are read-only for the policy."""

    env_steps: int  # env steps collected so far, all ranks together (the x-axis of learning curves)
    max_env_steps: int | None  # the env-step budget of the run (None: none)

    def update_priority(self, index: Tensor, priority: Tensor) -> None:
        """New priorities ``(B,)`` (``|TD error|``) for the sampled storage indices ``(B,)``; a no-op
        for uniform replay and on-policy data."""
        ...

    def metrics(self) -> dict[str, float]:
        """``collect/…``, ``buffer/…`` and ``env/…`` figures (logged by the ``DataMetrics`` callback)."""
        ...


@runtime_checkable
class RolloutSource(DataSource, Protocol):
    """An on-policy DataModule: rollouts of the live policy, served as minibatches."""

    rollout_env_steps: int  # global env steps when the rollout being trained on started (for schedules)
    minibatch: Minibatch  # "steps": shuffled env steps (B,); "trajectories": time-major (T, B) chunks

    def stop_epochs(self) -> None:
        """End the current rollout's epochs after this minibatch (e.g. PPO's target-KL stop)."""
        ...


@runtime_checkable
class SequenceSource(DataSource, Protocol):
    """A recurrent replay DataModule: batches of fixed-length sequence items (``lightning_rl.keys``:
    per-step ``(B, L, ...)`` entries with ``MASK``, plus ``RECURRENT_STATE`` and ``FINAL_OBS``), where
    ``L = burn_in + seq_len`` and the training part is positions ``[burn_in, L)``."""

    burn_in: int  # leading positions of each item that only warm up the recurrent state
    nstep: int  # n of the n-step targets computed within sequences

    # update_priority takes one priority (B,) per sampled sequence


@runtime_checkable
class OpponentSource(DataSource, Protocol):
    """A DataModule whose training envs are the learner's seat of two-player games
    (``EnvSpec.two_player``): the league callbacks choose its opponents and read the games' results.

    An opponent is a callable from packed observations ``(B, D + A)`` to legal actions ``(B,)``
    (``lightning_rl.envs.two_player.Opponent``); ``"random"`` (uniformly random legal moves) is always
    there."""

    def set_matchmaking(
        self, choose: Callable[[], str], opponents: Mapping[str, Callable[[Tensor], Tensor]]
    ) -> None:
        """Every new game of the training envs plays ``choose()``: an id of ``opponents`` or ``"random"``."""
        ...

    def game_results(self) -> list[tuple[str, str, int]]:
        """``(opponent id, "win" | "draw" | "loss" for the learner, learner's seat)`` of the games the
        training envs finished since the last call, in order."""
        ...


_P = TypeVar("_P")


class ContractError(ReportedError, TypeError):
    """A policy and a DataModule that do not fit together; ``lightning-rl`` reports it as one line."""

    exit_code = 2


def require(obj: Any, protocol: type[_P], role: str, hint: str) -> _P:
    """``obj`` if it implements ``protocol``; else a :class:`ContractError` naming what is missing.

    Args:
        obj: the other side (a policy or a DataModule).
        protocol: a ``runtime_checkable`` protocol of this module.
        role: what ``obj`` is for the caller, e.g. ``"PPO's DataModule"``.
        hint: what to use instead, e.g. ``"use lightning_rl.datamodules.OnPolicyDataModule"``.
    """
    if isinstance(obj, protocol):
        return obj
    members = [name for name in _members(protocol) if not hasattr(obj, name)]
    raise ContractError(
        f"{role} must be a {protocol.__name__} ({type(obj).__name__} lacks {', '.join(members)}); {hint}"
    )


def _members(protocol: type) -> list[str]:
    """The protocol's attributes and methods, base protocols' first, in declaration order."""
    names: list[str] = []
    for cls in reversed(protocol.__mro__):
        if cls is Protocol or cls is object or not getattr(cls, "_is_protocol", False):
            continue
        declared = [*vars(cls).get("__annotations__", {}), *vars(cls)]
        names += [name for name in declared if not name.startswith("_") and name not in names]
    return names
