"""DQN policy: argument checks, acting, the loss it builds, target updates."""

import pytest
import torch
from policy_utils import CARTPOLE, cartpole_batch

from lightning_rl import keys
from lightning_rl.policies import DQN
from lightning_rl.utils.checks import ConfigError

PENDULUM = {
    "env_id": "Pendulum-v1",
    "obs_shape": [3],
    "obs_dtype": "float32",
    "action_type": "continuous",
    "action_shape": [1],
    "action_low": [-2.0],
    "action_high": [2.0],
}


def test_continuous_actions_are_rejected_with_the_reason():
    with pytest.raises(
        ConfigError, match=r"DQN needs discrete actions .* 'Pendulum-v1' has continuous"
    ) as err:
        DQN(env_spec=PENDULUM)
    assert err.value.field == "data.init_args.env_id" and "DDPG, TD3 or SAC" in str(err.value)


def test_missing_env_spec_says_how_to_pass_it():
    with pytest.raises(ValueError, match="model.env_spec is missing"):
        DQN()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gamma": 1.5}, r"gamma must be in \[0.0, 1.0\]"),
        ({"lr": 0}, "lr must be > 0"),
        ({"target_tau": 0.0}, r"target_tau must be in \(0.0, 1.0\]"),
        ({"target_update_interval": -1}, "target_update_interval must be > 0"),
        ({"loss_type": "l1"}, r"loss_type must be one of \['huber', 'mse'\]"),
        ({"eps_schedule": "cosine"}, r"eps_schedule must be one of \['exp', 'linear'\]"),
        ({"eps_start": 2.0}, r"eps_start must be in \[0.0, 1.0\]"),
        ({"eps_decay_steps": 0}, "eps_decay_steps must be > 0"),
        ({"hidden_sizes": []}, "hidden_sizes"),
    ],
)
def test_bad_hyperparameters_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DQN(env_spec=CARTPOLE, **kwargs)


def test_eval_is_greedy_and_collect_follows_the_epsilon_schedule():
    policy = DQN(env_spec=CARTPOLE, eps_start=1.0, eps_end=0.0, eps_decay_steps=100)
    obs = torch.randn(256, 4)
    greedy = policy.net(obs).argmax(-1)
    assert torch.equal(policy.act(obs, mode="eval"), greedy)
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(policy.act(obs, "collect", env_steps=100, generator=generator), greedy)  # eps = 0
    random_actions = policy.act(obs, "collect", env_steps=0, generator=generator)  # eps = 1: uniform
    assert 0.35 < (random_actions != greedy).float().mean() < 0.65
    assert policy.epsilon(50) == pytest.approx(0.5)


@pytest.mark.parametrize("double", [True, False])
def test_loss_matches_the_double_dqn_nstep_target_computed_by_hand(double):
    torch.manual_seed(0)
    policy = DQN(env_spec=CARTPOLE, hidden_sizes=(8,), double=double, gamma=0.9, loss_type="mse")
    with torch.no_grad():  # make the target net differ from the online net
        for p in policy.target_net.parameters():
            p.add_(torch.randn_like(p))
    batch = cartpole_batch()
    loss, td_error, extra = policy.compute_loss(batch)

    with torch.no_grad():
        q = policy.net(batch[keys.OBS]).gather(1, batch[keys.ACTION].unsqueeze(1)).squeeze(1)
        next_q_target = policy.target_net(batch[keys.NEXT_OBS])
        next_action = policy.net(batch[keys.NEXT_OBS]).argmax(-1) if double else next_q_target.argmax(-1)
        bootstrap = next_q_target.gather(1, next_action.unsqueeze(1)).squeeze(1)
        expected = []
        for i in range(5):
            ret = sum(0.9**k * batch[keys.REWARD][i, k] for k in range(3))
            if not batch[keys.TERMINATED][i]:
                ret = ret + 0.9 ** batch[keys.STEPS][i] * bootstrap[i]
            expected.append(ret)
        target = torch.stack(expected)
    assert torch.allclose(td_error, (target - q).abs(), atol=1e-5)
    assert torch.allclose(loss, (batch[keys.WEIGHT] * (target - q) ** 2).mean(), atol=1e-5)
    assert torch.allclose(extra["q_mean"], policy.net(batch[keys.OBS]).mean())


def test_hard_target_update_happens_every_interval():
    policy = DQN(env_spec=CARTPOLE, hidden_sizes=(8,), target_update_interval=3)
    with torch.no_grad():
        next(policy.net.parameters()).add_(1.0)
    for train_iter, synced in [(1, False), (2, False), (3, True)]:
        policy.train_iter = train_iter
        policy.update_target()
        pairs = zip(policy.net.parameters(), policy.target_net.parameters(), strict=True)
        same = all(torch.equal(a, b) for a, b in pairs)
        assert same is synced


def test_polyak_update_moves_target_by_tau():
    policy = DQN(env_spec=CARTPOLE, hidden_sizes=(8,), target_tau=0.25)
    online, target = next(policy.net.parameters()), next(policy.target_net.parameters())
    with torch.no_grad():
        online.copy_(torch.ones_like(online))
        target.zero_()
    policy.update_target()
    assert torch.allclose(target, torch.full_like(target, 0.25))
    assert not target.requires_grad


def test_dueling_and_image_observations_build():
    atari = {**CARTPOLE, "env_id": "Pong", "obs_shape": [4, 84, 84], "obs_dtype": "uint8", "n_actions": 6}
    policy = DQN(env_spec=atari, dueling=True)
    frames = torch.randint(0, 255, (2, 4, 84, 84), dtype=torch.uint8)
    assert policy.act(frames).shape == (2,)
