"""The RL progress bar counts env steps against the env-step budget, with tqdm's rate and ETA."""

from __future__ import annotations

import re

from cli_utils import short_run_args

from lightning_rl.cli import RLCLI


def test_the_bar_counts_env_steps_against_the_budget(tmp_path, capsys):
    args = short_run_args(tmp_path, "--trainer.logger=false", "--data.init_args.max_env_steps=3000")
    args = [a for a in args if a != "--trainer.enable_progress_bar=false"]
    cli = RLCLI(args=[*args, "--evaluator.stop_value=null"])
    captured = capsys.readouterr()
    frames = (captured.out + captured.err).replace("\r", "\n").splitlines()
    bars = [line for line in frames if line.startswith("train:")]
    last = bars[-1]
    # e.g. "train: 100%|██████████| 3008/3000 [00:01<00:00, 2101.3 env steps/s, loss=..., eval=9.5]"
    match = re.search(r"(\d+)/3000 \[[\d:]+<[\d:?]+, +[\d.]+ env steps/s", last)
    assert match, last
    assert int(match.group(1)) == cli.datamodule.env_steps  # the final count, not the last refresh's
    assert "Epoch" not in last and "eval=" in last
