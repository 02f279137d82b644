import torch

from lightning_rl.models import DQNNet, DuelingHead


def test_mlp_dqn_shapes():
    net = DQNNet((4,), 3, hidden_sizes=(16, 8))
    assert net(torch.randn(5, 4)).shape == (5, 3)


def test_conv_dqn_takes_uint8_frames():
    frames = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    assert DQNNet((4, 84, 84), 6)(frames).shape == (2, 6)


def test_dueling_head_combines_value_and_centered_advantage():
    head = DuelingHead(2, 3)
    with torch.no_grad():
        head.value.weight.copy_(torch.tensor([[1.0, 0.0]]))
        head.value.bias.zero_()
        head.advantage.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))
        head.advantage.bias.zero_()
    q = head(torch.tensor([[2.0, 5.0]]))
    # V = 2, A = (2, 5, 0), mean(A) = 7/3  ->  Q = 2 + A - 7/3
    assert torch.allclose(q, torch.tensor([[2 + 2 - 7 / 3, 2 + 5 - 7 / 3, 2 - 7 / 3]]))
