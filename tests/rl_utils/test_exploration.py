"""Hand-computed checks of ``lightning_rl.rl_utils.exploration``."""

from functools import partial

import pytest
import tensor_helpers
import torch

from lightning_rl.rl_utils import (
    GaussianNoise,
    NoiseGenerator,
    OUNoise,
    add_action_noise,
    epsilon_greedy,
)

close = partial(tensor_helpers.close, atol=1e-6, rtol=1e-6)


def test_epsilon_greedy_zero_is_argmax():
    q = torch.tensor([[1.0, 3.0, 2.0], [-1.0, -2.0, -3.0], [0.0, 0.0, 5.0]])
    actions = epsilon_greedy(q, 0.0, torch.Generator().manual_seed(0))
    assert actions.dtype == torch.int64
    assert actions.tolist() == [1, 0, 2]
    assert epsilon_greedy(q, 0.0).tolist() == [1, 0, 2]


def test_epsilon_greedy_one_is_uniform_and_seeded():
    batch, action_dim = 6000, 3
    q = torch.zeros(batch, action_dim)
    q[:, 0] = 1.0  # greedy action 0 everywhere
    actions = epsilon_greedy(q, 1.0, torch.Generator().manual_seed(0))
    counts = torch.bincount(actions, minlength=action_dim)
    # each count ~ Binomial(6000, 1/3): mean 2000, std ~37
    assert ((counts - batch / action_dim).abs() < 200).all(), counts
    again = epsilon_greedy(q, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(actions, again)

    # eps 0.5: greedy action with probability 0.5 + 0.5 / 3 = 2/3
    half = epsilon_greedy(q, 0.5, torch.Generator().manual_seed(1))
    assert abs((half == 0).float().mean().item() - 2 / 3) < 0.03


def test_epsilon_greedy_bad_arguments():
    with pytest.raises(ValueError, match="epsilon"):
        epsilon_greedy(torch.zeros(2, 3), 1.2)
    with pytest.raises(ValueError, match="q"):
        epsilon_greedy(torch.zeros(3), 0.1)


def test_gaussian_noise():
    noise = GaussianNoise(mu=1.0, sigma=0.0)
    assert isinstance(noise, NoiseGenerator)
    close(noise((2, 3)), torch.ones(2, 3))

    noise = GaussianNoise(mu=0.5, sigma=2.0)
    sample = noise((20_000,), torch.Generator().manual_seed(0))
    assert abs(sample.mean().item() - 0.5) < 0.05  # standard error 2 / sqrt(20000) = 0.014
    assert abs(sample.std().item() - 2.0) < 0.05
    assert torch.equal(
        noise((5,), torch.Generator().manual_seed(3)), noise((5,), torch.Generator().manual_seed(3))
    )
    noise.reset()  # stateless: no-op
    with pytest.raises(ValueError, match="sigma"):
        GaussianNoise(sigma=-1.0)


def test_ou_noise_deterministic_mean_reversion():
    # sigma 0: x <- x + theta * (mu - x) * dt = x * (1 - 0.15 * 0.01) = 0.9985 x
    noise = OUNoise(mu=0.0, sigma=0.0, theta=0.15, dt=0.01, x0=1.0)
    assert isinstance(noise, NoiseGenerator)
    close(noise((2,)), [0.9985, 0.9985])
    close(noise((2,)), [0.99700225, 0.99700225])
    noise.reset()
    close(noise((2,)), [0.9985, 0.9985])

    # theta 0.5, dt 1, mu 0.5, x0 1: 1 -> 0.75 -> 0.625 -> 0.5625 (halving the gap to mu each step)
    noise = OUNoise(mu=0.5, sigma=0.0, theta=0.5, dt=1.0, x0=1.0)
    close(torch.stack([noise((1,)) for _ in range(3)]).flatten(), [0.75, 0.625, 0.5625])
    # a new shape restarts from x0
    close(noise((3,)), [0.75, 0.75, 0.75])
    # x0 None starts at mu and stays there without diffusion
    close(OUNoise(mu=0.2, sigma=0.0)((2,)), [0.2, 0.2])


def test_ou_noise_stochastic_step():
    gen_a, gen_b = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    noise = OUNoise(mu=0.0, sigma=0.3, theta=0.15, dt=0.01, x0=0.0)
    first = noise((4,), gen_a)
    # from x0 = 0 the first step is pure diffusion: sigma * sqrt(dt) * N(0, 1)
    close(first, 0.3 * 0.1 * torch.randn(4, generator=gen_b))
    # the state carries over: the next value is x + theta * (mu - x) * dt + diffusion
    second = noise((4,), gen_a)
    close(second, first - 0.15 * first * 0.01 + 0.03 * torch.randn(4, generator=gen_b))
    with pytest.raises(ValueError, match="dt"):
        OUNoise(dt=0.0)
    with pytest.raises(ValueError, match="theta"):
        OUNoise(theta=-1.0)


def test_add_action_noise():
    action = torch.tensor([[0.5, -0.9]])
    # [0.5 + 0.7, -0.9 - 0.05] = [1.2, -0.95] -> clipped to [1, -0.95]
    close(add_action_noise(action, torch.tensor([[0.7, -0.05]]), -1.0, 1.0), [[1.0, -0.95]])
    # noise_clip 0.5: noise [0.3, -0.6] -> [0.3, -0.5]; action + noise = [0.8, -1.4] -> [0.8, -1.0]
    clipped = add_action_noise(action, torch.tensor([[0.3, -0.6]]), -1.0, 1.0, noise_clip=0.5)
    close(clipped, [[0.8, -1.0]])
    # per-dimension tensor bounds
    bounded = add_action_noise(action, torch.tensor([[0.7, -0.7]]), torch.tensor([-1.0, -1.5]), 1.0)
    close(bounded, [[1.0, -1.5]])
    # a NoiseGenerator is called with the action's shape (theta 0, sigma 0: constant x0)
    close(add_action_noise(action, OUNoise(sigma=0.0, theta=0.0, x0=0.1), -1.0, 1.0), [[0.6, -0.8]])
    with pytest.raises(ValueError, match="low"):
        add_action_noise(action, torch.zeros(1, 2), 1.0, -1.0)
    with pytest.raises(ValueError, match="noise_clip"):
        add_action_noise(action, torch.zeros(1, 2), -1.0, 1.0, noise_clip=-0.1)


def test_noise_generator_base_is_abstract():
    with pytest.raises(NotImplementedError):
        NoiseGenerator()((1,))
