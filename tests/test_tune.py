"""``lightning-rl tune``: the search space's errors, the objective, and a 6-trial CartPole DQN study that
prunes, writes a best config that trains from ``fit``, and continues from its SQLite storage."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from cli_utils import CONFIG, REPO

from lightning_rl.cli import main
from lightning_rl.tune import budget_mean, load_space
from lightning_rl.utils.checks import ConfigError

SPACE = str(REPO / "configs" / "tune" / "cartpole_dqn.yaml")
# short trials: 3000 env steps, an evaluation of 3 episodes every 40 updates
SHORT = [
    "--data.init_args.max_env_steps=3000",
    "--data.init_args.learning_starts=500",
    "--evaluator.eval_interval=40",
    "--evaluator.n_episodes=3",
    "--trainer.logger=false",
]


@pytest.mark.parametrize(
    ("space", "line"),
    [
        (
            "lr: {type: floaty, low: 1, high: 2}",
            "space.lr.type: got 'floaty'; allowed: 'float', 'int', 'categorical'",
        ),
        ("lr: {type: float, low: 1, high: 2, lg: true}", "space.lr: unknown keys ['lg']; allowed for float"),
        ("lr: {type: float, low: 2, high: 1}", "space.lr: low must be < high, got 2.0 and 1.0"),
        (
            "lr: {type: float, low: 0, high: 1, log: true}",
            "space.lr.low: got 0.0; allowed: > 0 with log: true",
        ),
        ("n: {type: int, low: 1.5, high: 4}", "space.n.low: got 1.5; allowed: an int"),
        ("b: {type: categorical, choices: []}", "space.b.choices: got []; allowed: a non-empty list"),
        ("[1, 2]", "must map dotted config keys to distributions"),
    ],
)
def test_a_bad_search_space_is_one_line_naming_the_entry(tmp_path, space, line):
    path = tmp_path / "space.yaml"
    path.write_text(space)
    with pytest.raises(ConfigError) as error:
        load_space(path)
    assert line in str(error.value)


def test_a_bad_space_exits_2_before_any_trial(tmp_path, capsys):
    path = tmp_path / "space.yaml"
    path.write_text("model.init_args.lr: {type: float}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "tune",
                "--config",
                CONFIG,
                "--space",
                str(path),
                "--n-trials",
                "2",
                "--out",
                str(tmp_path / "s"),
            ]
        )
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr().err.strip() == "error: space.model.init_args.lr.low: got None; allowed: a float"
    )
    assert not (tmp_path / "s").exists()


def test_the_objective_holds_each_return_until_the_next_evaluation_and_the_last_to_the_budget():
    # 10 over [1000, 2000), 100 over [2000, 3000), 500 over [3000, 6000): (10k + 100k + 1.5M) / 5000
    assert budget_mean([10.0, 100.0, 500.0], [1000, 2000, 3000], 6000) == pytest.approx(322.0)
    assert budget_mean([10.0, 100.0, 500.0], [1000, 2000, 3000], None) == pytest.approx(610.0 / 3)
    assert budget_mean([7.0], [3000], 3000) == 7.0  # one evaluation, at the budget's end


def test_a_six_trial_study_prunes_writes_a_best_config_that_trains_and_continues(tmp_path, capsys):
    out = tmp_path / "study"
    tune = ["tune", "--config", CONFIG, "--space", SPACE, "--out", str(out), "--startup-trials", "2", *SHORT]
    main([*tune, "--n-trials", "6"])
    printed = capsys.readouterr().out
    with open(out / "trials.csv") as f:
        trials = list(csv.DictReader(f))
    states = [t["state"] for t in trials]
    assert len(trials) == 6 and "PRUNED" in states and "COMPLETE" in states, states
    assert f"study study: 6 trials ({states.count('COMPLETE')} complete" in printed
    best = json.loads((out / "best.json").read_text())
    complete = [float(t["value"]) for t in trials if t["state"] == "COMPLETE"]
    assert best["value"] == max(complete) and set(best["params"]) == set(
        yaml.safe_load(Path(SPACE).read_text())
    )
    config = yaml.safe_load((out / "best_config.yaml").read_text())
    for key, value in best["params"].items():  # the best trial's values, in the whole config
        section, _, field = key.partition(".init_args.")
        assert config[section]["init_args"][field] == value
    assert "default_root_dir" not in config["trainer"]  # a fit from it does not write into the trial
    # the best config trains from fit
    main(["fit", "--config", str(out / "best_config.yaml"), f"--trainer.default_root_dir={tmp_path / 'fit'}"])
    result = json.loads((tmp_path / "fit" / "result.json").read_text())
    assert result["env_steps"] >= 1 and result["eval_return_mean"] is not None
    # the same command with more trials continues the study in study.db
    main([*tune, "--n-trials", "7"])
    with open(out / "trials.csv") as f:
        assert [t["number"] for t in csv.DictReader(f)] == [str(n) for n in range(7)]
