"""Rainbow: heads, noisy layers, the C51 / QR-DQN losses it builds, its switches, and its ablations from the
CLI."""

from __future__ import annotations

import pytest
import torch
from cli_utils import CARTPOLE_RAINBOW, short_run_args
from policy_utils import CARTPOLE, cartpole_batch
from torchrl.modules import NoisyLinear, reset_noise

from lightning_rl import keys
from lightning_rl.cli import RLCLI
from lightning_rl.models import DQNNet, DuelingHead, QHead
from lightning_rl.policies import DQN, Rainbow
from lightning_rl.rl_utils import DistNStepData, QNStepData, dist_nstep_td_error, qr_nstep_td_error
from lightning_rl.utils.checks import ConfigError

SMALL = {"hidden_sizes": (8,), "n_atoms": 5, "v_min": -2.0, "v_max": 2.0}


def make(**kwargs) -> Rainbow:
    torch.manual_seed(0)
    return Rainbow(env_spec=CARTPOLE, **{**SMALL, **kwargs})


# --- heads and the network ------------------------------------------------------------------------------
@pytest.mark.parametrize("head", [QHead, DuelingHead])
@pytest.mark.parametrize("n_atoms", [None, 7])
def test_heads_give_one_value_or_n_atoms_per_action(head, n_atoms):
    out = head(16, 3, hidden_dim=8, n_atoms=n_atoms)(torch.randn(4, 16))
    assert out.shape == ((4, 3) if n_atoms is None else (4, 3, 7))


def test_dueling_combines_value_and_centred_advantage_per_atom():
    head = DuelingHead(6, 3, n_atoms=4)
    features = torch.randn(2, 6)
    value = head.value(features).view(2, 1, 4)
    advantage = head.advantage(features).view(2, 3, 4)
    out = head(features)
    assert torch.allclose(out, value + advantage - advantage.mean(1, keepdim=True), atol=1e-6)
    assert torch.allclose(out.mean(1), value.squeeze(1), atol=1e-6)  # mean over actions is the value


def test_noisy_net_uses_fresh_noise_only_when_reset_and_mean_weights_in_eval_mode():
    net = DQNNet([4], 2, (8,), dueling=True, head_hidden_size=8, noisy_std=0.5)
    noisy = [m for m in net.modules() if isinstance(m, NoisyLinear)]
    assert len(noisy) == 4  # both layers of both dueling streams
    obs = torch.randn(3, 4)
    first = net(obs)
    assert torch.equal(net(obs), first)  # the noise stays until it is resampled
    net.apply(reset_noise)
    assert not torch.allclose(net(obs), first)
    net.eval()
    mean = net(obs)
    net.apply(reset_noise)
    assert torch.equal(net(obs), mean)
    for layer in noisy:  # eval mode is the mean weights exactly
        assert torch.equal(layer.weight, layer.weight_mu)


# --- the policy ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"distributional": "c51"}, "distributional"),
        ({"n_atoms": 1}, "n_atoms"),
        ({"v_min": 1.0, "v_max": 1.0}, "v_max"),
        ({"noisy_std": 0.0}, "noisy_std"),
        ({"kappa": -1.0}, "kappa"),
        ({"head_hidden_size": -1}, "head_hidden_size"),
    ],
)
def test_bad_hyperparameters_are_config_errors_naming_the_field(kwargs, field):
    with pytest.raises(ConfigError) as err:
        make(**kwargs)
    assert err.value.field == field and field in str(err.value)


def test_epsilon_is_zero_with_noisy_nets_and_dqns_schedule_without():
    assert make().epsilon(0) == 0.0
    plain = make(noisy=False)
    assert plain.epsilon(0) == 1.0 and plain.epsilon(10**9) == pytest.approx(0.05)
    assert make(noisy=True, eps_start=0.3, eps_end=0.1).epsilon(0) == 0.3


def test_eval_acts_on_the_mean_weights_even_in_train_mode_and_collect_resamples_noise():
    policy = make()
    obs = torch.randn(64, 4)
    policy.train()
    with torch.no_grad():
        policy.net.eval()
        mean_greedy = policy.q_values(policy.net(obs)).argmax(-1)
        policy.net.train()
    assert torch.equal(policy.act(obs, mode="eval"), mean_greedy)
    assert policy.net.training  # restored
    noise = [m.weight_epsilon.clone() for m in policy.net.modules() if isinstance(m, NoisyLinear)]
    policy.act(obs, mode="collect", generator=torch.Generator().manual_seed(0))
    after = [m.weight_epsilon for m in policy.net.modules() if isinstance(m, NoisyLinear)]
    assert all(not torch.equal(a, b) for a, b in zip(noise, after, strict=True))


def test_expected_q_values_of_each_head():
    categorical, quantile, plain = (make(distributional=d) for d in ("categorical", "quantile", None))
    logits = torch.randn(3, 2, 5)
    support = torch.linspace(-2.0, 2.0, 5)
    assert torch.allclose(categorical.q_values(logits), (logits.softmax(-1) * support).sum(-1))
    assert torch.allclose(quantile.q_values(logits), logits.mean(-1))
    q = torch.randn(3, 2)
    assert torch.equal(plain.q_values(q), q)


def _perturb_target(policy: Rainbow) -> None:
    with torch.no_grad():
        for param in policy.target_net.parameters():
            param.add_(0.3 * torch.randn_like(param))


@pytest.mark.parametrize("double", [True, False])
def test_c51_loss_is_the_projected_cross_entropy_with_the_expected_q_argmax(double):
    policy = make(noisy=False, double=double, gamma=0.9)
    _perturb_target(policy)
    batch = cartpole_batch()
    loss, priority, extra = policy.compute_loss(batch)
    with torch.no_grad():
        out, next_target = policy.net(batch[keys.OBS]), policy.target_net(batch[keys.NEXT_OBS])
        chooser = policy.net(batch[keys.NEXT_OBS]) if double else next_target
        next_action = (chooser.softmax(-1) * torch.linspace(-2, 2, 5)).sum(-1).argmax(-1)
        data = DistNStepData(
            out.softmax(-1),
            next_target.softmax(-1),
            batch[keys.ACTION],
            next_action,
            batch[keys.REWARD],
            batch[keys.TERMINATED],
            batch[keys.STEPS],
            batch[keys.WEIGHT],
        )
        expected_loss, expected_ce = dist_nstep_td_error(data, 0.9, -2.0, 2.0, 5)
    assert torch.allclose(loss, expected_loss) and torch.allclose(priority, expected_ce)
    assert torch.allclose(extra["q_mean"], policy.q_values(out).mean())


def test_quantile_loss_is_qr_dqn_on_the_double_q_action():
    policy = make(noisy=False, distributional="quantile", kappa=0.5, gamma=0.9)
    _perturb_target(policy)
    batch = cartpole_batch()
    loss, priority, _ = policy.compute_loss(batch)
    with torch.no_grad():
        out, next_target = policy.net(batch[keys.OBS]), policy.target_net(batch[keys.NEXT_OBS])
        next_action = policy.net(batch[keys.NEXT_OBS]).mean(-1).argmax(-1)
        data = QNStepData(
            out,
            next_target,
            batch[keys.ACTION],
            batch[keys.REWARD],
            batch[keys.TERMINATED],
            next_action,
            batch[keys.STEPS],
            batch[keys.WEIGHT],
        )
        expected_loss, expected_priority = qr_nstep_td_error(data, 0.9, kappa=0.5)
    assert torch.allclose(loss, expected_loss) and torch.allclose(priority, expected_priority)


def test_all_switches_off_is_dqn():
    rainbow = make(noisy=False, distributional=None, dueling=False, gamma=0.9)
    torch.manual_seed(0)
    dqn = DQN(env_spec=CARTPOLE, hidden_sizes=(8,), gamma=0.9)
    dqn.load_state_dict(rainbow.state_dict())
    batch = cartpole_batch()
    for got, want in zip(rainbow.compute_loss(batch)[:2], dqn.compute_loss(batch)[:2], strict=True):
        assert torch.allclose(got, want)


def test_each_update_draws_new_noise_for_online_and_target_nets(monkeypatch):
    policy = make()
    noise = {name: buf.clone() for name, buf in policy.named_buffers() if name.endswith("weight_epsilon")}
    assert any(name.startswith("target_net.") for name in noise)

    class Data:
        def update_priority(self, index, priority):
            self.priority = priority

    policy.optimizers = lambda: None  # the update itself is DQN's, tested there
    policy.optimizer_update = lambda *args, **kwargs: True
    data = Data()
    monkeypatch.setattr(Rainbow, "data", property(lambda self: data))
    policy.training_update(cartpole_batch().set(keys.INDEX, torch.arange(5)))
    for name, before in noise.items():
        assert not torch.equal(policy.get_buffer(name), before), name
    assert data.priority.shape == (5,)


def test_noise_buffers_are_in_the_state_dict():
    state = make().state_dict()
    assert any(name.endswith("weight_epsilon") for name in state)
    assert "support" not in state  # rebuilt from v_min / v_max


# --- from the CLI -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "ablation",
    [
        [],
        ["--model.init_args.noisy=false"],
        ["--model.init_args.distributional=null"],
        ["--model.init_args.distributional=quantile"],
        ["--data.init_args.prioritized=false"],
        ["--data.init_args.nstep=1"],
    ],
    ids=["rainbow", "no_noisy", "no_distributional", "quantile", "no_per", "no_nstep"],
)
def test_each_ablation_trains_from_the_cli(tmp_path, ablation):
    cli = RLCLI(args=short_run_args(tmp_path, *ablation, max_steps=40, config=CARTPOLE_RAINBOW))
    assert cli.model.train_iter == 40
    hp = cli.model.hparams
    assert hp.noisy == ("--model.init_args.noisy=false" not in ablation)
    assert cli.datamodule.buffer.stats()["pushed"] > 0
