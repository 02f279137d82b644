"""Periodic deterministic evaluation, best-checkpoint saving and the stop-value rule (nerveX's evaluator)."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.trainer.states import TrainerFn

from lightning_rl.envs import EnvManagerError, EpisodeStats
from lightning_rl.loggers import log_to_loggers
from lightning_rl.utils.checks import ConfigError, check_at_least, check_positive

log = logging.getLogger(__name__)


class Evaluator(pl.Callback):
    """Evaluate the policy every ``eval_interval`` gradient updates on the DataModule's eval envs.

    Logs ``eval/return_mean``, ``eval/return_std`` and ``eval/episode_len`` (with ``env_steps``), saves
    ``<log_dir>/checkpoints/best.ckpt`` whenever the mean return improves and stops training once it
    reaches ``stop_value``. Under DDP, rank 0 runs the episodes and broadcasts the result, so every rank
    takes the same save/stop decision (and joins the same collectives). Training also gets a final
    evaluation when it ends for another reason (step or env-step budget). ``validate`` runs one
    evaluation with the same knobs and reports it as the validation metrics.

    The eval envs have the training envs' fault budget (``data.env_manager``). When an evaluation during
    ``fit`` hits a broken eval env, that evaluation fails alone: a warning line, :attr:`last_error` set
    and :attr:`last_return` ``None`` (the run summary's ``eval_error`` and ``eval_return_mean``), no
    ``best.ckpt`` update and no stop; training goes on and the next evaluation starts on new envs. So a
    finished training run keeps its checkpoints and ``result.json``. Under ``validate`` a broken eval env
    is the command's failure (one ``error:`` line, exit code 1).

    With ``video_interval``, every ``video_interval``-th evaluation (and the last one) also records one
    deterministic episode from the eval env's ``rgb_array`` frames: ``<log_dir>/videos/eval_<env
    steps>.mp4``, logged to wandb as ``eval/video`` (offline runs keep it in their media files). An env
    that renders no frames fails when fit starts (a config error); a recording that fails mid-run (no
    OpenGL backend for MuJoCo: set ``MUJOCO_GL=egl`` or ``osmesa``) is a warning line, and training goes
    on.

    Every evaluation knob lives here; the DataModule builds the eval envs (``data.eval_env_kwargs``).

    Args:
        eval_interval: gradient updates between evaluations.
        n_episodes: episodes per evaluation.
        seed: reset seed of the evaluation envs; the same seed every time makes evaluations comparable.
        stop_value: stop when ``eval/return_mean >= stop_value`` (``None``: never).
        save_best: save the best checkpoint.
        video_interval: record an episode every this many evaluations (``None``: no videos).
        video_max_frames: a recorded episode stops after this many frames (one per env step).
    """

    def __init__(
        self,
        eval_interval: int = 1_000,
        n_episodes: int = 20,
        seed: int = 10_000,
        stop_value: float | None = None,
        save_best: bool = True,
        video_interval: int | None = None,
        video_max_frames: int = 1_000,
    ):
        check_positive(
            eval_interval=eval_interval,
            n_episodes=n_episodes,
            video_interval=video_interval,
            video_max_frames=video_max_frames,
        )
        check_at_least("seed", seed, 0)
        self.eval_interval = eval_interval
        self.n_episodes = n_episodes
        self.seed = seed
        self.stop_value = stop_value
        self.save_best = save_best
        self.video_interval, self.video_max_frames = video_interval, video_max_frames
        self.n_evaluations = 0
        self.last_video: str | None = None
        self.best_return = -math.inf
        self.last_return: float | None = None
        self.last_error: str | None = None  # why the last evaluation failed (None: it did not)
        self.best_model_path: str | None = None
        self.stop_value_reached = False
        self._last_eval_iter = 0

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.video_interval is not None:
            try:  # a config that cannot record fails now, not at the first video (on every rank alike)
                trainer.datamodule.make_render_env().close()
            except ValueError as err:
                raise ConfigError(
                    f"evaluator.video_interval: {err}", "evaluator.video_interval", str(err)
                ) from None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if pl_module.train_iter - self._last_eval_iter >= self.eval_interval:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if pl_module.train_iter != self._last_eval_iter:
            self.evaluate(trainer, pl_module, last=True)
        elif self.video_interval is not None and self.n_evaluations % self.video_interval:
            self._record_video(trainer, pl_module)  # the last evaluation's policy, filmed too

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule, last: bool = False) -> None:
        pl_module.check_finite()  # never evaluate, or save as best, weights of a non-finite update
        self._last_eval_iter = pl_module.train_iter
        self.n_evaluations += 1
        metrics: dict[str, Any] | None = None
        if trainer.is_global_zero:
            try:
                metrics = self._run_episodes(trainer, pl_module).as_metrics()
            except EnvManagerError as err:  # a broken eval env must not cost the training run
                metrics = {"error": str(err)}
                log.warning("evaluation at train_iter %d failed: %s", pl_module.train_iter, err)
        metrics = trainer.strategy.broadcast(metrics, src=0)  # every rank takes the same decisions
        self.last_error = metrics.get("error")
        if self.last_error is not None:
            self.last_return = None
            return
        if self.video_interval is not None and (last or self.n_evaluations % self.video_interval == 0):
            self._record_video(trainer, pl_module)
        return_mean = metrics["eval/return_mean"]
        self.last_return = return_mean
        log_to_loggers(trainer, metrics, env_steps=pl_module.env_steps, train_iter=pl_module.train_iter)
        if return_mean > self.best_return:
            self.best_return = return_mean
            if self.save_best:
                self.best_model_path = os.path.join(_checkpoint_dir(trainer), "best.ckpt")
                with trainer.datamodule.without_replay():  # resume comes from last.ckpt
                    trainer.save_checkpoint(self.best_model_path, weights_only=False)
        if self.stop_value is not None and return_mean >= self.stop_value:
            self.stop_value_reached = True
            trainer.should_stop = True

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.VALIDATING:  # the `validate` subcommand
            stats = self._run_episodes(trainer, pl_module)
            pl_module.log_dict(stats.as_metrics(), batch_size=len(stats.returns))

    def _record_video(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """One episode to ``<log_dir>/videos`` and the loggers that take videos (rank 0 records; every rank
        calls this, as ``trainer.log_dir`` is a collective under DDP)."""
        folder = os.path.join(trainer.log_dir or trainer.default_root_dir, "videos")
        if not trainer.is_global_zero:
            return
        path = os.path.join(folder, f"eval_{pl_module.env_steps}.mp4")
        try:
            video = trainer.datamodule.record_episode(pl_module, self.seed, self.video_max_frames, path)
        except Exception as err:  # a video is never worth the training run
            log.warning("recording a video at train_iter %d failed: %s", pl_module.train_iter, err)
            return
        self.last_video = str(video.path)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                caption = f"env steps {pl_module.env_steps}, return {video.episode_return:g}"
                logger.log_video("eval/video", [self.last_video], step=trainer.global_step, caption=[caption])

    def _run_episodes(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> EpisodeStats:
        return trainer.datamodule.evaluate(pl_module, self.n_episodes, self.seed)

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_return": self.best_return,
            "last_return": self.last_return,
            "last_error": self.last_error,
            "best_model_path": self.best_model_path,
            "stop_value_reached": self.stop_value_reached,
            "last_eval_iter": self._last_eval_iter,
            "n_evaluations": self.n_evaluations,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_return = state_dict["best_return"]
        self.last_return = state_dict["last_return"]
        self.last_error = state_dict.get("last_error")  # absent in checkpoints of older versions
        self.best_model_path = state_dict["best_model_path"]
        self.stop_value_reached = state_dict["stop_value_reached"]
        self._last_eval_iter = state_dict["last_eval_iter"]
        self.n_evaluations = state_dict.get("n_evaluations", 0)  # absent in checkpoints of older versions


def _checkpoint_dir(trainer: pl.Trainer) -> str:
    """Beside Lightning's own checkpoints: ``<log_dir>/checkpoints``."""
    checkpoint_callback = trainer.checkpoint_callback
    if checkpoint_callback is not None and getattr(checkpoint_callback, "dirpath", None):
        return checkpoint_callback.dirpath
    return os.path.join(trainer.log_dir or trainer.default_root_dir, "checkpoints")
