"""ATOC and IDDPG: groups and the communication channel against a loop by hand, the attention unit's
labels, per-agent critics and targets, joint actions within bounds, errors, and CLI runs."""

from __future__ import annotations

import pytest
import torch
from cli_utils import REPO
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.cli import RLCLI
from lightning_rl.envs import MultiAgentLayout
from lightning_rl.models import AgentQCritics, ATOCActor
from lightning_rl.policies import ATOC, COMA, IDDPG
from lightning_rl.utils.checks import ConfigError

pytest.importorskip("mpe2", reason="pip install 'lightning-rl[marl]'")

LAYOUT = MultiAgentLayout(
    n_agents=3, obs_dim=4, state_dim=2, action_dim=2, action_low=(0.0, -1.0), action_high=(1.0, 1.0)
)
SPEC = {
    "env_id": "fake",
    "obs_shape": [LAYOUT.size],
    "obs_dtype": "float32",
    "action_type": "continuous",
    "action_shape": [2],
    "action_low": [0.0, -1.0],
    "action_high": [1.0, 1.0],
    "multi_agent": LAYOUT.to_dict(),
}
CONFIGS = REPO / "app_zoo" / "mpe" / "configs"


def obs(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, LAYOUT.size, generator=torch.Generator().manual_seed(seed))


def make(cls=ATOC, **kwargs):
    torch.manual_seed(0)
    return cls(env_spec=SPEC, actor_hidden_sizes=(8,), critic_hidden_sizes=(8,), gamma=0.9, **kwargs)


def test_groups_start_with_the_initiator_then_the_nearest_thoughts():
    actor = ATOCActor(LAYOUT, (8,), group_size=2)
    thoughts = torch.tensor([[[0.0] * 8, [1.0] * 8, [3.0] * 8]])
    assert actor.groups(thoughts).tolist() == [[[0, 1], [1, 0], [2, 1]]]


def test_the_channel_integrates_each_active_group_as_a_loop_by_hand():
    torch.manual_seed(0)
    actor = ATOCActor(LAYOUT, (8,), group_size=2)
    thoughts = actor.think(obs(5))
    initiators = torch.tensor(
        [[True, False, False], [True, False, True], [False] * 3, [True] * 3, [False, True, False]]
    )
    integrated = actor.integrate(thoughts, initiators)
    groups = actor.groups(thoughts)
    for b in range(5):
        heard = {j: [] for j in range(3)}
        for i in range(3):
            if initiators[b, i]:
                members = groups[b, i]
                out, _ = actor.channel(thoughts[b, members][None])
                for position, j in enumerate(members.tolist()):
                    heard[j].append(out[0, position])
        for j in range(3):
            expected = torch.stack(heard[j]).mean(0) if heard[j] else thoughts[b, j]
            assert torch.allclose(integrated[b, j], expected, atol=1e-6), (b, j)
    nobody = torch.zeros(5, 3, dtype=torch.bool)
    assert torch.equal(actor.act_with(thoughts, nobody), actor.act_with(thoughts, None))


def test_the_attention_label_is_the_groups_mean_q_gain_of_each_initiator():
    policy = make(group_size=2)
    x = obs(4)
    actor, critics = policy.model.actor, policy.model.critics
    with torch.no_grad():
        thoughts = actor.think(x)
        gain = policy.communication_gain(x, thoughts)
        alone = critics(x, actor.act_with(thoughts, None))[0].view(4, 3)
        for i in range(3):
            only = torch.zeros(4, 3, dtype=torch.bool)
            only[:, i] = True
            together = critics(x, actor.act_with(thoughts, only))[0].view(4, 3)
            members = actor.groups(thoughts)[:, i]  # (4, 2)
            expected = (together - alone).gather(1, members).mean(1)
            assert torch.allclose(gain[:, i], expected, atol=1e-6)


def test_each_agent_is_valued_on_its_own_observation_and_action():
    critics = AgentQCritics(LAYOUT, (8,), n_critics=2)
    x, action = obs(4), torch.rand(4, 3, 2)
    changed = action.clone()
    changed[:, 1] += 0.5
    q, q_changed = critics(x, action), critics(x, changed)
    assert q.shape == (2, 12)
    agent = torch.arange(12) % 3
    assert torch.equal(q[:, agent != 1], q_changed[:, agent != 1])
    assert not torch.allclose(q[:, agent == 1], q_changed[:, agent == 1])


def test_critic_targets_repeat_the_team_reward_for_every_agent():
    policy = make(IDDPG)
    batch = TensorDict(
        {
            keys.NEXT_OBS: obs(2, 1),
            keys.REWARD: torch.tensor([[1.0], [2.0]]),
            keys.TERMINATED: torch.tensor([False, True]),
            keys.STEPS: torch.tensor([1, 1]),
        },
        [2],
    )
    target = policy.critic_target(batch)
    with torch.no_grad():
        next_q = policy.target_critics(obs(2, 1), policy.target_actor(obs(2, 1)))[0].view(2, 3)
    assert torch.allclose(target.view(2, 3), torch.stack([1.0 + 0.9 * next_q[0], torch.full((3,), 2.0)]))


def test_joint_actions_are_within_each_agents_bounds():
    policy = make(random_steps=10)
    g = torch.Generator().manual_seed(0)
    for env_steps in (0, 100):  # uniform warm-up, then noisy actions
        action = policy.act(obs(64), "collect", env_steps, g)
        assert action.shape == (64, 3, 2)
        assert bool((action[..., 0] >= 0).all() and (action[..., 0] <= 1).all())
        assert bool((action[..., 1] >= -1).all() and (action[..., 1] <= 1).all())
    assert policy.act(obs(4)).shape == (4, 3, 2)


def test_wrong_envs_and_options_are_errors():
    with pytest.raises(ValueError, match="IDDPG does not communicate"):
        make(IDDPG, communication=True)
    with pytest.raises(ValueError, match="group_size must be in"):
        make(group_size=4)
    discrete = MultiAgentLayout(n_agents=2, obs_dim=3, state_dim=2, n_actions=4)
    spec = {
        "env_id": "fake",
        "obs_shape": [discrete.size],
        "obs_dtype": "float32",
        "action_type": "discrete",
        "n_actions": 4,
        "multi_agent": discrete.to_dict(),
    }
    with pytest.raises(ConfigError, match="needs continuous actions.*use QMIX, IQL, COMA, IA2C or IPPO"):
        ATOC(env_spec=spec)
    with pytest.raises(ConfigError, match="needs discrete actions.*use ATOC or IDDPG"):
        COMA(env_spec=SPEC)


@pytest.mark.parametrize("policy", ["atoc", "iddpg"])
def test_continuous_simple_spread_configs_train_from_the_cli(tmp_path, policy):
    args = [
        "fit",
        "--config",
        str(CONFIGS / f"simple_spread_continuous_{policy}.yaml"),
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        "--trainer.max_steps=48",
        "--data.init_args.n_envs=2",
        "--data.init_args.learning_starts=200",
        "--model.init_args.random_steps=200",
        "--evaluator.n_episodes=2",
        "--evaluator.eval_interval=24",
    ]
    cli = RLCLI(args=args)
    assert cli.model.train_iter == 48 and cli.result["eval_return_mean"] < 0
    assert cli.datamodule.buffer.get(torch.arange(1))[keys.ACTION].shape == (1, 3, 5)
