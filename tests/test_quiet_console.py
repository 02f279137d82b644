"""A default ``fit`` prints no warning lines: what our use of Lightning, torch and wandb made them print is
filtered (``lightning_rl.quiet``) or avoided, in a fresh process, loggers on (CSV + offline wandb)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from cli_utils import REPO, short_run_args

WARNING_LINE = re.compile(r"warn|deprecat|tip:", re.IGNORECASE)


@pytest.mark.parametrize("where", ["elsewhere", "repository"])  # a git checkout, or no git root for wandb
def test_a_default_fit_prints_no_warning_lines(tmp_path, where):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "PYTHONWARNINGS"))}
    proc = subprocess.run(
        [sys.executable, "-m", "lightning_rl", *short_run_args(tmp_path / "run", max_steps=120)],
        cwd=REPO if where == "repository" else tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    noisy = [line for line in (proc.stderr + proc.stdout).splitlines() if WARNING_LINE.search(line)]
    assert noisy == [], noisy
    assert (tmp_path / "run" / "wandb").is_dir()  # the offline wandb run was written
