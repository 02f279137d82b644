import math

import pytest
import torch
from torch.distributions import AffineTransform, Normal, TanhTransform, TransformedDistribution

from lightning_rl.models import (
    CategoricalDist,
    DiagGaussian,
    SquashedDiagGaussian,
    ValueAC,
    tanh_log_abs_det_jacobian,
)
from lightning_rl.spec import EnvSpec
from lightning_rl.torch_utils import NatureCNNEncoder

CARTPOLE = EnvSpec("CartPole-v1", obs_shape=(4,), obs_dtype="float32", action_type="discrete", n_actions=2)
PENDULUM = EnvSpec(
    "Pendulum-v1",
    obs_shape=(3,),
    obs_dtype="float32",
    action_type="continuous",
    action_shape=(1,),
    action_low=(-2.0,),
    action_high=(2.0,),
)


def continuous(**kwargs):
    return ValueAC((3,), "continuous", action_shape=(2,), hidden_sizes=(16, 16), **kwargs)


def test_discrete_shapes_and_api():
    torch.manual_seed(0)
    net = ValueAC((4,), "discrete", n_actions=3, hidden_sizes=(16, 8))
    obs = torch.randn(5, 4)
    dist, value = net(obs)
    assert isinstance(dist, CategoricalDist)
    assert dist.logits.shape == (5, 3) and value.shape == (5,)
    action, log_prob, value2 = net.act(obs)
    assert action.shape == (5,) and action.dtype == torch.int64
    assert log_prob.shape == (5,) and not log_prob.requires_grad
    assert torch.equal(value2, value.detach())
    assert torch.allclose(log_prob, dist.logits.gather(1, action[:, None]).squeeze(1))
    lp, ent, v = net.evaluate_actions(obs, action)
    assert lp.shape == ent.shape == v.shape == (5,) and lp.requires_grad
    assert torch.allclose(lp, log_prob)
    assert torch.allclose(ent, -(dist.probs * dist.logits).sum(-1))
    assert torch.equal(net.value(obs), value)
    # deterministic = argmax of the logits
    action, log_prob, _ = net.act(obs, deterministic=True)
    assert torch.equal(action, dist.logits.argmax(-1))
    assert torch.allclose(log_prob, dist.logits.max(-1).values)


@pytest.mark.parametrize("squash", [False, True])
def test_continuous_shapes(squash):
    net = continuous(squash=squash, action_low=-1.0, action_high=1.0)
    obs = torch.randn(6, 3)
    dist, value = net(obs)
    assert isinstance(dist, SquashedDiagGaussian if squash else DiagGaussian)
    assert value.shape == (6,)
    action, log_prob, _ = net.act(obs)
    assert action.shape == (6, 2) and action.dtype == torch.float32 and log_prob.shape == (6,)
    lp, ent, v = net.evaluate_actions(obs, action)
    assert lp.shape == ent.shape == v.shape == (6,)
    assert torch.allclose(lp, log_prob)
    assert dist.mode.shape == (6, 2)


def test_leading_batch_dims_and_multi_dim_actions():
    # IMPALA evaluates (T, B) unrolls in one call; actions may be matrices.
    net = ValueAC((3,), "continuous", action_shape=(2, 2), hidden_sizes=(8,))
    obs = torch.randn(4, 5, 3)
    action, log_prob, value = net.act(obs)
    assert action.shape == (4, 5, 2, 2) and log_prob.shape == value.shape == (4, 5)
    flat_lp, flat_ent, flat_v = net.evaluate_actions(obs.reshape(20, 3), action.reshape(20, 2, 2))
    lp, ent, v = net.evaluate_actions(obs, action)
    assert torch.allclose(lp.reshape(20), flat_lp) and torch.allclose(v.reshape(20), flat_v)
    # Gaussian with std 1 (log_std_init 0): entropy = 4 * 0.5 * log(2 pi e)
    assert torch.allclose(ent, torch.full((4, 5), 4 * 0.5 * math.log(2 * math.pi * math.e)))
    disc = ValueAC((4,), "discrete", n_actions=3, hidden_sizes=(8,))
    a, lp, v = disc.act(torch.randn(2, 7, 4))
    assert a.shape == lp.shape == v.shape == (2, 7)
    with pytest.raises(ValueError, match=r"obs must have shape \(\*batch, \*\(4,\)\)"):
        disc(torch.randn(4))
    with pytest.raises(ValueError, match="got \\(2, 5\\)"):
        disc(torch.randn(2, 5))


def test_image_obs_use_nature_cnn_and_shared_encoder_by_default():
    net = ValueAC((4, 84, 84), "discrete", n_actions=6)
    assert net.shared_encoder and isinstance(net.encoder, NatureCNNEncoder)
    assert net.encoder.out_dim == 512
    assert net.actor_encoder is net.critic_encoder is net.encoder
    assert not any(k.startswith(("actor_encoder", "critic_encoder")) for k in net.state_dict())
    frames = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    action, log_prob, value = net.act(frames)
    assert action.shape == log_prob.shape == value.shape == (2,)
    dist, value2 = net(frames.float() / 255.0)  # uint8 frames are scaled inside the encoder
    assert torch.allclose(value2, value, atol=1e-5)
    assert not ValueAC((4,), "discrete", n_actions=2).shared_encoder  # vectors: separate by default


@pytest.mark.parametrize("shared", [True, False])
def test_value_loss_reaches_actor_encoder_only_when_shared(shared):
    net = ValueAC((4,), "discrete", n_actions=2, hidden_sizes=(8,), shared_encoder=shared)
    obs = torch.randn(3, 4)
    _, value = net(obs)
    (value**2).mean().backward()
    actor_grads = [p.grad for p in net.actor_encoder.parameters()]
    assert net.value_head.weight.grad is not None
    assert net.policy_head.weight.grad is None
    if shared:
        assert all(g is not None and g.abs().sum() > 0 for g in actor_grads)
        assert sum(p.numel() for p in net.parameters()) == 4 * 8 + 8 + (8 * 2 + 2) + (8 + 1)
    else:
        assert all(g is None for g in actor_grads)
        assert all(p.grad is not None for p in net.critic_encoder.parameters())
        assert net.actor_encoder is not net.critic_encoder
    # value() alone runs the critic: the policy loss never touches the critic encoder when separate
    net.zero_grad(set_to_none=True)
    dist = net.action_dist(obs)
    dist.log_prob(torch.tensor([0, 1, 0])).sum().backward()
    critic_grads = [p.grad for p in net.critic_encoder.parameters()]
    assert all(g is not None for g in critic_grads) if shared else all(g is None for g in critic_grads)


def test_independent_log_std_does_not_depend_on_obs_and_is_clamped():
    net = continuous(log_std_init=-0.5, log_std_bounds=(-1.0, 0.3))
    assert isinstance(net.log_std, torch.nn.Parameter) and net.log_std_head is None
    dist, _ = net(torch.randn(4, 3) * 10)
    assert torch.allclose(dist.std, torch.full((4, 2), math.exp(-0.5)))
    with torch.no_grad():
        net.log_std.copy_(torch.tensor([5.0, -5.0]))
    dist, _ = net(torch.randn(4, 3))
    assert torch.allclose(dist.std.log(), torch.tensor([0.3, -1.0]).expand(4, 2))
    # the clamp passes gradient only inside the bounds
    dist.log_prob(torch.zeros(4, 2)).sum().backward()
    assert net.log_std.grad is not None and torch.equal(net.log_std.grad, torch.zeros(2))


def test_state_dependent_log_std_depends_on_obs_and_is_clamped():
    torch.manual_seed(0)
    net = continuous(log_std="state_dependent", log_std_init=-1.0, log_std_bounds=(-2.0, 0.5))
    assert net.log_std is None and net.log_std_head is not None
    assert torch.equal(net.log_std_head.bias, torch.full((2,), -1.0))
    obs = torch.randn(8, 3)
    dist, _ = net(obs)
    log_std = dist.std.log()
    assert not torch.allclose(log_std[0], log_std[1])  # varies with obs
    assert torch.allclose(log_std, torch.tensor(-1.0), atol=0.1)  # small head gain: starts near init
    with torch.no_grad():
        net.log_std_head.weight.mul_(1e4)
    log_std = net(obs)[0].std.log()
    assert log_std.min() >= -2.0 - 1e-6 and log_std.max() <= 0.5 + 1e-6
    assert torch.isclose(log_std.min(), torch.tensor(-2.0)) and torch.isclose(
        log_std.max(), torch.tensor(0.5)
    )


def test_squashed_log_prob_matches_change_of_variables():
    torch.manual_seed(0)
    f64 = torch.float64  # exact comparison; float32 agrees to ~1e-4
    low, high = torch.tensor([-2.0, 0.0], dtype=f64), torch.tensor([2.0, 10.0], dtype=f64)
    mean, log_std = torch.randn(64, 2, dtype=f64) * 2, torch.randn(64, 2, dtype=f64) * 0.5
    dist = SquashedDiagGaussian(mean, log_std, low, high)
    reference = TransformedDistribution(
        Normal(mean, log_std.exp()),
        [TanhTransform(cache_size=1), AffineTransform(loc=(low + high) / 2, scale=(high - low) / 2)],
    )
    u = dist.gaussian.sample()
    action = reference.transforms[1](reference.transforms[0](u))  # caches u for the reference
    assert torch.allclose(dist.squash(u), action, atol=1e-6)
    expected = reference.log_prob(action).sum(-1)
    assert torch.allclose(dist.log_prob_pre_tanh(u), expected, atol=1e-10)
    # from the action alone (atanh inversion): accurate away from the bounds
    inner = u.abs().max(-1).values < 4
    assert inner.sum() > 30
    assert torch.allclose(dist.log_prob(action)[inner], expected[inner], atol=1e-6)
    # the log-det of the affine rescale is included: sum log((high - low) / 2) = log 2 + log 5
    unit = SquashedDiagGaussian(mean, log_std, -torch.ones(2, dtype=f64), torch.ones(2, dtype=f64))
    diff = unit.log_prob_pre_tanh(u) - dist.log_prob_pre_tanh(u)
    assert torch.allclose(diff, torch.tensor(math.log(10.0), dtype=f64))


def test_squashed_actions_in_bounds_and_finite_at_saturation():
    torch.manual_seed(0)
    low, high = torch.tensor([-2.0, 0.0]), torch.tensor([2.0, 10.0])
    dist = SquashedDiagGaussian(torch.randn(1000, 2) * 10, torch.ones(1000, 2), low, high)
    action, log_prob = dist.sample_with_log_prob()
    assert (action >= low).all() and (action <= high).all()
    assert torch.isfinite(log_prob).all() and torch.isfinite(dist.log_prob(action)).all()
    # stable log(1 - tanh(u)^2), exact where the naive form gives -inf
    u = torch.tensor([0.0, 1.0, -3.0, 30.0, -30.0])
    assert torch.allclose(tanh_log_abs_det_jacobian(u[:3]), torch.log(1 - torch.tanh(u[:3]) ** 2), atol=1e-5)
    assert torch.allclose(tanh_log_abs_det_jacobian(u[3:]), math.log(4) - 2 * u[3:].abs())


def test_squashed_entropy_is_the_base_gaussian_entropy():
    mean, log_std = torch.zeros(3, 2), torch.tensor([[0.0, -1.0]]).expand(3, 2)
    dist = SquashedDiagGaussian(mean, log_std, -torch.ones(2), torch.ones(2))
    assert torch.allclose(dist.entropy(), DiagGaussian(mean, log_std).entropy())
    assert torch.allclose(dist.entropy(), torch.full((3,), math.log(2 * math.pi * math.e) - 1.0))
    est = torch.stack([dist.entropy_estimate() for _ in range(2000)]).mean(0)
    assert (est < dist.entropy()).all()  # squashing into [-1, 1] only lowers the entropy


def test_deterministic_action_is_the_mode():
    torch.manual_seed(0)
    obs = torch.randn(5, 3)
    net = continuous()
    dist, _ = net(obs)
    action, log_prob, _ = net.act(obs, deterministic=True)
    assert torch.equal(action, dist.mean)
    assert torch.allclose(log_prob, dist.log_prob(dist.mean))
    net = continuous(squash=True, action_low=[-2.0, 0.0], action_high=[2.0, 4.0])
    dist, _ = net(obs)
    action, _, _ = net.act(obs, deterministic=True)
    expected = torch.tensor([0.0, 2.0]) + torch.tensor([2.0, 2.0]) * torch.tanh(dist.mean)
    assert torch.allclose(action, expected, atol=1e-6)


def test_sampled_log_prob_matches_distribution():
    torch.manual_seed(0)
    mean, log_std = torch.randn(7, 3), torch.randn(7, 3) * 0.3
    gaussian = DiagGaussian(mean, log_std)
    action, log_prob = gaussian.sample_with_log_prob()
    assert torch.allclose(log_prob, Normal(mean, log_std.exp()).log_prob(action).sum(-1))
    cat = CategoricalDist(torch.randn(7, 4))
    action, log_prob = cat.sample_with_log_prob()
    assert torch.allclose(log_prob, torch.log_softmax(cat.logits, -1).gather(1, action[:, None]).squeeze(1))
    assert torch.allclose(cat.log_prob(action.float()), log_prob)
    # rsample carries the reparameterization gradient to the mean and log-std
    mean.requires_grad_(True)
    log_std.requires_grad_(True)
    SquashedDiagGaussian(mean, log_std, -torch.ones(3), torch.ones(3)).rsample().sum().backward()
    assert mean.grad is not None and log_std.grad is not None


def test_orthogonal_init_gains():
    torch.manual_seed(0)
    net = ValueAC((8,), "discrete", n_actions=4, hidden_sizes=(64, 64))
    first = net.actor_encoder.net[1]
    # orthogonal (64, 8) with gain g: W^T W = g^2 I
    assert torch.allclose(first.weight.T @ first.weight, 2.0 * torch.eye(8), atol=1e-4)
    assert torch.equal(first.bias, torch.zeros(64))
    w = net.policy_head.weight  # (4, 64): rows orthonormal * 0.01
    assert torch.allclose(w @ w.T, 1e-4 * torch.eye(4), atol=1e-8)
    v = net.value_head.weight
    assert torch.allclose(v.norm(), torch.tensor(1.0))
    assert torch.equal(net.policy_head.bias, torch.zeros(4)) and torch.equal(
        net.value_head.bias, torch.zeros(1)
    )
    # near-uniform initial policy
    probs = net(torch.randn(16, 8))[0].probs
    assert torch.allclose(probs, torch.full_like(probs, 0.25), atol=0.02)
    cnn = ValueAC((4, 84, 84), "discrete", n_actions=6)
    conv = cnn.encoder.convs[0].weight.flatten(1)  # (32, 256)
    assert torch.allclose(conv @ conv.T, 2.0 * torch.eye(32), atol=1e-4)
    plain = ValueAC((8,), "discrete", n_actions=4, orthogonal_init=False)
    assert plain.policy_head.weight.norm() > 0.5  # PyTorch's default init


def test_from_spec_cartpole_and_pendulum():
    net = ValueAC.from_spec(CARTPOLE)
    assert net.action_type == "discrete" and net.n_actions == 2 and not net.squash
    assert net.act(torch.randn(3, 4))[0].shape == (3,)
    net = ValueAC.from_spec(CARTPOLE.to_dict(), hidden_sizes=(32,), shared_encoder=True)
    assert net.shared_encoder and net.encoder.out_dim == 32
    net = ValueAC.from_spec(PENDULUM)
    assert net.action_shape == (1,) and not net.squash and net.log_std_mode == "independent"
    net = ValueAC.from_spec(PENDULUM, squash=True, log_std="state_dependent")
    assert torch.equal(net.action_low, torch.tensor([-2.0])) and torch.equal(
        net.action_high, torch.tensor([2.0])
    )
    action = net.act(torch.randn(100, 3) * 5)[0]
    assert action.shape == (100, 1) and action.abs().max() <= 2.0
    assert "action_low" not in net.state_dict()
    with pytest.raises(ValueError, match="squash applies to continuous actions only"):
        ValueAC.from_spec(CARTPOLE, squash=True)


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match="n_actions must be >= 1"):
        ValueAC((4,), "discrete")
    with pytest.raises(ValueError, match="action_shape must be a non-empty shape"):
        ValueAC((4,), "continuous")
    with pytest.raises(ValueError, match="action_shape must be a non-empty shape"):
        ValueAC((4,), "continuous", action_shape=(0,))
    with pytest.raises(ValueError, match="action_type must be 'discrete' or 'continuous'"):
        ValueAC((4,), "multi_discrete", n_actions=2)
    with pytest.raises(ValueError, match="squash=True requires both action_low and action_high"):
        ValueAC((4,), "continuous", action_shape=(2,), squash=True, action_low=-1.0)
    with pytest.raises(ValueError, match=r"action_high must be a scalar or have 2 values"):
        ValueAC((4,), "continuous", action_shape=(2,), squash=True, action_low=-1.0, action_high=[1, 2, 3])
    with pytest.raises(ValueError, match="action_low must be finite"):
        ValueAC((4,), "continuous", action_shape=(2,), squash=True, action_low=-math.inf, action_high=1.0)
    with pytest.raises(ValueError, match="action_low must be < action_high"):
        ValueAC((4,), "continuous", action_shape=(2,), squash=True, action_low=1.0, action_high=[2.0, 1.0])
    with pytest.raises(ValueError, match="log_std must be one of"):
        ValueAC((4,), "continuous", action_shape=(2,), log_std="learned")
    with pytest.raises(ValueError, match="log_std_bounds must be"):
        ValueAC((4,), "continuous", action_shape=(2,), log_std_bounds=(2.0, -20.0))
    with pytest.raises(ValueError, match="activation must be one of"):
        ValueAC((4,), "discrete", n_actions=2, activation="gelu")
    with pytest.raises(ValueError, match=r"obs_shape \(2, 3\) is not supported"):
        ValueAC((2, 3), "discrete", n_actions=2)
    with pytest.raises(ValueError, match="unknown keys"):
        ValueAC.from_spec({**CARTPOLE.to_dict(), "bogus": 1})
