"""app_zoo/gfootball: academy_3_vs_1_with_keeper as a multi-agent env (packed observations, seeding, ends of
episodes) and its IPPO and QMIX configs through the CLI.

Skipped where the gfootball engine is not installed (its source build: app_zoo/gfootball/README.md).
"""

from __future__ import annotations

import numpy as np
import pytest
from cli_utils import REPO

from app_zoo.gfootball.envs import FootballEnv, football_unavailable_reason
from lightning_rl.cli import RLCLI

pytestmark = [
    pytest.mark.skipif(football_unavailable_reason() is not None, reason=str(football_unavailable_reason())),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # gfootball runs on the old gym
]
CONFIGS = REPO / "app_zoo" / "gfootball" / "configs"


def test_three_attackers_observe_act_and_share_one_reward():
    env = FootballEnv()
    obs, _ = env.reset(seed=3)
    assert env.layout.n_agents == 3 and env.layout.obs_dim == 115 and env.layout.n_actions == 19
    parts = env.layout.unpack(obs)
    assert parts["agent_obs"].shape == (3, 115) and parts["action_mask"].all()
    assert np.array_equal(obs, FootballEnv().reset(seed=3)[0])  # the engine's seed
    steps, ended = 0, False
    while not ended:
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert obs.shape == env.observation_space.shape and isinstance(reward, float)
        steps, ended = steps + 1, terminated or truncated
    assert terminated == (steps < env.time_limit)  # a goal, the ball out or lost; else the time limit
    env.close()


@pytest.mark.parametrize("policy", ["ippo", "qmix"])
def test_configs_train_from_the_cli(tmp_path, policy):
    args = [
        "fit",
        "--config",
        str(CONFIGS / f"academy_3_vs_1_with_keeper_{policy}.yaml"),
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        "--data.init_args.vectorization=sync",
        "--data.init_args.n_envs=2",
        "--evaluator.n_episodes=1",
    ]
    if policy == "ippo":
        args += [
            "--data.init_args.max_env_steps=256",
            "--data.init_args.n_steps=64",
            "--data.init_args.batch_size=64",
        ]
    else:
        args += ["--data.init_args.learning_starts=300", "--trainer.max_steps=4"]
    cli = RLCLI(args=args)
    assert cli.model.train_iter >= 4 and cli.result["eval_return_mean"] is not None
