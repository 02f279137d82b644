"""QValueAC: batched critics equal separate MLPs, exact squashed-Gaussian densities, action scaling."""

import pytest
import torch
from torch import nn
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from lightning_rl.models import ActionScaler, EnsembleMLP, QValueAC


def test_ensemble_equals_separate_mlps():
    torch.manual_seed(0)
    ensemble = EnsembleMLP(5, (8, 6), n_members=3)
    x = torch.randn(4, 5)
    out = ensemble(x)
    assert out.shape == (3, 4)
    for k in range(3):
        mlp = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 1))
        linears = [m for m in mlp if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for linear, weight, bias in zip(linears, ensemble.weights, ensemble.biases, strict=True):
                linear.weight.copy_(weight[k].T)
                linear.bias.copy_(bias[k, 0])
        torch.testing.assert_close(out[k], mlp(x).squeeze(-1))


def test_ensemble_members_start_different():
    ensemble = EnsembleMLP(3, (4,), n_members=2)
    assert not torch.equal(ensemble.weights[0][0], ensemble.weights[0][1])


def test_detached_params_pass_gradient_to_the_input_only():
    ensemble = EnsembleMLP(3, (4,), n_members=2)
    x = torch.randn(2, 3, requires_grad=True)
    ensemble(x, detach_params=True).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(w.grad is None for w in ensemble.weights)
    ensemble(x).sum().backward()
    assert all(w.grad is not None for w in ensemble.weights)


def test_hidden_sizes_checked():
    with pytest.raises(ValueError, match="hidden_sizes"):
        EnsembleMLP(3, (), 2)


def test_action_scaler_round_trip_and_bounds():
    scaler = ActionScaler([-2.0, 0.0], [2.0, 1.0], (2,))
    torch.testing.assert_close(
        scaler.scale(torch.tensor([[-1.0, 1.0], [0.5, 0.0]])), torch.tensor([[-2.0, 1.0], [1.0, 0.5]])
    )
    action = torch.tensor([[1.3, 0.2]])
    torch.testing.assert_close(scaler.scale(scaler.normalize(action)), action)
    with pytest.raises(ValueError, match="low < high"):
        ActionScaler([1.0], [1.0], (1,))
    with pytest.raises(ValueError, match="finite"):
        ActionScaler([-float("inf")], [1.0], (1,))


def test_gaussian_actor_log_prob_matches_torch_distributions():
    torch.manual_seed(1)
    model = QValueAC((3,), (2,), [-1.0, -1.0], [1.0, 1.0], actor="gaussian", actor_hidden_sizes=(16,))
    obs = torch.randn(64, 3)
    action, log_prob = model.actor.sample(obs, torch.Generator().manual_seed(0))
    assert action.shape == (64, 2) and log_prob.shape == (64,)
    mean, log_std = model.actor.head(model.actor.encoder(obs)).chunk(2, dim=-1)
    reference = TransformedDistribution(
        Normal(mean, log_std.clamp(-20, 2).exp()), TanhTransform(cache_size=1)
    )
    expected = reference.log_prob(action.clamp(-1 + 1e-6, 1 - 1e-6)).sum(-1)
    torch.testing.assert_close(log_prob, expected, atol=2e-3, rtol=1e-4)
    torch.testing.assert_close(model.actor(obs), torch.tanh(mean))


def test_gaussian_sample_is_reparameterized_and_seeded():
    model = QValueAC((3,), (1,), [-2.0], [2.0])
    obs = torch.randn(5, 3)
    first, _ = model.actor.sample(obs, torch.Generator().manual_seed(7))
    second, log_prob = model.actor.sample(obs, torch.Generator().manual_seed(7))
    torch.testing.assert_close(first, second)
    (second.sum() + log_prob.sum()).backward()
    assert all(p.grad is not None for p in model.actor.parameters())


def test_deterministic_actor_and_twin_critics():
    model = QValueAC((3,), (2,), [-1.0, -1.0], [1.0, 1.0], actor="deterministic", n_critics=2)
    obs = torch.randn(7, 3)
    action = model.actor(obs)
    assert action.shape == (7, 2) and action.abs().max() <= 1.0
    assert model.critics(obs, action).shape == (2, 7)


def test_image_observations_share_one_cnn():
    model = QValueAC(
        (4, 84, 84), (3,), [-1.0] * 3, [1.0] * 3, critic_hidden_sizes=(64,), actor_hidden_sizes=(32,)
    )
    obs = torch.randint(0, 255, (2, 4, 84, 84), dtype=torch.uint8)
    assert model.critics(obs, model.actor(obs)).shape == (2, 2)
    action, log_prob = model.actor.sample(obs)
    assert action.shape == (2, 3) and log_prob.shape == (2,)


def test_bad_arguments():
    with pytest.raises(ValueError, match="actor must be one of"):
        QValueAC((3,), (1,), [-1.0], [1.0], actor="beta")
    with pytest.raises(ValueError, match="n_critics"):
        QValueAC((3,), (1,), [-1.0], [1.0], n_critics=0)
