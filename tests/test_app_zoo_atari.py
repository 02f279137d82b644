"""app_zoo.atari: the DeepMind wrappers (exact behaviour on a scripted fake and on the emulator), AtariEnv's
config and info(), rollouts through the env managers, and the Pong/Breakout DQN configs through the CLI."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from cli_utils import REPO
from env_utils import random_rollout

from app_zoo.atari.envs import AtariEnv, EpisodicLifeWrapper, FireResetWrapper
from lightning_rl.cli import RLCLI
from lightning_rl.envs import SubprocessEnvManager, SyncEnvManager

HAVE_ALE = all(importlib.util.find_spec(name) is not None for name in ("ale_py", "cv2"))
requires_ale = pytest.mark.skipif(
    not HAVE_ALE, reason="ale-py / opencv not installed: pip install 'lightning-rl[atari]'"
)
CONFIGS = REPO / "app_zoo" / "atari" / "configs"


# --- the wrappers on a scripted fake game ---------------------------------------------------------------
class FakeAle:
    def __init__(self) -> None:
        self.lives_left = 0

    def lives(self) -> int:
        return self.lives_left


class FakeGame(gym.Env):
    """obs = frames played in this game; a life is lost every ``life_every`` steps; reward = the action.

    Records every action and every game restart (``resets``, with the seed passed).
    """

    observation_space = gym.spaces.Box(0, 10_000, shape=(), dtype=np.int64)
    action_space = gym.spaces.Discrete(4)

    def __init__(self, lives: int = 3, life_every: int = 3, truncate_at: int | None = None) -> None:
        self.ale = FakeAle()
        self.start_lives, self.life_every, self.truncate_at = lives, life_every, truncate_at
        self.actions: list[int] = []
        self.resets: list[int | None] = []
        self.t = 0

    def get_action_meanings(self) -> list[str]:
        return ["NOOP", "FIRE", "RIGHT", "LEFT"]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.resets.append(seed)
        self.t = 0
        self.ale.lives_left = self.start_lives
        return np.int64(self.t), {"lives": self.ale.lives_left}

    def step(self, action):
        self.actions.append(int(action))
        self.t += 1
        if self.start_lives and self.t % self.life_every == 0:
            self.ale.lives_left -= 1
        terminated = self.start_lives > 0 and self.ale.lives_left == 0
        truncated = self.truncate_at is not None and self.t >= self.truncate_at
        return np.int64(self.t), float(action), terminated, truncated, {"lives": self.ale.lives_left}


def test_episodic_life_ends_the_episode_on_a_life_loss_but_the_game_goes_on():
    game = FakeGame(lives=3, life_every=3)
    env = EpisodicLifeWrapper(game)
    obs, _ = env.reset()
    assert obs == 0 and game.resets == [None]
    flags = [env.step(3)[2] for _ in range(3)]
    assert flags == [False, False, True] and game.ale.lives() == 2
    # the next reset continues the game with one no-op step: no restart, the life stays lost
    obs, _ = env.reset()
    assert obs == 4 and game.actions[-1] == 0 and game.resets == [None] and game.ale.lives() == 2
    flags = [env.step(3)[2] for _ in range(2)]  # frames 5, 6: the second life is lost at 6
    assert flags == [False, True] and game.ale.lives() == 1
    env.reset()  # frame 7 (no-op)
    obs, _, terminated, _, _ = env.step(3)  # frame 8
    assert not terminated
    obs, _, terminated, _, _ = env.step(3)  # frame 9: the last life, a real game over
    assert obs == 9 and terminated and game.ale.lives() == 0
    obs, _ = env.reset()  # a game over restarts the game
    assert obs == 0 and game.resets == [None, None] and game.ale.lives() == 3


def test_episodic_life_restarts_the_game_on_a_seeded_reset_or_after_truncation():
    game = FakeGame(lives=3, life_every=2, truncate_at=3)
    env = EpisodicLifeWrapper(game)
    env.reset()
    env.step(0), env.step(0)  # life lost at frame 2
    env.reset(seed=7)  # an explicit seed means a new game, so seeded resets are repeatable
    assert game.resets == [None, 7] and game.t == 0
    env.step(0), env.step(0)  # life lost at frame 2
    env.reset()  # continues: frame 3 is the no-op step, which truncates -> the game restarts
    assert game.resets == [None, 7, None] and game.t == 0
    env.step(0), env.step(0)
    _, _, terminated, truncated, _ = env.step(0)
    assert not terminated and truncated
    env.reset()
    assert game.resets == [None, 7, None, None]


def test_episodic_life_ignores_games_without_lives():
    game = FakeGame(lives=0)
    env = EpisodicLifeWrapper(game)
    env.reset()
    assert not any(env.step(0)[2] for _ in range(20))


def test_fire_reset_presses_fire_then_action_2_after_every_reset():
    game = FakeGame(lives=3, life_every=4)
    env = FireResetWrapper(EpisodicLifeWrapper(game))
    obs, _ = env.reset(seed=1)
    assert game.actions == [1, 2] and obs == 2 and game.resets == [1]
    env.step(3), env.step(3)  # frames 3, 4: a life is lost
    obs, _ = env.reset()  # after a life loss: no-op (episodic life), then FIRE, 2 (a new ball served)
    assert game.actions[-3:] == [0, 1, 2] and obs == 7 and game.resets == [1]


def test_fire_reset_needs_a_fire_action():
    game = FakeGame()
    game.get_action_meanings = lambda: ["NOOP", "RIGHT", "LEFT"]
    with pytest.raises(ValueError, match=r"action 1 to be FIRE .* \['NOOP', 'RIGHT', 'LEFT'\]"):
        FireResetWrapper(game)


def test_a_missing_ale_py_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py", None)  # makes `import ale_py` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'lightning-rl\[atari\]'"):
        AtariEnv()


# --- AtariEnv on the emulator ---------------------------------------------------------------------------
@requires_ale
@pytest.mark.parametrize(
    ("env_id", "n_actions", "fire"), [("ALE/Pong-v5", 6, True), ("ALE/Breakout-v5", 4, True)]
)
def test_info_describes_the_preprocessed_game(env_id, n_actions, fire):
    env = AtariEnv(cfg={"env_id": env_id})
    info = env.info()
    assert info.env_id == env_id
    assert info.obs_space == gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    assert info.act_space == gym.spaces.Discrete(n_actions)
    assert info.rew_space == gym.spaces.Box(-1.0, 1.0, (), np.float32)
    assert info.max_episode_steps == 27_000  # 108000 emulator frames / frame_skip 4
    assert info.to_spec().obs_dtype == "uint8"
    assert env.cfg["episodic_life"] and env.cfg["clip_rewards"] and env.cfg["fire_reset"] is fire
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    env.close()


@requires_ale
def test_is_train_false_gives_real_episodes_and_scores():
    env = AtariEnv(
        env_id="ALE/Breakout-v5", is_train=False, frame_stack=2, frame_skip=2, max_episode_frames=None
    )
    assert not env.cfg["episodic_life"] and not env.cfg["clip_rewards"]
    info = env.info()
    assert info.rew_space.low == -np.inf and info.max_episode_steps is None
    assert info.obs_space.shape == (2, 84, 84)
    assert "EpisodicLifeWrapper" not in str(env) and "TransformReward" not in str(env)
    # an explicit value beats is_train
    assert AtariEnv(env_id="ALE/Breakout-v5", is_train=False, clip_rewards=True).cfg["clip_rewards"]


@requires_ale
@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"env_id": "ALE/Pongg-v5"},
            r"env_id 'ALE/Pongg-v5' is not an ale-py game; did you mean \['ALE/Pong-v5'",
        ),
        ({"env_id": "CartPole-v1"}, "env_id 'CartPole-v1' is not an ale-py game"),
        ({"frame_skip": 0}, "frame_skip must be an int >= 1, got 0"),
        ({"noop_max": -1}, "noop_max must be an int >= 0, got -1"),
        ({"repeat_action_probability": 1.5}, r"repeat_action_probability must be in \[0.0, 1.0\], got 1.5"),
        (
            {"fire_reset": "auto"},
            r"fire_reset must be one of \[None, False, True\] \(None: automatic\), got 'auto'",
        ),
        ({"is_train": 1}, r"is_train must be one of \[False, True\], got 1"),
        ({"framestack": 4}, r"unknown keys \['framestack'\]; allowed: .*'frame_stack'"),
    ],
)
def test_bad_config_values_name_the_field(override, message):
    with pytest.raises(ValueError, match=message):
        AtariEnv(cfg=override)


def resize(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(frame, (84, 84), interpolation=cv2.INTER_AREA)


@requires_ale
def test_observations_stack_the_max_of_the_last_two_frames_of_each_skip():
    """Replays the same actions on a raw emulator (frameskip 1) and rebuilds each observation by hand."""
    env = AtariEnv(env_id="ALE/Pong-v5", noop_max=0, fire_reset=False)
    raw = gym.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0, obs_type="grayscale")
    obs, _ = env.reset(seed=3)
    screen, _ = raw.reset(seed=3)
    frames = [resize(screen)] * 4  # a reset repeats the first frame through the stack
    assert np.array_equal(obs, np.stack(frames))
    actions = np.random.default_rng(0).integers(0, 6, size=60)
    pooling_mattered = False
    for action in actions:
        obs, reward, *_ = env.step(action)
        screens, raw_reward = [], 0.0
        for _ in range(4):  # the action repeats over 4 emulator frames
            screen, r, *_ = raw.step(action)
            screens.append(screen)
            raw_reward += r
        pooled = resize(np.maximum(screens[-2], screens[-1]))
        pooling_mattered |= not np.array_equal(pooled, resize(screens[-1]))
        frames = [*frames[1:], pooled]
        assert np.array_equal(obs, np.stack(frames))
        assert reward == np.sign(raw_reward)
    assert pooling_mattered, "the max over two frames never differed from the last frame; a weak check"
    env.close()
    raw.close()


@requires_ale
def test_a_lost_life_terminates_and_the_next_reset_continues_the_game():
    env = AtariEnv(env_id="ALE/Breakout-v5", noop_max=0)
    _, info = env.reset(seed=0)
    assert info["lives"] == 5 and info["episode_frame_number"] == 8  # FIRE and RIGHT, 4 frames each
    lives = 5
    for _ in range(5):
        for _ in range(2_000):  # standing still (NOOP) loses the ball in a few hundred frames
            _, _, terminated, truncated, info = env.step(0)
            if terminated or truncated:
                break
        assert terminated and not truncated and info["lives"] == lives - 1
        lives -= 1
        frame = info["episode_frame_number"]
        _, info = env.reset()
        if lives > 0:  # the same game goes on: no-op, FIRE, RIGHT; the life stays lost
            assert info["lives"] == lives and info["episode_frame_number"] == frame + 12
        else:  # game over: a new game with all lives
            assert info["lives"] == 5 and info["episode_frame_number"] == 8
    env.close()


@requires_ale
def test_without_episodic_life_only_the_game_over_terminates():
    env = AtariEnv(env_id="ALE/Breakout-v5", noop_max=0, episodic_life=False)
    env.reset(seed=0)
    lives_seen = set()
    for _ in range(5_000):
        _, _, terminated, _, info = env.step(1)  # FIRE: serves a new ball after each lost life
        lives_seen.add(info["lives"])
        if terminated:
            break
    assert terminated and info["lives"] == 0 and lives_seen == {0, 1, 2, 3, 4, 5}
    env.close()


@requires_ale
def test_rewards_are_clipped_to_their_sign():
    """Space Invaders pays 5 to 30 points per invader; the same seeded game clipped pays 1."""
    clipped = AtariEnv(env_id="ALE/SpaceInvaders-v5")
    raw = AtariEnv(env_id="ALE/SpaceInvaders-v5", clip_rewards=False)
    assert clipped.reward_space().high == 1.0 and raw.reward_space().high == np.inf
    clipped.reset(seed=5), raw.reset(seed=5)
    raw_rewards, clipped_rewards = [], []
    for _ in range(150):
        _, r_clip, term, trunc, _ = clipped.step(1)  # FIRE
        _, r_raw, *_ = raw.step(1)
        raw_rewards.append(r_raw)
        clipped_rewards.append(r_clip)
        if term or trunc:
            clipped.reset(), raw.reset()
    assert max(raw_rewards) > 1.0
    assert clipped_rewards == [float(np.sign(r)) for r in raw_rewards]
    clipped.close(), raw.close()


# --- through the env managers ---------------------------------------------------------------------------
@requires_ale
@pytest.mark.parametrize("manager", [SyncEnvManager, SubprocessEnvManager])
def test_random_rollout_through_the_env_managers(manager):
    rollout = random_rollout(manager(AtariEnv, env_cfg=[{"env_id": "ALE/Breakout-v5"}] * 2, n_envs=2), 300)
    assert rollout.obs.shape == (300, 2, 4, 84, 84) and rollout.obs.dtype == np.uint8
    assert rollout.episodes_ended >= 2  # lives are lost within 300 random steps
    assert set(rollout.reward.flat) <= {-1.0, 0.0, 1.0}


# --- the configs through the CLI ------------------------------------------------------------------------
def tiny_atari_run(config: str, root: Path, *extra: str) -> list[str]:
    """``fit`` on an Atari config cut to 2 updates on a tiny buffer, episodes cut to 200 frames."""
    return [
        "fit",
        "--config",
        str(CONFIGS / config),
        f"--trainer.default_root_dir={root}",
        "--trainer.max_steps=2",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        "--data.init_args.updates_per_step=1",
        "--data.init_args.n_envs=2",
        "--data.init_args.buffer_size=256",
        "--data.init_args.batch_size=8",
        "--data.init_args.learning_starts=32",
        "--data.init_args.train_freq=2",
        "--data.init_args.gradient_steps=1",
        "--evaluator.n_episodes=1",
        *extra,
    ]


@requires_ale
@pytest.mark.parametrize(
    ("config", "env_id"), [("pong_dqn.yaml", "ALE/Pong-v5"), ("breakout_dqn.yaml", "ALE/Breakout-v5")]
)
def test_config_trains_a_few_updates(tmp_path, config, env_id):
    env_kwargs = f"--data.init_args.env_kwargs={{env_id: {env_id}, max_episode_frames: 200}}"
    cli = RLCLI(args=tiny_atari_run(config, tmp_path, env_kwargs))
    assert cli.result["train_iter"] == 2 and cli.result["env_steps"] >= 32
    assert (
        cli.model.spec.obs_shape == (4, 84, 84)
        and cli.model.spec.n_actions == cli.datamodule.env_spec["n_actions"]
    )
    assert type(cli.model.net.encoder).__name__ == "NatureCNNEncoder"
    assert cli.datamodule.frames is not None  # frame stacks are stored once per frame
    assert cli.model.hparams.lr == 0.0001 and cli.datamodule.hparams.nstep == 3


@requires_ale
def test_breakout_checkpoint_validates_on_real_games(tmp_path):
    """The command breakout_dqn.yaml documents: evaluation envs play whole games with raw points."""
    env_kwargs = "--data.init_args.env_kwargs={env_id: ALE/Breakout-v5, max_episode_frames: 200}"
    fitted = RLCLI(args=tiny_atari_run("breakout_dqn.yaml", tmp_path, env_kwargs))
    cli = RLCLI(
        args=[
            "validate",
            "--config",
            str(CONFIGS / "breakout_dqn.yaml"),
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false",
            "--evaluator.n_episodes=1",
            "--data.init_args.eval_env_kwargs={is_train: false, noop_max: 0, max_episode_frames: 400}",
            f"--ckpt_path={fitted.result['ckpt_path']}",
        ]
    )
    assert cli.datamodule.make_env().cfg["episodic_life"]  # training envs: one life per episode
    env = cli.datamodule.make_eval_env()
    assert not env.cfg["episodic_life"] and not env.cfg["clip_rewards"]
    # one whole game, cut at 400 frames: 8 frames of FIRE and RIGHT at reset, then 98 agent steps of 4 frames
    assert cli.trainer.callback_metrics["eval/episode_len"] == 98


@requires_ale
@pytest.mark.parametrize(
    ("config", "env_id"),
    [
        ("pong_rainbow.yaml", "ALE/Pong-v5"),
        ("breakout_rainbow.yaml", "ALE/Breakout-v5"),
        ("pong_r2d2.yaml", "ALE/Pong-v5"),
        ("breakout_r2d2.yaml", "ALE/Breakout-v5"),
    ],
)
def test_rainbow_and_r2d2_configs_train_a_few_updates(tmp_path, config, env_id):
    recurrent = "r2d2" in config
    extra = [f"--data.init_args.env_kwargs={{env_id: {env_id}, max_episode_frames: 200, frame_stack: 1}}"]
    if recurrent:  # short sequences: the shipped 40 + 80 steps cost seconds per CPU update
        extra += ["--data.init_args.seq_len=6", "--data.init_args.burn_in=2", "--data.init_args.overlap=2"]
    else:
        extra[0] = extra[0].replace(", frame_stack: 1", "")
    cli = RLCLI(args=tiny_atari_run(config, tmp_path, *extra))
    assert cli.result["train_iter"] == 2
    assert type(cli.model.net.encoder).__name__ == "NatureCNNEncoder"
    assert cli.model.spec.obs_shape == ((1, 84, 84) if recurrent else (4, 84, 84))
    if recurrent:
        assert (
            type(cli.model).__name__ == "R2D2"
            and cli.datamodule.buffer.get(torch.arange(1))["obs"].shape[1] == 8
        )
    else:
        assert cli.model.hparams.noisy and cli.datamodule.frames is not None
