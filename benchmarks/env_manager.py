"""Env-steps/s of our env managers against gymnasium's and Stable-Baselines3's vector envs.

    python benchmarks/env_manager.py                     # CartPole and Pong, 1/4/8/16 envs
    python benchmarks/env_manager.py --envs cartpole --n-envs 4 16 --seconds 2

In-process: our ``SyncEnvManager`` vs gymnasium ``SyncVectorEnv`` vs SB3 ``DummyVecEnv``.
Subprocess: our ``SubprocessEnvManager`` (one process per env, as the peers; and ``n_workers`` = cores)
vs gymnasium ``AsyncVectorEnv`` (shared memory) vs SB3 ``SubprocVecEnv``. Every vector env steps the
same env factory with random actions; the ratios are ours / peer (> 1: we are faster). Each figure is
the best of ``--repeats`` timed windows after a warm-up. SB3 is installed only for this benchmark
(``pip install stable-baselines3``); ale-py with its ROMs comes with the ``atari`` extra.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np

from lightning_rl.envs import SubprocessEnvManager, SyncEnvManager


def cartpole() -> gym.Env:
    return gym.make("CartPole-v1")


def pong() -> gym.Env:
    from app_zoo.atari.envs import AtariEnv

    return AtariEnv(env_id="ALE/Pong-v5")


ENVS: dict[str, Callable[[], gym.Env]] = {"cartpole": cartpole, "pong": pong}


def steps_per_second(env, n_envs: int, seconds: float, repeats: int, sb3: bool = False) -> float:
    """Best env-steps/s over ``repeats`` windows of about ``seconds`` each."""
    n_actions = (env.single_action_space if not sb3 else env.action_space).n
    rng = np.random.default_rng(0)
    actions = rng.integers(0, n_actions, (256, n_envs))
    env.reset() if sb3 else env.reset(seed=0)
    for k in range(20):  # warm-up: page in shared memory, first resets
        env.step(actions[k % 256])
    best = 0.0
    for _ in range(repeats):
        steps, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for k in range(16):
                env.step(actions[(steps + k) % 256])
            steps += 16
        best = max(best, steps * n_envs / elapsed)
    return best


def vector_envs(make: Callable[[], gym.Env], n: int) -> dict[str, Callable[[], object]]:
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    same_step = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
    cores = os.cpu_count() or 1
    return {
        "ours sync": lambda: SyncEnvManager(make, n_envs=n),
        "gymnasium SyncVectorEnv": lambda: gym.vector.SyncVectorEnv([make] * n, **same_step),
        "sb3 DummyVecEnv": lambda: DummyVecEnv([make] * n),
        "ours subprocess": lambda: SubprocessEnvManager(make, n_envs=n),
        f"ours subprocess n_workers={min(n, cores)}": lambda: SubprocessEnvManager(
            make, n_envs=n, n_workers=min(n, cores)
        ),
        "gymnasium AsyncVectorEnv": lambda: gym.vector.AsyncVectorEnv([make] * n, **same_step),
        "sb3 SubprocVecEnv": lambda: SubprocVecEnv([make] * n, start_method="fork"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--n-envs", nargs="+", type=int, default=[1, 4, 8, 16])
    parser.add_argument("--seconds", type=float, default=1.5, help="length of one timed window")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    for env_name in args.envs:
        make = ENVS[env_name]
        print(f"\n== {env_name}: env steps/s (best of {args.repeats} x {args.seconds}s) ==")
        for n in args.n_envs:
            rates = {}
            for name, build in vector_envs(make, n).items():
                env = build()
                try:
                    rates[name] = steps_per_second(env, n, args.seconds, args.repeats, sb3="sb3" in name)
                finally:
                    env.close()
            print(f"-- {n} envs")
            for name, rate in rates.items():
                print(f"   {name:<36} {rate:>10,.0f}")
            sub = rates["ours subprocess"]
            grouped = rates[f"ours subprocess n_workers={min(n, os.cpu_count() or 1)}"]
            print(
                f"   ratios: sync/gymnasium {rates['ours sync'] / rates['gymnasium SyncVectorEnv']:.2f}, "
                f"sync/sb3 {rates['ours sync'] / rates['sb3 DummyVecEnv']:.2f}, "
                f"subprocess/gymnasium {sub / rates['gymnasium AsyncVectorEnv']:.2f}, "
                f"subprocess/sb3 {sub / rates['sb3 SubprocVecEnv']:.2f}, "
                f"grouped/gymnasium {grouped / rates['gymnasium AsyncVectorEnv']:.2f}, "
                f"grouped/sb3 {grouped / rates['sb3 SubprocVecEnv']:.2f}"
            )


if __name__ == "__main__":
    main()
