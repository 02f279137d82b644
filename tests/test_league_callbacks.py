"""LeagueCallback and SelfPlayCallback through the CLI on tic-tac-toe: snapshots, results, files, the
config errors, and a resumed run that continues the same league (payoff, players, snapshots, ratings)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import yaml

from lightning_rl.callbacks import LeagueCallback, PolicyOpponent
from lightning_rl.cli import RLCLI
from lightning_rl.envs import play_games

REPO = Path(__file__).resolve().parents[1]


def tictactoe_config(tmp_path: Path, callback: dict, env_steps: int) -> str:
    """The connect-four league config cut to a few thousand tic-tac-toe steps, with ``callback``."""
    config = yaml.safe_load((REPO / "configs" / "connect_four_league.yaml").read_text())
    config["trainer"]["callbacks"] = [callback]
    config["data"]["init_args"].update(
        env_id="tictactoe_v3", n_envs=4, n_steps=32, batch_size=64, n_epochs=2, max_env_steps=env_steps
    )
    config["model"]["init_args"]["hidden_sizes"] = [32]
    config["evaluator"] = {"eval_interval": 1000, "n_episodes": 4}
    path = tmp_path / f"tictactoe_{env_steps}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


LEAGUE = {
    "class_path": "lightning_rl.callbacks.LeagueCallback",
    "init_args": {"min_snapshot_steps": 500, "max_snapshot_steps": 1000, "log_interval": 500, "min_games": 2},
}


def fit_args(config: str, root: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "--config",
        config,
        f"--trainer.default_root_dir={root}",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        *extra,
    ]


def league_of(cli: RLCLI) -> LeagueCallback:
    return next(cb for cb in cli.trainer.callbacks if isinstance(cb, LeagueCallback))


def test_a_league_run_snapshots_matches_records_and_writes_its_files(tmp_path):
    cli = RLCLI(args=fit_args(tictactoe_config(tmp_path, LEAGUE, 3000), tmp_path))
    callback = league_of(cli)
    players = callback.league.players
    assert {"main_0", "random", "historical_0", "historical_1"} <= set(players)
    assert players["historical_0"].parent_id == "main_0" and players["random"].parent_id is None
    # every snapshot holds the policy's weights of when it was frozen, within the max interval
    assert set(players["historical_0"].weights) == set(cli.model.state_dict())
    frozen = sorted(callback.frozen_at.values())
    assert frozen[0] >= 500 and all(b - a <= 1000 + 128 for a, b in zip(frozen, frozen[1:], strict=False))
    games = sum(callback.league.payoff.games("main_0", p) for p in players if p != "main_0")
    assert callback.games > 100 and games > 50  # decayed counts; self-play games count in no table
    assert callback.league.elo.rating("main_0") > callback.league.elo.rating("random")
    folder = tmp_path / "league"
    summary = json.loads((folder / "league.json").read_text())
    assert summary["payoff"]["players"] == list(players) and summary["games"] == callback.games
    assert summary["history"] and summary["history"][-1]["env_steps"] == cli.datamodule.env_steps
    assert (folder / "payoff.png").stat().st_size > 0 and (folder / "ratings.png").stat().st_size > 0


def test_self_play_snapshots_on_its_interval_and_never_plays_random(tmp_path):
    callback = {
        "class_path": "lightning_rl.callbacks.SelfPlayCallback",
        "init_args": {"snapshot_interval": 1000, "log_interval": 500},
    }
    cli = RLCLI(args=fit_args(tictactoe_config(tmp_path, callback, 3000), tmp_path))
    self_play = league_of(cli)
    league = self_play.league
    # 128 env steps per rollout: a snapshot at the first rollout past each 1000 steps
    frozen = sorted(self_play.frozen_at.values())
    assert len(frozen) >= 2 and frozen == [1024 * (i + 1) for i in range(len(frozen))]
    assert set(league.players) == {"main_0", *self_play.frozen_at}  # no random player
    played = [p for p, at in self_play.frozen_at.items() if at < frozen[-1]]  # the last one: not yet
    assert played and all(league.payoff.games("main_0", p) > 0 for p in played)


def test_a_league_on_a_one_player_env_is_a_config_error(tmp_path, capsys):
    from lightning_rl.cli import main

    config = yaml.safe_load((REPO / "configs" / "cartpole_ppo.yaml").read_text())
    config.setdefault("trainer", {})["callbacks"] = [LEAGUE]
    path = tmp_path / "cartpole_league.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as exit_:
        main(fit_args(str(path), tmp_path))
    assert exit_.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("error: ") and "data.init_args.env_id" in message and "two-player" in message


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        (
            "{include_random: false, fixed_opponent_prob: 0.1}",
            "fixed_opponent_prob needs include_random: true",
        ),
        (
            "{fixed_opponent_prob: 0.6}",
            "fixed_opponent_prob, pfsp_prob, verification_prob must be probabilities",
        ),
    ],
)
def test_a_random_player_share_that_cannot_be_played_is_a_config_error(tmp_path, capsys, knobs, message):
    from lightning_rl.cli import main

    config = str(REPO / "configs" / "connect_four_league.yaml")
    with pytest.raises(SystemExit) as exit_:
        main(fit_args(config, tmp_path, f"--trainer.callbacks.init_args={knobs}"))
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith(f"error: {message}"), lines


class CaptureLeague(pl.Callback):
    """The league state the resumed run starts from (after Lightning restored the checkpoint)."""

    def on_train_start(self, trainer, pl_module):
        self.state = league_of_trainer(trainer).state_dict()


def league_of_trainer(trainer: pl.Trainer) -> LeagueCallback:
    return next(cb for cb in trainer.callbacks if isinstance(cb, LeagueCallback))


def assert_same(a, b, path="state"):
    """Exact equality of nested dicts, lists, tensors, arrays and numbers."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            assert_same(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=path)
    else:
        assert a == b, path


def test_a_resumed_run_continues_the_same_league(tmp_path):
    first = RLCLI(args=fit_args(tictactoe_config(tmp_path, LEAGUE, 3000), tmp_path))
    saved = league_of(first).state_dict()
    last = Path(first.trainer.checkpoint_callback.last_model_path)
    checkpoint = torch.load(last, weights_only=True)  # the league state loads with torch's safe loader
    (state,) = [v for k, v in checkpoint["callbacks"].items() if k.startswith("LeagueCallback")]
    assert_same(state, saved)

    resumed = RLCLI(args=fit_args(tictactoe_config(tmp_path, LEAGUE, 5000), tmp_path)[1:], run=False)
    capture = CaptureLeague()
    resumed.trainer.callbacks.append(capture)
    resumed.trainer.fit(resumed.model, datamodule=resumed.datamodule, ckpt_path=str(last))
    assert_same(capture.state, saved)  # payoff, players and snapshots, ratings, matchmaking RNG, history
    # ... and it keeps going: the old snapshots are opponents again, new ones join them
    league = league_of(resumed).league
    assert {player["player_id"] for player in saved["league"]["players"]} < set(league.players)
    assert league_of(resumed).games > saved["games"]


@pytest.mark.learning
@pytest.mark.slow
def test_tictactoe_self_play_never_loses_to_random_moves(tmp_path):
    """configs/tictactoe_selfplay.yaml as shipped (~2.5 min): no loss in 200 games against random moves."""
    cli = RLCLI(args=fit_args(str(REPO / "configs" / "tictactoe_selfplay.yaml"), tmp_path))
    policy = PolicyOpponent(cli.model.cpu().eval(), "eval", cli.datamodule.env_steps)
    results = play_games(policy, "tictactoe_v3", 200, seed=123)
    assert [r.outcome for r in results].count("loss") == 0
