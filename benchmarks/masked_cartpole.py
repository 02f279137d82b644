"""Env steps and wall time to solve the velocity-masked CartPole: lightning_rl R2D2 vs sb3-contrib
RecurrentPPO, the pick of an SB3 user for a task that needs memory.

The env: CartPole-v1 observing only the cart position and the pole angle
(``app_zoo.classic_control.cartpole.envs.CartPoleEnv(mask_velocity=True)``, rl-zoo's CartPoleNoVel-v1),
the same class for both. For each seed, two runs, both stopped once a 20-episode deterministic
evaluation every 4,000 env steps reaches a mean of 475:

* **ours**: ``serial_pipeline`` on ``configs/cartpole_masked_r2d2.yaml`` (200k env-step budget; loggers,
  checkpoints and progress bar off). Its time is the whole ``fit``.
* **sb3-contrib**: ``RecurrentPPO("MlpLstmPolicy")`` with rl-zoo's CartPoleNoVel-v1 hyperparameters
  (``hyperparams/ppo_lstm.yml``: 8 envs, n_steps 32, batch 256, gae_lambda 0.8, gamma 0.98, 20 epochs,
  ent_coef 0, learning rate and clip range linear from 1e-3 and 0.2 over the zoo's 1e5 steps,
  observations normalized by ``VecNormalize``, an LSTM of 64 for actor and critic, [64] heads, ReLU,
  no orthogonal init) and an ``EvalCallback`` on a ``VecNormalize`` eval env it keeps in sync. Its
  budget is the zoo's 1e5 env steps; its time is that of ``learn``.

Both run with one torch thread on the CPU. A run that did not solve reports its whole budget's time.

    python benchmarks/masked_cartpole.py [--seeds 0 1 2] [--skip-sb3]   # pip install sb3-contrib first
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from cartpole_ppo import SB3_ZOO
from solve_race import race, run_ours, time_sb3

from app_zoo.classic_control.cartpole.envs import CartPoleEnv

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cartpole_masked_r2d2.yaml"
STOP_VALUE = 475.0
EVAL_EVERY = 4000  # env steps: ours evaluates every 250 updates at 16 env steps per update
EVAL_EPISODES = 20
ZOO_TIMESTEPS = 100_000
N_ENVS = 8
# rl-baselines3-zoo hyperparams/ppo_lstm.yml, CartPoleNoVel-v1: the values of ppo.yml's CartPole-v1
ZOO = SB3_ZOO


def masked_cartpole() -> CartPoleEnv:
    return CartPoleEnv(mask_velocity=True)


def run_sb3(seed: int) -> dict[str, Any]:
    try:
        from sb3_contrib import RecurrentPPO
    except ImportError as error:
        raise SystemExit("sb3-contrib is missing: pip install sb3-contrib (benchmarks only)") from error
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    env = VecNormalize(
        make_vec_env(masked_cartpole, n_envs=N_ENVS, seed=seed), norm_obs=True, norm_reward=False
    )
    eval_env = VecNormalize(
        make_vec_env(masked_cartpole, n_envs=1, seed=seed + 10_000), training=False, norm_reward=False
    )
    policy_kwargs = {
        "ortho_init": False,
        "activation_fn": torch.nn.ReLU,
        "lstm_hidden_size": 64,
        "enable_critic_lstm": True,
        "net_arch": {"pi": [64], "vf": [64]},
    }
    model = RecurrentPPO(
        "MlpLstmPolicy", env, seed=seed, device="cpu", verbose=0, policy_kwargs=policy_kwargs, **ZOO
    )
    return time_sb3(
        model,
        env,
        seed,
        STOP_VALUE,
        ZOO_TIMESTEPS,
        eval_freq=EVAL_EVERY // N_ENVS,  # vector steps
        eval_env=eval_env,
        n_eval_episodes=EVAL_EPISODES,
    )


if __name__ == "__main__":
    title = f"masked CartPole, env steps and wall time to a 20-episode eval mean >= {STOP_VALUE:g}"
    race(title, "<= 1.0", run_ours, run_sb3, CONFIG, __doc__)
