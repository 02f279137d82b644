"""The subclassing example runs both ways: a plain pl.Trainer script, and selected from YAML by class_path."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from cli_utils import CONFIG, REPO, short_run_args

from lightning_rl.cli import RLCLI


@pytest.mark.learning
def test_example_script_trains_its_subclass_with_a_plain_trainer(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))
    from examples.dqn_aux_loss import main

    result = main(max_env_steps=50_000, seed=0)
    assert result["eval_return_mean"] >= 475 and result["env_steps"] <= 50_000


def test_example_subclass_is_selected_from_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # class_path names a module relative to the working directory
    cli = RLCLI(
        args=short_run_args(
            tmp_path,
            "--config",
            str(REPO / "examples" / "dqn_aux_loss.yaml"),
            "--model.init_args.log_interval=10",
            max_steps=40,
        )
    )
    assert type(cli.model).__name__ == "AuxLossDQN" and cli.model.hparams.aux_weight == 0.01
    base = yaml.safe_load(Path(CONFIG).read_text())["model"]["init_args"]
    assert cli.model.hparams.hidden_sizes == base["hidden_sizes"]  # the rest of the base config still applies
    with open(Path(cli.trainer.log_dir) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert any(row.get("train/aux_loss") for row in rows)
