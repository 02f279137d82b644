"""Connect four: the league (PFSP, configs/connect_four_league.yaml) against uniform self-play
(configs/connect_four_selfplay.yaml) at equal env steps, over seeds.

Each run trains PPO with its config's callback; then its final policy plays ``--games`` games (its seat
alternating) against the random player, deterministically, and against its own first snapshot, both
sampling their moves (two deterministic players would play two distinct games only). Then every final
policy and the random player meet in a round robin (``--tournament-games`` per pair, sampling their
moves, seats alternating) and one Bradley-Terry fit turns the results into Elo (random = 1000). Printed:
a table per run and each kind's mean Elo; written: ``--out``/league_elo.png (each run's Elo in its own
league over env steps) and ``--out``/league_benchmark.json.

    python benchmarks/league.py [--seeds 0 1 2] [--env-steps 800000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import multiprocessing
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from solve_race import quiet_lightning

from lightning_rl.callbacks import LeagueCallback, PolicyOpponent
from lightning_rl.cli import RLCLI
from lightning_rl.envs import play_games
from lightning_rl.policies import PPO

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
KINDS = {"pfsp": CONFIGS / "connect_four_league.yaml", "uniform": CONFIGS / "connect_four_selfplay.yaml"}
GAME = "connect_four_v3"


def play(policy: Any, opponent: Any, games: int, mode: str, seed: int) -> dict[str, float]:
    """``policy`` against ``opponent`` (``None``: random moves): win, draw and loss rates of ``policy``."""
    generator = torch.Generator().manual_seed(seed)
    player = PolicyOpponent(policy, mode, 10**9, generator)
    rival = None if opponent is None else PolicyOpponent(opponent, mode, 10**9, generator)
    outcomes = [result.outcome for result in play_games(player, GAME, games, rival, seed)]
    return {k: outcomes.count(k) / len(outcomes) for k in ("win", "draw", "loss")}


def train(kind: str, seed: int, env_steps: int, games: int) -> dict[str, Any]:
    """One run: its final weights, first snapshot, Elo history and evaluation."""
    quiet_lightning()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as root:
        cli = RLCLI(
            args=[
                "fit",
                "--config",
                str(KINDS[kind]),
                f"--seed_everything={seed}",
                f"--data.init_args.seed={seed}",
                f"--data.init_args.max_env_steps={env_steps}",
                "--evaluator.n_episodes=20",
                "--trainer.logger=false",
                "--trainer.enable_progress_bar=false",
                "--trainer.enable_checkpointing=false",
                f"--trainer.default_root_dir={root}",
            ]
        )
    callback = next(c for c in cli.trainer.callbacks if isinstance(c, LeagueCallback))
    policy = cli.model.cpu().eval()
    first = copy.deepcopy(policy)
    first.load_state_dict(callback.league.players["historical_0"].weights)
    return {
        "kind": kind,
        "seed": seed,
        "env_steps": cli.datamodule.env_steps,
        "weights": {k: v.cpu() for k, v in policy.state_dict().items()},
        # the network as the config built it (encoder, widths), without the CLI's own entries
        "hparams": {k: v for k, v in policy.hparams.items() if not k.startswith("_")},
        "history": [(row["env_steps"], row["elo"]["main_0"]) for row in callback.history],
        "snapshots": len(callback.league.of_role("historical")),
        "vs_random": play(policy, None, games, "eval", seed),
        "vs_first": play(policy, first, games, "collect", seed),  # both deterministic: two games only
    }


def bradley_terry_elo(wins: np.ndarray, iterations: int = 500) -> np.ndarray:
    """Elo (first player at 1000) from ``wins[i, j]`` (i's wins over j, a draw half each), by the MM
    algorithm for Bradley-Terry strengths."""
    games = wins + wins.T
    strength = np.ones(len(wins))
    for _ in range(iterations):
        pair = games / (strength[:, None] + strength[None, :])
        np.fill_diagonal(pair, 0.0)
        strength = np.maximum(wins.sum(1), 1e-3) / pair.sum(1)
        strength /= strength[0]
    return 1000.0 + 400.0 * np.log10(strength)


def tournament(runs: list[dict[str, Any]], games: int) -> np.ndarray:
    """Elo of the random player (first) and every run's final policy."""
    policies = [None]
    for run in runs:
        policy = PPO(**run["hparams"]).eval()
        policy.load_state_dict(run["weights"])
        policies.append(policy)
    wins = np.zeros((len(policies), len(policies)))
    for i, j in itertools.combinations(range(len(policies)), 2):
        home, away = (i, j) if policies[i] is not None else (j, i)  # the random player never moves first
        rates = play(policies[home], policies[away], games, "collect", seed=100 * i + j)
        wins[home, away] += games * (rates["win"] + rates["draw"] / 2)
        wins[away, home] += games * (rates["loss"] + rates["draw"] / 2)
    return bradley_terry_elo(wins)


def elo_difference(pfsp: list[float], uniform: list[float]) -> str:
    """The difference of the mean Elos and its standard error over the seeds (Welch's: each kind's own
    variance), the yardstick for the sign: the seeds of one kind spread more than the tournament's games."""
    difference = statistics.mean(pfsp) - statistics.mean(uniform)
    if min(len(pfsp), len(uniform)) < 2:
        return f"{difference:+.0f} Elo (one seed: no standard error)"
    error = (statistics.variance(pfsp) / len(pfsp) + statistics.variance(uniform) / len(uniform)) ** 0.5
    return f"{difference:+.0f} Elo, standard error over seeds {error:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--env-steps", type=int, default=800_000)
    parser.add_argument("--games", type=int, default=200)
    parser.add_argument("--tournament-games", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/league_benchmark"))
    args = parser.parse_args()
    jobs = [(kind, seed, args.env_steps, args.games) for kind in KINDS for seed in args.seeds]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        runs = pool.starmap(train, jobs)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(runs, args.out / "runs.pt")  # the trained runs, kept should the tournament fail
    for run in runs:
        print(f"{run['kind']} seed {run['seed']}: vs random {run['vs_random']}, vs first {run['vs_first']}")
    elo = tournament(runs, args.tournament_games)
    print(f"connect four, {args.env_steps} env steps per run; {args.games} games per evaluation")
    print(
        "| matchmaking | seed | snapshots | vs random: win / draw / loss | vs first snapshot: win / draw / "
        "loss | tournament Elo |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for run, rating in zip(runs, elo[1:], strict=True):
        r, f = run["vs_random"], run["vs_first"]
        print(
            f"| {run['kind']} | {run['seed']} | {run['snapshots']} | {r['win']:.2f} / {r['draw']:.2f} / "
            f"{r['loss']:.2f} | {f['win']:.2f} / {f['draw']:.2f} / {f['loss']:.2f} | {rating:.0f} |"
        )
    by_kind = {
        kind: [e for run, e in zip(runs, elo[1:], strict=True) if run["kind"] == kind] for kind in KINDS
    }
    print(
        "random player: 1000; mean Elo: "
        + ", ".join(f"{k} {statistics.mean(v):.0f}" for k, v in by_kind.items())
    )
    print(f"PFSP - uniform self-play: {elo_difference(by_kind['pfsp'], by_kind['uniform'])}")
    args.out.mkdir(parents=True, exist_ok=True)
    _plot(runs, args.out / "league_elo.png")
    summary = [
        {k: v for k, v in run.items() if k != "weights"} | {"elo": float(e)}
        for run, e in zip(runs, elo[1:], strict=True)
    ]
    (args.out / "league_benchmark.json").write_text(json.dumps(summary, indent=1))


def _plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for run in runs:
        steps, elo = zip(*run["history"], strict=True)
        ax.plot(
            steps,
            elo,
            color="C0" if run["kind"] == "pfsp" else "C1",
            label=f"{run['kind']} seed {run['seed']}",
        )
    ax.set_xlabel("env steps")
    ax.set_ylabel("Elo in its own league")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
