"""SAC on Hopper-v5 for a fixed budget: return curves and env steps per second, lightning_rl vs SB3.

Both run the same hyperparameters (rl-zoo's MuJoCo SAC, ``app_zoo/mujoco/configs/hopper_sac.yaml``:
[256, 256] MLPs, Adam 3e-4 for actor, critics and temperature, batch 256, a 1M buffer, gamma 0.99, tau
0.005, automatic temperature towards -3, ``--learning-starts`` uniformly random env steps, then one update
per env step, so the same update-to-data ratio) and the same seed, one env each, for ``--steps`` env steps.
Every ``--eval-every`` env steps each evaluates 10 deterministic episodes on its own seeded eval env.

* **ours**: ``serial_pipeline`` on the config (loggers, checkpoints and progress bar off).
* **SB3**: ``stable_baselines3.SAC("MlpPolicy", gym.make("Hopper-v5"), learning_starts=...)`` (its
  defaults are the zoo's other values) with an ``EvalCallback``.

Reported: both return curves, the final evaluation, the wall time, and the **training throughput**: env
steps per second with the evaluation time taken out (collection + updates, the figure that the budget
scales with), with where the time went (updates, collection, replay sampling, evaluation). Both run with
``torch.set_num_threads(--threads)`` on the CPU. 100k steps take ~25 min for ours and ~35 min for SB3 on
two shared cores.

    python benchmarks/mujoco_sac.py [--steps 100000] [--seed 0] [--eval-every 10000] [--threads 1]
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from solve_race import quiet_lightning, require_sb3
from time_split import TimeSplit

from lightning_rl.callbacks import Evaluator
from lightning_rl.datamodules import OffPolicyDataModule
from lightning_rl.entry import serial_pipeline
from lightning_rl.policies import OffPolicyActorCritic

CONFIG = Path(__file__).resolve().parents[1] / "app_zoo" / "mujoco" / "configs" / "hopper_sac.yaml"
EVAL_EPISODES = 10


def record_returns(owner: Any, name: str, curve: list[tuple[int, float]], point: Any) -> Any:
    """Wrap ``owner.name`` so that each call appends ``point(args, result)`` to ``curve``; returns the
    original (to put back)."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        curve.append(point(args, result))
        return result

    setattr(owner, name, wrapper)
    return original


def run_ours(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    curve: list[tuple[int, float]] = []
    original = record_returns(
        Evaluator, "_run_episodes", curve, lambda call, stats: (call[2].env_steps, stats.return_mean)
    )
    split = TimeSplit(
        update=(OffPolicyActorCritic, "training_update"),
        collect=(OffPolicyDataModule, "_collect_vector_step"),
        sample=(OffPolicyDataModule, "sample"),
        eval=(Evaluator, "_run_episodes"),
    )
    try:
        with split, tempfile.TemporaryDirectory() as root:
            result = serial_pipeline(
                CONFIG,
                seed=args.seed,
                **{
                    "trainer.logger": False,
                    "trainer.enable_progress_bar": False,
                    "trainer.enable_checkpointing": False,
                    "trainer.default_root_dir": root,
                    "evaluator.save_best": False,
                    "evaluator.eval_interval": args.eval_every,  # updates: one per env step after warm-up
                    "evaluator.n_episodes": EVAL_EPISODES,
                    "data.init_args.max_env_steps": args.steps,
                    "data.init_args.learning_starts": args.learning_starts,
                    "model.init_args.random_steps": args.learning_starts,
                },
            )
    finally:
        Evaluator._run_episodes = original
    # the Evaluator runs every eval_every updates, i.e. at learning_starts + k * eval_every env steps
    return {"curve": curve, "time_s": result["wall_time_s"], "split": split, "eval_s": split.totals["eval"]}


def run_sb3(args: argparse.Namespace) -> dict[str, Any]:
    import gymnasium as gym
    import stable_baselines3.common.callbacks as sb3_callbacks
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import EvalCallback
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(args.threads)
    env = gym.make("Hopper-v5")
    model = SAC(
        "MlpPolicy", env, learning_starts=args.learning_starts, seed=args.seed, device="cpu", verbose=0
    )
    eval_env = make_vec_env("Hopper-v5", n_envs=1, seed=args.seed + 10_000)
    callback = EvalCallback(eval_env, n_eval_episodes=EVAL_EPISODES, eval_freq=args.eval_every, verbose=0)
    curve: list[tuple[int, float]] = []
    original = record_returns(
        sb3_callbacks,
        "evaluate_policy",
        curve,
        lambda call, result: (call[0].num_timesteps, float(sum(result[0]) / len(result[0]))),
    )
    split = TimeSplit(update=(SAC, "train"), eval=(sb3_callbacks, "evaluate_policy"))
    try:
        with split:
            start = time.perf_counter()
            model.learn(total_timesteps=args.steps, callback=callback)
            elapsed = time.perf_counter() - start
    finally:
        sb3_callbacks.evaluate_policy = original
    env.close()
    eval_env.close()
    return {"curve": curve, "time_s": elapsed, "split": split, "eval_s": split.totals["eval"]}


def summary(name: str, run: dict[str, Any], steps: int) -> float:
    train_s = run["time_s"] - run["eval_s"]
    throughput = steps / train_s
    final = run["curve"][-1][1] if run["curve"] else float("nan")
    print(
        f"{name}: final eval {final:.1f}, wall {run['time_s']:.0f} s, eval {run['eval_s']:.0f} s, "
        f"training {throughput:.1f} env steps/s; {run['split'].describe(run['time_s'])}"
    )
    return throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--learning-starts", type=int, default=10_000)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-sb3", action="store_true")
    args = parser.parse_args()
    quiet_lightning()
    if not args.skip_sb3:
        require_sb3()
    ours = run_ours(args)
    print(f"ours: {ours['curve']}", flush=True)
    theirs = None if args.skip_sb3 else run_sb3(args)
    if theirs is not None:
        print(f"sb3: {theirs['curve']}", flush=True)
    print(f"\nHopper-v5 SAC, {args.steps} env steps, seed {args.seed}, {args.threads} thread(s)")
    print(f"{'ours env steps':>14} {'return':>8} | {'SB3 env steps':>13} {'return':>8}")
    for i in range(max(len(ours["curve"]), len(theirs["curve"]) if theirs else 0)):
        left = ours["curve"][i] if i < len(ours["curve"]) else None
        right = theirs["curve"][i] if theirs and i < len(theirs["curve"]) else None
        cells = [f"{c[0]:>14} {c[1]:>8.1f}" if c else f"{'':>23}" for c in (left,)]
        cells += [f"{c[0]:>13} {c[1]:>8.1f}" if c else f"{'':>22}" for c in (right,)]
        print(" | ".join(cells))
    mine = summary("ours", ours, args.steps)
    if theirs is not None:
        other = summary("SB3 ", theirs, args.steps)
        print(f"throughput ours/SB3: {mine / other:.2f} (target >= 1.5)")


if __name__ == "__main__":
    main()
