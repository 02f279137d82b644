"""Offline RL data: dataset round trip and validation, the ``collect`` subcommand, offline DQN training."""

from __future__ import annotations

import json
import os

import pytest
import torch
from cli_utils import CONFIG, REPO
from tensordict import TensorDict
from torch.utils.data import DataLoader

from lightning_rl import keys
from lightning_rl.callbacks import Evaluator
from lightning_rl.cli import RLCLI
from lightning_rl.collect import collect_dataset
from lightning_rl.data.offline import (
    FIELDS,
    METADATA_FILE,
    TRANSITIONS_DIR,
    RandomBatchSampler,
    TransitionDataset,
    collate_transitions,
    write_dataset,
)
from lightning_rl.datamodules import OfflineDataModule, OffPolicyDataModule
from lightning_rl.entry import serial_pipeline
from lightning_rl.envs import probe_env_spec, resolve_env_factory
from lightning_rl.loggers import RLWandbLogger
from lightning_rl.policies import DQN
from lightning_rl.utils.integrity import CheckpointError

OFFLINE_CONFIG = str(REPO / "configs" / "cartpole_dqn_offline.yaml")
MIXED_EPSILON = [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0]  # one per env of the default config's 8
QUIET = {"trainer.logger": False, "trainer.enable_progress_bar": False}


def cartpole_spec() -> dict:
    return probe_env_spec(*resolve_env_factory("CartPole-v1", None)).to_dict()


def random_transitions(n: int, nstep: int = 1) -> TensorDict:
    generator = torch.Generator().manual_seed(0)
    return TensorDict(
        {
            keys.OBS: torch.randn(n, 4, generator=generator),
            keys.ACTION: torch.randint(2, (n,), generator=generator),
            keys.REWARD: torch.rand(n, nstep, generator=generator),
            keys.NEXT_OBS: torch.randn(n, 4, generator=generator),
            keys.TERMINATED: torch.rand(n, generator=generator) < 0.1,
            keys.STEPS: torch.randint(1, nstep + 1, (n,), generator=generator),
        },
        batch_size=[n],
    )


@pytest.fixture
def written(tmp_path):
    data = random_transitions(50, nstep=3)
    path = write_dataset(tmp_path / "ds", data, {"env_spec": cartpole_spec(), "seed": 7})
    return path, data


def test_write_read_round_trip_is_exact(written):
    path, data = written
    dataset = TransitionDataset(path)
    assert len(dataset) == 50 and dataset.nstep == 3 and dataset.metadata["seed"] == 7
    everything = dataset[torch.arange(50)]
    for key in FIELDS:
        assert everything[key].dtype == data[key].dtype and torch.equal(everything[key], data[key]), key
    assert torch.equal(everything[keys.INDEX], torch.arange(50))
    item = dataset[-1]
    assert item.batch_size == torch.Size([]) and int(item[keys.INDEX]) == 49
    assert torch.equal(item[keys.OBS], data[keys.OBS][49])
    assert torch.equal(dataset[[3, 1, 3]][keys.ACTION], data[keys.ACTION][[3, 1, 3]])
    assert torch.equal(dataset[10:13][keys.REWARD], data[keys.REWARD][10:13])
    assert not list(path.parent.glob(".*tmp")), "the staging directory was left behind"


def test_dataloader_batches_look_like_uniform_replay_samples(written):
    path, data = written
    dataset = TransitionDataset(path)
    sampler = RandomBatchSampler(len(dataset), 16, num_batches=5, generator=torch.Generator().manual_seed(0))
    batches = list(DataLoader(dataset, batch_size=None, sampler=sampler, collate_fn=collate_transitions))
    assert len(batches) == len(sampler) == 5
    for batch in batches:
        assert batch.batch_size == torch.Size([16])
        assert torch.equal(batch[keys.WEIGHT], torch.ones(16))
        assert torch.equal(batch[keys.OBS], data[keys.OBS][batch[keys.INDEX]])
    # automatic batching (a list of items) gives the same layout
    stacked = next(iter(DataLoader(dataset, batch_size=4, collate_fn=collate_transitions)))
    assert torch.equal(stacked[keys.INDEX], torch.arange(4)) and stacked[keys.WEIGHT].shape == (4,)
    with pytest.raises(TypeError, match="no length"):
        len(RandomBatchSampler(10, 2))


def test_existing_dataset_is_not_overwritten_silently(written):
    path, data = written
    with pytest.raises(FileExistsError, match="already exists; pass overwrite=True"):
        write_dataset(path, data, {"env_spec": cartpole_spec()})
    write_dataset(path, data[:5], {"env_spec": cartpole_spec()}, overwrite=True)
    assert len(TransitionDataset(path)) == 5


def _corrupt_metadata(path, **changes):
    file = path / METADATA_FILE
    metadata = json.loads(file.read_text())
    metadata.update(changes)
    file.write_text(json.dumps(metadata))


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        (lambda p: (p / METADATA_FILE).unlink(), FileNotFoundError, r"dataset\.json is missing"),
        (lambda p: (p / METADATA_FILE).write_text("{oops"), ValueError, r"dataset\.json is corrupt"),
        (lambda p: _corrupt_metadata(p, version=99), ValueError, "version 99 is not supported"),
        (lambda p: _corrupt_metadata(p, nstep=0), ValueError, "'nstep' must be an int >= 1"),
        (
            lambda p: (p / TRANSITIONS_DIR / "reward.memmap").unlink(),
            CheckpointError,  # the checksum manifest lists every file: it notices first
            r"transitions/reward\.memmap is missing",
        ),
        (
            lambda p: os.truncate(p / TRANSITIONS_DIR / "obs.memmap", 100),
            CheckpointError,
            r"transitions/obs\.memmap has 100 bytes, 800 were written",
        ),
        (
            lambda p: (p / TRANSITIONS_DIR / "meta.json").write_text("[]"),
            CheckpointError,
            r"transitions/meta\.json has 2 bytes",
        ),
    ],
)
def test_damaged_dataset_fails_with_the_file_or_field_named(written, damage, error, message):
    path, _ = written
    damage(path)
    with pytest.raises(error, match=message):
        TransitionDataset(path)


def test_missing_directory_and_wrong_env_are_rejected(written, tmp_path):
    path, _ = written
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TransitionDataset(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="data.env_id: env 'Acrobot-v1' has obs_shape"):
        OfflineDataModule(str(path), env_id="Acrobot-v1")
    assert OfflineDataModule(str(path)).env_name == "CartPole-v1"  # the id recorded in the dataset


@pytest.mark.parametrize(
    ("epsilon", "error", "message"),
    [
        (1.5, ValueError, r"epsilon must be in \[0.0, 1.0\], got 1.5"),
        ([0.1, 0.2], ValueError, r"a list of n_envs=4 floats, got 2 \(\[0.1, 0.2\]\)"),
        ([0.1, 0.2, -0.1, 0.0], ValueError, r"epsilon\[2\] must be in \[0.0, 1.0\], got -0.1"),
        ([0.1, True, 0.0, 0.0], TypeError, r"epsilon\[1\] must be a float in \[0, 1\], got True"),
        ("0.1", TypeError, r"epsilon must be a float or a list of 4 floats \(one per env\), got '0.1'"),
    ],
)
def test_collect_rejects_bad_epsilon(tmp_path, epsilon, error, message):
    datamodule = OffPolicyDataModule(env_id="CartPole-v1")
    policy = DQN(env_spec=datamodule.env_spec)
    with pytest.raises(error, match=message):
        collect_dataset(policy, datamodule, n_steps=8, out=tmp_path / "ds", epsilon=epsilon, n_envs=4)
    assert not (tmp_path / "ds").exists()


def test_collect_with_one_epsilon_per_env(tmp_path):
    """Env i acts with epsilon[i]: an untrained policy's greedy actions are nearly constant per
    observation, so the fully random env is the one that flips actions the most."""
    datamodule = OffPolicyDataModule(env_id="CartPole-v1")
    policy = DQN(env_spec=datamodule.env_spec)
    dataset = collect_dataset(
        policy, datamodule, n_steps=400, out=tmp_path / "ds", epsilon=[0.0, 1.0], n_envs=2
    )
    assert dataset.metadata["epsilon"] == [0.0, 1.0] and dataset.metadata["terminations"] > 0
    batch = dataset[torch.arange(400)]
    greedy = policy.act(batch[keys.OBS], mode="eval")
    # with nstep=1 and 2 envs in lockstep, items alternate between env 0 and env 1
    assert torch.equal(batch[keys.ACTION][0::2], greedy[0::2])
    assert (batch[keys.ACTION][1::2] != greedy[1::2]).float().mean() > 0.3


# --- collect and train: one short online run shared by the tests below ------------------------------
@pytest.fixture(scope="module")
def online_ckpt(tmp_path_factory):
    """The default config trained online (seed 0 solves CartPole in ~8k env steps)."""
    root = tmp_path_factory.mktemp("online")
    result = serial_pipeline(CONFIG, seed=0, **QUIET, **{"trainer.default_root_dir": str(root)})
    assert result["stop_value_reached"], result
    return result["ckpt_path"]


@pytest.fixture(scope="module")
def collected(online_ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("datasets") / "cartpole"
    cli = RLCLI(
        args=[
            "collect",
            "--config",
            CONFIG,
            f"--ckpt_path={online_ckpt}",
            "--n_steps=24000",
            f"--epsilon={MIXED_EPSILON}",
            f"--out={out}",
        ]
    )
    return out, cli


@pytest.mark.learning
def test_collect_subcommand_writes_a_dataset_from_the_checkpoint(collected, online_ckpt):
    out, cli = collected
    dataset = TransitionDataset(out)
    meta = dataset.metadata
    assert len(dataset) == 24_000 and dataset.nstep == 1 and meta["env_steps"] == 24_000
    assert meta["source_ckpt"] == str(online_ckpt) and meta["epsilon"] == MIXED_EPSILON and meta["seed"] == 0
    assert (
        meta["env_spec"]["env_id"] == "CartPole-v1" and meta["episodes"] == len(meta["episode_returns"]) > 0
    )
    assert cli.result["size"] == 24_000 and cli.result["return_mean"] == meta["return_mean"]
    batch = dataset[torch.arange(len(dataset))]
    # the random envs fail often: ~300 terminal transitions (seed 0: 321), the near-greedy ones rarely
    assert meta["terminations"] == int(batch[keys.TERMINATED].sum()) >= 100
    assert torch.equal(batch[keys.STEPS], torch.ones(24_000, dtype=torch.int64))
    # with nstep=1 and 8 envs in lockstep, item i + 8 continues item i's episode unless it ended
    continues = (batch[keys.NEXT_OBS][:-8] == batch[keys.OBS][8:]).all(-1)
    assert continues.float().mean() > 0.9


@pytest.mark.learning
def test_offline_dqn_learns_cartpole_from_the_collected_dataset(collected, tmp_path):
    """The user's three steps (train online, ``collect`` with one epsilon per env, offline ``fit`` with
    the shipped config) end with a good *final* policy, not only a good best checkpoint. Seeds 0-4
    (online, collect and offline seed alike): final 449-484, best 480-500."""
    out, _ = collected
    cli = RLCLI(
        args=[
            "fit",
            "--config",
            OFFLINE_CONFIG,
            f"--data.init_args.dataset_dir={out}",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
        ]
    )
    evaluator = next(cb for cb in cli.trainer.callbacks if isinstance(cb, Evaluator))
    assert cli.datamodule.env_steps == 0 and cli.model.train_iter == 5000
    assert cli.model.hparams.cql_alpha == 1.0  # plain DQN (0) ended at 202 on seed 2
    # seed 0: the last of 20 evaluations (every 250 updates) 449, the best 500
    assert evaluator.last_return >= 400, (evaluator.last_return, evaluator.best_return)


def test_offline_runs_plot_against_train_iter(written, tmp_path, monkeypatch):
    import wandb

    path, _ = written
    monkeypatch.setenv("WANDB_MODE", "disabled")
    cli = RLCLI(
        args=[
            "--config",
            OFFLINE_CONFIG,
            f"--data.init_args.dataset_dir={path}",
            f"--trainer.default_root_dir={tmp_path}",
        ],
        run=False,
    )
    wandb_logger = next(logger for logger in cli.trainer.loggers if isinstance(logger, RLWandbLogger))
    assert wandb_logger.step_metric == "train_iter"  # offline data takes no env steps
    wandb.finish()
