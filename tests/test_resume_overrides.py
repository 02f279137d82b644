"""`fit --ckpt_path`: a model argument set on resume wins (and is reported) or, if the weights cannot take
it, is refused in one line; the rest come from the checkpoint; a checkpoint of another policy is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_utils import REPO, short_run_args

from lightning_rl.cli import RLCLI, main


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """checkpoints/ of a short DQN run trained with a max_grad_norm the config does not set (default 10)."""
    root = tmp_path_factory.mktemp("trained")
    cli = RLCLI(args=short_run_args(root, "--model.init_args.max_grad_norm=5.0", max_steps=60))
    return Path(cli.trainer.checkpoint_callback.last_model_path).parent


def _resume(tmp_path, ckpt: Path, *extra: str) -> RLCLI:
    return RLCLI(args=short_run_args(tmp_path, f"--ckpt_path={ckpt}", *extra, max_steps=70))


def _one_line_error(capsys, monkeypatch, args: list[str]) -> str:
    capsys.readouterr()
    monkeypatch.setattr("sys.argv", ["lightning-rl"])  # else LightningCLI warns about pytest's argv
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def test_an_explicit_override_is_applied_and_reported(run, tmp_path, capsys):
    capsys.readouterr()
    resumed = _resume(tmp_path, run / "last.ckpt", "--model.init_args.gamma=0.5")
    assert resumed.model.gamma == 0.5 and resumed.model.hparams.gamma == 0.5
    assert resumed.model.train_iter > 60  # it did resume from update 60
    assert "resume: model.init_args.gamma = 0.5 (the checkpoint has 0.99)" in capsys.readouterr().err


def test_what_the_user_does_not_set_comes_from_the_checkpoint(run, tmp_path, capsys):
    capsys.readouterr()
    resumed = _resume(tmp_path, run / "last.ckpt")  # the config does not set max_grad_norm
    assert resumed.model.hparams.max_grad_norm == 5.0
    assert "resume:" not in capsys.readouterr().err  # same run, nothing changed: nothing to report


def test_an_override_in_a_config_file_is_applied_too(run, tmp_path):
    override = tmp_path / "override.yaml"
    override.write_text("model:\n  init_args:\n    lr: 0.0005\n")
    resumed = _resume(tmp_path, run / "last.ckpt", f"--config={override}")
    assert resumed.model.hparams.lr == 0.0005


def test_a_network_shape_override_is_refused_naming_the_field(run, tmp_path, capsys, monkeypatch):
    args = short_run_args(tmp_path, f"--ckpt_path={run / 'last.ckpt'}", "--model.init_args.hidden_sizes=[64]")
    err = _one_line_error(capsys, monkeypatch, args)
    assert err.startswith("error: model.init_args.hidden_sizes: [64] cannot be resumed from ")
    assert "[128, 128]" in err and not (tmp_path / "csv").exists()


def test_a_checkpoint_of_another_policy_is_one_line(run, tmp_path, capsys, monkeypatch):
    ckpt = run / "last.ckpt"
    args = ["fit", "--config", str(REPO / "configs" / "cartpole_ppo.yaml"), f"--ckpt_path={ckpt}"]
    err = _one_line_error(capsys, monkeypatch, [*args, f"--trainer.default_root_dir={tmp_path}"])
    assert err == f"error: {ckpt} holds a DQN policy; the config's model is lightning_rl.policies.PPO"


def test_resuming_from_best_ckpt_is_one_line(run, tmp_path, capsys, monkeypatch):
    args = short_run_args(tmp_path, f"--ckpt_path={run / 'best.ckpt'}")
    err = _one_line_error(capsys, monkeypatch, args)
    assert "holds no replay buffer (best.ckpt is saved without one); resume from last.ckpt" in err
