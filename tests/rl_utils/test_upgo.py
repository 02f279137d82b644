"""Checks of UPGO in ``lightning_rl.rl_utils.upgo``."""

import pytest
import torch
from tensor_helpers import as_lists, close, column, random_chunk

from lightning_rl.rl_utils import generalized_lambda_returns, upgo_loss, upgo_returns


def tiny_chunk():
    """T=4, B=1, gamma 0.5: V = [1, 2, 3, 1], r = [1, 2, 0, 1], next_value = [2, 3, 1, 4] (= V[t+1] inside).

    Q_t = r_t + 0.5 * next_value_t = [2, 3.5, 0.5, 3]; Q_{t+1} >= V_{t+1} for t = 0, 1, 2: [yes, no, yes].
    """
    return dict(
        reward=column([1.0, 2.0, 0.0, 1.0]),
        value=column([1.0, 2.0, 3.0, 1.0]),
        next_value=column([2.0, 3.0, 1.0, 4.0]),
        terminated=torch.zeros(4, 1, dtype=torch.bool),
        truncated=None,
    )


def test_upgo_returns_hand_example():
    # G3 = Q3 = 3; G2 = 0 + 0.5 * G3 = 1.5 (Q3 >= V3: follow); G1 = 2 + 0.5 * V2 = 3.5 (Q2 < V2: bootstrap)
    # G0 = 1 + 0.5 * G1 = 2.75 (Q1 >= V1: follow)
    close(upgo_returns(**tiny_chunk(), gamma=0.5), [[2.75], [3.5], [1.5], [3.0]])


def test_upgo_returns_episode_boundaries():
    # terminated at step 2: G2 = r2 = 0 (no bootstrap, no trace); Q2 = 0 < V2 so G1 still bootstraps
    chunk = tiny_chunk()
    chunk["terminated"] = torch.tensor([[False], [False], [True], [False]])
    close(upgo_returns(**chunk, gamma=0.5), [[2.75], [3.5], [0.0], [3.0]])
    # truncated at step 0: G0 = Q0 = 1 + 0.5 * next_value0 = 2 instead of following G1
    chunk = tiny_chunk()
    chunk["truncated"] = torch.tensor([[True], [False], [False], [False]])
    close(upgo_returns(**chunk, gamma=0.5), [[2.0], [3.5], [1.5], [3.0]])


def reference_upgo(reward, value, next_value, terminated, truncated, gamma):
    """Element-by-element backward recursion with explicit branches."""
    time, batch = len(reward), len(reward[0])
    out = [[0.0] * batch for _ in range(time)]

    def q(k, b):
        return reward[k][b] + (0.0 if terminated[k][b] else gamma * next_value[k][b])

    for b in range(batch):
        for k in reversed(range(time)):
            if terminated[k][b]:
                out[k][b] = reward[k][b]
            elif truncated[k][b] or k == time - 1:
                out[k][b] = q(k, b)
            elif q(k + 1, b) >= value[k + 1][b]:
                out[k][b] = reward[k][b] + gamma * out[k + 1][b]
            else:
                out[k][b] = reward[k][b] + gamma * next_value[k][b]
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("time,batch", [(1, 3), (7, 2), (16, 5)])
def test_upgo_returns_match_python_reference_on_random_data(time, batch):
    gen = torch.Generator().manual_seed(time + 31 * batch)
    chunk = random_chunk(time, batch, gen)
    reward, value, next_value, terminated, truncated = chunk
    for gamma in (0.0, 0.9, 1.0):
        expected = reference_upgo(*as_lists(*chunk), gamma)
        torch.testing.assert_close(
            upgo_returns(reward, value, next_value, terminated, truncated, gamma), expected
        )


def test_upgo_returns_match_di_engine_formulation_without_episode_ends():
    # DI-engine: values V(s_0..s_T), gamma 1, lambda_t = [r_{t+1} + V_{t+2} >= V_{t+1}] (last lambda 1),
    # G = generalized_lambda_returns(rewards, 1, V[1:], V[-1], lambda)
    gen = torch.Generator().manual_seed(5)
    time, batch = 10, 4
    reward = torch.randn(time, batch, generator=gen, dtype=torch.float64)
    bootstrap_values = torch.randn(time + 1, batch, generator=gen, dtype=torch.float64)
    lambdas = (reward + bootstrap_values[1:]) >= bootstrap_values[:-1]
    lambdas = torch.cat([lambdas[1:], torch.ones_like(lambdas[-1:])]).to(torch.float64)
    expected = generalized_lambda_returns(reward, 1.0, bootstrap_values[1:], bootstrap_values[-1], lambdas)
    no_end = torch.zeros(time, batch, dtype=torch.bool)
    actual = upgo_returns(reward, bootstrap_values[:-1], bootstrap_values[1:], no_end, no_end, 1.0)
    torch.testing.assert_close(actual, expected)


def test_upgo_loss_hand_example():
    # G - V = [1.75, 1.5, -1.5, 2]; rhos [2, 0.5, 1, 3] clipped at 1 -> [1, 0.5, 1, 1]
    # advantage = [1.75, 0.75, -1.5, 2]; loss = -mean(advantage * log_prob)
    log_prob = column([-1.0, -2.0, -0.5, -1.0]).requires_grad_()
    rhos = column([2.0, 0.5, 1.0, 3.0])
    value = column([1.0, 2.0, 3.0, 1.0]).requires_grad_()
    chunk = {**tiny_chunk(), "value": value}
    loss = upgo_loss(log_prob, rhos, **chunk, gamma=0.5)
    close(loss, -(1.75 * -1.0 + 0.75 * -2.0 + -1.5 * -0.5 + 2.0 * -1.0) / 4)  # 1.125
    loss.backward()
    close(log_prob.grad, [[-1.75 / 4], [-0.75 / 4], [1.5 / 4], [-2.0 / 4]])
    assert value.grad is None
    # no clipping: rhos used as given
    unclipped = upgo_loss(log_prob, rhos, **chunk, gamma=0.5, rho_clip=float("inf"))
    close(unclipped, -(2 * 1.75 * -1.0 + 0.75 * -2.0 + -1.5 * -0.5 + 3 * 2.0 * -1.0) / 4)


def test_upgo_bad_arguments():
    chunk = tiny_chunk()
    with pytest.raises(ValueError, match="gamma"):
        upgo_returns(**chunk, gamma=-0.5)
    with pytest.raises(ValueError, match="next_value"):
        upgo_returns(**{**chunk, "next_value": torch.zeros(3, 1)}, gamma=0.5)
    with pytest.raises(ValueError, match="rhos"):
        upgo_loss(torch.zeros(4, 1), torch.ones(4), **chunk, gamma=0.5)
    with pytest.raises(ValueError, match="rho_clip"):
        upgo_loss(torch.zeros(4, 1), torch.ones(4, 1), **chunk, gamma=0.5, rho_clip=0.0)
