"""The fixed-time baseline: every intersection cycles through its green phases on a fixed timer.

With the defaults it replays the static program netgenerate wrote into the shipped network (42 s green +
3 s yellow per direction, a 90 s cycle), through the env's own switching, so it is measured exactly as a
learned controller is::

    python -m app_zoo.sumo.baseline                  # mean waiting time over seeds 20000-20009
    python -m app_zoo.sumo.baseline --phase-seconds 30 --episodes 20
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import numpy as np

from app_zoo.sumo.envs import TrafficSignalEnv
from app_zoo.sumo.rollout import mean_waiting_time, run_episodes

EVAL_SEED = 20_000  # held out: training evaluates on 10000+, so neither controller was selected on these


class FixedTimeController:
    """Switches every intersection to its next green phase every ``phase_seconds`` (yellow included).

    Args:
        env: the env it will drive (for ``delta_t``, ``yellow_time``, ``min_green`` and the phases).
        phase_seconds: duration of each phase, yellow included; a multiple of ``delta_t`` whose green
            part (``phase_seconds - yellow_time``) is at least ``min_green``.
    """

    def __init__(self, env: TrafficSignalEnv, phase_seconds: int = 45) -> None:
        sim = env.unwrapped
        if phase_seconds % sim.delta_t or phase_seconds - sim.yellow_time < sim.min_green:
            raise ValueError(
                f"phase_seconds must be a multiple of delta_t ({sim.delta_t}) and at least "
                f"min_green + yellow_time ({sim.min_green + sim.yellow_time}), got {phase_seconds}"
            )
        self.steps_per_phase = phase_seconds // sim.delta_t
        self._n_phases = [tl.n_phases for tl in sim.lights]
        self._encode = sim.encode_action
        self._step = 0

    def reset(self) -> None:
        self._step = 0

    def __call__(self, obs: np.ndarray) -> int:
        cycle = self._step // self.steps_per_phase  # a switch every steps_per_phase decisions
        self._step += 1
        return self._encode([cycle % n for n in self._n_phases])


def evaluate_fixed_time(
    seeds: list[int], phase_seconds: int = 45, env_cfg: Mapping[str, Any] | None = None
) -> float:
    """Mean waiting time per vehicle (s) of the fixed-time controller over ``seeds``."""
    controller = FixedTimeController(TrafficSignalEnv(env_cfg), phase_seconds)  # no SUMO runs before reset
    return mean_waiting_time(run_episodes(controller, seeds, env_cfg))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--phase-seconds", type=int, default=45, help="phase duration, yellow included")
    parser.add_argument("--episodes", type=int, default=10, help="episodes, seeds --seed, --seed + 1, ...")
    parser.add_argument("--seed", type=int, default=EVAL_SEED, help="first seed")
    args = parser.parse_args(argv)
    seeds = list(range(args.seed, args.seed + args.episodes))
    try:
        result = evaluate_fixed_time(seeds, args.phase_seconds)
    except ValueError as err:
        parser.error(str(err))
    print(
        f"fixed-time ({args.phase_seconds} s phases), seeds {seeds[0]}-{seeds[-1]}: "
        f"mean waiting time {result:.2f} s/vehicle"
    )


if __name__ == "__main__":
    main()
