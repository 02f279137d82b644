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

from pathlib import Path
from typing import Any

import torch
from solve_race import race, run_ours, time_sb3

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


def run_sb3(seed: int, max_steps: int = SB3_MAX_STEPS) -> dict[str, Any]:
    """SB3 DQN with the zoo's CartPole-v1 hyperparameters until EvalCallback sees a mean of 475."""
    import gymnasium as gym
    from stable_baselines3 import DQN

    torch.set_num_threads(1)
    hyperparams = dict(SB3_ZOO)
    # exploration_fraction is relative to learn()'s total_timesteps: keep the zoo's 8000-step decay.
    hyperparams["exploration_fraction"] = SB3_ZOO["exploration_fraction"] * SB3_ZOO_TIMESTEPS / max_steps
    env = gym.make("CartPole-v1")
    model = DQN("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **hyperparams)
    return time_sb3(model, env, seed, STOP_VALUE, max_steps, eval_freq=1000)


if __name__ == "__main__":
    title = f"CartPole-v1 DQN, env steps and wall time to eval mean >= {STOP_VALUE:g}"
    race(title, "< 0.33", run_ours, run_sb3, CONFIG, __doc__)
