"""``lightning-rl plot``: learning curves from CSV logs, runs grouped into mean +- std bands."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
import yaml
from cli_utils import short_run_args

from lightning_rl.cli import RLCLI, main
from lightning_rl.plot import _group_runs, load_curves, plot_groups


def fake_run(root, name: str, seed: int, policy: str = "DQN") -> None:
    """A run directory as the CLI writes it: metrics.csv (eval and training returns, other columns and
    empty cells in between) and config.yaml."""
    run = root / name / "csv" / "version_0"
    run.mkdir(parents=True)
    rows = ["env_steps,train/loss,eval/return_mean,collect/return_mean"]
    for step in range(1000, 11000, 1000):
        rows.append(f"{step},0.5,,{20 + step / 500 + seed}")
        rows.append(f"{step},,{step / 50 + 10 * seed},")
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    config = {
        "model": {"class_path": f"lightning_rl.policies.{policy}"},
        "data": {"init_args": {"env_id": "CartPole-v1"}},
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config))


def test_curves_skip_empty_cells_and_keep_their_env_steps(tmp_path):
    fake_run(tmp_path, "a", seed=1)
    curves = load_curves(tmp_path / "a" / "csv" / "version_0" / "metrics.csv")
    xs, ys = curves["eval/return_mean"]
    assert xs.tolist() == list(range(1000, 11000, 1000)) and ys[0] == pytest.approx(30.0)
    assert curves["collect/return_mean"][1][-1] == pytest.approx(20 + 20 + 1)


def test_seeds_of_one_config_make_one_band_and_names_make_groups(tmp_path):
    for seed in range(3):
        fake_run(tmp_path, f"dqn{seed}", seed)
    fake_run(tmp_path, "ppo0", 0, policy="PPO")
    groups = _group_runs([str(tmp_path / f"dqn{s}") for s in range(3)] + [f"mine={tmp_path / 'ppo0'}"])
    assert {name: len(paths) for name, paths in groups.items()} == {"DQN CartPole-v1": 3, "mine": 1}
    fig = plot_groups(groups, tmp_path / "out" / "returns.png")
    eval_axis = fig.axes[0]
    (mean_line, _) = eval_axis.get_lines()
    assert np.allclose(mean_line.get_ydata()[[0, -1]], [1000 / 50 + 10, 10000 / 50 + 10])  # seeds' mean
    bands = eval_axis.collections
    assert len(bands) == 2  # one mean +- std band per group (one run: zero width)
    vertices = bands[0].get_paths()[0].vertices
    at_start = vertices[np.isclose(vertices[:, 0], 1000.0), 1]
    assert at_start.max() - at_start.min() == pytest.approx(2 * 10 * np.std([0, 1, 2]))  # mean +- std
    image = matplotlib.image.imread(tmp_path / "out" / "returns.png")
    assert image.shape[:2] == (400, 1200) and image[..., :3].std() > 0.05  # a real plot, not a blank


def test_a_real_run_plots_from_the_command_line(tmp_path, capsys):
    RLCLI(args=short_run_args(tmp_path / "run", max_steps=120))
    out = tmp_path / "curves.png"
    main(["plot", str(tmp_path / "run"), "--out", str(out)])
    assert "1 group, 1 run" in capsys.readouterr().out
    assert matplotlib.image.imread(out).shape[2] == 4


def test_a_directory_without_logs_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["plot", str(tmp_path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: no metrics.csv under {str(tmp_path)!r} (a run's CSV log: <root>/csv/version_N/)"
    ]
