"""COMA, IA2C and IPPO: the shared actor's action masks, COMA's counterfactual critic input, per-agent GAE
traces in the rollout, one-line errors, and runs of every shipped config from the CLI."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from cli_utils import REPO
from policy_utils import CARTPOLE, packed
from policy_utils import TEAM_LAYOUT as LAYOUT
from policy_utils import TEAM_SPEC as SPEC
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.cli import RLCLI
from lightning_rl.data.rollout import RolloutCollector
from lightning_rl.envs import MultiAgentLayout
from lightning_rl.models import COMACritic, COMANet, SharedAgentActor
from lightning_rl.policies import COMA, IA2C, IPPO, PPO
from lightning_rl.rl_utils import gae
from lightning_rl.utils.checks import ConfigError

pytest.importorskip("mpe2", reason="pip install 'lightning-rl[marl]'")

CONFIGS = [
    *(REPO / "app_zoo" / "mpe" / "configs" / f"simple_spread_{p}.yaml" for p in ("coma", "ia2c", "ippo")),
    *(
        REPO / "app_zoo" / "lbforaging" / "configs" / f"lbf_8x8_2p_2f_coop_{p}.yaml"
        for p in ("coma", "ia2c", "ippo")
    ),
]


def test_the_shared_actor_never_takes_a_masked_action_even_when_it_is_greedy():
    torch.manual_seed(0)
    actor = SharedAgentActor(LAYOUT, (8,))
    actor.net[1].bias.data += torch.tensor([0.0, 0.0, 100.0])  # action 2 greedy for every agent
    mask = torch.tensor([[True, True, False], [False, False, False]])  # agent 1: nothing allowed
    dist = actor(packed((512,), mask))
    assert bool((dist.mode[:, 0] != 2).all()) and bool((dist.mode[:, 1] == 2).all())
    sample = dist.sample()
    assert bool((sample[:, 0] != 2).all()) and {0, 1} <= set(sample[:, 0].tolist())
    assert torch.allclose(dist.probs[:, 0, 2], torch.zeros(512))
    assert bool(torch.isfinite(dist.entropy()).all())  # agent 1 (nothing allowed) acts on its own logits


def test_the_coma_critic_values_an_agent_without_its_own_action():
    torch.manual_seed(0)
    critic = COMACritic(LAYOUT, (16,))
    obs = packed((8,))
    action = torch.randint(0, 3, (8, 2))
    changed = action.clone()
    changed[:, 0] = (changed[:, 0] + 1) % 3
    q, q_changed = critic(obs, action), critic(obs, changed)
    assert q.shape == (8, 2, 3)
    assert torch.equal(q[:, 0], q_changed[:, 0])  # agent 0's own counterfactual row
    assert not torch.allclose(q[:, 1], q_changed[:, 1])  # agent 1 sees agent 0's action


def test_coma_stores_the_critics_q_of_the_taken_joint_action_as_the_value():
    torch.manual_seed(0)
    net = COMANet(LAYOUT, (8,), (16,))
    obs = packed((4,))
    action, log_prob, value = net.act(obs)
    expected = net.critic(obs, action).gather(-1, action.unsqueeze(-1)).squeeze(-1)
    assert action.shape == log_prob.shape == value.shape == (4, 2)
    assert torch.allclose(value, expected)
    assert net.value(obs).shape == (4, 2)


def test_per_agent_values_give_each_agent_its_own_gae_trace_of_the_team_reward():
    g = torch.Generator().manual_seed(0)
    time, envs, agents = 5, 3, 2
    terminated = torch.zeros(time, envs, dtype=torch.bool)
    terminated[2, 1] = True
    truncated = torch.zeros(time, envs, dtype=torch.bool)
    truncated[3, 0] = True
    rollout = TensorDict(
        {
            keys.OBS: torch.randn(time, envs, 4, generator=g),
            keys.NEXT_OBS: torch.randn(time, envs, 4, generator=g),
            keys.VALUE: torch.randn(time, envs, agents, generator=g),
            keys.REWARD: torch.randn(time, envs, generator=g),
            keys.TERMINATED: terminated,
            keys.TRUNCATED: truncated,
            "dropped": torch.zeros(time, envs, dtype=torch.bool),
        },
        [time, envs],
    )
    bootstrap = torch.randn(agents)
    policy = SimpleNamespace(
        gamma=0.9, gae_lambda=0.8, predict_value=lambda obs: bootstrap.expand(len(obs), agents)
    )
    out = RolloutCollector(None, keep_next_obs=True)._add_advantages(rollout.clone(), policy)
    assert out[keys.ADVANTAGE].shape == (time, envs, agents)
    for i in range(agents):
        value = rollout[keys.VALUE][..., i]
        next_value = torch.cat([value[1:], value[-1:]])
        ended = terminated | truncated
        ended[-1] = True
        next_value[ended] = bootstrap[i]
        advantage, returns = gae(rollout[keys.REWARD], value, next_value, terminated, truncated, 0.9, 0.8)
        assert torch.allclose(out[keys.ADVANTAGE][..., i], advantage)
        assert torch.allclose(out[keys.RETURNS][..., i], returns)


def test_wrong_envs_and_options_are_one_line_errors():
    with pytest.raises(ConfigError, match="multi-agent: use QMIX, IQL, COMA, IA2C or IPPO"):
        PPO(env_spec=SPEC)
    with pytest.raises(ConfigError, match="single-agent"):
        COMA(env_spec=CARTPOLE)
    with pytest.raises(ValueError, match="log_std_init, squash do not apply"):
        IPPO(env_spec=SPEC, squash=True, log_std_init=-1.0)
    with pytest.raises(ConfigError, match="critic"):
        IA2C(env_spec=SPEC, critic="shared")
    continuous = MultiAgentLayout(
        n_agents=2, obs_dim=3, state_dim=4, action_dim=2, action_low=(-1.0,) * 2, action_high=(1.0,) * 2
    )
    with pytest.raises(ValueError, match="discrete actions"):
        COMANet(continuous)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_each_config_trains_and_evaluates_from_the_cli(tmp_path, config):
    pytest.importorskip("lbforaging", reason="pip install 'lightning-rl[marl]'")
    args = [
        "fit",
        "--config",
        str(config),
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        "--data.init_args.n_envs=2",
        "--data.init_args.max_env_steps=200",
        "--data.init_args.batch_size=50",
        "--data.init_args.n_steps=25",
        "--evaluator.n_episodes=2",
    ]
    cli = RLCLI(args=args)
    assert cli.model.train_iter >= 4 and cli.result["env_steps"] == 200
    assert cli.result["eval_return_mean"] is not None
