"""Target-network updates of ``lightning_rl.torch_utils.target``: hand-computed values, buffers included."""

from copy import deepcopy

import pytest
import torch
from torch import nn

from lightning_rl.torch_utils import TargetUpdater, hard_update, soft_update


def linear(weight, bias):
    layer = nn.Linear(len(weight[0]), len(weight))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias))
    return layer


def with_batch_norm():
    """Linear(2, 2) + BatchNorm1d(2) with known parameters and running statistics."""
    net = nn.Sequential(linear([[1.0, 2.0], [3.0, 4.0]], [0.5, -0.5]), nn.BatchNorm1d(2))
    with torch.no_grad():
        net[1].running_mean.copy_(torch.tensor([1.0, -2.0]))
        net[1].running_var.copy_(torch.tensor([4.0, 0.5]))
        net[1].num_batches_tracked.fill_(7)
    return net


def test_soft_update_hand_computed():
    target = linear([[0.0, 4.0]], [2.0])
    source = linear([[1.0, 0.0]], [-2.0])
    soft_update(target, source, tau=0.25)
    # 0.75 * target + 0.25 * source
    assert torch.equal(target.weight, torch.tensor([[0.25, 3.0]]))
    assert torch.equal(target.bias, torch.tensor([1.0]))
    assert torch.equal(source.weight, torch.tensor([[1.0, 0.0]]))  # the source is not touched


def test_soft_update_averages_float_buffers_and_copies_integer_ones():
    source = with_batch_norm()
    target = deepcopy(source)
    with torch.no_grad():
        target[1].running_mean.copy_(torch.tensor([3.0, 2.0]))
        target[1].running_var.copy_(torch.tensor([2.0, 2.5]))
        target[1].num_batches_tracked.fill_(1)
    soft_update(target, source, tau=0.5)
    assert torch.equal(target[1].running_mean, torch.tensor([2.0, 0.0]))
    assert torch.equal(target[1].running_var, torch.tensor([3.0, 1.5]))
    assert target[1].num_batches_tracked.item() == 7
    assert target[1].num_batches_tracked.dtype == torch.int64


def test_soft_update_is_bit_identical_to_foreach_lerp_of_the_parameters():
    torch.manual_seed(0)
    source = nn.Sequential(nn.Linear(7, 33), nn.ReLU(), nn.Linear(33, 5))
    target = deepcopy(source).requires_grad_(False)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p))
    expected = deepcopy(target)
    for tau in (0.005, 0.3, 1e-7):
        with torch.no_grad():
            torch._foreach_lerp_(list(expected.parameters()), list(source.parameters()), tau)
        soft_update(target, source, tau)
        for got, want in zip(target.parameters(), expected.parameters(), strict=True):
            assert torch.equal(got, want)


def test_hard_update_copies_parameters_and_buffers_like_load_state_dict():
    source = with_batch_norm()
    target = nn.Sequential(linear([[0.0, 0.0], [0.0, 0.0]], [0.0, 0.0]), nn.BatchNorm1d(2))
    target.requires_grad_(False)
    hard_update(target, source)
    for (name, got), want in zip(target.state_dict().items(), source.state_dict().values(), strict=True):
        assert torch.equal(got, want), name
    assert target[1].num_batches_tracked.item() == 7
    # still frozen, still its own storage
    assert not any(p.requires_grad for p in target.parameters())
    with torch.no_grad():
        source[0].weight.add_(1.0)
    assert torch.equal(target[0].weight, torch.tensor([[1.0, 2.0], [3.0, 4.0]]))


def test_soft_update_keeps_a_frozen_target_frozen_and_reads_the_source_only():
    source = linear([[1.0]], [1.0])
    target = deepcopy(source).requires_grad_(False)
    versions = [p._version for p in source.parameters()]
    loss = (source(torch.ones(1, 1)) ** 2).sum()
    soft_update(target, source, 0.5)
    loss.backward()  # the source tensors autograd saved were not written to
    assert [p._version for p in source.parameters()] == versions
    assert not any(p.requires_grad for p in target.parameters())
    assert all(p.grad is None for p in target.parameters())


def test_target_updater_hard_copy_every_interval():
    source = linear([[1.0]], [0.0])
    target = deepcopy(source).requires_grad_(False)
    updater = TargetUpdater(target, source, tau=1.0, interval=3)
    synced = []
    for train_iter in range(1, 8):
        with torch.no_grad():
            source.weight.fill_(float(train_iter))
        updater.step(train_iter)
        synced.append(target.weight.item())
    # copies after updates 3 and 6 only
    assert synced == [1.0, 1.0, 3.0, 3.0, 3.0, 6.0, 6.0]


def test_target_updater_polyak_every_update_ignores_interval():
    source = linear([[8.0]], [0.0])
    target = linear([[0.0]], [0.0])
    updater = TargetUpdater(target, source, tau=0.5, interval=1000)
    values = []
    for train_iter in range(1, 4):
        updater.step(train_iter)
        values.append(target.weight.item())
    assert values == [4.0, 6.0, 7.0]


def test_bad_arguments_and_mismatched_networks():
    net = linear([[1.0]], [0.0])
    for tau in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="tau"):
            TargetUpdater(deepcopy(net), net, tau=tau)
        with pytest.raises(ValueError, match="tau"):
            soft_update(deepcopy(net), net, tau)
    for interval in (0, 1.5, True):
        with pytest.raises(ValueError, match="interval"):
            TargetUpdater(deepcopy(net), net, interval=interval)
    with pytest.raises(ValueError, match="differ"):
        TargetUpdater(nn.Sequential(net, nn.Linear(1, 1)), net)
    with pytest.raises(ValueError, match="differ"):
        soft_update(nn.Linear(2, 1), net, 0.5)
