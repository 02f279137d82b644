"""Helpers for tests that drive the CLI: a short CartPole run in a temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = str(REPO / "configs" / "cartpole_dqn.yaml")
PENDULUM_SAC = str(REPO / "configs" / "pendulum_sac.yaml")
CARTPOLE_RAINBOW = str(REPO / "configs" / "cartpole_rainbow.yaml")
MASKED_R2D2 = str(REPO / "configs" / "cartpole_masked_r2d2.yaml")


def short_run_args(
    root: str | os.PathLike, *extra: str, max_steps: int = 120, run: bool = True, config: str = CONFIG
) -> list[str]:
    """`fit` on ``config`` (default: the default config), cut to a few hundred updates, logging to ``root``.

    ``run=False`` leaves out the subcommand, for ``RLCLI(args, run=False)``.
    """
    return [
        *(["fit"] if run else []),
        "--config",
        config,
        f"--trainer.default_root_dir={root}",
        f"--trainer.max_steps={max_steps}",
        "--trainer.enable_progress_bar=false",
        "--data.init_args.learning_starts=200",
        "--evaluator.eval_interval=50",
        "--evaluator.n_episodes=4",
        *extra,
    ]
