"""The policy <-> DataModule contract: protocols, the actor mirror, the bootstrap rule, moved knobs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import yaml
from cli_utils import CONFIG, short_run_args

from lightning_rl.cli import MOVED_KNOBS, RLCLI, main
from lightning_rl.contract import Actor, DataSource, RolloutActor, RolloutSource, require
from lightning_rl.data import ActorMirror
from lightning_rl.datamodules import OffPolicyDataModule, OnPolicyDataModule
from lightning_rl.policies import DQN, PPO
from lightning_rl.rl_utils.bootstrap import next_state_values

CARTPOLE = OffPolicyDataModule().env_spec


def test_every_datamodule_and_policy_implements_its_protocol():
    assert isinstance(OffPolicyDataModule(), DataSource) and not isinstance(
        OffPolicyDataModule(), RolloutSource
    )
    assert isinstance(OnPolicyDataModule(), RolloutSource)
    assert isinstance(DQN(env_spec=CARTPOLE), Actor) and not isinstance(DQN(env_spec=CARTPOLE), RolloutActor)
    assert isinstance(PPO(env_spec=CARTPOLE), RolloutActor)


def test_a_mismatched_pair_fails_with_what_is_missing():
    with pytest.raises(TypeError) as info:
        require(OffPolicyDataModule(), RolloutSource, "PPO's DataModule", "use OnPolicyDataModule")
    message = str(info.value)
    assert message.startswith("PPO's DataModule must be a RolloutSource (OffPolicyDataModule lacks ")
    assert message.endswith("lacks rollout_env_steps, minibatch, stop_epochs); use OnPolicyDataModule")
    dm = OnPolicyDataModule()
    dm.trainer = SimpleNamespace(lightning_module=DQN(env_spec=CARTPOLE), global_rank=0, world_size=1)
    with pytest.raises(TypeError, match="OnPolicyDataModule's policy must be a RolloutActor .*collect"):
        dm.setup("fit")


def test_ppo_on_an_off_policy_datamodule_fails_when_fit_starts(tmp_path):
    args = short_run_args(tmp_path, "--model=lightning_rl.policies.PPO", "--trainer.logger=false")
    args = [a for a in args if "learning_starts" not in a]
    with pytest.raises(TypeError, match="PPO's DataModule must be a RolloutSource"):
        RLCLI(args=args)


def test_actor_mirror_publishes_versions_and_never_shares_storage():
    policy = DQN(env_spec=CARTPOLE, hidden_sizes=(4,))
    mirror = ActorMirror(policy)
    assert mirror.version == 0 and not mirror.sync()  # nothing published yet
    actor_weight = next(mirror.actor.parameters())
    assert not actor_weight.requires_grad and actor_weight.data_ptr() != next(policy.parameters()).data_ptr()
    with torch.no_grad():
        next(policy.parameters()).fill_(3.0)
    policy.train_iter = 7
    mirror.publish(policy)
    assert mirror.published_version == 7 and mirror.version == 0 and actor_weight.ne(3.0).any()
    with torch.no_grad():
        next(policy.parameters()).fill_(5.0)  # after the snapshot: not what the actor gets
    assert mirror.sync() and mirror.version == 7
    assert actor_weight.eq(3.0).all()
    assert not mirror.sync()  # consumed


def test_next_state_values_bootstrap_at_episode_and_chunk_ends():
    value = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])  # (T=3, B=2)
    ended = torch.tensor([[False, True], [False, False], [False, False]])
    next_obs = torch.arange(6.0).reshape(3, 2, 1) * 100  # the critic below reads obs / 100 + 0.5

    def critic(obs):
        return obs[:, 0] / 100 + 0.5

    got = next_state_values(value, ended, next_obs, critic)
    # env 0: 2, 3, then the chunk ends: critic(next_obs[2, 0] = 400) = 4.5
    # env 1: ended at t=0: critic(next_obs[0, 1] = 100) = 1.5; then 30; chunk end: critic(500) = 5.5
    torch.testing.assert_close(got, torch.tensor([[2.0, 1.5], [3.0, 30.0], [4.5, 5.5]]))
    assert not ended[-1].any()  # the caller's mask is left alone


@pytest.mark.parametrize("old", sorted(MOVED_KNOBS))
def test_a_knob_at_its_old_place_is_one_line_naming_the_new_one(old, tmp_path, capsys):
    section, field = old.split(".")
    with open(CONFIG) as f:
        config = yaml.safe_load(f)
    config[section]["init_args"][field] = 0.5
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(config))
    for args in (
        ["fit", "--config", str(path)],
        ["fit", "--config", CONFIG, f"--{section}.init_args.{field}=1"],
    ):
        with pytest.raises(SystemExit) as info:
            RLCLI(args=args)
        assert info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith(f"error: {section}.init_args.{field} has moved")
        assert MOVED_KNOBS[old].split(" ")[0] in err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--evaluator.seed=-1", "error: evaluator.seed: got -1; allowed: >= 0"),
        (
            "--data.init_args.updates_per_step=0",
            "error: data.init_args.updates_per_step: got 0; allowed: > 0",
        ),
        ("--model.init_args.gamma=2", r"error: model.init_args.gamma: got 2.0; allowed: [0.0, 1.0]"),
        ("--model=lightning_rl.policies.PPO", "error: PPO's DataModule must be a RolloutSource ("),
    ],
)
def test_a_bad_value_on_the_command_line_is_one_line_and_exit_code_2(override, message, tmp_path, capsys):
    args = [
        "fit",
        "--config",
        CONFIG,
        override,
        "--trainer.logger=false",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith(message) and "Traceback" not in stderr
