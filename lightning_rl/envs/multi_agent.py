"""Multi-agent envs as single gymnasium envs: per-agent observations, a global state and per-agent action
masks packed into one flat observation, joint actions, one team reward.

Why one flat array: every env manager, its fault recovery, the shared-memory subprocess transport, the
autoreset ``final_obs`` and the episode statistics work on a ``Box`` observation per env. Packing the
three parts into one float32 vector (:class:`MultiAgentLayout` says where each lies) lets a cooperative
multi-agent env run through all of them unchanged; consumers unpack with the layout
(``layout.unpack(obs)`` -> ``{keys.AGENT_OBS, keys.GLOBAL_STATE, keys.ACTION_MASK}``).

Adapters: :class:`PettingZooEnv` (any PettingZoo ``ParallelEnv``, e.g. MPE's ``simple_spread`` from
``mpe2``, discrete or continuous actions) and :class:`LBForagingEnv` (Level-Based Foraging,
``lbforaging``). Shapes: ``N`` agents, ``O`` per-agent obs features, ``S`` state features, ``A`` actions.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
import torch

from lightning_rl import keys

__all__ = ["LBForagingEnv", "MultiAgentEnv", "MultiAgentLayout", "PettingZooEnv"]

_Array = TypeVar("_Array", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class MultiAgentLayout:
    """Where the parts of a packed multi-agent observation lie: ``[agent obs (N * O) | state (S) |
    action mask (N * A), discrete actions only]``.

    Attributes:
        n_agents: ``N``.
        obs_dim: ``O``, features of one agent's observation.
        state_dim: ``S``, features of the global state.
        n_actions: ``A`` for discrete actions (each agent's ``Discrete(A)``), else ``None``.
        action_dim: features of one agent's continuous action (``Box``), else ``None``.
        action_low, action_high: the continuous actions' bounds (one agent's), else ``None``.
    """

    n_agents: int
    obs_dim: int
    state_dim: int
    n_actions: int | None = None
    action_dim: int | None = None
    action_low: tuple[float, ...] | None = None
    action_high: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if (self.n_actions is None) == (self.action_dim is None):
            raise ValueError("exactly one of n_actions (discrete) or action_dim (continuous) must be set")
        if min(self.n_agents, self.obs_dim, self.state_dim, self.n_actions or self.action_dim) < 1:
            raise ValueError(f"every size of a MultiAgentLayout must be >= 1, got {self}")

    @property
    def discrete(self) -> bool:
        return self.n_actions is not None

    @property
    def size(self) -> int:
        """Length of the packed observation."""
        return self.n_agents * (self.obs_dim + (self.n_actions or 0)) + self.state_dim

    def observation_space(self) -> gym.spaces.Box:
        """The packed observation's space: unbounded observations and state, masks in [0, 1]."""
        low = np.full(self.size, -np.inf, np.float32)
        high = np.full(self.size, np.inf, np.float32)
        mask_start = self.n_agents * self.obs_dim + self.state_dim
        low[mask_start:], high[mask_start:] = 0.0, 1.0
        return gym.spaces.Box(low, high, dtype=np.float32)

    def action_space(self) -> gym.Space:
        """Joint actions: ``MultiDiscrete([A] * N)`` or ``Box`` ``(N, action_dim)``."""
        if self.discrete:
            return gym.spaces.MultiDiscrete([self.n_actions] * self.n_agents)
        low = np.tile(np.asarray(self.action_low, np.float32), (self.n_agents, 1))
        high = np.tile(np.asarray(self.action_high, np.float32), (self.n_agents, 1))
        return gym.spaces.Box(low, high, dtype=np.float32)

    def pack(self, agent_obs: np.ndarray, state: np.ndarray, action_mask: np.ndarray | None) -> np.ndarray:
        """(N, O), (S,), (N, A) bool or None (discrete: all allowed) -> (size,) float32."""
        parts = [np.asarray(agent_obs, np.float32).reshape(-1), np.asarray(state, np.float32).reshape(-1)]
        if self.discrete:
            mask = np.ones((self.n_agents, self.n_actions), bool) if action_mask is None else action_mask
            parts.append(np.asarray(mask, np.float32).reshape(-1))
        packed = np.concatenate(parts)
        if packed.shape != (self.size,):
            raise ValueError(f"packed observation has {packed.shape[0]} values, the layout {self.size}")
        return packed

    def unpack(self, obs: _Array) -> dict[str, _Array]:
        """(..., size) -> ``AGENT_OBS`` (..., N, O), ``GLOBAL_STATE`` (..., S) and, for discrete actions,
        ``ACTION_MASK`` (..., N, A) bool (views where the input allows)."""
        n, o, s = self.n_agents, self.obs_dim, self.state_dim
        lead = obs.shape[:-1]
        out = {
            keys.AGENT_OBS: obs[..., : n * o].reshape(*lead, n, o),
            keys.GLOBAL_STATE: obs[..., n * o : n * o + s],
        }
        if self.discrete:
            out[keys.ACTION_MASK] = obs[..., n * o + s :].reshape(*lead, n, self.n_actions) > 0.5
        return out

    def to_dict(self) -> dict[str, Any]:
        """Primitives only, for hparams and ``weights_only`` checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, layout: dict[str, Any]) -> MultiAgentLayout:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in layout.items()})


class MultiAgentEnv(gym.Env):
    """A cooperative multi-agent env as one gymnasium env: packed observations (:attr:`layout`), joint
    actions ``(N,)`` or ``(N, action_dim)``, the team reward (the sum of the agents' rewards), and an
    episode that ends when every agent is done: ``terminated`` if an agent terminated at the step that
    ended it (the team's future is then over), else ``truncated``.

    Subclasses set :attr:`layout` and implement :meth:`_reset` and :meth:`_step`, which return the parts
    ``(agent_obs (N, O), state (S,), action_mask (N, A) bool or None)``.
    """

    layout: MultiAgentLayout

    def _init_spaces(self, layout: MultiAgentLayout) -> None:
        self.layout = layout
        self.observation_space = layout.observation_space()
        self.action_space = layout.action_space()

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        parts, info = self._reset(seed)
        return self.layout.pack(*parts), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        parts, reward, terminated, truncated, info = self._step(np.asarray(action))
        return self.layout.pack(*parts), float(reward), bool(terminated), bool(truncated), info

    def _reset(self, seed: int | None) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray | None], dict]:
        raise NotImplementedError

    def _step(
        self, action: np.ndarray
    ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray | None], float, bool, bool, dict]:
        raise NotImplementedError


def _import_factory(path: str) -> Callable[..., Any]:
    """``"mpe2.simple_spread_v3"`` -> that module's ``parallel_env``; ``"pkg.mod:fn"`` -> ``fn``."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"env: cannot import '{module_name}' ({error}); e.g. 'mpe2.simple_spread_v3' needs "
            "pip install 'lightning-rl[marl]'"
        ) from error
    factory = getattr(module, attribute or "parallel_env", None)
    if not callable(factory):
        raise ValueError(
            f"env: '{path}' names no callable (a module with parallel_env, or 'module:function')"
        )
    return factory


class PettingZooEnv(MultiAgentEnv):
    """Any PettingZoo ``ParallelEnv`` whose agents share one observation and one action space.

    Args:
        env: the ParallelEnv's module (its ``parallel_env`` is called), e.g. ``"mpe2.simple_spread_v3"``,
            or ``"module:function"``.
        **env_kwargs: arguments of that factory (``N=3, max_cycles=25, continuous_actions=False``).

    The global state is the env's ``state()`` where it has one (MPE's), else the agents' observations
    concatenated. Action masks come from a dict observation's ``"action_mask"`` (PettingZoo's
    convention) or ``infos[agent]["action_mask"]``, else every action is allowed. An agent that is done
    before the others observes zeros and its actions are ignored.
    """

    def __init__(self, env: str = "mpe2.simple_spread_v3", **env_kwargs: Any):
        self.env = _import_factory(env)(**env_kwargs)
        self.agents = list(self.env.possible_agents)
        self._index = {agent: i for i, agent in enumerate(self.agents)}
        obs_space, act_space = self._obs_space(self.agents[0]), self.env.action_space(self.agents[0])
        if any(self._obs_space(a) != obs_space or self.env.action_space(a) != act_space for a in self.agents):
            raise ValueError(f"{env}: its agents' observation or action spaces differ; one of each is needed")
        obs_dim = int(np.prod(obs_space.shape))
        # PettingZoo envs with a global state declare its space (MPE's: every agent's view together)
        state_space = getattr(self.env, "state_space", None)
        self._has_state = state_space is not None
        state_dim = int(np.prod(state_space.shape)) if self._has_state else len(self.agents) * obs_dim
        if isinstance(act_space, gym.spaces.Discrete):
            layout = MultiAgentLayout(len(self.agents), obs_dim, state_dim, n_actions=int(act_space.n))
        elif isinstance(act_space, gym.spaces.Box):
            layout = MultiAgentLayout(
                len(self.agents),
                obs_dim,
                state_dim,
                action_dim=int(np.prod(act_space.shape)),
                action_low=tuple(float(x) for x in act_space.low.flat),
                action_high=tuple(float(x) for x in act_space.high.flat),
            )
        else:
            raise ValueError(f"{env}: action space {act_space} is not supported; allowed: Discrete, Box")
        self._init_spaces(layout)

    def _obs_space(self, agent: str) -> gym.Space:
        space = self.env.observation_space(agent)
        return space["observation"] if isinstance(space, gym.spaces.Dict) else space

    def _parts(self, observations: dict, infos: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        layout = self.layout
        agent_obs = np.zeros((layout.n_agents, layout.obs_dim), np.float32)
        mask = np.ones((layout.n_agents, layout.n_actions), bool) if layout.discrete else None
        for i, agent in enumerate(self.agents):
            if agent not in observations:
                continue
            obs = observations[agent]
            agent_mask = infos.get(agent, {}).get("action_mask")
            if isinstance(obs, dict):
                agent_mask = obs.get("action_mask", agent_mask)
                obs = obs["observation"]
            agent_obs[i] = np.asarray(obs, np.float32).reshape(-1)
            if mask is not None and agent_mask is not None:
                mask[i] = np.asarray(agent_mask, bool)
        state = np.asarray(self.env.state(), np.float32) if self._has_state else agent_obs.reshape(-1)
        return agent_obs, state, mask

    def _reset(self, seed: int | None) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray | None], dict]:
        observations, infos = self.env.reset(seed=seed)
        self._done = dict.fromkeys(self.agents, False)
        return self._parts(observations, infos), {}

    def _step(self, action: np.ndarray):
        live = [a for a in self.agents if a in self.env.agents]
        index = self._index
        actions = {a: action[index[a]].item() if self.layout.discrete else action[index[a]] for a in live}
        observations, rewards, terminations, truncations, infos = self.env.step(actions)
        terminated = any(terminations.get(a, False) for a in live)
        for a in live:
            self._done[a] = bool(terminations.get(a, False) or truncations.get(a, False))
        episode_over = all(self._done.values()) or not self.env.agents
        reward = float(sum(rewards.values()))
        return (
            self._parts(observations, infos),
            reward,
            episode_over and terminated,
            episode_over and not terminated,
            {},
        )

    def close(self) -> None:
        self.env.close()


class LBForagingEnv(MultiAgentEnv):
    """Level-Based Foraging (Papoudakis et al., 2021; ``lbforaging``): players on a grid collect food
    whose level the adjacent players' levels must reach together.

    Args:
        env_id: a registered ``lbforaging`` id, e.g. ``"Foraging-8x8-2p-2f-coop-v3"`` (8x8 grid, 2 players,
            2 foods, cooperative: every food needs both).
        **env_kwargs: arguments of ``gymnasium.make`` for it.

    The global state is the players' observations concatenated (each already sees the whole grid);
    action masks are the game's valid moves per player. The game's time limit (50 steps in the registered
    ids) is reported as a truncation; only collecting every food terminates.
    """

    def __init__(self, env_id: str = "Foraging-8x8-2p-2f-coop-v3", **env_kwargs: Any):
        try:
            import lbforaging  # noqa: F401  (registers the Foraging-* ids)
        except ImportError as error:
            raise ValueError("LBForagingEnv needs lbforaging: pip install 'lightning-rl[marl]'") from error
        self.env = gym.make(env_id, **env_kwargs)
        obs_spaces, act_spaces = self.env.observation_space.spaces, self.env.action_space.spaces
        n_agents, obs_dim = len(obs_spaces), int(np.prod(obs_spaces[0].shape))
        self._init_spaces(
            MultiAgentLayout(n_agents, obs_dim, n_agents * obs_dim, n_actions=int(act_spaces[0].n))
        )

    def _parts(self, observations: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        agent_obs = np.stack([np.asarray(o, np.float32).reshape(-1) for o in observations])
        game = self.env.unwrapped
        mask = np.zeros((self.layout.n_agents, self.layout.n_actions), bool)
        for i, player in enumerate(game.players):  # the game keeps its valid moves per player here only
            mask[i, [move.value for move in game._valid_actions[player]]] = True
        return agent_obs, agent_obs.reshape(-1), mask

    def _reset(self, seed: int | None):
        # lbforaging 2.0.0 spawns players on cells free of the previous episode's players too, so a seeded
        # reset would depend on the last episode: clear their positions first (gymnasium's check_env)
        for player in self.env.unwrapped.players:
            player.position = None
        observations, _ = self.env.reset(seed=seed)
        return self._parts(observations), {}

    def _step(self, action: np.ndarray):
        observations, rewards, done, truncated, _ = self.env.step(tuple(int(a) for a in action))
        # The game reports its time limit as done; only an emptied field terminates (bootstrapping)
        terminated = done and self.env.unwrapped.field.sum() == 0
        truncated = truncated or (done and not terminated)
        return self._parts(observations), float(np.sum(rewards)), terminated, truncated, {}

    def close(self) -> None:
        self.env.close()
