"""A corpus of malformed configs: each fails before training with exit status 2 and one line
``error: <field>: ...`` naming the field, and leaves nothing under the run root (issue 11).

Each case is ``(name, base config, extra command-line args, YAML text or None, text the line names)``;
a YAML text is written to a file and passed as a second ``--config`` (so it overrides the base), or as
the only one when the base is ``None``. Everything runs in-process through ``lightning_rl.cli.main``
(the failures come before any env is stepped, so the whole corpus takes seconds); two cases also run as a
real ``python -m lightning_rl`` process.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_utils import REPO

from lightning_rl.cli import main

DQN = str(REPO / "configs" / "cartpole_dqn.yaml")
PPO = str(REPO / "configs" / "cartpole_ppo.yaml")
IMPALA = str(REPO / "configs" / "cartpole_impala.yaml")
OFFLINE = str(REPO / "configs" / "cartpole_dqn_offline.yaml")
SAC = str(REPO / "configs" / "pendulum_sac.yaml")
TD3 = str(REPO / "configs" / "pendulum_td3.yaml")
RAINBOW = str(REPO / "configs" / "cartpole_rainbow.yaml")
R2D2 = str(REPO / "configs" / "cartpole_masked_r2d2.yaml")
MPE = REPO / "app_zoo" / "mpe" / "configs"
COMA, IPPO = str(MPE / "simple_spread_coma.yaml"), str(MPE / "simple_spread_ippo.yaml")
ATOC, IDDPG = (
    str(MPE / "simple_spread_continuous_atoc.yaml"),
    str(MPE / "simple_spread_continuous_iddpg.yaml"),
)

CASES = [
    # unknown keys at every level
    ("unknown_top_level_key", DQN, [], "learning_rate: 0.1\n", "learning_rate"),
    ("unknown_trainer_key", DQN, ["--trainer.max_stepz=3"], None, "trainer.max_stepz: unknown key"),
    ("unknown_model_key", DQN, ["--model.init_args.lrr=1"], None, "model.init_args.lrr: unknown key"),
    ("unknown_model_key_yaml", DQN, [], "model:\n  init_args:\n    dobule: true\n", "dobule"),
    ("unknown_data_key", DQN, ["--data.init_args.buffer=5"], None, "data.init_args.buffer"),
    ("unknown_evaluator_key", DQN, ["--evaluator.stop_val=3"], None, "evaluator.stop_val: unknown key"),
    ("unknown_env_manager_key", DQN, ["--data.init_args.env_manager={bogus: 1}"], None, "bogus"),
    ("top_level_optimizer", DQN, ["--optimizer=torch.optim.SGD"], None, "optimizer: unknown key"),
    ("unknown_ppo_key", PPO, ["--model.init_args.clip=0.1"], None, "model.init_args.clip"),
    # wrong types
    ("lr_is_text", DQN, ["--model.init_args.lr=fast"], None, "model.init_args.lr"),
    ("batch_size_is_text", DQN, ["--data.init_args.batch_size=abc"], None, "data.init_args.batch_size"),
    ("max_steps_is_text", DQN, ["--trainer.max_steps=x"], None, "trainer.max_steps"),
    ("prioritized_not_bool", DQN, ["--data.init_args.prioritized=maybe"], None, "prioritized"),
    ("hidden_sizes_is_a_number", DQN, [], "model:\n  init_args:\n    hidden_sizes: 64\n", "hidden_sizes"),
    ("n_epochs_is_float", PPO, ["--data.init_args.n_epochs=2.5"], None, "data.init_args.n_epochs"),
    # out-of-range values: DQN and the off-policy DataModule
    ("dqn_lr_negative", DQN, ["--model.init_args.lr=-1"], None, "model.init_args.lr"),
    ("dqn_gamma_above_one", DQN, ["--model.init_args.gamma=2"], None, "model.init_args.gamma"),
    ("dqn_target_tau_above_one", DQN, ["--model.init_args.target_tau=2"], None, "target_tau"),
    ("dqn_eps_start_above_one", DQN, ["--model.init_args.eps_start=1.5"], None, "eps_start"),
    ("dqn_loss_type_unknown", DQN, ["--model.init_args.loss_type=l3"], None, "loss_type"),
    ("dqn_hidden_size_zero", DQN, ["--model.init_args.hidden_sizes=[0]"], None, "hidden_sizes"),
    ("log_interval_zero", DQN, ["--model.init_args.log_interval=0"], None, "log_interval"),
    ("on_nonfinite_unknown", DQN, ["--model.init_args.on_nonfinite=ignore"], None, "on_nonfinite"),
    ("buffer_size_negative", DQN, ["--data.init_args.buffer_size=-5"], None, "buffer_size"),
    ("batch_size_zero", DQN, ["--data.init_args.batch_size=0"], None, "batch_size"),
    ("batch_size_above_buffer", DQN, ["--data.init_args.buffer_size=100"], None, "batch_size"),
    ("nstep_zero", DQN, ["--data.init_args.nstep=0"], None, "data.init_args.nstep"),
    ("train_freq_zero", DQN, ["--data.init_args.train_freq=0"], None, "train_freq"),
    ("gradient_steps_zero", DQN, ["--data.init_args.gradient_steps=0"], None, "gradient_steps"),
    ("updates_per_step_zero", DQN, ["--data.init_args.updates_per_step=0"], None, "updates_per_step"),
    ("learning_starts_negative", DQN, ["--data.init_args.learning_starts=-1"], None, "learning_starts"),
    ("learning_starts_past_budget", DQN, ["--data.init_args.max_env_steps=500"], None, "learning_starts"),
    ("n_envs_zero", DQN, ["--data.init_args.n_envs=0"], None, "n_envs"),
    ("seed_negative", DQN, ["--data.init_args.seed=-3"], None, "seed"),
    ("vectorization_unknown", DQN, ["--data.init_args.vectorization=threads"], None, "vectorization"),
    ("max_retries_negative", DQN, ["--data.init_args.env_manager={max_retries: -1}"], None, "max_retries"),
    (
        "fault_rate_above_one",
        DQN,
        ["--data.init_args.env_manager={max_fault_rate: 2}"],
        None,
        "max_fault_rate",
    ),
    ("eval_interval_zero", DQN, ["--evaluator.eval_interval=0"], None, "eval_interval"),
    ("eval_episodes_zero", DQN, ["--evaluator.n_episodes=0"], None, "n_episodes"),
    ("num_threads_zero", DQN, ["--num_threads=0"], None, "num_threads"),
    # out-of-range values: PPO / A2C / IMPALA and the on-policy DataModule
    ("ppo_clip_ratio_negative", PPO, ["--model.init_args.clip_ratio=-0.1"], None, "clip_ratio"),
    ("ppo_gae_lambda_above_one", PPO, ["--model.init_args.gae_lambda=1.5"], None, "gae_lambda"),
    ("ppo_lr_zero", PPO, ["--model.init_args.lr=0"], None, "model.init_args.lr"),
    ("ppo_optimizer_unknown", PPO, ["--model.init_args.optimizer=sgd"], None, "optimizer"),
    ("ppo_lr_schedule_unknown", PPO, ["--model.init_args.lr_schedule=cosine"], None, "lr_schedule"),
    ("ppo_n_steps_zero", PPO, ["--data.init_args.n_steps=0"], None, "n_steps"),
    ("ppo_n_epochs_zero", PPO, ["--data.init_args.n_epochs=0"], None, "n_epochs"),
    ("ppo_board_encoder_without_a_board", PPO, ["--model.init_args.encoder=board_cnn"], None, "encoder"),
    ("ppo_minibatch_unknown", PPO, ["--data.init_args.minibatch=episodes"], None, "minibatch"),
    (
        "impala_needs_trajectories",
        IMPALA,
        ["--data.init_args.minibatch=steps"],
        None,
        "data.init_args.minibatch: got",
    ),
    # out-of-range values: DDPG / TD3 / SAC
    ("sac_tau_zero", SAC, ["--model.init_args.tau=0"], None, "model.init_args.tau"),
    ("sac_alpha_negative", SAC, ["--model.init_args.alpha=-0.1"], None, "model.init_args.alpha"),
    ("sac_random_steps_negative", SAC, ["--model.init_args.random_steps=-1"], None, "random_steps"),
    ("td3_policy_delay_zero", TD3, ["--model.init_args.policy_delay=0"], None, "policy_delay"),
    ("td3_exploration_unknown", TD3, ["--model.init_args.exploration=uniform"], None, "exploration"),
    ("td3_hidden_sizes_empty", TD3, ["--model.init_args.critic_hidden_sizes=[]"], None, "hidden_sizes"),
    # Rainbow and R2D2
    (
        "rainbow_distributional_unknown",
        RAINBOW,
        ["--model.init_args.distributional=c51"],
        None,
        "distributional",
    ),
    ("rainbow_n_atoms_one", RAINBOW, ["--model.init_args.n_atoms=1"], None, "model.init_args.n_atoms"),
    ("rainbow_v_range_empty", RAINBOW, ["--model.init_args.v_max=0"], None, "model.init_args.v_max"),
    ("rainbow_noisy_std_zero", RAINBOW, ["--model.init_args.noisy_std=0"], None, "noisy_std"),
    ("r2d2_overlap_too_long", R2D2, ["--data.init_args.overlap=20"], None, "data.init_args.overlap"),
    ("r2d2_seq_len_zero", R2D2, ["--data.init_args.seq_len=0"], None, "data.init_args.seq_len"),
    ("r2d2_burn_in_negative", R2D2, ["--data.init_args.burn_in=-1"], None, "data.init_args.burn_in"),
    ("r2d2_frame_store", R2D2, ["--data.init_args.frame_store=true"], None, "frame_store"),
    ("r2d2_lstm_size_zero", R2D2, ["--model.init_args.lstm_size=0"], None, "model.init_args.lstm_size"),
    ("r2d2_priority_eta_above_one", R2D2, ["--model.init_args.priority_eta=2"], None, "priority_eta"),
    ("r2d2_cql", R2D2, ["--model.init_args.cql_alpha=1"], None, "cql_alpha"),
    (
        "masked_cartpole_flag_not_bool",
        R2D2,
        ["--data.init_args.env_kwargs={mask_velocity: maybe}"],
        None,
        "mask_velocity must be true or false",
    ),
    ("dqn_with_sequence_replay", R2D2, ["--model=lightning_rl.policies.DQN"], None, "RecurrentActor"),
    # multi-agent policies
    ("coma_critic_hidden_empty", COMA, ["--model.init_args.critic_hidden_sizes=[]"], None, "hidden_sizes"),
    ("ippo_critic_unknown", IPPO, ["--model.init_args.critic=shared"], None, "model.init_args.critic"),
    ("ippo_squash", IPPO, ["--model.init_args.squash=true"], None, "squash do not apply"),
    (
        "ippo_normalize_obs",
        IPPO,
        ["--data.init_args.normalize_obs=true"],
        None,
        "data.init_args.normalize_obs",
    ),
    ("ppo_on_a_team", IPPO, ["--model=lightning_rl.policies.PPO"], None, "QMIX, IQL, COMA, IA2C or IPPO"),
    ("atoc_group_too_big", ATOC, ["--model.init_args.group_size=4"], None, "group_size must be in [2, 3]"),
    ("atoc_threshold_above_one", ATOC, ["--model.init_args.threshold=2"], None, "threshold"),
    (
        "iddpg_communicates",
        IDDPG,
        ["--model.init_args.communication=true"],
        None,
        "IDDPG does not communicate",
    ),
    (
        "atoc_on_discrete_actions",
        ATOC,
        [],
        "data:\n  init_args:\n    env_kwargs: {continuous_actions: false}\n",
        "use QMIX, IQL, COMA, IA2C or IPPO",
    ),
    # env ids, action spaces, policy/DataModule pairs
    ("unknown_env_id", DQN, ["--data.init_args.env_id=CartPol-v1"], None, "CartPol-v1"),
    ("dqn_on_continuous_actions", DQN, ["--data.init_args.env_id=Pendulum-v1"], None, "discrete"),
    ("sac_on_discrete_actions", SAC, ["--data.init_args.env_id=CartPole-v1"], None, "data.init_args.env_id"),
    (
        "td3_with_on_policy_data",
        PPO,
        [],
        "model:\n  class_path: lightning_rl.policies.TD3\n  init_args: {}\n",
        "TD3",
    ),
    ("ppo_with_off_policy_data", DQN, ["--model=lightning_rl.policies.PPO"], None, "DataModule"),
    (
        "dqn_with_on_policy_data",
        PPO,
        [],
        "model:\n  class_path: lightning_rl.policies.DQN\n  init_args: {}\n",
        "DataModule",
    ),
    ("unknown_policy_class", DQN, ["--model=lightning_rl.policies.NoSuchPolicy"], None, "model"),
    # bad YAML and missing files
    ("yaml_syntax_error", None, [], "model:\n  init_args: {lr: 0.1\n", "line"),
    ("yaml_bad_indentation", DQN, [], "trainer:\n  max_steps: 5\n   devices: 1\n", "line"),
    ("missing_config_file", None, ["--config=/nonexistent/dir/config.yaml"], None, "config.yaml"),
    ("missing_ckpt_path", DQN, ["--ckpt_path=/nonexistent/last.ckpt"], None, "last.ckpt"),
    (
        "missing_offline_dataset",
        OFFLINE,
        ["--data.init_args.dataset_dir=/nonexistent/ds"],
        None,
        "/nonexistent/ds",
    ),
]


def _args(tmp_path, base, extra, yaml_text):
    args = ["fit", f"--trainer.default_root_dir={tmp_path / 'runs'}"]
    if base is not None:
        args += ["--config", base]
    if yaml_text is not None:
        config = tmp_path / "broken.yaml"
        config.write_text(yaml_text)
        args += ["--config", str(config)]
    return args + extra


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_the_corpus_is_large_and_has_unique_names():
    names = [case[0] for case in CASES]
    assert len(names) >= 40 and len(set(names)) == len(names)


@pytest.mark.parametrize(("name", "base", "extra", "yaml_text", "named"), CASES, ids=[c[0] for c in CASES])
def test_a_malformed_config_is_one_line_naming_the_field(
    tmp_path, capsys, name, base, extra, yaml_text, named
):
    with pytest.raises(SystemExit) as info:
        main(_args(tmp_path, base, extra, yaml_text))
    stderr = capsys.readouterr().err
    assert info.value.code == 2, stderr
    assert "Traceback" not in stderr and "usage:" not in stderr, stderr
    lines = _error_lines(stderr)
    assert len(lines) == 1, stderr
    assert named in lines[0], lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("case", ["dqn_gamma_above_one", "unknown_evaluator_key"])
def test_a_real_process_prints_one_line_and_exits_2(tmp_path, case):
    _, base, extra, yaml_text, named = next(c for c in CASES if c[0] == case)
    result = subprocess.run(
        [sys.executable, "-m", "lightning_rl", *_args(tmp_path, base, extra, yaml_text)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and named in lines[0], result.stderr
    assert not (tmp_path / "runs").exists()


def test_the_debug_variable_shows_the_traceback_above_the_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LIGHTNING_RL_DEBUG", "1")
    with pytest.raises(SystemExit) as info:
        main(_args(tmp_path, DQN, ["--model.init_args.gamma=2"], None))
    stderr = capsys.readouterr().err
    assert info.value.code == 2
    assert "Traceback" in stderr
    assert stderr.strip().splitlines()[-1].startswith("error: model.init_args.gamma")
