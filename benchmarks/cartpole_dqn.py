"""Env steps and wall time to solve CartPole-v1 with DQN: lightning_rl vs Stable-Baselines3.

For each seed, two runs:

* **ours**: ``serial_pipeline`` on ``configs/cartpole_dqn.yaml`` (8 vector envs, 50k env-step budget),
  stopped by the Evaluator once the mean return of a 20-episode deterministic evaluation reaches 475.
  Loggers, checkpoints, best-model saving and the progress bar are off, so no I/O is timed. The time is
  the summary's ``wall_time_s``: the whole ``fit`` (env setup, collection, gradient updates, evaluations).
* **SB3**: ``stable_baselines3.DQN`` with the rl-baselines3-zoo CartPole-v1 hyperparameters
  (``hyperparams/dqn.yml``: lr 2.3e-3, batch 64, buffer 100k, learning_starts 1000, gamma 0.99,
  target_update_interval 10, train_freq 256, gradient_steps 128, epsilon 1 -> 0.04 over the first 16%
  of the zoo's 5e4 steps, net_arch [256, 256]) on one env, stopped by ``EvalCallback`` (10 deterministic
  episodes every 1000 env steps) with ``StopTrainingOnRewardThreshold(475)``. It gets up to 100k env
  steps (twice the zoo's budget); the epsilon schedule is rescaled so that it still ends at env step 8000.
  The time is that of ``model.learn`` (evaluations included), not of building the model.

Both run with ``torch.set_num_threads(1)`` on the CPU. Ours must pass a stricter test (20 evaluation
episodes instead of 10), so the comparison does not favour it. A run that did not solve reports the
time it spent on its whole budget and is marked ``no`` in the table.

    python benchmarks/cartpole_dqn.py [--seeds 0 1 2] [--skip-sb3]
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

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cartpole_dqn.yaml"
STOP_VALUE = 475.0
SB3_MAX_STEPS = 100_000
# rl-baselines3-zoo hyperparams/dqn.yml, CartPole-v1 (n_timesteps 5e4)
SB3_ZOO = {
    "learning_rate": 2.3e-3,
    "batch_size": 64,
    "buffer_size": 100_000,
    "learning_starts": 1000,
    "gamma": 0.99,
    "target_update_interval": 10,
    "train_freq": 256,
    "gradient_steps": 128,
    "exploration_fraction": 0.16,
    "exploration_final_eps": 0.04,
    "policy_kwargs": {"net_arch": [256, 256]},
}
SB3_ZOO_TIMESTEPS = 50_000


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


def run_sb3(seed: int, max_steps: int = SB3_MAX_STEPS) -> dict[str, Any]:
    """SB3 DQN with the zoo's CartPole-v1 hyperparameters until EvalCallback sees a mean of 475."""
    try:
        import stable_baselines3  # noqa: F401
    except ImportError as error:
        raise SystemExit(
            "stable-baselines3 is missing: pip install stable-baselines3; it is installed only for "
            "benchmarks (or pass --skip-sb3)"
        ) from error
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import EvalCallback, StopTrainingOnRewardThreshold
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    hyperparams = dict(SB3_ZOO)
    # exploration_fraction is relative to learn()'s total_timesteps: keep the zoo's 8000-step decay.
    hyperparams["exploration_fraction"] = SB3_ZOO["exploration_fraction"] * SB3_ZOO_TIMESTEPS / max_steps
    env = gym.make("CartPole-v1")
    eval_env = make_vec_env("CartPole-v1", n_envs=1, seed=seed + 10_000)  # Monitor-wrapped, seeded
    model = DQN("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **hyperparams)
    stop = StopTrainingOnRewardThreshold(reward_threshold=STOP_VALUE, verbose=0)
    evaluation = EvalCallback(
        eval_env, callback_on_new_best=stop, n_eval_episodes=10, eval_freq=1000, deterministic=True, verbose=0
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
    args = parser.parse_args()
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)  # no "Seed set to", "GPU available" lines
    # serial_pipeline hands LightningCLI its own args; this script's argv is not meant for it
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")

    rows = []
    for seed in args.seeds:
        ours = run_ours(seed)
        sb3 = None if args.skip_sb3 else run_sb3(seed)
        rows.append((seed, ours, sb3))
        print(f"seed {seed}: ours {ours}" + ("" if sb3 is None else f" | sb3 {sb3}"), flush=True)

    head = f"{'env steps':>9} {'time s':>8} {'solved':>6}"
    print(f"\nCartPole-v1 DQN, env steps and wall time to eval mean >= {STOP_VALUE:g}")
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
        summary += " (target < 0.33)"
    else:
        print()
    print(summary)


if __name__ == "__main__":
    main()
