"""Network blocks of ``lightning_rl.torch_utils.network``."""

import pytest
import torch
from torch import nn

from lightning_rl.torch_utils import (
    BoardCNNEncoder,
    MLPEncoder,
    NatureCNNEncoder,
    make_encoder,
    orthogonal_init_,
)


def test_encoder_is_chosen_from_obs_shape():
    assert isinstance(make_encoder((4,)), MLPEncoder)
    assert isinstance(make_encoder((4, 84, 84)), NatureCNNEncoder)
    with pytest.raises(ValueError, match=r"obs_shape \(2, 3\) is not supported"):
        make_encoder((2, 3))
    with pytest.raises(ValueError, match="H, W >= 36"):
        make_encoder((4, 8, 8))
    with pytest.raises(ValueError, match="hidden_sizes"):
        make_encoder((4,), hidden_sizes=[])


def test_mlp_encoder_flattens_and_reports_its_width():
    encoder = MLPEncoder(6, hidden_sizes=(16, 8), activation=nn.Tanh)
    assert encoder.out_dim == 8
    assert encoder(torch.randn(5, 2, 3)).shape == (5, 8)
    assert [type(m) for m in encoder.net] == [nn.Flatten, nn.Linear, nn.Tanh, nn.Linear, nn.Tanh]


def test_nature_cnn_scales_uint8_frames():
    net = NatureCNNEncoder((4, 84, 84))
    frames = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    assert net.out_dim == 512
    assert torch.allclose(net(frames), net(frames.float() / 255.0))


def test_orthogonal_init_sets_gain_and_bias_of_linear_and_conv_layers():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Conv2d(2, 4, kernel_size=1), nn.LayerNorm(4))
    orthogonal_init_(net, gain=2.0, bias=0.5)
    linear, conv, norm = net[0], net[2], net[3]
    # (5, 3) orthogonal with gain 2: W^T W = 4 I
    torch.testing.assert_close(linear.weight.T @ linear.weight, 4.0 * torch.eye(3), atol=1e-5, rtol=0)
    conv_weight = conv.weight.flatten(1)  # (4, 2)
    torch.testing.assert_close(conv_weight.T @ conv_weight, 4.0 * torch.eye(2), atol=1e-5, rtol=0)
    assert torch.equal(linear.bias, torch.full((5,), 0.5)) and torch.equal(conv.bias, torch.full((4,), 0.5))
    assert torch.equal(norm.weight, torch.ones(4)) and torch.equal(norm.bias, torch.zeros(4))  # untouched


def test_board_cnn_reads_the_flat_features_as_row_major_h_w_c_planes():
    encoder = BoardCNNEncoder((6, 7, 2), hidden_sizes=[8], channels=[1])
    conv = encoder.convs[0]
    with torch.no_grad():  # the one filter copies plane 1 of its centre square
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[0, 1, 1, 1] = 1.0
    board = torch.zeros(1, 6, 7, 2)
    board[0, 4, 2, 1] = 1.0  # row 4, column 2, plane 1
    board[0, 1, 5, 0] = 1.0  # plane 0: this filter ignores it
    flat = board.reshape(1, 84)  # what the env hands over: the (H, W, C) features, row-major
    maps = encoder.convs[:-1](flat.reshape(1, 6, 7, 2).permute(0, 3, 1, 2))
    assert maps.shape == (1, 1, 6, 7) and maps[0, 0].nonzero().tolist() == [[4, 2]]
    expected = encoder.fc(maps.flatten(1))
    torch.testing.assert_close(encoder(flat), expected)
    assert encoder(flat).shape == (1, 8) and encoder.out_dim == 8


def test_board_cnn_refuses_a_shape_that_is_not_a_board():
    with pytest.raises(ValueError, match=r"board_shape must be \(H, W, C\)"):
        BoardCNNEncoder((84,))
