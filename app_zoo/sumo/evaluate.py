"""A trained policy against the fixed-time baseline, on the same seeds (the same traffic)::

    python -m app_zoo.sumo.evaluate --ckpt runs/csv/version_0/checkpoints/best.ckpt

The env settings (``data.init_args.env_kwargs``) and the policy class (``model.class_path``) come from
the training config (``--config``, default ``app_zoo/sumo/configs/grid2x2_dqn.yaml``). Prints, for each
controller, the mean waiting time per vehicle (s; averaged over the episodes), the vehicles that entered
the network and those still waiting to be inserted at the horizon (a backlog the waiting time does not
count, so it should be about 0 for both).
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from app_zoo.sumo.baseline import EVAL_SEED, FixedTimeController
from app_zoo.sumo.envs import TrafficSignalEnv
from app_zoo.sumo.rollout import EpisodeResult, mean_waiting_time, run_episodes
from lightning_rl.policies.base import RLPolicy

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "grid2x2_dqn.yaml"


class PolicyController:
    """A trained policy's deterministic action (``policy.act(obs, mode="eval")``) for one env."""

    def __init__(self, policy: RLPolicy) -> None:
        self.policy = policy.eval()

    def reset(self) -> None:
        """Stateless: nothing to reset."""

    def __call__(self, obs: np.ndarray) -> int:
        with torch.no_grad():
            return int(self.policy.act(torch.as_tensor(obs).unsqueeze(0), mode="eval")[0])


def read_config(config_path: str | Path) -> tuple[type[RLPolicy], dict[str, Any]]:
    """The policy class and the env kwargs of a training config."""
    config = yaml.safe_load(Path(config_path).read_text())
    module_name, _, class_name = config["model"]["class_path"].rpartition(".")
    policy_class = getattr(importlib.import_module(module_name), class_name)
    return policy_class, dict(config["data"]["init_args"].get("env_kwargs") or {})


def compare(
    ckpt_path: str | Path,
    seeds: list[int],
    config_path: str | Path = DEFAULT_CONFIG,
    phase_seconds: int = 45,
) -> dict[str, list[EpisodeResult]]:
    """Episodes of the checkpoint's policy and of the fixed-time controller on ``seeds``."""
    policy_class, env_cfg = read_config(config_path)
    policy = policy_class.load_from_checkpoint(ckpt_path, map_location="cpu")
    fixed_time = FixedTimeController(TrafficSignalEnv(env_cfg), phase_seconds)
    return {
        f"fixed time ({phase_seconds} s phases)": run_episodes(fixed_time, seeds, env_cfg),
        policy_class.__name__: run_episodes(PolicyController(policy), seeds, env_cfg),
    }


def format_table(results: Mapping[str, list[EpisodeResult]]) -> str:
    lines = [f"{'controller':<26} {'mean waiting time (s/veh)':>26} {'vehicles':>9} {'pending':>8}"]
    for name, episodes in results.items():
        vehicles = np.mean([e.vehicles for e in episodes])
        pending = np.mean([e.pending for e in episodes])
        lines.append(f"{name:<26} {mean_waiting_time(episodes):>26.2f} {vehicles:>9.1f} {pending:>8.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", required=True, help="a checkpoint written by lightning-rl fit")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="the training config")
    parser.add_argument("--episodes", type=int, default=10, help="episodes, seeds --seed, --seed + 1, ...")
    parser.add_argument("--seed", type=int, default=EVAL_SEED, help="first seed")
    parser.add_argument("--phase-seconds", type=int, default=45, help="fixed-time phase, yellow included")
    args = parser.parse_args(argv)
    seeds = list(range(args.seed, args.seed + args.episodes))
    results = compare(args.ckpt, seeds, args.config, args.phase_seconds)
    print(f"{len(seeds)} episodes, seeds {seeds[0]}-{seeds[-1]}")
    print(format_table(results))


if __name__ == "__main__":
    main()
