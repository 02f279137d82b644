"""Eval videos (``evaluator.video_interval``): mp4 files whose frames decode, in the run directory and in
the wandb offline run; Atari and MuJoCo frames; an env without frames is a config error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from cli_utils import REPO, short_run_args

from app_zoo.atari.envs import AtariEnv
from lightning_rl.cli import RLCLI, main
from lightning_rl.datamodules import OffPolicyDataModule
from lightning_rl.envs import Mp4Writer
from lightning_rl.envs.video import enable_rgb_frames


def decoded_frames(path: Path) -> tuple[dict, list[np.ndarray]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    width, height = meta["size"]
    return meta, [np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader]


class FirstAction(torch.nn.Module):
    """Always action 0 (a policy for envs where any action will do)."""

    def act(self, obs: torch.Tensor, mode: str = "eval", **_) -> torch.Tensor:
        return torch.zeros(len(obs), dtype=torch.long)


def test_a_cartpole_run_with_videos_writes_mp4s_that_decode_and_the_wandb_run_has_them(tmp_path, monkeypatch):
    import wandb

    wandb.finish()  # Lightning's WandbLogger reuses a live run; earlier tests may have left a disabled one
    monkeypatch.delenv("WANDB_MODE", raising=False)  # the default: offline
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cli = RLCLI(args=short_run_args(tmp_path, "--evaluator.video_interval=1", "--evaluator.stop_value=null"))
    evaluator = next(cb for cb in cli.trainer.callbacks if type(cb).__name__ == "Evaluator")
    videos = sorted(Path(cli.trainer.log_dir, "videos").glob("eval_*.mp4"))
    assert len(videos) == evaluator.n_evaluations >= 2  # every evaluation, the last one included
    assert evaluator.last_video == str(
        Path(cli.trainer.log_dir, "videos", f"eval_{cli.datamodule.env_steps}.mp4")
    )
    meta, frames = decoded_frames(videos[-1])
    assert meta["size"] == (600, 400) and meta["fps"] == 50  # CartPole's frames, its render_fps
    assert len(frames) >= 9 and all(
        f.shape == (400, 600, 3) for f in frames
    )  # the reset frame, then each step
    assert frames[0].std() > 0 and not np.array_equal(frames[0], frames[-1])  # a cart that moved
    offline = list(tmp_path.glob("wandb/offline-run-*/files/media/videos/eval/*.mp4"))
    assert len(offline) == len(videos)
    wandb.finish()


def test_an_env_that_renders_no_frames_is_a_config_error(tmp_path, capsys):
    ppo = str(REPO / "configs" / "connect_four_selfplay.yaml")
    args = [*short_run_args(tmp_path, "--evaluator.video_interval=1", "--trainer.logger=false", config=ppo)]
    args = [a for a in args if "learning_starts" not in a]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: evaluator.video_interval: TwoPlayerEnv renders no rgb_array frames"), (
        err
    )


def test_atari_episodes_are_recorded_from_the_game_screen(tmp_path):
    dm = OffPolicyDataModule(
        env_id=None,
        env_fn=AtariEnv,
        env_kwargs={"env_id": "ALE/Pong-v5"},
        eval_env_kwargs={"is_train": False},
        n_envs=1,
    )
    video = dm.record_episode(FirstAction(), seed=0, max_frames=30, path=str(tmp_path / "pong.mp4"))
    assert video.n_frames == 30 and video.fps == 15  # cut at max_frames; 60 Hz / frame_skip 4: real time
    meta, frames = decoded_frames(video.path)
    assert meta["size"] == (160, 210) and len(frames) == 30  # the RGB screen, not the 84x84 observation


MUJOCO_VIDEO = """
import sys, torch
from lightning_rl.datamodules import OffPolicyDataModule
class Still(torch.nn.Module):
    def act(self, obs, mode="eval", **_):
        return torch.zeros(len(obs), 3)
dm = OffPolicyDataModule(env_id="Hopper-v5", n_envs=1)
video = dm.record_episode(Still(), seed=0, max_frames=12, path=sys.argv[1])
print(video.n_frames, video.fps)
"""


def test_mujoco_episodes_are_recorded_off_screen(tmp_path):
    pytest.importorskip("mujoco", reason="pip install 'lightning-rl[mujoco]'")
    path = tmp_path / "hopper.mp4"
    # its own process: MUJOCO_GL picks the OpenGL platform once per process
    done = subprocess.run(
        [sys.executable, "-c", MUJOCO_VIDEO, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # MuJoCo's MUJOCO_LOG.TXT lands there, not in the repo
        env={**__import__("os").environ, "MUJOCO_GL": "osmesa"},
    )
    if done.returncode != 0 and "OSMesa" in done.stderr:
        pytest.skip(f"no OSMesa library for off-screen MuJoCo rendering: {done.stderr.splitlines()[-1]}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["12", "125.0"]  # Hopper's render_fps
    meta, frames = decoded_frames(path)
    assert meta["size"] == (480, 480) and len(frames) == 12 and frames[0].std() > 0


def test_odd_sized_frames_are_padded_to_even_sides_and_a_failed_recording_leaves_no_file(tmp_path):
    with Mp4Writer(tmp_path / "odd.mp4", fps=10) as writer:
        for value in (0, 255):
            writer.add(np.full((5, 7, 3), value, np.uint8))
    meta, frames = decoded_frames(tmp_path / "odd.mp4")
    assert meta["size"] == (8, 6) and len(frames) == 2
    with pytest.raises(RuntimeError), Mp4Writer(tmp_path / "broken.mp4", fps=10) as writer:
        writer.add(np.zeros((4, 4, 3), np.uint8))
        raise RuntimeError("the env died")
    assert not (tmp_path / "broken.mp4").exists()


def test_rendering_is_switched_on_in_an_env_built_without_it():
    import gymnasium as gym

    env = enable_rgb_frames(gym.make("CartPole-v1"))
    env.reset(seed=0)
    assert env.render().shape == (400, 600, 3)
