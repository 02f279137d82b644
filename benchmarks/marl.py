"""Cooperative multi-agent baselines: team return of each policy on each task at equal env steps.

Tasks: MPE simple_spread (3 agents) with discrete actions (QMIX, IQL, COMA, IA2C, IPPO) and with continuous
actions (ATOC, IDDPG), and Level-Based Foraging (8x8, 2 players, 2 foods, cooperative; the discrete-action
policies). For each task and policy ``serial_pipeline`` trains the shipped config on each seed:
``app_zoo/mpe/configs/simple_spread_<policy>.yaml``,
``app_zoo/mpe/configs/simple_spread_continuous_<policy>.yaml`` and
``app_zoo/lbforaging/configs/lbf_8x8_2p_2f_coop_<policy>.yaml`` (one env-step budget per task). The figure
is the final 20-episode deterministic evaluation's mean team return. Printed: a task x policy table of
mean +- std over the seeds, and each policy against the independent baseline it must beat (QMIX vs IQL,
COMA vs IA2C, ATOC vs IDDPG).

    python benchmarks/marl.py [--seeds 0 1 2] [--tasks simple_spread lbf] [--policies qmix iql]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from solve_race import quiet_fit, quiet_lightning

ZOO = Path(__file__).resolve().parents[1] / "app_zoo"
DISCRETE = ["qmix", "iql", "coma", "ia2c", "ippo"]
TASKS = {  # task: (config path pattern, the policies it is run with)
    "simple_spread": (ZOO / "mpe" / "configs" / "simple_spread_{}.yaml", DISCRETE),
    "simple_spread_continuous": (
        ZOO / "mpe" / "configs" / "simple_spread_continuous_{}.yaml",
        ["atoc", "iddpg"],
    ),
    "lbf": (ZOO / "lbforaging" / "configs" / "lbf_8x8_2p_2f_coop_{}.yaml", DISCRETE),
}
POLICIES = [*DISCRETE, "atoc", "iddpg"]
BASELINES = {
    "qmix": "iql",
    "coma": "ia2c",
    "atoc": "iddpg",
}  # each policy and the independent learner it must beat


def final_return(config: Path, seed: int) -> tuple[float, int, float]:
    """(final eval mean team return, env steps, wall time s) of one seeded run."""
    result = quiet_fit(config, seed)
    return result["eval_return_mean"], result["env_steps"], result["wall_time_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--policies", nargs="+", default=POLICIES, choices=POLICIES)
    args = parser.parse_args()
    quiet_lightning()
    results: dict[tuple[str, str], list[float]] = {}
    for task in args.tasks:
        pattern, runs_with = TASKS[task]
        for policy in (p for p in args.policies if p in runs_with):
            returns = []
            for seed in args.seeds:
                value, steps, seconds = final_return(Path(str(pattern).format(policy)), seed)
                returns.append(value)
                print(
                    f"{task} {policy} seed {seed}: return {value:.2f} at {steps} env steps ({seconds:.0f} s)"
                )
            results[task, policy] = returns

    print(f"\nteam return, mean +- std over seeds {args.seeds} (final 20-episode eval)")
    print(f"{'task':<26}" + "".join(f"{p:>18}" for p in args.policies))
    for task in args.tasks:
        cells = []
        for policy in args.policies:
            values = results.get((task, policy))
            if values is None:
                cells.append(f"{'-':>18}")
                continue
            std = statistics.pstdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.mean(values):>10.2f} +- {std:<5.2f}")
        print(f"{task:<26}" + "".join(cells))
    for task in args.tasks:
        for policy, baseline in BASELINES.items():
            if (task, policy) in results and (task, baseline) in results:
                mine, theirs = (
                    statistics.mean(results[task, policy]),
                    statistics.mean(results[task, baseline]),
                )
                verdict = "beats" if mine > theirs else "does NOT beat"
                print(f"{task}: {policy} ({mine:.2f}) {verdict} {baseline} ({theirs:.2f})")


if __name__ == "__main__":
    main()
