"""Shared by the "time to solve" benchmarks (ours vs Stable-Baselines3, same seeds, one process):
running our config, timing an SB3 model until its EvalCallback reaches the stop value, and the table."""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from lightning_rl.entry import serial_pipeline

Run = dict[str, Any]  # env_steps, time_s, solved, return


def quiet_lightning() -> None:
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)  # no "Seed set to", "GPU available" lines
    # serial_pipeline hands LightningCLI its own args; this script's argv is not meant for it
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")


def quiet_fit(config: Path, seed: int) -> dict[str, Any]:
    """``serial_pipeline`` on one thread with no loggers, checkpoints or progress bar: its run summary."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as root:  # result.json lands here, outside the timed fit
        return serial_pipeline(
            config,
            seed=seed,
            **{
                "trainer.logger": False,
                "trainer.enable_progress_bar": False,
                "trainer.enable_checkpointing": False,
                "trainer.default_root_dir": root,
                "evaluator.save_best": False,
            },
        )


def run_ours(seed: int, config: Path) -> Run:
    """Train with :func:`quiet_fit` and return the race's figures."""
    result = quiet_fit(config, seed)
    return {
        "env_steps": result["env_steps"],
        "time_s": result["wall_time_s"],
        "solved": result["stop_value_reached"],
        "return": result["eval_return_mean"],
    }


def require_sb3() -> None:
    try:
        import stable_baselines3  # noqa: F401
    except ImportError as error:
        raise SystemExit(
            "stable-baselines3 is missing: pip install stable-baselines3; it is installed only for "
            "benchmarks (or pass --skip-sb3)"
        ) from error


def time_sb3(
    model: Any,
    env: Any,
    seed: int,
    stop_value: float,
    max_steps: int,
    eval_freq: int,
    env_id: str = "CartPole-v1",
    eval_env: Any | None = None,
    n_eval_episodes: int = 10,
) -> Run:
    """``model.learn`` until an ``n_eval_episodes`` deterministic evaluation every ``eval_freq`` vector steps
    reaches ``stop_value`` (or ``max_steps``); the time is that of ``learn`` alone (evaluations included).
    The evaluation env is ``eval_env`` or one ``env_id`` env."""
    from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
    from stable_baselines3.common.env_util import make_vec_env

    if eval_env is None:
        eval_env = make_vec_env(env_id, n_envs=1, seed=seed + 10_000)  # Monitor-wrapped, seeded
    stop = StopTrainingOnRewardThreshold(reward_threshold=stop_value, verbose=0)
    evaluation = EvalCallback(
        eval_env,
        callback_on_new_best=stop,
        n_eval_episodes=n_eval_episodes,
        eval_freq=eval_freq,
        deterministic=True,
        verbose=0,
    )
    start = time.perf_counter()
    model.learn(total_timesteps=max_steps, callback=evaluation)
    elapsed = time.perf_counter() - start
    env.close()
    eval_env.close()
    return {
        "env_steps": model.num_timesteps,
        "time_s": round(elapsed, 2),
        "solved": bool(evaluation.best_mean_reward >= stop_value),
        "return": evaluation.last_mean_reward,
    }


def _cell(run: Run | None) -> str:
    if run is None:
        return f"{'-':>9} {'-':>8} {'-':>6}"
    return f"{run['env_steps']:>9} {run['time_s']:>8.1f} {'yes' if run['solved'] else 'no':>6}"


def race(
    title: str,
    target: str,
    ours: Callable[[int, Path], Run],
    sb3: Callable[[int], Run],
    default_config: Path,
    doc: str,
) -> None:
    """Parse ``--seeds/--skip-sb3/--config``, run both per seed and print the table and the ratios."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--skip-sb3", action="store_true", help="run only lightning_rl")
    parser.add_argument(
        "--config", type=Path, default=default_config, help="our config (default: %(default)s)"
    )
    args = parser.parse_args()
    quiet_lightning()
    if not args.skip_sb3:
        require_sb3()
    rows = []
    for seed in args.seeds:
        mine = ours(seed, args.config)
        theirs = None if args.skip_sb3 else sb3(seed)
        rows.append((seed, mine, theirs))
        print(f"seed {seed}: ours {mine}" + ("" if theirs is None else f" | sb3 {theirs}"), flush=True)

    head = f"{'env steps':>9} {'time s':>8} {'solved':>6}"
    print(f"\n{title}")
    print(f"{'':4} | {'lightning_rl':^25} | {'stable-baselines3':^25} |")
    print(f"{'seed':>4} | {head} | {head} | {'ours/SB3':>8}")
    ratios = []
    for seed, mine, theirs in rows:
        ratio = mine["time_s"] / theirs["time_s"] if theirs is not None else None
        if ratio is not None:
            ratios.append(ratio)
        ratio_text = f"{ratio:>8.2f}" if ratio is not None else f"{'-':>8}"
        print(f"{seed:>4} | {_cell(mine)} | {_cell(theirs)} | {ratio_text}")
    ours_times = [mine["time_s"] for _, mine, _ in rows]
    summary = f"mean time: ours {statistics.mean(ours_times):.1f} s"
    print(f"solved: ours {sum(mine['solved'] for _, mine, _ in rows)}/{len(rows)}", end="")
    if ratios:
        sb3_times = [theirs["time_s"] for _, _, theirs in rows]
        print(f", SB3 {sum(theirs['solved'] for _, _, theirs in rows)}/{len(rows)}")
        summary += f", SB3 {statistics.mean(sb3_times):.1f} s"
        summary += f"; ours/SB3: mean of per-seed ratios {statistics.mean(ratios):.2f}"
        summary += f", ratio of mean times {statistics.mean(ours_times) / statistics.mean(sb3_times):.2f}"
        summary += f" (target {target})"
    else:
        print()
    print(summary)
