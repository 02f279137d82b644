"""``lightning-rl plot RUN_DIR [RUN_DIR ...]``: learning curves (return against env steps) from runs' CSV
logs, runs grouped into mean +- std over seeds, several groups in one figure, evaluation and training
curves side by side.

A run is a directory holding a ``metrics.csv`` (the CSV logger's ``<root>/csv/version_N``, or any
directory above it: every ``metrics.csv`` below counts as one run). ``NAME=DIR`` puts its runs in group
``NAME``; the others are grouped by what their ``config.yaml`` trains (``DQN CartPole-v1``): the seeds
of one config make one group. Each group's runs are interpolated onto one grid of env steps, from the
latest first point to the earliest last one.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from lightning_rl.errors import ReportedError

__all__ = ["load_curves", "main", "plot_groups"]

CURVES = {"eval/return_mean": "evaluation return", "collect/return_mean": "training return"}
GRID_POINTS = 100


class PlotError(ReportedError):
    """Nothing to plot where the user pointed (exit status 2)."""

    exit_code = 2


def load_curves(metrics_csv: Path, x: str = "env_steps") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{metric: (x (N,), y (N,))}`` of the :data:`CURVES` a CSV log holds, rows without a value skipped."""
    columns: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            if not row.get(x):
                continue
            for metric in CURVES:
                value = row.get(metric)
                if value not in (None, "") and math.isfinite(float(value)):
                    columns[metric][0].append(float(row[x]))
                    columns[metric][1].append(float(value))
    return {metric: (np.asarray(xs), np.asarray(ys)) for metric, (xs, ys) in columns.items() if xs}


def _group_runs(specs: list[str]) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = defaultdict(list)
    for spec in specs:
        name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        found = sorted(Path(path).rglob("metrics.csv"))
        if not found:
            raise PlotError(f"no metrics.csv under {path!r} (a run's CSV log: <root>/csv/version_N/)")
        for metrics in found:
            groups[name or _what_it_trains(metrics.parent)].append(metrics)
    return dict(groups)


def _what_it_trains(run: Path) -> str:
    """``"<policy class> <env id>"`` from the run's ``config.yaml``; else the run directory's path."""
    config_file = run / "config.yaml"
    if not config_file.exists():
        return str(run)
    config = yaml.safe_load(config_file.read_text()) or {}
    model, data = config.get("model") or {}, (config.get("data") or {}).get("init_args") or {}
    policy = str(model.get("class_path", "policy")).rpartition(".")[2]
    return f"{policy} {data.get('env_id') or data.get('env_fn') or 'env'}"


def plot_groups(groups: dict[str, list[Path]], out: Path, x: str = "env_steps"):
    """One figure with a panel per curve (:data:`CURVES`) and per group its mean +- std over runs;
    written to ``out`` (PNG). Returns the matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loaded = {name: [load_curves(path, x) for path in paths] for name, paths in groups.items()}
    metrics = [m for m in CURVES if any(m in run for runs in loaded.values() for run in runs)]
    if not metrics:
        raise PlotError(f"the runs log none of {list(CURVES)} against {x}")
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        for color, (name, runs) in enumerate(loaded.items()):
            curves = [run[metric] for run in runs if metric in run]
            if not curves:
                continue
            end = min(xs[-1] for xs, _ in curves)
            grid = np.linspace(max(xs[0] for xs, _ in curves), end, GRID_POINTS)
            ys = np.stack([np.interp(grid, xs, y) for xs, y in curves])
            mean, std = ys.mean(0), ys.std(0)
            ax.plot(
                grid, mean, color=f"C{color}", label=f"{name} ({len(curves)} run{'s' * (len(curves) > 1)})"
            )
            ax.fill_between(grid, mean - std, mean + std, color=f"C{color}", alpha=0.25, linewidth=0)
        ax.set_xlabel(x.replace("_", " "))
        ax.set_ylabel(CURVES[metric])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return fig


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="lightning-rl plot", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="[NAME=]RUN_DIR", help="run directories (CSV logs)")
    parser.add_argument("--out", type=Path, default=Path("returns.png"), help="the PNG to write")
    parser.add_argument("--x", default="env_steps", help="the x-axis column (env_steps, train_iter)")
    args = parser.parse_args(argv)
    groups = _group_runs(args.runs)
    plot_groups(groups, args.out, args.x)
    runs = sum(len(paths) for paths in groups.values())
    print(f"{args.out}: {len(groups)} group{'s' * (len(groups) > 1)}, {runs} run{'s' * (runs > 1)}")
