"""``lightning-rl`` / ``python -m lightning_rl``: LightningCLI for RL runs.

    lightning-rl fit --config configs/cartpole_dqn.yaml [--trainer.max_steps 20000 ...]
    lightning-rl validate --config configs/cartpole_dqn.yaml --ckpt_path runs/.../best.ckpt

Any policy (``RLPolicy`` subclass) and DataModule (``EnvDataModule`` subclass) can be selected by
``class_path``, including the user's own. The environment spec is linked from the DataModule to the
policy, so it is never written twice. After ``fit`` the run summary is written to
``<log_dir>/result.json`` (the dict :func:`lightning_rl.entry.serial_pipeline` returns).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger

from lightning_rl.callbacks import Evaluator, RLProgressBar
from lightning_rl.datamodules import EnvDataModule
from lightning_rl.loggers import RLWandbLogger
from lightning_rl.policies import RLPolicy
from lightning_rl.utils.checkpoint_io import AtomicCheckpointIO

TRAINER_DEFAULTS: dict[str, Any] = {
    "accelerator": "cpu",
    "devices": 1,
    "max_epochs": -1,  # the stream never ends an epoch; budgets are max_steps / data.max_env_steps
    "log_every_n_steps": 1,  # policies write metrics themselves, every `log_interval` updates
    "num_sanity_val_steps": 0,
    "enable_model_summary": False,
    "default_root_dir": "runs",
}


class RLCLI(LightningCLI):
    """LightningCLI with RL defaults, the env-spec link, an ``evaluator`` section and a run summary."""

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("trainer_defaults", TRAINER_DEFAULTS)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        self.result: dict[str, Any] | None = None
        super().__init__(
            RLPolicy, EnvDataModule, *args, subclass_mode_model=True, subclass_mode_data=True, **kwargs
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--num_threads", type=int, default=1, help="torch CPU threads (1: fastest for small nets)"
        )
        parser.add_lightning_class_args(Evaluator, "evaluator")
        parser.link_arguments(
            "data", "model.init_args.env_spec", compute_fn=_env_spec, apply_on="instantiate"
        )

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """Fill in RL defaults the config left open: CSV + offline wandb loggers, a checkpoint callback
        that keeps ``last.ckpt`` (for resume), the RL progress bar and crash-safe checkpoint writes."""
        config = self._subcommand_config(self.config_init)["trainer"]
        if config.get("logger") is None:  # not configured; `false` disables logging
            root = config.get("default_root_dir") or "runs"
            # flush every write: RL metrics arrive every `log_interval` updates, and a killed run keeps them
            csv_logger = CSVLogger(save_dir=root, name="csv", flush_logs_every_n_steps=1)
            config["logger"] = [csv_logger, RLWandbLogger(save_dir=root)]
        callbacks = list(config.get("callbacks") or [])
        if config.get("enable_checkpointing") is not False and not _has(callbacks, ModelCheckpoint):
            # The stream never ends an epoch: save last.ckpt (with the replay buffer) every N updates.
            callbacks.append(ModelCheckpoint(save_last=True, save_top_k=0, every_n_train_steps=2_000))
        if config.get("enable_progress_bar") is not False and not _has(callbacks, ProgressBar):
            callbacks.append(RLProgressBar())
        config["callbacks"] = callbacks
        if config.get("plugins") is None:
            config["plugins"] = [AtomicCheckpointIO()]
        return super().instantiate_trainer(**kwargs)

    def before_instantiate_classes(self) -> None:
        config = self._subcommand_config(self.config)
        if config.num_threads < 1:
            raise ValueError(f"num_threads must be >= 1, got {config.num_threads}")
        torch.set_num_threads(config.num_threads)

    def _subcommand_config(self, config: Any) -> Any:
        return config[self.subcommand] if self.subcommand else config

    def before_fit(self) -> None:
        self._fit_started = time.perf_counter()

    def after_fit(self) -> None:
        self.result = run_summary(self, time.perf_counter() - self._fit_started)
        log_dir = self.trainer.log_dir or self.trainer.default_root_dir  # a collective under DDP: all ranks
        if self.trainer.is_global_zero:
            path = os.path.join(log_dir, "result.json")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                json.dump(self.result, f, indent=2)
            print(f"result: {json.dumps(self.result)}\nwritten to {path}")


def _has(callbacks: list[pl.Callback], kind: type) -> bool:
    return any(isinstance(callback, kind) for callback in callbacks)


def _env_spec(datamodule: EnvDataModule) -> dict[str, Any]:
    return datamodule.env_spec


def run_summary(cli: LightningCLI, wall_time_s: float) -> dict[str, Any]:
    """What a finished ``fit`` reports (nerveX's serial_pipeline result)."""
    evaluator = next((cb for cb in cli.trainer.callbacks if isinstance(cb, Evaluator)), None)
    checkpoint = cli.trainer.checkpoint_callback
    ckpt_path = (evaluator and evaluator.best_model_path) or (checkpoint and checkpoint.last_model_path)
    return {
        "env_steps": int(cli.datamodule.env_steps),
        "train_iter": int(cli.model.train_iter),
        "eval_return_mean": evaluator.last_return if evaluator else None,
        "stop_value_reached": bool(evaluator and evaluator.stop_value_reached),
        "wall_time_s": round(wall_time_s, 2),
        "ckpt_path": ckpt_path or None,
    }


def main(args: list[str] | None = None) -> None:
    # Like `python -m`, let class_path name modules in the working directory (the user's own policies).
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    RLCLI(args=args)


if __name__ == "__main__":
    main()
