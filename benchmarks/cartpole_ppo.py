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

from pathlib import Path
from typing import Any

import torch
from solve_race import race, run_ours, time_sb3

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


def run_sb3(seed: int, max_steps: int = SB3_ZOO_TIMESTEPS) -> dict[str, Any]:
    """SB3 PPO with the zoo's CartPole-v1 hyperparameters until EvalCallback sees a mean of 500."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    env = make_vec_env("CartPole-v1", n_envs=SB3_N_ENVS, seed=seed)
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **SB3_ZOO)
    # eval_freq counts vector steps
    return time_sb3(model, env, seed, STOP_VALUE, max_steps, eval_freq=SB3_EVAL_EVERY // SB3_N_ENVS)


if __name__ == "__main__":
    title = f"CartPole-v1 PPO, env steps and wall time to eval mean >= {STOP_VALUE:g}"
    race(title, "<= 0.5", run_ours, run_sb3, CONFIG, __doc__)
