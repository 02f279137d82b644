"""The two DeepMind Atari wrappers gymnasium lacks: episodic life and fire on reset.

Both wrap an env that already skips frames (gymnasium's ``AtariPreprocessing``), so one ``step`` here
is one agent step. They read the emulator through ``env.unwrapped.ale``, and record their constructor
arguments (``RecordConstructorArgs``), so an env spec recreates them.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym


class EpisodicLifeWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """A lost life ends the episode (``terminated=True``) for the learner, not the game.

    The next :meth:`reset` after a life loss that left lives over does not restart the game: it takes
    one no-op step and the episode continues from the current state with one life fewer (as DeepMind's
    and Stable-Baselines3's ``EpisodicLifeEnv``). Only a real game over (or truncation) restarts the
    game. gymnasium's ``AtariPreprocessing(terminal_on_life_loss=True)`` restarts the whole game at every
    life loss instead, so an agent would never see the later lives.

    A reset with an explicit ``seed`` always restarts the game, so seeded resets are repeatable.
    Games without lives (Pong: ``ale.lives() == 0``) are unaffected.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)  # recreatable from a spec (gymnasium.make)
        super().__init__(env)
        self.lives = 0
        self.game_over = True  # the first reset starts a game

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        if self.game_over or seed is not None:
            obs, info = self.env.reset(seed=seed, options=options)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)  # NOOP: continue the game
            if terminated or truncated:  # the no-op step happened to end the game
                obs, info = self.env.reset(options=options)
        self.game_over = False
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info


class FireResetWrapper(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Press FIRE (action 1), then action 2, after every reset: games such as Breakout stand still until
    FIRE is pressed, which a random policy takes long to find.

    Rewards of these two steps are dropped. Above :class:`EpisodicLifeWrapper` it also fires after a
    life loss (Breakout needs a new ball served each life). Needs action 1 to be FIRE and at least 3
    actions.
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        if len(meanings) < 3 or meanings[1] != "FIRE":
            raise ValueError(
                "fire_reset needs action 1 to be FIRE and at least 3 actions; "
                f"this game's actions are {meanings}"
            )

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        self.env.reset(seed=seed, options=options)
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(options=options)
        return obs, info
