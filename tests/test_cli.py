"""The CLI driven in-process through ``args=``: fit, overrides, validate, result.json, loggers, errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from cli_utils import CONFIG, REPO, short_run_args

from lightning_rl.checkpoint_io import AtomicCheckpointIO
from lightning_rl.cli import RLCLI, main
from lightning_rl.datamodules import OffPolicyDataModule
from lightning_rl.entry import serial_pipeline
from lightning_rl.loggers import RLWandbLogger
from lightning_rl.policies import DQN


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One short fit shared by the tests that inspect its outputs."""
    root = tmp_path_factory.mktemp("run")
    cli = RLCLI(args=short_run_args(root))
    return root, cli


def test_fit_trains_and_writes_the_run_summary(finished_run):
    root, cli = finished_run
    assert isinstance(cli.model, DQN) and isinstance(cli.datamodule, OffPolicyDataModule)
    assert cli.model.train_iter == 120 and cli.trainer.global_step == 120
    result = cli.result
    assert set(result) == {
        "env_steps",
        "train_iter",
        "eval_return_mean",
        "eval_error",
        "stop_value_reached",
        "wall_time_s",
        "ckpt_path",
    }
    assert result["train_iter"] == 120 and result["env_steps"] == cli.datamodule.env_steps > 200
    assert result["stop_value_reached"] is False and result["eval_return_mean"] > 0
    assert result["eval_error"] is None
    written = json.loads((Path(cli.trainer.log_dir) / "result.json").read_text())
    assert written == result
    assert Path(result["ckpt_path"]).name == "best.ckpt" and Path(result["ckpt_path"]).exists()
    assert (Path(result["ckpt_path"]).parent / "last.ckpt").exists()


def test_checkpoints_are_written_atomically(finished_run):
    _, cli = finished_run
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    leftovers = [p for p in Path(cli.trainer.log_dir).rglob("*.tmp")]
    assert not leftovers


def test_env_spec_is_linked_from_data_to_model(finished_run):
    _, cli = finished_run
    assert cli.model.hparams.env_spec == cli.datamodule.env_spec
    assert cli.model.spec.n_actions == 2


def test_metrics_csv_has_env_steps_on_every_row(finished_run):
    _, cli = finished_run
    with open(Path(cli.trainer.log_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(row["env_steps"] for row in rows)
    eval_iters = [float(row["train_iter"]) for row in rows if row["eval/return_mean"]]
    # every >= 50 updates (4 updates per training_step: at 52, 104), plus a final one at the end (120)
    assert eval_iters == [52.0, 104.0, 120.0]
    assert any(row["train/loss"] for row in rows)


def test_wandb_runs_offline_without_an_account(tmp_path, monkeypatch):
    import wandb

    wandb.finish()  # Lightning's WandbLogger reuses a live run; earlier tests may have left a disabled one
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cli = RLCLI(args=short_run_args(tmp_path, max_steps=8))
    loggers = {type(logger).__name__: logger for logger in cli.trainer.loggers}
    assert set(loggers) == {"CSVLogger", "RLWandbLogger"}
    assert loggers["RLWandbLogger"].experiment.settings.mode == "offline"
    assert loggers["RLWandbLogger"].step_metric == "env_steps"  # the x-axis of online RL curves
    assert list((tmp_path / "wandb").glob("offline-run-*")), "no offline wandb run directory was written"
    wandb.finish()
    with pytest.raises(ValueError, match=r"mode must be one of \['online', 'offline', 'disabled'\]"):
        RLWandbLogger(mode="cloud")
    with pytest.raises(ValueError, match=r"step_metric must be one of \['env_steps', 'train_iter'\]"):
        RLWandbLogger(step_metric="global_step")


def test_validate_evaluates_a_saved_checkpoint(finished_run, tmp_path):
    _, trained = finished_run
    cli = RLCLI(
        args=[
            "validate",
            "--config",
            CONFIG,
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false",
            "--evaluator.n_episodes=3",
            f"--ckpt_path={trained.result['ckpt_path']}",
        ]
    )
    metrics = cli.trainer.callback_metrics
    assert {"eval/return_mean", "eval/return_std", "eval/episode_len"} <= set(metrics)
    # the restored network is the trained one, not a fresh initialization
    restored = cli.model.net.state_dict()
    saved = torch.load(trained.result["ckpt_path"], weights_only=True)["state_dict"]
    assert all(torch.equal(restored[k], saved[f"net.{k}"]) for k in restored)


def test_any_field_can_be_overridden_on_the_command_line(tmp_path):
    cli = RLCLI(
        args=[
            "--config",
            CONFIG,
            "--model.init_args.lr=0.0005",
            "--model.init_args.dueling=true",
            "--data.init_args.nstep=3",
            "--evaluator.stop_value=300",
            f"--trainer.default_root_dir={tmp_path}",
        ],
        run=False,
    )
    assert cli.model.hparams.lr == 0.0005 and cli.model.hparams.dueling
    assert cli.datamodule.hparams.nstep == 3
    assert next(cb for cb in cli.trainer.callbacks if type(cb).__name__ == "Evaluator").stop_value == 300


def test_print_config_shows_the_resolved_config(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", CONFIG, "--print_config"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "class_path: lightning_rl.policies.DQN" in printed
    assert "class_path: lightning_rl.datamodules.OffPolicyDataModule" in printed
    assert "stop_value: 475" in printed


def test_unknown_config_key_is_rejected_before_training(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", CONFIG, "--model.init_args.learning_rate=0.1"])
    assert exit_info.value.code != 0
    assert "learning_rate" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--data.init_args.env_id=CartPol-v1", "env_id: unknown gymnasium environment id 'CartPol-v1'"),
        (
            "--data.init_args.env_id=Pendulum-v1",
            r"data.init_args.env_id: env 'Pendulum-v1' has continuous actions, but DQN needs discrete ones "
            r".*DDPG, TD3 or SAC",
        ),
        ("--data.init_args.buffer_size=-5", r"data.init_args.buffer_size: got -5; allowed: > 0"),
        ("--model.init_args.gamma=2", r"model.init_args.gamma: got 2.0; allowed: \[0.0, 1.0\]"),
        ("--num_threads=0", "num_threads must be >= 1"),
    ],
)
def test_bad_values_fail_before_training_with_the_field_named(tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        # max_steps=1: were the value accepted, the test would still end at once
        RLCLI(
            args=[
                "fit",
                "--config",
                CONFIG,
                override,
                "--trainer.max_steps=1",
                f"--trainer.default_root_dir={tmp_path}",
            ]
        )


def test_module_entry_point_runs():
    out = subprocess.run(
        [sys.executable, "-m", "lightning_rl", "--help"], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert "fit" in out.stdout and "validate" in out.stdout


def test_serial_pipeline_takes_a_dict_config_and_dotted_overrides(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load(Path(CONFIG).read_text())
    config["data"]["init_args"]["learning_starts"] = 200
    result = serial_pipeline(
        config,
        seed=3,
        **{
            "trainer.max_steps": 16,
            "trainer.logger": False,
            "trainer.enable_progress_bar": False,
            "model.init_args.hidden_sizes": [16, 16],
            "evaluator.n_episodes": 2,
        },
    )
    assert result["train_iter"] == 16 and result["env_steps"] >= 200 and not result["stop_value_reached"]
    assert (tmp_path / "runs" / "result.json").exists()
