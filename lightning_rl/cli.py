"""``lightning-rl`` / ``python -m lightning_rl``: LightningCLI for RL runs.

    lightning-rl fit --config configs/cartpole_dqn.yaml [--trainer.max_steps 20000 ...]
    lightning-rl validate --config configs/cartpole_dqn.yaml --ckpt_path runs/.../best.ckpt
    lightning-rl collect --config configs/cartpole_dqn.yaml --ckpt_path runs/.../best.ckpt \
        --n_steps 24000 --epsilon '[0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0]' --out datasets/cartpole

Any policy (``RLPolicy`` subclass) and DataModule (``EnvDataModule`` subclass) can be selected by
``class_path``, including the user's own. The environment spec is linked from the DataModule to the
policy, so it is never written twice. After ``fit`` the run summary is written to
``<log_dir>/result.json`` (the dict :func:`lightning_rl.entry.serial_pipeline` returns).

``collect`` rolls out the checkpoint's policy on the config's env and writes an offline dataset
(:func:`lightning_rl.collect.collect_dataset`); train on it with ``configs/cartpole_dqn_offline.yaml``.
It is a method of :class:`RLTrainer` because LightningCLI's subcommands are Trainer methods.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.loggers import CSVLogger

from lightning_rl.callbacks import DataMetrics, Evaluator, RLProgressBar
from lightning_rl.checkpoint_io import AtomicCheckpointIO
from lightning_rl.collect import collect_dataset
from lightning_rl.config_errors import RLArgumentParser, instantiation_error
from lightning_rl.data.offline import TransitionDataset
from lightning_rl.datamodules import EnvDataModule
from lightning_rl.errors import ReportedError
from lightning_rl.loggers import RLWandbLogger
from lightning_rl.policies import RLPolicy
from lightning_rl.quiet import quiet_libraries
from lightning_rl.resume import merge_checkpoint_hparams
from lightning_rl.run_dir import claim_version
from lightning_rl.utils.checks import ConfigError
from lightning_rl.utils.integrity import load_torch_file

TRAINER_DEFAULTS: dict[str, Any] = {
    "accelerator": "cpu",
    "devices": 1,
    "max_epochs": -1,  # the stream never ends an epoch; budgets are max_steps / data.max_env_steps
    "log_every_n_steps": 1,  # policies write metrics themselves, every `log_interval` updates
    "num_sanity_val_steps": 0,
    "enable_model_summary": False,
    "default_root_dir": "runs",
}

DEBUG_ENV = "LIGHTNING_RL_DEBUG"  # set to 1: a reported error shows its traceback too

# Knobs that moved (one home each): a config naming the old place gets one line naming the new one.
MOVED_KNOBS = {
    "model.updates_per_step": "data.init_args.updates_per_step",
    "data.gamma": "model.init_args.gamma (the discount is the policy's)",
    "data.gae_lambda": "model.init_args.gae_lambda",
    "model.lambda_": "model.init_args.gae_lambda (V-trace's lambda)",
    "data.eval_episodes": "evaluator.n_episodes",
    "data.eval_seed": "evaluator.seed",
}


class RLTrainer(pl.Trainer):
    """``pl.Trainer`` plus :meth:`collect`, the method behind ``lightning-rl collect``."""

    def collect(
        self,
        model: RLPolicy,
        datamodule: EnvDataModule,
        out: str,
        n_steps: int,
        epsilon: float | list[float] = 0.0,
        nstep: int = 1,
        n_envs: int | None = None,
        seed: int | None = None,
        overwrite: bool = False,
        ckpt_path: str | None = None,
    ) -> TransitionDataset:
        """Roll out a policy on the DataModule's env and write an offline transition dataset.

        Args:
            model: the policy; its weights come from ``ckpt_path``.
            datamodule: provides the env.
            out: dataset directory to create.
            n_steps: transitions to write.
            epsilon: probability of a uniformly random action per step (discrete actions), for coverage:
                one for all envs, or a list with one per env (``n_envs`` values) for data of mixed
                quality, e.g. ``[0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0]``, which offline DQN needs.
            nstep: length of the stored n-step returns (1: no behavior-policy bias in multi-step targets).
            n_envs: envs stepped together (``None``: ``data.n_envs``).
            seed: seed of env resets and random actions (``None``: ``data.seed``).
            overwrite: replace an existing ``out``.
            ckpt_path: checkpoint of the policy (``None``: the freshly initialized policy, e.g. for
                uniformly random data with ``--epsilon 1``).
        """
        if ckpt_path is not None:
            checkpoint = load_torch_file(ckpt_path)  # verified: a damaged file is one line
            model.load_state_dict(checkpoint["state_dict"])
            model.on_load_checkpoint(checkpoint)
        return collect_dataset(
            model.to(self.strategy.root_device),
            datamodule,
            n_steps=n_steps,
            out=out,
            epsilon=epsilon,
            nstep=nstep,
            n_envs=datamodule.n_envs if n_envs is None else n_envs,
            seed=datamodule.seed if seed is None else seed,
            source_ckpt=ckpt_path,
            overwrite=overwrite,
        )


class RLCLI(LightningCLI):
    """LightningCLI with RL defaults, the env-spec link, an ``evaluator`` section, a run summary and the
    ``collect`` subcommand."""

    def __init__(self, *args: Any, **kwargs: Any):
        quiet_libraries()
        kwargs.setdefault("trainer_defaults", TRAINER_DEFAULTS)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("trainer_class", RLTrainer)
        kwargs.setdefault("parser_class", RLArgumentParser)
        # policies build their own optimizers (per network, with their schedules): LightningCLI's
        # top-level optimizer / lr_scheduler keys would silently replace them, so they are unknown keys
        kwargs.setdefault("auto_configure_optimizers", False)
        self.result: dict[str, Any] | None = None
        self._args = kwargs.get("args")  # parsed again without defaults by _parse_ckpt_path
        super().__init__(
            RLPolicy, EnvDataModule, *args, subclass_mode_model=True, subclass_mode_data=True, **kwargs
        )

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        return {**LightningCLI.subcommands(), "collect": {"model", "datamodule"}}

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--num_threads", type=int, default=1, help="torch CPU threads (1: fastest for small nets)"
        )
        parser.add_lightning_class_args(Evaluator, "evaluator")
        parser.link_arguments(
            "data", "model.init_args.env_spec", compute_fn=_env_spec, apply_on="instantiate"
        )

    def _parse_ckpt_path(self) -> None:
        """With ``--ckpt_path``: verify the checkpoint (a damaged one is one line, before any run
        directory exists), then fill in its model hyperparameters where the user set none; an explicit
        value wins and is reported (:func:`lightning_rl.resume.merge_checkpoint_hparams`)."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path:
            return
        checkpoint = load_torch_file(ckpt_path)
        args = sys.argv[1:] if self._args is None else self._args
        if isinstance(args, list):
            explicit = self.parser.parse_args(args, defaults=False)
        else:
            explicit = self.parser.parse_object(args, defaults=False)
        self.config = merge_checkpoint_hparams(
            self.parser, self.config, explicit, subcommand, ckpt_path, checkpoint
        )

    def instantiate_trainer(self, **kwargs: Any) -> pl.Trainer:
        """Fill in RL defaults the config left open: CSV + offline wandb loggers, a checkpoint callback
        that keeps ``last.ckpt`` (for resume), the RL progress bar and crash-safe checkpoint writes."""
        if self.subcommand == "collect":  # no training: nothing to log, checkpoint or show progress of
            kwargs = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False, **kwargs}
            return super().instantiate_trainer(**kwargs)
        config = self._subcommand_config(self.config_init)["trainer"]
        if config.get("logger") is None:  # not configured; `false` disables logging
            root = config.get("default_root_dir") or "runs"
            # flush every write: RL metrics arrive every `log_interval` updates, and a killed run keeps them
            # a version directory of its own, claimed atomically: concurrent runs never share one
            version = claim_version(Path(root) / "csv")
            csv_logger = CSVLogger(save_dir=root, name="csv", version=version, flush_logs_every_n_steps=1)
            x_axis = self.datamodule.x_axis  # env_steps, or train_iter for offline data
            config["logger"] = [csv_logger, RLWandbLogger(save_dir=root, step_metric=x_axis)]
        callbacks = list(config.get("callbacks") or [])
        if config.get("enable_checkpointing") is not False and not _has(callbacks, ModelCheckpoint):
            # The stream never ends an epoch: save last.ckpt (with the replay buffer) every N updates.
            callbacks.append(ModelCheckpoint(save_last=True, save_top_k=0, every_n_train_steps=2_000))
        if config.get("enable_progress_bar") is not False and not _has(callbacks, ProgressBar):
            callbacks.append(RLProgressBar())
        if config.get("logger") is not False and not _has(callbacks, DataMetrics):
            callbacks.append(DataMetrics())
        config["callbacks"] = callbacks
        if config.get("plugins") is None:
            config["plugins"] = [AtomicCheckpointIO()]
        return super().instantiate_trainer(**kwargs)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        reject_moved_knobs(sys.argv[1:] if args is None else args)
        super().parse_arguments(parser, args)

    def instantiate_classes(self) -> None:
        """As LightningCLI's, and a policy/DataModule pair that do not fit fails before the Trainer (and
        its run directory) exists. A class's own argument check (a ``ValueError``, which jsonargparse
        wraps in its own) comes out as one :class:`ConfigError` line naming the field under its section."""
        try:
            self.config_init = self.parser.instantiate_classes(self.config)
            self.datamodule = self._get(self.config_init, "data")
            self.model = self._get(self.config_init, "model")
            self.model.check_data_source(self.datamodule)
            self.datamodule.check_policy(self.model)
            self._add_configure_optimizers_method_to_model(self.subcommand)
            self.trainer = self.instantiate_trainer()
        except ValueError as err:
            if isinstance(err, ReportedError) and not isinstance(err, ConfigError):
                raise  # another kind of reported failure (a damaged file...): as it is
            sections = {
                "model.init_args.": RLPolicy,
                "data.init_args.": EnvDataModule,
                "evaluator.": Evaluator,
            }
            raise instantiation_error(err, sections) from err

    def before_instantiate_classes(self) -> None:
        config = self._subcommand_config(self.config)
        if config.num_threads < 1:
            raise ConfigError(f"num_threads must be >= 1, got {config.num_threads}")
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

    def collect(self, **kwargs: Any) -> None:
        """Runs ``trainer.collect`` (LightningCLI calls this in its place) and reports the dataset."""
        dataset = self.trainer.collect(**kwargs)
        meta = dataset.metadata
        self.result = {
            "dataset_dir": str(dataset.path.resolve()),
            "size": len(dataset),
            "env_steps": meta["env_steps"],
            "episodes": meta["episodes"],
            "return_mean": meta["return_mean"],
            "collect_time_s": meta["collect_time_s"],
        }
        print(f"collected: {json.dumps(self.result)}")


def reject_moved_knobs(args: Any) -> None:
    """Exit with status 2 and one line if a ``--config`` or a ``--section.field`` override names a knob
    of :data:`MOVED_KNOBS` at its old place (LightningCLI would print its whole usage instead)."""
    if not isinstance(args, list):  # a dict or Namespace from a script: checked by the parser itself
        return
    named: list[str] = []
    for i, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        flag, _, value = arg[2:].partition("=")
        value = value or (args[i + 1] if i + 1 < len(args) else "")
        if flag == "config":
            named += _dotted_keys(_load_config(value))
        elif flag in ("model", "data"):  # a whole section from a file, e.g. --data hopper_env.yaml
            named += _dotted_keys(_load_config(value), prefix=f"{flag}.")
        else:
            named.append(flag)
    for key in named:
        old = key.replace(".init_args.", ".")
        if old in MOVED_KNOBS:
            print(f"error: {key} has moved: set {MOVED_KNOBS[old]}", file=sys.stderr)
            sys.exit(2)


def _load_config(value: str) -> Any:
    try:
        text = Path(value).read_text() if os.path.isfile(value) else value
        return yaml.safe_load(text)
    except (OSError, yaml.YAMLError):
        return None  # the parser reports a bad config itself


def _dotted_keys(config: Any, prefix: str = "") -> list[str]:
    if not isinstance(config, dict):
        return []
    keys = []
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        keys += [dotted, *_dotted_keys(value, dotted + ".")]
    return keys


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
        "eval_error": evaluator.last_error if evaluator else None,  # the last evaluation failed: why
        "stop_value_reached": bool(evaluator and evaluator.stop_value_reached),
        "wall_time_s": round(wall_time_s, 2),
        "ckpt_path": ckpt_path or None,
    }


def main(args: list[str] | None = None) -> None:
    """``lightning-rl``: a :class:`ReportedError` is one ``error:`` line and its exit status; with
    ``LIGHTNING_RL_DEBUG=1`` in the environment its traceback is printed above the line."""
    # Like `python -m`, let class_path name modules in the working directory (the user's own policies).
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    argv = sys.argv[1:] if args is None else args
    try:
        if argv[:1] == ["plot"]:  # learning curves from CSV logs: no LightningCLI subcommand
            from lightning_rl.plot import main as plot

            return plot(argv[1:])
        if argv[:1] == ["export"]:  # a checkpoint's acting part as TorchScript / ONNX
            from lightning_rl.export import main as export

            return export(argv[1:])
        if argv[:1] == ["tune"]:  # a hyperparameter search: many fits, no LightningCLI subcommand
            from lightning_rl.tune import main as tune

            return tune(argv[1:])
        RLCLI(args=args)
    except ReportedError as err:  # bad input, a damaged file, a diverged run: one line, no traceback
        if os.environ.get(DEBUG_ENV, "0") not in ("", "0"):
            traceback.print_exc()
        # a field's error raised once fit runs (e.g. a callback meeting the wrong env) names its field too
        print(f"error: {err.line() if isinstance(err, ConfigError) else err}", file=sys.stderr)
        sys.exit(err.exit_code)
    finally:
        # Lightning leaves the process group up after fit; torch's gloo threads torn down at interpreter
        # exit then abort the process now and then ("terminate called without an active exception").
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
