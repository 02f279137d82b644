"""nerveX's env interface on gymnasium: config-built envs that describe themselves with ``info()``.

A :class:`BaseEnv` *is* a ``gymnasium.Env`` (a wrapper around the env its config builds), so it runs
in gymnasium's vector envs, in our env managers and in every DataModule unchanged. What it adds:

* construction from a config dict merged over ``default_config`` (unknown keys are an error that lists
  the allowed ones), as in nerveX: ``CartPoleEnv(cfg={})``; keyword overrides work too, so YAML can
  pass ``env_kwargs: {env_id: Acrobot-v1}``;
* ``info()`` → :class:`EnvInfo` with the observation, action and reward spaces and their shapes
  (``info.obs_shape.shape``: nerveX's view of a shape, see :class:`ElementShape`);
* ``seed(seed, dynamic_seed)``: the seed of the next reset; with ``dynamic_seed=False`` every episode
  restarts from the same seed (repeatable evaluation episodes).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from lightning_rl.envs.vector import resolve_env_factory
from lightning_rl.spec import EnvSpec

UNBOUNDED_REWARD = gym.spaces.Box(-np.inf, np.inf, shape=(), dtype=np.float32)


class ElementShape(tuple):
    """The shape of an env element: a tuple (``info.obs_shape == (4,)``) that also answers nerveX's
    ``.shape``.

    nerveX's ``env.info()`` described each element by an ``EnvElementInfo`` whose ``shape`` its models
    took after squeezing a one-dimensional shape to its size. So ``.shape`` is that size for a
    one-dimensional shape (``4`` for CartPole's observations, ``2`` for its logits: what
    ``nn.Linear`` takes, as in the tutorial's ``FCDQN(env_info.obs_shape.shape,
    env_info.act_shape.shape)``) and the tuple itself otherwise (``(4, 84, 84)`` for Atari frames).
    """

    __slots__ = ()

    @property
    def shape(self) -> int | tuple[int, ...]:
        return self[0] if len(self) == 1 else tuple(self)


@dataclass(frozen=True)
class EnvInfo:
    """What an env produces and accepts (nerveX's ``env.info()``).

    Attributes:
        env_id: the gymnasium id (or class name) of the env.
        obs_space: space of one observation.
        act_space: space of one action.
        rew_space: space of one reward (bounds are informative: ``[-1, 1]`` when rewards are clipped).
        max_episode_steps: time limit of an episode, ``None`` if it has none.
    """

    env_id: str
    obs_space: gym.Space
    act_space: gym.Space
    rew_space: gym.spaces.Box = field(default_factory=lambda: UNBOUNDED_REWARD)
    max_episode_steps: int | None = None

    @property
    def obs_shape(self) -> ElementShape:
        """The shape of one observation; ``.shape`` is nerveX's view of it (see :class:`ElementShape`)."""
        return ElementShape(int(d) for d in self.obs_space.shape)

    @property
    def act_shape(self) -> ElementShape:
        """``(n_actions,)`` for a discrete action space (the size of a policy's logits), else its shape;
        ``.shape`` is nerveX's view of it (see :class:`ElementShape`)."""
        if isinstance(self.act_space, gym.spaces.Discrete):
            return ElementShape((int(self.act_space.n),))
        return ElementShape(int(d) for d in self.act_space.shape)

    def to_spec(self) -> EnvSpec:
        """The :class:`EnvSpec` a policy is built from."""
        return EnvSpec.from_spaces(self.env_id, self.obs_space, self.act_space)


def merge_config(owner: str, defaults: Mapping[str, Any], cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """``defaults`` updated with ``cfg``; a key not in ``defaults`` is an error naming the allowed keys."""
    cfg = dict(cfg or {})
    unknown = sorted(set(cfg) - set(defaults))
    if unknown:
        raise ValueError(f"{owner} config: unknown keys {unknown}; allowed: {sorted(defaults)}")
    merged = copy.deepcopy(dict(defaults))
    merged.update(cfg)
    return merged


class BaseEnv(gym.Wrapper):
    """An env built from a config; subclasses set ``default_config`` and implement :meth:`_build`.

    Its :attr:`spec` recreates it from that config (``gymnasium.make(env.spec)``, ``env.spec.make()``, as
    gymnasium's env checker and spec-based tools do): the entry point is this class, the kwargs the
    resolved config.

    Args:
        cfg: config entries overriding ``default_config`` (``None`` or ``{}``: all defaults).
        **overrides: more entries, applied after ``cfg`` (convenient from YAML ``env_kwargs``).
    """

    default_config: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, cfg: Mapping[str, Any] | None = None, **overrides: Any) -> None:
        self.cfg = merge_config(type(self).__name__, self.default_config, {**(cfg or {}), **overrides})
        super().__init__(self._build(self.cfg))
        # the built env's own spec (its id, time limit), before a gymnasium.make of this env's spec sets
        # the innermost env's spec to that one
        self._built_spec = self.env.spec
        self._next_seed: int | None = None
        self._dynamic_seed = True

    def _build(self, cfg: dict[str, Any]) -> gym.Env:
        """The gymnasium env this config describes."""
        raise NotImplementedError

    @property
    def spec(self) -> gym.envs.registration.EnvSpec:  # type: ignore[override]
        """This env as ``entry point(cfg=<its config>)``. Not the inner env's spec plus this wrapper: the
        inner env is what :meth:`_build` makes, not an argument, so gymnasium could not re-wrap it."""
        cls = type(self)
        return gym.envs.registration.EnvSpec(
            id=cls.__name__,
            entry_point=f"{cls.__module__}:{cls.__qualname__}",
            kwargs={"cfg": copy.deepcopy(self.cfg)},
            max_episode_steps=None,  # the inner env keeps its own time limit
        )

    def reward_space(self) -> gym.spaces.Box:
        """Space of one reward; override where rewards are bounded."""
        return UNBOUNDED_REWARD

    def info(self) -> EnvInfo:  # type: ignore[override]  # gym.Wrapper has no info(); nerveX's name
        spec = self._built_spec
        return EnvInfo(
            env_id=spec.id if spec is not None else type(self).__name__,
            obs_space=self.observation_space,
            act_space=self.action_space,
            rew_space=self.reward_space(),
            max_episode_steps=spec.max_episode_steps if spec is not None else None,
        )

    def seed(self, seed: int, dynamic_seed: bool = True) -> None:
        """Seed the next :meth:`reset`; ``dynamic_seed=False`` reuses ``seed`` at every reset."""
        self._next_seed = int(seed)
        self._dynamic_seed = dynamic_seed

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        if seed is None and self._next_seed is not None:
            seed = self._next_seed
            if self._dynamic_seed:
                self._next_seed = None  # later resets continue the RNG seeded here
        return self.env.reset(seed=seed, options=options)


class GymEnv(BaseEnv):
    """Any registered gymnasium id, no code needed: ``GymEnv(cfg={"env_id": "Acrobot-v1"})``.

    Config:
        env_id: the gymnasium id.
        env_kwargs: keyword arguments for ``gymnasium.make`` (e.g. ``max_episode_steps``).
    """

    default_config: ClassVar[Mapping[str, Any]] = {"env_id": None, "env_kwargs": {}}

    def _build(self, cfg: dict[str, Any]) -> gym.Env:
        if cfg["env_id"] is None:
            raise ValueError(f"{type(self).__name__} config: env_id must be set to a gymnasium id")
        return resolve_env_factory(cfg["env_id"], None, cfg["env_kwargs"])[1]()
