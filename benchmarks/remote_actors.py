"""Remote actors on Ray against the in-process collector, in one run.

* **collection**: env steps per second of collection alone (DQN acting, 3-step transitions built, no
  learner) for CartPole-v1 and for CartPole whose every step takes ``--latency-ms`` more outside Python
  (``time.sleep``, standing in for a physics engine or a simulator: it releases the core), with the
  in-process ``VectorCollector`` and with 1, 2 and 4 Ray actors of ``--envs`` envs each (steady state:
  counted after every actor delivered its first task).
* **learners**: the shipped in-process configs (``configs/cartpole_dqn.yaml``, ``cartpole_impala.yaml``)
  against their remote-actor versions (``cartpole_apex_dqn.yaml``, ``cartpole_impala_ray.yaml``) with one
  actor, over a fixed env-step budget, evaluated at the end only: gradient updates and env steps per
  second from the first update to the last (steady state), and the fit's whole wall time (which includes
  the actor's start-up, ~3 s here; the runs join a cluster started before, as after ``ray start``).

    python benchmarks/remote_actors.py [--seconds 8] [--latency-ms 2] [--envs 4] [--budget 20000]
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytorch_lightning as pl
import ray
import torch
import yaml

from lightning_rl.cli import RLCLI
from lightning_rl.data import TransitionPipeline, VectorCollector
from lightning_rl.data.actors import RayActorPool, RaySettings
from lightning_rl.datamodules import OffPolicyDataModule
from lightning_rl.envs import make_vector_env
from lightning_rl.policies import DQN

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TASK_VECTOR_STEPS = 16


class Latency(gym.Wrapper):
    """An env whose every step takes ``latency_s`` more, outside Python."""

    def __init__(self, env: gym.Env, latency_s: float):
        super().__init__(env)
        self.latency_s = latency_s

    def step(self, action):
        time.sleep(self.latency_s)
        return self.env.step(action)


def cartpole(latency_s: float) -> gym.Env:
    env = gym.make("CartPole-v1")
    return Latency(env, latency_s) if latency_s else env


def in_process_rate(make_envs: Any, policy: DQN, seconds: float) -> float:
    pipeline = TransitionPipeline(VectorCollector(make_envs()), nstep=3)
    pipeline.reset(seed=0)

    def act(obs: torch.Tensor) -> torch.Tensor:
        return policy.act(obs, mode="collect", env_steps=0)

    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        pipeline.step(act)
        steps += pipeline.collector.env.num_envs
    pipeline.collector.env.close()
    return steps / (time.perf_counter() - start)


def ray_rate(make_envs: Any, policy: DQN, n_actors: int, n_envs: int, seconds: float) -> float:
    pool = RayActorPool(
        RaySettings(n_actors=n_actors),
        policy,
        lambda actor: {"make_envs": make_envs, "seed": actor, "nstep": 3},
        lambda actor: ("transitions", (TASK_VECTOR_STEPS, 0)),
    )
    pool.start()
    while min(pool.results) == 0:  # start-up: every actor has built its envs and delivered once
        pool.submit(pool.next_result().actor)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        result = pool.next_result()
        steps += result.vector_steps * n_envs
        pool.submit(result.actor)
    rate = steps / (time.perf_counter() - start)
    pool.close()
    return rate


class SteadyState(pl.Callback):
    """Time, updates and env steps at the first and the last update of a fit."""

    def __init__(self):
        self.first: tuple[float, int, int] | None = None
        self.last: tuple[float, int, int] | None = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: Any, *args: Any) -> None:
        mark = (time.perf_counter(), pl_module.train_iter, trainer.datamodule.env_steps)
        self.first = self.first or mark
        self.last = mark

    def rates(self) -> tuple[float, float]:
        """Updates and env steps per second between the first and the last update."""
        seconds = self.last[0] - self.first[0]
        return (self.last[1] - self.first[1]) / seconds, (self.last[2] - self.first[2]) / seconds


def fit(config: str, budget: int, **overrides: Any) -> dict[str, float]:
    """A fit over ``budget`` env steps, evaluated once at the end: its wall time and steady-state rates."""
    settings = yaml.safe_load((CONFIGS / config).read_text())
    overrides = {
        "trainer.logger": False,
        "trainer.enable_progress_bar": False,
        "trainer.enable_checkpointing": False,
        "data.init_args.max_env_steps": budget,
        "evaluator.eval_interval": 10**9,
        "evaluator.stop_value": None,
        "evaluator.n_episodes": 1,
        "evaluator.save_best": False,
        **overrides,
    }
    for dotted, value in overrides.items():  # "data.init_args.ray" -> settings["data"]["init_args"]["ray"]
        *parents, key = dotted.split(".")
        functools.reduce(lambda section, name: section.setdefault(name, {}), parents, settings)[key] = value
    steady = SteadyState()
    with tempfile.TemporaryDirectory() as root:
        path = Path(root) / "config.yaml"
        path.write_text(yaml.safe_dump(settings))
        cli = RLCLI(args=["--config", str(path), f"--trainer.default_root_dir={root}"], run=False)
        cli.trainer.callbacks.append(steady)
        start = time.perf_counter()
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        wall_s = time.perf_counter() - start
    updates_per_s, steps_per_s = steady.rates()
    return {"wall_s": wall_s, "updates_per_s": updates_per_s, "steps_per_s": steps_per_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="steady-state time per collection cell")
    parser.add_argument("--latency-ms", type=float, default=2.0)
    parser.add_argument("--envs", type=int, default=4, help="envs per actor (and in process)")
    parser.add_argument("--actors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--budget", type=int, default=20_000, help="env steps per learner fit")
    args = parser.parse_args()
    for name in ("pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    # CPUs for the largest pool: an actor reserves one, and a sleeping env leaves its core idle anyway
    ray.init(
        num_cpus=max(max(args.actors), os.cpu_count() or 1), include_dashboard=False, log_to_driver=False
    )
    policy = DQN(env_spec=OffPolicyDataModule(env_id="CartPole-v1").env_spec).requires_grad_(False)

    print(f"collection: env steps/s, {args.envs} envs per collector, {args.seconds:g} s per cell")
    for latency_ms in (0.0, args.latency_ms):
        make = functools.partial(cartpole, latency_ms / 1000)
        make_envs = functools.partial(make_vector_env, make, args.envs)
        local = in_process_rate(make_envs, policy, args.seconds)
        rates = {n: ray_rate(make_envs, policy, n, args.envs, args.seconds) for n in args.actors}
        name = "CartPole-v1" if not latency_ms else f"CartPole-v1 + {latency_ms:g} ms/step"
        cells = " | ".join(
            f"{n} actor{'s' * (n > 1)} {rate:7.0f} ({rate / rates[1]:.2f}x)" for n, rate in rates.items()
        )
        print(f"  {name:<26} in-process {local:7.0f} | {cells}   (ratio to 1 actor)", flush=True)

    print(f"learners: {args.budget}-env-step fits on CartPole-v1, in-process vs 1 Ray actor (steady state)")
    one_actor = {"data.init_args.ray": {"n_actors": 1}}
    for local_config, ray_config in (
        ("cartpole_dqn.yaml", "cartpole_apex_dqn.yaml"),
        ("cartpole_impala.yaml", "cartpole_impala_ray.yaml"),
    ):
        runs = {
            "in-process": fit(local_config, args.budget),
            "1 Ray actor": fit(ray_config, args.budget, **one_actor),
        }
        cells = " | ".join(
            f"{name} {r['updates_per_s']:5.0f} updates/s {r['steps_per_s']:6.0f} env steps/s "
            f"(fit {r['wall_s']:.1f} s)"
            for name, r in runs.items()
        )
        speed = runs["1 Ray actor"]["steps_per_s"] / runs["in-process"]["steps_per_s"]
        print(
            f"  {local_config} vs {ray_config}: {cells}   Ray / in-process env steps/s: {speed:.2f}x",
            flush=True,
        )
    ray.shutdown()


if __name__ == "__main__":
    main()
