"""Wall time of DQN training with synchronous vs background-thread (asynchronous) env collection.

Two workloads, each run with ``data.async_collection`` false and true on the same seeds:

* **cartpole**: ``configs/cartpole_dqn.yaml`` until the Evaluator's 20-episode mean reaches 475 (time
  and env steps to solve, as ``benchmarks/cartpole_dqn.py``). The async run keeps the sync config's
  replay ratio in a band: ``sample_insert_ratio = [0.8, 1.2] x gradient_steps * batch_size / train_freq``.
* **slow-env**: the same config on CartPole whose every ``step`` takes ``--latency-ms`` of extra time
  outside Python (``time.sleep`` stands in for a physics engine or a remote simulator, which release the
  GIL), for a fixed budget of env steps, evaluated once at the end (1 episode); figure: env steps per
  second of the whole fit.

Loggers, checkpoints and the progress bar are off; ``torch.set_num_threads(1)``.

    python benchmarks/async_collection.py [--seeds 0 1 2] [--latency-ms 1.0] [--slow-steps 12000]
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

import gymnasium as gym
import torch
import yaml

from lightning_rl.entry import serial_pipeline

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cartpole_dqn.yaml"
_LATENCY_S = 0.001  # set from --latency-ms before any env is built


class _Latency(gym.Wrapper):
    def step(self, action):
        time.sleep(_LATENCY_S)
        return self.env.step(action)


def slow_cartpole() -> gym.Env:
    """CartPole-v1 whose step takes ``--latency-ms`` longer (the CLI imports it as
    ``__main__.slow_cartpole``)."""
    return _Latency(gym.make("CartPole-v1"))


def run(async_collection: bool, seed: int, **overrides: Any) -> dict[str, Any]:
    torch.set_num_threads(1)
    with open(CONFIG) as f:
        config = yaml.safe_load(f)
    data = config["data"]["init_args"]
    if async_collection:
        ratio = data["gradient_steps"] * data["batch_size"] / data["train_freq"]
        overrides.setdefault("data.init_args.sample_insert_ratio", [0.8 * ratio, 1.2 * ratio])
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        result = serial_pipeline(
            config,
            seed=seed,
            **{
                "data.init_args.async_collection": async_collection,
                "trainer.logger": False,
                "trainer.enable_progress_bar": False,
                "trainer.enable_checkpointing": False,
                "trainer.default_root_dir": root,
                "evaluator.save_best": False,
                **overrides,
            },
        )
        result["total_s"] = time.perf_counter() - start
    return result


def main() -> None:
    global _LATENCY_S
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--latency-ms", type=float, default=1.0)
    parser.add_argument("--slow-steps", type=int, default=12_000, help="env-step budget of slow-env runs")
    parser.add_argument("--skip-cartpole", action="store_true")
    args = parser.parse_args()
    _LATENCY_S = args.latency_ms / 1000
    for name in ("pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="LightningCLI's args parameter")

    if not args.skip_cartpole:
        print("cartpole: wall time (s) / env steps to a 20-episode eval mean >= 475")
        times: dict[bool, list[float]] = {False: [], True: []}
        for seed in args.seeds:
            cells = []
            for mode in (False, True):
                result = run(mode, seed)
                times[mode].append(result["wall_time_s"])
                solved = "yes" if result["stop_value_reached"] else "NO"
                cells.append(f"{result['wall_time_s']:6.1f} s {result['env_steps']:>6} steps solved {solved}")
            print(f"  seed {seed}: sync {cells[0]} | async {cells[1]}", flush=True)
        sync_mean, async_mean = statistics.mean(times[False]), statistics.mean(times[True])
        speed_up = sync_mean / async_mean
        print(f"  mean: sync {sync_mean:.1f} s, async {async_mean:.1f} s, speed-up {speed_up:.2f}x")

    print(f"slow-env: CartPole + {args.latency_ms:g} ms per env step, {args.slow_steps} env steps")
    rates: dict[bool, list[float]] = {False: [], True: []}
    for seed in args.seeds:
        cells = []
        for mode in (False, True):
            result = run(
                mode,
                seed,
                **{
                    "data.init_args.env_id": None,
                    "data.init_args.env_fn": "__main__.slow_cartpole",
                    "data.init_args.max_env_steps": args.slow_steps,
                    "evaluator.eval_interval": 10**9,
                    "evaluator.stop_value": None,
                    "evaluator.n_episodes": 1,  # the final evaluation (same cost in both modes)
                },
            )
            rate = result["env_steps"] / result["wall_time_s"]
            rates[mode].append(rate)
            cells.append(
                f"{result['wall_time_s']:6.1f} s {rate:7.0f} env steps/s {result['train_iter']:>5} updates"
            )
        print(f"  seed {seed}: sync {cells[0]} | async {cells[1]}", flush=True)
    sync_rate, async_rate = statistics.mean(rates[False]), statistics.mean(rates[True])
    speed_up = async_rate / sync_rate
    print(f"  mean: sync {sync_rate:.0f}, async {async_rate:.0f} env steps/s, speed-up {speed_up:.2f}x")


if __name__ == "__main__":
    main()
