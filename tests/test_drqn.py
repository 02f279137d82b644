"""DRQN: a whole-sequence unroll equals stepping one step at a time, and resets start episodes afresh."""

import torch

from lightning_rl.models import DRQN


def make(obs_shape=(3,)) -> DRQN:
    torch.manual_seed(0)
    return DRQN(obs_shape, 2, hidden_sizes=(8,), lstm_size=6)


def test_unrolling_a_sequence_equals_stepping_through_it():
    net = make()
    obs, state = torch.randn(4, 5, 3), torch.randn(4, 2, 6)
    q, final = net(obs, state)
    assert q.shape == (4, 5, 2) and final.shape == (4, 2, 6)
    stepped, s = [], state
    for t in range(5):
        q_t, s = net.step(obs[:, t], s)
        stepped.append(q_t)
    assert torch.allclose(q, torch.stack(stepped, 1), atol=1e-6)
    assert torch.allclose(final, s, atol=1e-6)


def test_a_reset_zeroes_only_its_rows_state_before_that_step():
    net = make()
    obs, state = torch.randn(3, 6, 3), torch.randn(3, 2, 6)
    reset = torch.zeros(3, 6, dtype=torch.bool)
    reset[0, 2] = reset[2, 4] = True  # rows 0 and 2 start an episode at steps 2 and 4
    q, final = net(obs, state, reset)
    plain, _ = net(obs, state)
    assert torch.allclose(q[1], plain[1], atol=1e-6)  # row 1 never resets
    assert torch.allclose(q[0, :2], plain[0, :2], atol=1e-6) and torch.allclose(
        q[2, :4], plain[2, :4], atol=1e-6
    )
    fresh_0, _ = net(obs[:1, 2:], net.initial_state(1))
    fresh_2, end_2 = net(obs[2:, 4:], net.initial_state(1))
    assert torch.allclose(q[0, 2:], fresh_0[0], atol=1e-6) and torch.allclose(q[2, 4:], fresh_2[0], atol=1e-6)
    assert torch.allclose(final[2], end_2[0], atol=1e-6)


def test_initial_state_is_zeros_and_images_are_encoded_by_the_cnn():
    assert torch.equal(make().initial_state(2), torch.zeros(2, 2, 6))
    net = DRQN((4, 84, 84), 6, hidden_sizes=(32,), lstm_size=16)
    frames = torch.randint(0, 256, (2, 3, 4, 84, 84), dtype=torch.uint8)
    q, _ = net(frames, net.initial_state(2))
    assert q.shape == (2, 3, 6)
