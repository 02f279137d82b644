"""Episode videos: an env's ``rgb_array`` frames of one deterministic episode, written as an mp4.

Rendering is switched on in an env built without it (the DataModule's eval env factories take the
game's own arguments, not ``render_mode``): gymnasium's envs read ``render_mode`` when ``render()`` is
called, so setting it on the unwrapped env is enough for classic control, ALE and MuJoCo (MuJoCo off-screen
needs an OpenGL backend: ``MUJOCO_GL=egl`` with a GPU, ``osmesa`` without one).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

__all__ = ["EpisodeVideo", "Mp4Writer", "enable_rgb_frames", "record_episode"]


@dataclass(frozen=True)
class EpisodeVideo:
    """One recorded episode: where its mp4 is and what it scored."""

    path: Path
    n_frames: int  # the first observation's frame, then one per step
    episode_return: float
    fps: float


def enable_rgb_frames(env: gym.Env) -> gym.Env:
    """``env`` with ``render()`` returning ``(H, W, 3)`` uint8 frames; a ``ValueError`` naming the env's
    render modes when it has no ``rgb_array`` mode."""
    base = env.unwrapped
    modes = list(base.metadata.get("render_modes", []))
    if "rgb_array" not in modes:
        raise ValueError(f"{type(base).__name__} renders no rgb_array frames (its render_modes: {modes})")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame's envs: frames off-screen, no display
    base.render_mode = "rgb_array"
    return env


def record_episode(
    act: Callable[[torch.Tensor], torch.Tensor], env: gym.Env, seed: int, max_frames: int, path: str | Path
) -> EpisodeVideo:
    """One episode of ``act`` (obs ``(1, *obs_shape)`` -> actions ``(1, ...)``) on ``env`` (rendering, see
    :func:`enable_rgb_frames`), reset with ``seed``, written to the mp4 ``path`` frame by frame (a MuJoCo
    episode's frames would take most of a gigabyte held together); at most ``max_frames`` frames."""
    fps = float(env.metadata.get("render_fps") or 30)  # the outermost env's: a wrapper may set its own
    obs, _ = env.reset(seed=seed)
    episode_return, done, n_frames = 0.0, False, 1
    with Mp4Writer(path, fps) as video:
        video.add(_frame(env))
        while not done and n_frames < max_frames:
            with torch.no_grad():
                action = act(torch.as_tensor(obs).unsqueeze(0))[0].cpu().numpy()
            obs, reward, terminated, truncated, _ = env.step(action.item() if action.ndim == 0 else action)
            episode_return += float(reward)
            done = terminated or truncated
            video.add(_frame(env))
            n_frames += 1
    return EpisodeVideo(Path(path), n_frames, episode_return, fps)


def _frame(env: gym.Env) -> np.ndarray:
    frame = env.render()
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"{env.unwrapped}: render() returned no (H, W, 3) frame, got {type(frame).__name__}")
    return frame.astype(np.uint8, copy=False)


class Mp4Writer:
    """Frames ``(H, W, 3)`` uint8 to an H.264 mp4 through imageio-ffmpeg's bundled ffmpeg; the first frame
    fixes the size. Frames are padded by edge pixels to even sides (yuv420p, what browsers and wandb play,
    needs them), never resized."""

    def __init__(self, path: str | Path, fps: float):
        self.path, self.fps = Path(path), fps
        self._writer: Any = None

    def __enter__(self) -> Mp4Writer:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self

    def add(self, frame: np.ndarray) -> None:
        frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), mode="edge")
        if self._writer is None:
            import imageio_ffmpeg

            height, width = frame.shape[:2]
            self._writer = imageio_ffmpeg.write_frames(
                str(self.path), (width, height), fps=self.fps, pix_fmt_out="yuv420p", macro_block_size=1
            )
            self._writer.send(None)  # starts ffmpeg
        self._writer.send(np.ascontiguousarray(frame))

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
        if exc_type is not None:  # no half-written video left behind
            self.path.unlink(missing_ok=True)
