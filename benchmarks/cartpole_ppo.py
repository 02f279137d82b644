"""Env steps and wall time to solve CartPole-v1 with PPO: lightning_rl vs Stable-Baselines3.

For each seed, two runs:

* **ours**: ``serial_pipeline`` on ``configs/cartpole_ppo.yaml`` (100k env-step budget), stopped by the
  Evaluator once the mean return of a 20-episode deterministic evaluation reaches 500 (the maximum).
  Loggers, checkpoints, best-model saving and the progress bar are off, so no I/O is timed. The time is
  the summary's ``wall_time_s``: the whole ``fit`` (env setup, collection, gradient updates, evaluations).
* **SB3**: ``stable_baselines3.PPO`` with the rl-baselines3-zoo CartPole-v1 hyperparameters
  (``hyperparams/ppo.yml``: 8 envs, n_steps 32, batch 256, gae_lambda 0.8, gamma 0.98, n_epochs 20,
  ent_coef 0.0, learning rate and clip range linear from 1e-3 and 0.2 to 0 over the zoo's 1e5 steps,
  default MlpPolicy), stopped by ``EvalCallback`` (10 deterministic episodes every 1000 env steps, i.e.
  every 125 vector steps) with ``StopTrainingOnRewardThreshold(500)``. Its budget is the zoo's 1e5 env
  steps (so the linear schedules are the zoo's). The time is that of ``model.learn`` (evaluations
  included), not of building the model.

Both run with ``torch.set_num_threads(1)`` on the CPU. Ours must pass a stricter test (20 evaluation
episodes instead of 10), so the comparison does not favour it. A run that did not solve reports the
time it spent on its whole budget and is marked ``no`` in the table.

    python benchmarks/cartpole_ppo.py [--seeds 0 1 2] [--skip-sb3] [--config configs/cartpole_ppo.yaml]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from lightning_rl.entry import serial_pipeline

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cartpole_ppo.yaml"
STOP_VALUE = 500.0
SB3_EVAL_EVERY = 1000  # env steps between SB3 evaluations
# rl-baselines3-zoo hyperparams/ppo.yml, CartPole-v1
SB3_ZOO_TIMESTEPS = 100_000
SB3_N_ENVS = 8
SB3_ZOO = {
    "n_steps": 32,
    "batch_size": 256,
    "gae_lambda": 0.8,
    "gamma": 0.98,
    "n_epochs": 20,
    "ent_coef": 0.0,
    "learning_rate": lambda progress_remaining: progress_remaining * 1e-3,  # lin_0.001
    "clip_range": lambda progress_remaining: progress_remaining * 0.2,  # lin_0.2
}


def run_ours(seed: int, config: Path = CONFIG) -> dict[str, Any]:
    """Train with ``serial_pipeline`` (no loggers, checkpoints or progress bar) and return its summary."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as root:  # result.json lands here, outside the timed fit
        result = serial_pipeline(
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
    return {
        "env_steps": result["env_steps"],
        "time_s": result["wall_time_s"],
        "solved": result["stop_value_reached"],
        "return": result["eval_return_mean"],
    }


def run_sb3(seed: int, max_steps: int = SB3_ZOO_TIMESTEPS) -> dict[str, Any]:
    """SB3 PPO with the zoo's CartPole-v1 hyperparameters until EvalCallback sees a mean of 500."""
    try:
        import stable_baselines3  # noqa: F401
    except ImportError as error:
        raise SystemExit(
            "stable-baselines3 is missing: pip install stable-baselines3; it is installed only for "
            "benchmarks (or pass --skip-sb3)"
        ) from error
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    env = make_vec_env("CartPole-v1", n_envs=SB3_N_ENVS, seed=seed)
    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=seed + 10_000)  # Monitor-wrapped, seeded
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **SB3_ZOO)
    stop = StopTrainingOnRewardThreshold(reward_threshold=STOP_VALUE, verbose=0)
    evaluation = EvalCallback(
        eval_env,
        callback_on_new_best=stop,
        n_eval_episodes=10,
        eval_freq=SB3_EVAL_EVERY // SB3_N_ENVS,  # counted in vector steps
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
        "solved": bool(evaluation.best_mean_reward >= STOP_VALUE),
        "return": evaluation.last_mean_reward,
    }


def _cell(run: dict[str, Any] | None) -> str:
    if run is None:
        return f"{'-':>9} {'-':>8} {'-':>6}"
    return f"{run['env_steps']:>9} {run['time_s']:>8.1f} {'yes' if run['solved'] else 'no':>6}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--skip-sb3", action="store_true", help="run only lightning_rl")
    parser.add_argument("--config", type=Path, default=CONFIG, help="our config (default: %(default)s)")
    args = parser.parse_args()
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)  # no "Seed set to", "GPU available" lines
    # serial_pipeline hands LightningCLI its own args; this script's argv is not meant for it
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")

    rows = []
    for seed in args.seeds:
        ours = run_ours(seed, args.config)
        sb3 = None if args.skip_sb3 else run_sb3(seed)
        rows.append((seed, ours, sb3))
        print(f"seed {seed}: ours {ours}" + ("" if sb3 is None else f" | sb3 {sb3}"), flush=True)

    head = f"{'env steps':>9} {'time s':>8} {'solved':>6}"
    print(f"\nCartPole-v1 PPO, env steps and wall time to eval mean >= {STOP_VALUE:g}")
    print(f"{'':4} | {'lightning_rl':^25} | {'stable-baselines3':^25} |")
    print(f"{'seed':>4} | {head} | {head} | {'ours/SB3':>8}")
    ratios = []
    for seed, ours, sb3 in rows:
        ratio = ours["time_s"] / sb3["time_s"] if sb3 is not None else None
        if ratio is not None:
            ratios.append(ratio)
        ratio_text = f"{ratio:>8.2f}" if ratio is not None else f"{'-':>8}"
        print(f"{seed:>4} | {_cell(ours)} | {_cell(sb3)} | {ratio_text}")
    ours_times = [ours["time_s"] for _, ours, _ in rows]
    summary = f"mean time: ours {statistics.mean(ours_times):.1f} s"
    print(f"solved: ours {sum(ours['solved'] for _, ours, _ in rows)}/{len(rows)}", end="")
    if ratios:
        sb3_times = [sb3["time_s"] for _, _, sb3 in rows]
        print(f", SB3 {sum(sb3['solved'] for _, _, sb3 in rows)}/{len(rows)}")
        summary += f", SB3 {statistics.mean(sb3_times):.1f} s"
        summary += f"; ours/SB3: mean of per-seed ratios {statistics.mean(ratios):.2f}"
        summary += f", ratio of mean times {statistics.mean(ours_times) / statistics.mean(sb3_times):.2f}"
        summary += " (target <= 0.5)"
    else:
        print()
    print(summary)


if __name__ == "__main__":
    main()
