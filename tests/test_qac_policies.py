"""DDPG, TD3 and SAC: actions and warm-up, critic targets computed by hand, which part each loss trains,
TD3's delay, and the config errors."""

from __future__ import annotations

import math

import pytest
import torch
from policy_utils import CARTPOLE
from pytorch_lightning.strategies import DDPStrategy, SingleDeviceStrategy
from tensordict import TensorDict

from lightning_rl import keys
from lightning_rl.policies import DDPG, SAC, TD3
from lightning_rl.rl_utils import OUNoise
from lightning_rl.utils.checks import ConfigError

PENDULUM = {
    "env_id": "Pendulum-v1",
    "obs_shape": [3],
    "obs_dtype": "float32",
    "action_type": "continuous",
    "action_shape": [2],
    "action_low": [-2.0, 0.0],
    "action_high": [2.0, 1.0],
}
SMALL = {"actor_hidden_sizes": (16,), "critic_hidden_sizes": (16,)}
POLICIES = (DDPG, TD3, SAC)


def make(cls, **kwargs):
    torch.manual_seed(0)
    return cls(env_spec=PENDULUM, **{**SMALL, **kwargs})


def batch_of() -> TensorDict:
    generator = torch.Generator().manual_seed(1)
    steps = torch.tensor([1, 2, 1, 2, 2, 2])
    padding = torch.arange(2) >= steps.unsqueeze(1)  # n-step windows are zero-padded after their last step
    return TensorDict(
        {
            keys.OBS: torch.randn(6, 3, generator=generator),
            keys.ACTION: torch.rand(6, 2, generator=generator) * torch.tensor([4.0, 1.0])
            - torch.tensor([2.0, 0.0]),
            keys.REWARD: torch.rand(6, 2, generator=generator).masked_fill(padding, 0.0),
            keys.NEXT_OBS: torch.randn(6, 3, generator=generator),
            keys.TERMINATED: torch.tensor([True, False, False, False, True, False]),
            keys.STEPS: steps,
        },
        batch_size=[6],
    )


def nstep_target(batch: TensorDict, gamma: float, next_value: torch.Tensor) -> torch.Tensor:
    """sum_k gamma^k r_k + gamma^steps (1 - terminated) V(s'), one transition at a time."""
    out = []
    for i in range(batch.batch_size[0]):
        steps = int(batch[keys.STEPS][i])
        ret = sum(gamma**k * batch[keys.REWARD][i, k] for k in range(steps))
        if not batch[keys.TERMINATED][i]:
            ret = ret + gamma**steps * next_value[i]
        out.append(ret)
    return torch.stack(out)


def perturb(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for param in module.parameters():
            param.add_(0.3 * torch.randn_like(param))


@pytest.mark.parametrize("cls", POLICIES)
def test_discrete_env_is_a_config_error_naming_the_policies_that_fit(cls):
    with pytest.raises(
        ConfigError, match=rf"{cls.__name__} needs continuous actions .*use DQN, PPO, A2C or IMPALA"
    ) as err:
        cls(env_spec=CARTPOLE)
    assert err.value.field == "data.init_args.env_id"


@pytest.mark.parametrize("cls", POLICIES)
def test_actions_are_in_env_units_and_the_warm_up_is_uniform(cls):
    policy = make(cls, random_steps=100)
    obs = torch.randn(4000, 3)
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 1.0])
    greedy = policy.act(obs, "eval")
    torch.testing.assert_close(greedy, policy.model.scaler.scale(policy.model.actor(obs)))
    generator = torch.Generator().manual_seed(0)
    warm_up = policy.act(obs, "collect", env_steps=99, generator=generator)
    explore = policy.act(obs, "collect", env_steps=100, generator=generator)
    for action in (greedy, warm_up, explore):
        assert action.shape == (4000, 2) and torch.all(action >= low) and torch.all(action <= high)
    torch.testing.assert_close(warm_up.mean(0), (low + high) / 2, atol=0.05, rtol=0)  # uniform over the box
    torch.testing.assert_close(warm_up.std(0), (high - low) / math.sqrt(12), atol=0.03, rtol=0)
    assert not torch.equal(explore, greedy)
    seeded = policy.act(obs, "collect", 0, torch.Generator().manual_seed(5))
    assert torch.equal(seeded, policy.act(obs, "collect", 0, torch.Generator().manual_seed(5)))


def test_ddpg_gaussian_noise_has_its_sigma_and_ou_noise_is_a_process():
    policy = make(DDPG, random_steps=0, noise_sigma=0.05)
    obs = torch.zeros(20000, 3)
    mean = policy.model.actor(obs[:1]).detach()
    noisy = policy.model.scaler.normalize(
        policy.act(obs, "collect", generator=torch.Generator().manual_seed(0))
    )
    inside = (mean.abs() < 0.8).squeeze(0)  # noise clipped at the bounds only rarely here
    torch.testing.assert_close(
        (noisy - mean).std(0)[inside], torch.full((int(inside.sum()),), 0.05), atol=3e-3, rtol=0
    )
    ou = make(DDPG, random_steps=0, exploration="ou", noise_sigma=0.3)
    assert isinstance(ou.noise, OUNoise)
    with pytest.raises(ValueError, match="exploration"):
        make(DDPG, exploration="uniform")


def test_ddpg_target_uses_the_target_actor_and_critic():
    policy = make(DDPG, gamma=0.9)
    perturb(policy.target_actor)
    perturb(policy.target_critics)
    batch = batch_of()
    next_obs = batch[keys.NEXT_OBS]
    with torch.no_grad():
        next_value = policy.target_critics(next_obs, policy.target_actor(next_obs))[0]
    torch.testing.assert_close(policy.critic_target(batch), nstep_target(batch, 0.9, next_value))


def test_td3_target_smooths_the_target_action_and_takes_the_min_critic():
    policy = make(TD3, gamma=0.9, target_noise=0.2, target_noise_clip=0.3)
    perturb(policy.target_critics)
    batch = batch_of()
    next_obs = batch[keys.NEXT_OBS]
    torch.manual_seed(7)
    target = policy.critic_target(batch)
    torch.manual_seed(7)
    with torch.no_grad():
        action = policy.target_actor(next_obs)
        noise = (torch.randn(action.shape) * 0.2).clamp(-0.3, 0.3)
        next_q = policy.target_critics(next_obs, (action + noise).clamp(-1, 1))
    assert next_q.shape == (2, 6) and not torch.equal(next_q[0], next_q[1])
    torch.testing.assert_close(target, nstep_target(batch, 0.9, next_q.min(0).values))


def test_sac_target_has_the_entropy_term_of_a_fresh_next_action():
    policy = make(SAC, gamma=0.9, alpha=0.5)
    perturb(policy.target_critics)
    batch = batch_of()
    next_obs = batch[keys.NEXT_OBS]
    torch.manual_seed(3)
    target = policy.critic_target(batch)
    torch.manual_seed(3)
    with torch.no_grad():
        action, log_prob = policy.model.actor.sample(next_obs)
        next_value = policy.target_critics(next_obs, action).min(0).values - 0.5 * log_prob
    torch.testing.assert_close(target, nstep_target(batch, 0.9, next_value))


@pytest.mark.parametrize("cls", POLICIES)
def test_actor_losses_train_the_actor_only(cls):
    policy = make(cls)
    policy.train_iter = 1  # TD3: the second update trains its actor
    torch.manual_seed(2)
    losses, _ = policy.actor_losses(batch_of()[keys.OBS])
    torch.stack(list(losses.values())).sum().backward()
    assert all(p.grad is not None for p in policy.model.actor.parameters())
    assert all(p.grad is None for p in policy.model.critics.parameters())
    assert sorted(losses) == (["actor", "alpha"] if cls is SAC else ["actor"])
    if cls is SAC:  # the temperature learns from its own loss alone
        torch.manual_seed(2)
        log_prob = policy.model.actor.sample(batch_of()[keys.OBS])[1].detach()
        torch.testing.assert_close(policy.log_alpha.grad, -(log_prob.mean() + policy.target_entropy))


def test_td3_delays_the_actor_and_its_targets():
    policy = make(TD3, policy_delay=2, tau=0.5)
    obs = batch_of()[keys.OBS]
    policy.train_iter = 0
    assert policy.actor_losses(obs) == ({}, {})  # update 1: critics only
    policy.train_iter = 1
    assert "actor" in policy.actor_losses(obs)[0]  # update 2
    perturb(policy.model.actor)
    before = [p.clone() for p in policy.target_actor.parameters()]
    policy.after_update(trained_actor=False)
    assert all(torch.equal(a, b) for a, b in zip(before, policy.target_actor.parameters(), strict=True))
    policy.after_update(trained_actor=True)
    assert not any(torch.equal(a, b) for a, b in zip(before, policy.target_actor.parameters(), strict=True))


def test_fused_adam_leaves_a_part_without_gradient_untouched():
    policy = make(TD3)
    optimizer = policy.configure_optimizers()
    assert [group["name"] for group in optimizer.param_groups] == ["critic", "actor"]
    actor_before = [p.clone() for p in policy.model.actor.parameters()]
    for param in policy.model.critics.parameters():
        param.grad = torch.ones_like(param)
    optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(actor_before, policy.model.actor.parameters(), strict=True))
    assert all(not optimizer.state[p] for p in policy.model.actor.parameters())  # no moments either


def test_sac_temperature_groups_and_fixed_alpha():
    auto = make(SAC, alpha=0.2, alpha_lr=3e-4)
    groups = auto.configure_optimizers().param_groups
    assert [(g["name"], g["lr"]) for g in groups][-1] == ("alpha", 3e-4)
    assert auto.alpha.item() == pytest.approx(0.2) and auto.target_entropy == -2.0
    fixed = make(SAC, alpha=0.1, auto_alpha=False, target_entropy=-1.0)
    assert [g["name"] for g in fixed.configure_optimizers().param_groups] == ["critic", "actor"]
    assert "alpha" not in fixed.actor_losses(batch_of()[keys.OBS])[0]
    with pytest.raises(ValueError, match="alpha"):
        make(SAC, alpha=0.0)


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (SAC, {"tau": 0.0}, "tau"),
        (DDPG, {"actor_lr": -1.0}, "actor_lr"),
        (DDPG, {"random_steps": -1}, "random_steps"),
        (TD3, {"policy_delay": 0}, "policy_delay"),
        (TD3, {"target_noise": -0.1}, "target_noise"),
    ],
)
def test_bad_arguments_name_the_field(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(cls, **kwargs)


def test_td3_under_ddp_asks_for_unused_parameters():
    policy = make(TD3)
    policy.check_strategy(SingleDeviceStrategy("cpu"))
    policy.check_strategy(DDPStrategy(find_unused_parameters=True))
    with pytest.raises(ConfigError, match="ddp_find_unused_parameters_true") as err:
        policy.check_strategy(DDPStrategy())
    assert err.value.field == "trainer.strategy"
    make(TD3, policy_delay=1).check_strategy(DDPStrategy())
