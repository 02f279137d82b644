"""Env steps and wall time to a -200 evaluation on Pendulum-v1 with SAC: lightning_rl vs Stable-Baselines3.

For each seed, two runs:

* **ours**: ``serial_pipeline`` on ``configs/pendulum_sac.yaml`` (20k env-step budget, [64, 64] MLPs, lr
  1e-3, 1000 uniformly random warm-up steps, one update per env step in blocks of 8), stopped by the
  Evaluator once the mean return of a 10-episode deterministic evaluation (every 1000 updates) reaches
  -200. Loggers, checkpoints, best-model saving and the progress bar are off. The time is the summary's
  ``wall_time_s``: the whole ``fit`` (env setup, collection, updates, evaluations).
* **SB3**: ``stable_baselines3.SAC`` with the rl-baselines3-zoo Pendulum-v1 hyperparameters
  (``hyperparams/sac.yml``: learning rate 1e-3, everything else SB3's defaults: [256, 256] MLPs, batch
  256, buffer 1M, learning_starts 100, tau 0.005, gamma 0.99, one update per env step, automatic
  temperature), stopped by ``EvalCallback`` (10 deterministic episodes every 1000 env steps) with
  ``StopTrainingOnRewardThreshold(-200)``, up to the zoo's 20k env steps. The time is that of
  ``model.learn`` (evaluations included).

Both run with ``torch.set_num_threads(1)`` on the CPU. Each run's line also says where its time went:
ours split into gradient updates, collection (env steps and acting), replay sampling and evaluation;
SB3's into ``train`` (its updates, replay sampling included), evaluation and the rest (collection).

    python benchmarks/pendulum_sac.py [--seeds 0 1 2] [--skip-sb3] [--config configs/pendulum_sac.yaml]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from solve_race import race, run_ours, time_sb3
from time_split import TimeSplit

from lightning_rl.callbacks import Evaluator
from lightning_rl.datamodules import OffPolicyDataModule
from lightning_rl.policies import OffPolicyActorCritic

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pendulum_sac.yaml"
STOP_VALUE = -200.0
SB3_MAX_STEPS = 20_000  # the zoo's n_timesteps
SB3_ZOO = {"learning_rate": 1e-3}  # rl-baselines3-zoo hyperparams/sac.yml, Pendulum-v1


def run_ours_split(seed: int, config: Path) -> dict[str, Any]:
    with TimeSplit(
        update=(OffPolicyActorCritic, "training_update"),
        collect=(OffPolicyDataModule, "_collect_vector_step"),
        sample=(OffPolicyDataModule, "sample"),
        eval=(Evaluator, "_run_episodes"),
    ) as split:
        run = run_ours(seed, config)
    return {**run, "split": split.describe(run["time_s"])}


def run_sb3(seed: int) -> dict[str, Any]:
    import gymnasium as gym
    import stable_baselines3.common.callbacks as sb3_callbacks
    from stable_baselines3 import SAC

    torch.set_num_threads(1)
    env = gym.make("Pendulum-v1")
    model = SAC("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **SB3_ZOO)
    with TimeSplit(update=(SAC, "train"), eval=(sb3_callbacks, "evaluate_policy")) as split:
        run = time_sb3(model, env, seed, STOP_VALUE, SB3_MAX_STEPS, eval_freq=1000, env_id="Pendulum-v1")
    return {**run, "split": split.describe(run["time_s"])}


if __name__ == "__main__":
    title = f"Pendulum-v1 SAC, env steps and wall time to eval mean >= {STOP_VALUE:g}"
    race(title, "<= 0.5", run_ours_split, run_sb3, CONFIG, __doc__)
