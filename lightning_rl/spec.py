"""What a policy needs to know about an environment, as plain data.

`EnvSpec` is built from gymnasium spaces once, by the DataModule, and handed to the policy (the CLI
links ``data.env_spec`` to ``model.env_spec``). It travels as a dict of primitives so it can live in
``hparams`` and in checkpoints that load with ``torch.load(weights_only=True)``.

A leaf module beside ``keys.py``: it imports nothing from ``lightning_rl``, so every layer may use it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import gymnasium as gym
import numpy as np

ActionType = Literal["discrete", "continuous"]


@dataclass(frozen=True)
class EnvSpec:
    """Observation and action description of one (single, not vectorized) environment.

    Attributes:
        env_id: gymnasium id or factory name, for messages.
        obs_shape: shape of one observation, e.g. ``(4,)`` or ``(4, 84, 84)``.
        obs_dtype: numpy dtype name of observations (``"float32"``, ``"uint8"``).
        action_type: ``"discrete"`` (gymnasium ``Discrete``) or ``"continuous"`` (``Box``).
        n_actions: number of discrete actions (0 for continuous).
        action_shape: shape of one continuous action (``()`` for discrete).
        action_low, action_high: bounds of continuous actions (empty for discrete).
        action_mask: the last ``n_actions`` features of the (flat) observation are the legal-action mask
            (1 legal, 0 not; ``lightning_rl.torch_utils.split_action_mask``), e.g. a board game's moves.
        two_player: the env is the learner's seat of a two-player game
            (``lightning_rl.envs.TwoPlayerEnv``); the DataModule's opponent pool plays the other seat.
        board_shape: a board game's ``(H, W, C)`` planes, of which the observation's features (before the
            mask) are the row-major flattening (connect four: ``(6, 7, 2)``); ``()`` when not a board. A
            policy's ``encoder: board_cnn`` convolves over them.
        multi_agent: for a multi-agent env (``lightning_rl.envs.MultiAgentEnv``), its
            ``MultiAgentLayout.to_dict()``; the action fields then describe one agent's action. ``None``:
            a single-agent env.
    """

    env_id: str
    obs_shape: tuple[int, ...]
    obs_dtype: str
    action_type: ActionType
    n_actions: int = 0
    action_shape: tuple[int, ...] = ()
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()
    multi_agent: dict[str, Any] | None = None
    action_mask: bool = False
    two_player: bool = False
    board_shape: tuple[int, ...] = ()

    @classmethod
    def from_multi_agent_layout(
        cls, env_id: str, observation_space: gym.spaces.Box, layout: dict[str, Any]
    ) -> EnvSpec:
        """The spec of a multi-agent env: its packed observation, one agent's action, and the layout."""
        obs = _obs_fields(observation_space)
        if layout["n_actions"] is not None:
            return cls(
                env_id, action_type="discrete", n_actions=int(layout["n_actions"]), multi_agent=layout, **obs
            )
        return cls(
            env_id,
            action_type="continuous",
            action_shape=(int(layout["action_dim"]),),
            action_low=tuple(layout["action_low"]),
            action_high=tuple(layout["action_high"]),
            multi_agent=layout,
            **obs,
        )

    @classmethod
    def from_spaces(cls, env_id: str, observation_space: gym.Space, action_space: gym.Space) -> EnvSpec:
        if not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(
                f"env '{env_id}': observation space {observation_space} is not supported; "
                "allowed: gymnasium.spaces.Box (vector or image observations)"
            )
        obs = _obs_fields(observation_space)
        if isinstance(action_space, gym.spaces.Discrete):
            if action_space.start != 0:
                raise ValueError(f"env '{env_id}': Discrete action space must start at 0, got {action_space}")
            return cls(env_id, action_type="discrete", n_actions=int(action_space.n), **obs)
        if isinstance(action_space, gym.spaces.Box):
            return cls(
                env_id,
                action_type="continuous",
                action_shape=tuple(action_space.shape),
                action_low=tuple(float(x) for x in action_space.low.flat),
                action_high=tuple(float(x) for x in action_space.high.flat),
                **obs,
            )
        raise ValueError(
            f"env '{env_id}': action space {action_space} is not supported; "
            "allowed: gymnasium.spaces.Discrete or gymnasium.spaces.Box"
        )

    def to_dict(self) -> dict[str, Any]:
        """Primitives only (lists for tuples), safe for hparams and ``weights_only`` checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> EnvSpec:
        allowed = set(cls.__dataclass_fields__)
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"env_spec: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
        return cls(
            **{k: tuple(v) if isinstance(v, list) and k != "multi_agent" else v for k, v in spec.items()}
        )


def _obs_fields(observation_space: gym.Space) -> dict[str, Any]:
    """``obs_shape`` and ``obs_dtype`` of one observation."""
    return {"obs_shape": tuple(observation_space.shape), "obs_dtype": np.dtype(observation_space.dtype).name}
