"""Checks of generalized advantage estimation in ``lightning_rl.rl_utils.advantage``."""

import pytest
import torch
from tensor_helpers import as_lists, close, column, random_chunk, t

from lightning_rl.rl_utils import GAEReturns, gae


def test_gae_hand_example_with_termination_and_truncation():
    # T=4, B=1, gamma 0.5, lambda 0.5 -> trace factor 0.25
    # step 0: r=1, V=2, V(s1)=4                        delta = 1 + 2 - 2 = 1
    # step 1: r=2, V=4, terminated                     delta = 2 - 4 = -2   (no bootstrap, no trace)
    # step 2: r=0, V=1, truncated, V(final_obs)=3      delta = 0 + 1.5 - 1 = 0.5 (bootstrap, no trace)
    # step 3: r=1, V=8, chunk end, bootstrap 2         delta = 1 + 1 - 8 = -6
    # A = [1 + 0.25 * -2, -2, 0.5, -6] = [0.5, -2, 0.5, -6]; returns = A + V = [2.5, 2, 1.5, 2]
    reward = column([1.0, 2.0, 0.0, 1.0])
    value = column([2.0, 4.0, 1.0, 8.0])
    next_value = column([4.0, 100.0, 3.0, 2.0])  # 100: after a termination it must be ignored
    terminated = torch.tensor([[False], [True], [False], [False]])
    truncated = torch.tensor([[False], [False], [True], [False]])
    out = gae(reward, value, next_value, terminated, truncated, gamma=0.5, lambda_=0.5)
    assert isinstance(out, GAEReturns)
    close(out.advantage, [[0.5], [-2.0], [0.5], [-6.0]])
    close(out.returns, [[2.5], [2.0], [1.5], [2.0]])
    # G0 as a lambda-return: 1 + 0.5 * (0.5 * V(s1) + 0.5 * G1) = 1 + 0.5 * (2 + 1) = 2.5
    advantage, returns = out
    assert returns[0, 0].item() == pytest.approx(2.5)
    # float flags give the same; truncation read as termination would drop the bootstrap at step 2
    out_float = gae(reward, value, next_value, terminated.float(), truncated.float(), 0.5, 0.5)
    close(out_float.advantage, advantage)
    as_terminated = gae(reward, value, next_value, terminated | truncated, None, 0.5, 0.5)
    close(as_terminated.advantage[2], [-1.0])


def reference_gae(reward, value, next_value, terminated, truncated, gamma, lambda_):
    """Forward view: A_t = sum_k (gamma lambda)^k delta_{t+k}, stopping after an episode end."""
    time, batch = len(reward), len(reward[0])
    advantage = [[0.0] * batch for _ in range(time)]
    for b in range(batch):
        for start in range(time):
            total, factor = 0.0, 1.0
            for k in range(start, time):
                bootstrap = 0.0 if terminated[k][b] else gamma * next_value[k][b]
                total += factor * (reward[k][b] + bootstrap - value[k][b])
                if terminated[k][b] or truncated[k][b]:
                    break
                factor *= gamma * lambda_
            advantage[start][b] = total
    return torch.tensor(advantage, dtype=torch.float64)


@pytest.mark.parametrize("time,batch", [(1, 1), (5, 3), (17, 4)])
def test_gae_matches_python_reference_on_random_data(time, batch):
    gen = torch.Generator().manual_seed(time * 100 + batch)
    chunk = random_chunk(time, batch, gen)
    reward, value, next_value, terminated, truncated = chunk
    for gamma, lambda_ in ((0.99, 0.95), (0.9, 0.0), (1.0, 1.0), (0.5, 0.7)):
        expected = reference_gae(*as_lists(*chunk), gamma, lambda_)
        advantage, returns = gae(reward, value, next_value, terminated, truncated, gamma, lambda_)
        torch.testing.assert_close(advantage, expected)
        torch.testing.assert_close(returns, expected + value)
        # float32 in, float32 out, same values
        adv32, _ = gae(
            reward.float(), value.float(), next_value.float(), terminated, truncated, gamma, lambda_
        )
        assert adv32.dtype == torch.float32
        torch.testing.assert_close(adv32, expected.float(), atol=1e-4, rtol=1e-4)


def test_gae_lambda_zero_is_td0_and_lambda_one_is_monte_carlo():
    gen = torch.Generator().manual_seed(3)
    time, batch, gamma = 9, 5, 0.9
    reward, value, next_value, terminated, truncated = random_chunk(time, batch, gen, p_end=0.25)
    no_truncation = torch.zeros(time, batch, dtype=torch.bool)

    # lambda 0: the TD(0) error, truncations or not
    advantage, _ = gae(reward, value, next_value, terminated, truncated, gamma, 0.0)
    torch.testing.assert_close(advantage, reward + gamma * (~terminated) * next_value - value)

    # lambda 1 without truncation: discounted return to the episode end (or chunk end + bootstrap) - V.
    # The sum of TD errors telescopes only when next_value[t] = V(s_{t+1}) = value[t + 1] inside an episode.
    next_value = torch.cat([value[1:], next_value[-1:]])
    monte_carlo = torch.zeros(time, batch, dtype=torch.float64)
    following = next_value[-1] * (~terminated[-1])
    for step in reversed(range(time)):
        if step < time - 1:
            following = torch.where(terminated[step], torch.zeros_like(following), following)
        following = reward[step] + gamma * following
        monte_carlo[step] = following
    advantage, returns = gae(reward, value, next_value, terminated, no_truncation, gamma, 1.0)
    torch.testing.assert_close(returns, monte_carlo)
    torch.testing.assert_close(advantage, monte_carlo - value)
    # truncated=None means no truncation
    torch.testing.assert_close(
        gae(reward, value, next_value, terminated, None, gamma, 1.0).returns, monte_carlo
    )


def test_gae_has_no_gradient():
    value = t([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    next_value = t([[3.0, 4.0], [5.0, 6.0]], requires_grad=True)
    advantage, returns = gae(torch.ones(2, 2), value, next_value, torch.zeros(2, 2), None, 0.9, 0.9)
    assert not advantage.requires_grad and not returns.requires_grad


def test_gae_bad_arguments():
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="gamma"):
        gae(x, x, x, x, None, 1.5, 0.9)
    with pytest.raises(ValueError, match="lambda_"):
        gae(x, x, x, x, None, 0.9, -0.1)
    with pytest.raises(ValueError, match="reward"):
        gae(torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.zeros(3), None, 0.9, 0.9)
    with pytest.raises(ValueError, match="next_value"):
        gae(x, x, torch.zeros(4, 2), x, None, 0.9, 0.9)
    with pytest.raises(ValueError, match="truncated"):
        gae(x, x, x, x, torch.zeros(3, 3), 0.9, 0.9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gae_on_cuda_matches_cpu():
    gen = torch.Generator().manual_seed(4)
    args = [torch.randn(6, 3, generator=gen) for _ in range(3)]
    terminated = torch.rand(6, 3, generator=gen) < 0.3
    cpu = gae(*args, terminated, None, 0.99, 0.95)
    gpu = gae(*[a.cuda() for a in args], terminated.cuda(), None, 0.99, 0.95)
    torch.testing.assert_close(gpu.advantage.cpu(), cpu.advantage)
