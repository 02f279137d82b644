"""Atari 2600 games with DeepMind's preprocessing (Mnih et al. 2015), on ale-py and gymnasium wrappers.

Wrapper stack, innermost first (one agent step = ``frame_skip`` emulator frames):

1. ale-py's env (``ALE/<Game>-v5``) made with ``frameskip=1``, grayscale screens, sticky actions
   ``repeat_action_probability`` and a ``max_episode_frames`` time limit (truncation);
2. gymnasium's ``AtariPreprocessing``: up to ``noop_max`` random no-ops at reset, ``frame_skip`` with a
   max-pool over the last two frames, 84x84 resize -> obs (84, 84) uint8;
3. :class:`EpisodicLifeWrapper` (``episodic_life``): a lost life terminates the episode, not the game;
4. :class:`FireResetWrapper` (``fire_reset``): FIRE after each reset, for games that have FIRE;
5. gymnasium's ``FrameStackObservation``: the last ``frame_stack`` frames, channel first ->
   obs (frame_stack, 84, 84) uint8 (the first frame is repeated after a reset);
6. gymnasium's ``TransformReward`` (``clip_rewards``): reward -> its sign in {-1, 0, 1}.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from app_zoo.atari.envs.atari_wrappers import EpisodicLifeWrapper, FireResetWrapper
from lightning_rl.envs import BaseEnv, EnvInfo
from lightning_rl.envs.base import UNBOUNDED_REWARD
from lightning_rl.utils.checks import check_int, check_range

INSTALL_HINT = "pip install 'lightning-rl[atari]' (ale-py with its bundled ROMs, and opencv for resizing)"
SCREEN_SIZE = 84
EMULATOR_FPS = 60  # the Atari 2600's frame rate (ALE's metadata says 30)
CLIPPED_REWARD = gym.spaces.Box(-1.0, 1.0, shape=(), dtype=np.float32)


def sign_reward(reward: float) -> float:
    """Clip a reward to its sign: -1.0, 0.0 or 1.0 (module level, so an env pickles for subprocesses)."""
    return float(np.sign(reward))


def register_ale_envs() -> None:
    """Register ale-py's ids (``ALE/Pong-v5``, ...) with gymnasium; a clear error if ale-py is missing."""
    try:
        import ale_py
    except ImportError as error:
        raise ImportError(f"AtariEnv needs ale-py, which is not installed: {INSTALL_HINT}") from error
    gym.register_envs(ale_py)


def atari_ids() -> list[str]:
    """The registered ale-py ids (after :func:`register_ale_envs`)."""
    return sorted(
        env_id for env_id, spec in gym.registry.items() if str(spec.entry_point).startswith("ale_py")
    )


class AtariEnv(BaseEnv):
    """An Atari game as DQN papers train on it: obs (frame_stack, 84, 84) uint8, Discrete actions.

    Config:
        env_id: an ale-py id, ``"ALE/<Game>-v5"`` (default ``"ALE/Pong-v5"``).
        is_train: nerveX's switch: ``True`` turns on ``episodic_life`` and ``clip_rewards`` where they are
            ``None``; ``False`` (evaluation) turns them off, so returns are real game scores.
        episodic_life: ``None`` (= ``is_train``), or a bool; see :class:`EpisodicLifeWrapper`.
        clip_rewards: ``None`` (= ``is_train``), or a bool: rewards -> their sign.
        fire_reset: ``None`` (auto: on for games whose action 1 is FIRE, e.g. Breakout and Pong), or a bool.
        frame_skip: emulator frames per agent step (the action is repeated; obs max-pools the last two).
        noop_max: at most this many random no-op steps (emulator frames) after each game reset; 0: none.
        frame_stack: frames stacked into one observation (channel axis first).
        repeat_action_probability: sticky actions: probability that the emulator repeats the previous
            action on a frame. 0.0 (the default) is DeepMind's setting that rl-zoo's and DI-engine's
            tuned Atari hyperparameters assume; ALE v5 recommends 0.25 (Machado et al. 2018).
        full_action_space: all 18 joystick actions instead of the game's minimal set.
        max_episode_frames: truncate a game after this many emulator frames (108000 = 30 min at 60 fps,
            27000 agent steps at ``frame_skip`` 4); ``None``: no limit.

    ``self.cfg`` holds the resolved values (``episodic_life``, ``clip_rewards`` and ``fire_reset`` as
    bools). A ``reset(seed=...)`` always starts a new game, so ``seed(s, dynamic_seed=False)`` (a seed at
    every reset) restarts the game at each lost life too: use it for evaluation, with ``is_train=False``.
    """

    default_config: ClassVar[Mapping[str, Any]] = {
        "env_id": "ALE/Pong-v5",
        "is_train": True,
        "episodic_life": None,
        "clip_rewards": None,
        "fire_reset": None,
        "frame_skip": 4,
        "noop_max": 30,
        "frame_stack": 4,
        "repeat_action_probability": 0.0,
        "full_action_space": False,
        "max_episode_frames": 108_000,
    }

    def __init__(self, cfg: Mapping[str, Any] | None = None, **overrides: Any) -> None:
        super().__init__(cfg, **overrides)
        # a rendered episode has one frame per agent step, frame_skip emulator frames apart: at ALE's
        # render_fps (30) a frame_skip-4 video plays at twice real time
        self.metadata = {**self.env.metadata, "render_fps": EMULATOR_FPS / self.cfg["frame_skip"]}

    def _build(self, cfg: dict[str, Any]) -> gym.Env:
        register_ale_envs()
        self._check_config(cfg)
        for key in ("episodic_life", "clip_rewards"):
            if cfg[key] is None:
                cfg[key] = cfg["is_train"]
        env = gym.make(
            cfg["env_id"],
            frameskip=1,
            obs_type="grayscale",
            repeat_action_probability=float(cfg["repeat_action_probability"]),
            full_action_space=cfg["full_action_space"],
            max_num_frames_per_episode=cfg["max_episode_frames"],
        )
        if cfg["fire_reset"] is None:
            meanings = env.unwrapped.get_action_meanings()
            cfg["fire_reset"] = len(meanings) >= 3 and meanings[1] == "FIRE"
        env = gym.wrappers.AtariPreprocessing(
            env, noop_max=cfg["noop_max"], frame_skip=cfg["frame_skip"], screen_size=SCREEN_SIZE
        )
        if cfg["episodic_life"]:
            env = EpisodicLifeWrapper(env)
        if cfg["fire_reset"]:
            env = FireResetWrapper(env)
        env = gym.wrappers.FrameStackObservation(env, cfg["frame_stack"])
        if cfg["clip_rewards"]:
            env = gym.wrappers.TransformReward(env, sign_reward)
        return env

    @staticmethod
    def _check_config(cfg: dict[str, Any]) -> None:
        ids = atari_ids()
        if cfg["env_id"] not in ids:
            close = difflib.get_close_matches(str(cfg["env_id"]), ids, n=3)
            hint = f"did you mean {close}?" if close else "ale-py ids look like 'ALE/Breakout-v5'"
            raise ValueError(f"AtariEnv config: env_id {cfg['env_id']!r} is not an ale-py game; {hint}")
        check_int("AtariEnv config: frame_skip", cfg["frame_skip"], 1)
        check_int("AtariEnv config: noop_max", cfg["noop_max"], 0)
        check_int("AtariEnv config: frame_stack", cfg["frame_stack"], 1)
        if cfg["max_episode_frames"] is not None:
            check_int("AtariEnv config: max_episode_frames", cfg["max_episode_frames"], 1)
        check_range("AtariEnv config: repeat_action_probability", cfg["repeat_action_probability"], 0.0, 1.0)
        for key in ("is_train", "full_action_space"):
            if not isinstance(cfg[key], bool):
                raise ValueError(f"AtariEnv config: {key} must be one of [False, True], got {cfg[key]!r}")
        for key in ("episodic_life", "clip_rewards", "fire_reset"):
            if cfg[key] is not None and not isinstance(cfg[key], bool):
                raise ValueError(
                    f"AtariEnv config: {key} must be one of [None, False, True] (None: automatic), "
                    f"got {cfg[key]!r}"
                )

    def reward_space(self) -> gym.spaces.Box:
        return CLIPPED_REWARD if self.cfg["clip_rewards"] else UNBOUNDED_REWARD

    def info(self) -> EnvInfo:  # type: ignore[override]
        """As :meth:`BaseEnv.info`; ``max_episode_steps`` is the frame limit in agent steps (an upper bound:
        no-ops at reset and, with ``episodic_life``, lost lives end episodes sooner)."""
        frames = self.cfg["max_episode_frames"]
        steps = None if frames is None else math.ceil(frames / self.cfg["frame_skip"])
        return EnvInfo(
            env_id=self.cfg["env_id"],
            obs_space=self.observation_space,
            act_space=self.action_space,
            rew_space=self.reward_space(),
            max_episode_steps=steps,
        )
