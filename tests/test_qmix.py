"""QMIX / VDN / IQL: the mixer's monotonicity, the agents' shared network, action masks, the team TD loss
against a computation by hand, and runs from the CLI."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from cli_utils import REPO, short_run_args
from policy_utils import CARTPOLE, packed
from policy_utils import TEAM_LAYOUT as LAYOUT
from policy_utils import TEAM_SPEC as SPEC
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.cli import RLCLI
from lightning_rl.models import MultiAgentQNet, QMixer
from lightning_rl.policies import DQN, IQL, QMIX
from lightning_rl.utils.checks import ConfigError

pytest.importorskip("mpe2", reason="pip install 'lightning-rl[marl]'")

MPE_CONFIGS = REPO / "app_zoo" / "mpe" / "configs"


def make(cls=QMIX, **kwargs):
    torch.manual_seed(0)
    return cls(env_spec=SPEC, hidden_sizes=(8,), lstm_size=4, gamma=0.9, loss_type="mse", **kwargs)


def test_qmix_mixer_is_monotonic_in_every_agent_q():
    mixer = QMixer(n_agents=3, state_dim=5, embed_dim=4, hypernet_hidden=6)
    agent_q = torch.randn(64, 3, requires_grad=True)
    q_tot = mixer(agent_q, torch.randn(64, 5))
    (grad,) = torch.autograd.grad(q_tot.sum(), agent_q)
    assert q_tot.shape == (64,) and bool((grad >= 0).all())


def test_agents_share_one_network_and_see_their_id():
    net = MultiAgentQNet(LAYOUT, (8,), 4, mixer="vdn")
    obs = packed((5,))
    same = obs.clone()
    same[:, 3:6] = same[:, 0:3]  # both agents observe the same thing
    q, state = net.step(same, net.initial_state(5))
    assert q.shape == (5, 2, 3) and state.shape == (5, 2, 2, 4)
    assert not torch.allclose(q[:, 0], q[:, 1])  # ... and still act apart, by their ids
    unrolled, _ = net.agent_q(obs.unsqueeze(1).repeat(1, 3, 1), net.initial_state(5))
    first, s = net.step(obs, net.initial_state(5))
    assert torch.allclose(unrolled[:, 0], first, atol=1e-6)
    assert torch.allclose(net.mix(first[..., 0], obs), first[..., 0].sum(-1))  # VDN sums


def test_a_masked_action_is_never_chosen_even_when_it_is_greedy():
    policy = make()
    mask = torch.tensor([[True, True, False], [False, True, True]])
    obs = packed((256,), mask)
    with torch.no_grad():
        q, _ = policy.net.step(obs, policy.initial_state(256))
    policy.net.agents.head.linear.bias.data += torch.tensor([0.0, 0.0, 100.0])  # action 2 greedy for all
    greedy, _ = policy.act_recurrent(obs, policy.initial_state(256), mode="eval")
    assert bool((greedy[:, 0] != 2).all()) and bool((greedy[:, 1] == 2).all())
    random, _ = policy.act_recurrent(
        obs, policy.initial_state(256), "collect", 0, torch.Generator().manual_seed(0)
    )
    assert bool((random[:, 0] != 2).all()) and bool(
        (random[:, 1] != 0).all()
    )  # epsilon 1: random but allowed
    assert {0, 1} <= set(random[:, 0].tolist())


def episode_batch() -> TensorDict:
    g = torch.Generator().manual_seed(2)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    allowed = torch.tensor([[True, True, False], [True, True, True]])
    return TensorDict(
        {
            keys.OBS: packed((2, 3), allowed, g) * mask.unsqueeze(-1),
            keys.ACTION: torch.randint(0, 2, (2, 3, 2), generator=g),
            keys.REWARD: torch.rand(2, 3, generator=g) * mask,
            keys.TERMINATED: torch.tensor([[False] * 3, [False, True, False]]),
            keys.MASK: mask,
            keys.RECURRENT_STATE: torch.zeros(2, 2, 2, 4),
            keys.FINAL_OBS: packed((2,), allowed, g),
        },
        batch_size=[2],
    )


def by_hand(policy, batch, mixer: bool):
    """Per-episode unroll step by step, double-Q next actions among the allowed ones, one-step targets."""
    targets, predictions = [], []
    for row in range(2):
        state, target_state = policy.initial_state(1), policy.initial_state(1)
        real = int(batch[keys.MASK][row].sum())
        inputs = [batch[keys.OBS][row, t] for t in range(real)] + [batch[keys.FINAL_OBS][row]]
        online, target = [], []
        for x in inputs:
            q, state = policy.net.step(x[None], state)
            tq, target_state = policy.target_net.step(x[None], target_state)
            online.append(q[0]), target.append(tq[0])
        for t in range(real):
            allowed = LAYOUT.unpack(inputs[t + 1])[keys.ACTION_MASK]
            next_action = online[t + 1].masked_fill(~allowed, -torch.inf).argmax(-1)
            next_value = target[t + 1].gather(-1, next_action[:, None]).squeeze(-1)  # (N,)
            taken = online[t].gather(-1, batch[keys.ACTION][row, t][:, None]).squeeze(-1)
            if mixer:
                next_value = policy.target_net.mix(next_value, inputs[t + 1])
                taken = policy.net.mix(taken, inputs[t])
            done = bool(batch[keys.TERMINATED][row, t])
            targets.append(batch[keys.REWARD][row, t] + (0.0 if done else 0.9) * next_value)
            predictions.append(taken)
    return torch.stack(targets), torch.stack(predictions)


@pytest.mark.parametrize("cls", [QMIX, IQL])
def test_team_td_loss_matches_an_unroll_by_hand(monkeypatch, cls):
    policy = make(cls)
    with torch.no_grad():
        for param in policy.target_net.parameters():
            param.add_(0.3 * torch.randn_like(param))
    monkeypatch.setattr(QMIX, "data", property(lambda self: SimpleNamespace(burn_in=0, nstep=1)))
    batch = episode_batch()
    _, loss, priority = policy.td_loss(batch)
    with torch.no_grad():
        target, prediction = by_hand(policy, batch, mixer=cls is QMIX)
    assert torch.allclose(loss, ((target - prediction) ** 2).mean(), atol=1e-5)
    assert priority.shape == (2,) and bool((priority > 0).all())


def test_wrong_pairings_and_values_are_config_errors():
    with pytest.raises(ConfigError, match="single-agent"):
        QMIX(env_spec=CARTPOLE)
    with pytest.raises(ConfigError, match="multi-agent: use QMIX, IQL, COMA, IA2C or IPPO"):
        DQN(env_spec=SPEC)
    with pytest.raises(ConfigError, match="mixer"):
        make(mixer="sum")
    with pytest.raises(ValueError, match="IQL has no mixer"):
        make(IQL, mixer="qmix")


@pytest.mark.parametrize("config", ["simple_spread_qmix.yaml", "simple_spread_iql.yaml"])
def test_simple_spread_trains_and_evaluates_from_the_cli(tmp_path, config):
    args = short_run_args(
        tmp_path,
        "--data.init_args.learning_starts=400",
        "--data.init_args.n_envs=2",
        max_steps=8,
        config=str(MPE_CONFIGS / config),
    )
    cli = RLCLI(args=args)
    assert cli.model.train_iter == 8 and cli.result["eval_return_mean"] < 0
    assert cli.datamodule.buffer.get(torch.arange(1))[keys.ACTION].shape == (1, 25, 3)


@pytest.mark.parametrize("policy", ["qmix", "iql"])
def test_lbf_configs_train_from_the_cli(tmp_path, policy):
    args = short_run_args(
        tmp_path,
        "--data.init_args.learning_starts=400",
        "--data.init_args.n_envs=2",
        max_steps=4,
        config=str(REPO / "app_zoo" / "lbforaging" / "configs" / f"lbf_8x8_2p_2f_coop_{policy}.yaml"),
    )
    cli = RLCLI(args=args)
    assert cli.model.train_iter == 4 and cli.model.layout.n_agents == 2
