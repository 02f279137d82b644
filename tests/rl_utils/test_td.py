"""Hand-computed checks of the TD losses and return estimators in ``lightning_rl.rl_utils.td``."""

import math

import pytest
import torch
from tensor_helpers import close, t

from lightning_rl.rl_utils import (
    DistNStepData,
    QNStepData,
    QOneStepData,
    TDLambdaData,
    VNStepData,
    VOneStepData,
    categorical_projection,
    dist_nstep_td_error,
    generalized_lambda_returns,
    q_1step_td_error,
    q_nstep_td_error,
    q_nstep_td_error_with_rescale,
    qr_nstep_td_error,
    td_lambda_error,
    v_1step_td_error,
    v_nstep_td_error,
    value_inv_transform,
    value_transform,
)

# ---------------------------------------------------------------------------------------------------------
# One-step Q
# ---------------------------------------------------------------------------------------------------------


def one_step_q_data(**overrides):
    """B=2, A=2, gamma=0.9 (used below).

    q = [[1, 2], [3, 4]], action = [0, 1] -> q(s, a) = [1, 4]
    next_q = [[10, 5], [2, 8]], reward = [1, -1]
    """
    fields = dict(
        q=t([[1.0, 2.0], [3.0, 4.0]], requires_grad=True),
        next_q=t([[10.0, 5.0], [2.0, 8.0]], requires_grad=True),
        action=t([0, 1], dtype=torch.int64),
        reward=t([1.0, -1.0]),
        terminated=t([0.0, 0.0]),
    )
    fields.update(overrides)
    return QOneStepData(**fields)


def test_q_1step_max_next_action():
    # max next_q = [10, 8]; target = [1 + 0.9*10, -1 + 0.9*8] = [10, 6.2]; td = [9, 2.2]
    loss, abs_td = q_1step_td_error(one_step_q_data(), gamma=0.9)
    close(abs_td, [9.0, 2.2])
    close(loss, (81.0 + 4.84) / 2)  # 42.92


def test_q_1step_double_next_action():
    # next_action = [1, 0] -> next_q = [5, 2]; target = [1 + 4.5, -1 + 1.8] = [5.5, 0.8]; td = [4.5, -3.2]
    data = one_step_q_data(next_action=t([1, 0], dtype=torch.int64))
    loss, abs_td = q_1step_td_error(data, gamma=0.9)
    close(abs_td, [4.5, 3.2])
    close(loss, (20.25 + 10.24) / 2)  # 15.245


@pytest.mark.parametrize("terminated", [t([1.0, 0.0]), torch.tensor([True, False])])
def test_q_1step_terminated_does_not_bootstrap(terminated):
    # sample 0 terminated: target = r = 1 = q(s, a) -> td 0; sample 1 unchanged (td 2.2)
    loss, abs_td = q_1step_td_error(one_step_q_data(terminated=terminated), gamma=0.9)
    close(abs_td, [0.0, 2.2])
    close(loss, 4.84 / 2)


def test_q_1step_importance_weights_scale_loss():
    # per-sample mse [81, 4.84] weighted by [2, 0.5] -> (162 + 2.42) / 2; priorities are unweighted
    loss, abs_td = q_1step_td_error(one_step_q_data(weight=t([2.0, 0.5])), gamma=0.9)
    close(loss, (162.0 + 2.42) / 2)
    close(abs_td, [9.0, 2.2])


def test_q_1step_huber_vs_mse():
    # |td| = [9, 2.2] both > 1 -> huber = |td| - 0.5 = [8.5, 1.7], mean 5.1
    loss, _ = q_1step_td_error(one_step_q_data(), gamma=0.9, loss_type="huber")
    close(loss, 5.1)
    # |td| = 0.5 < 1 -> huber = 0.5 * 0.5^2 = 0.125 while mse = 0.25
    small = QOneStepData(t([[0.0]]), t([[0.0]]), t([0], dtype=torch.int64), t([0.5]), t([1.0]))
    close(q_1step_td_error(small, gamma=0.9, loss_type="huber")[0], 0.125)
    close(q_1step_td_error(small, gamma=0.9, loss_type="mse")[0], 0.25)


def test_q_1step_gradient_only_on_q():
    data = one_step_q_data()
    loss, abs_td = q_1step_td_error(data, gamma=0.9)
    loss.backward()
    # d/dq(s,a) mean((q - target)^2) = 2 * (q - target) / B = -td at the taken action, 0 elsewhere
    close(data.q.grad, [[-9.0, 0.0], [0.0, -2.2]])
    assert data.next_q.grad is None
    assert not abs_td.requires_grad


# ---------------------------------------------------------------------------------------------------------
# n-step Q
# ---------------------------------------------------------------------------------------------------------


def nstep_q_data(**overrides):
    """B=2, A=2, n=3, gamma=0.9 (used below).

    sample 0: full window, reward [1, 2, 3] -> sum = 1 + 0.9*2 + 0.81*3 = 5.23, q(s, a=1) = 2,
              next_q = [4, 3]
    sample 1: episode ended after 2 real steps, reward [1, 1, 0] -> sum = 1 + 0.9 = 1.9, q(s, a=0) = 0,
              next_q = [10, 20]
    """
    fields = dict(
        q=t([[1.0, 2.0], [0.0, -1.0]], requires_grad=True),
        next_q=t([[4.0, 3.0], [10.0, 20.0]], requires_grad=True),
        action=t([1, 0], dtype=torch.int64),
        reward=t([[1.0, 2.0, 3.0], [1.0, 1.0, 0.0]]),
        terminated=torch.tensor([False, True]),
        steps=t([3, 2], dtype=torch.int64),
    )
    fields.update(overrides)
    return QNStepData(**fields)


def test_q_nstep_terminated_mid_window():
    # sample 0: 5.23 + 0.729 * max(4, 3) = 8.146, td = 6.146
    # sample 1: terminated after 2 steps -> target = 1.9, td = 1.9
    loss, abs_td = q_nstep_td_error(nstep_q_data(), gamma=0.9)
    close(abs_td, [6.146, 1.9])
    close(loss, (6.146**2 + 1.9**2) / 2)  # 20.691658


def test_q_nstep_truncated_mid_window_bootstraps_with_gamma_pow_steps():
    # sample 1 truncated (not terminated) after 2 steps: 1.9 + 0.9^2 * max(10, 20) = 1.9 + 16.2 = 18.1
    data = nstep_q_data(terminated=torch.tensor([False, False]))
    _, abs_td = q_nstep_td_error(data, gamma=0.9)
    close(abs_td, [6.146, 18.1])


def test_q_nstep_steps_none_uses_gamma_pow_n():
    # sample 1 not terminated, steps=None -> gamma^3: 1.9 + 0.729 * 20 = 16.48
    data = nstep_q_data(terminated=torch.tensor([False, False]), steps=None)
    _, abs_td = q_nstep_td_error(data, gamma=0.9)
    close(abs_td, [6.146, 16.48])


def test_q_nstep_double_next_action():
    # next_action = [1, 0]: sample 0: 5.23 + 0.729 * 3 = 7.417, td = 5.417
    #                       sample 1 (truncated, steps=2): 1.9 + 0.81 * 10 = 10.0, td = 10
    data = nstep_q_data(terminated=torch.tensor([False, False]), next_action=t([1, 0], dtype=torch.int64))
    _, abs_td = q_nstep_td_error(data, gamma=0.9)
    close(abs_td, [5.417, 10.0])


def test_q_nstep_weights_huber_and_gradient():
    data = nstep_q_data(weight=t([0.5, 2.0]))
    loss, _ = q_nstep_td_error(data, gamma=0.9, loss_type="huber")
    # huber([6.146, 1.9]) = [5.646, 1.4]; weighted mean = (0.5 * 5.646 + 2 * 1.4) / 2 = 2.8115
    close(loss, 2.8115)
    loss.backward()
    # huber gradient is -sign(td) * weight / B for |td| > 1: [-0.25, -1.0] at the taken actions
    close(data.q.grad, [[0.0, -0.25], [-1.0, 0.0]])
    assert data.next_q.grad is None


def test_q_nstep_with_one_step_matches_q_1step():
    one = one_step_q_data(terminated=t([1.0, 0.0]))
    as_nstep = QNStepData(one.q, one.next_q, one.action, one.reward.unsqueeze(-1), one.terminated)
    for gamma in (0.0, 0.9, 1.0):
        close(q_nstep_td_error(as_nstep, gamma)[0], q_1step_td_error(one, gamma)[0])


# ---------------------------------------------------------------------------------------------------------
# Value rescaling
# ---------------------------------------------------------------------------------------------------------


def test_value_transform_known_values():
    # h(3) = sqrt(4) - 1 + 0.003 = 1.003; h(8) = 3 - 1 + 0.008 = 2.008; h(0) = 0; odd function
    x = t([3.0, -3.0, 8.0, 0.0, 15.0])
    close(value_transform(x), [1.003, -1.003, 2.008, 0.0, 3.015])
    close(value_inv_transform(t([1.003, -1.003, 2.008, 0.0, 3.015])), [3.0, -3.0, 8.0, 0.0, 15.0], atol=1e-4)
    # eps = 0: h(3) = 1 and h^-1(1) = (1 + 1)^2 - 1 = 3
    close(value_transform(t([3.0]), eps=0.0), [1.0])
    close(value_inv_transform(t([1.0]), eps=0.0), [3.0])


def test_value_transform_round_trip():
    gen = torch.Generator().manual_seed(0)
    x64 = torch.cat([torch.randn(1000, generator=gen, dtype=torch.float64) * 10.0**k for k in range(-4, 5)])
    torch.testing.assert_close(value_inv_transform(value_transform(x64)), x64, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(value_transform(value_inv_transform(x64)), x64, rtol=1e-10, atol=1e-12)
    x32 = x64.float()
    torch.testing.assert_close(value_inv_transform(value_transform(x32)), x32, rtol=1e-5, atol=1e-6)


def test_q_nstep_td_error_with_rescale():
    # n=2, gamma=0.5; next_q = [h(8), h(3)] = [2.008, 1.003]; max -> h^-1(2.008) = 8
    # target = h(1 + 0.5 * 0 + 0.25 * 8) = h(3) = 1.003; q(s, a=0) = 0.5 -> td = 0.503
    q = t([[0.5, 1.0]], requires_grad=True)
    data = QNStepData(q, t([[2.008, 1.003]]), t([0], dtype=torch.int64), t([[1.0, 0.0]]), t([0.0]))
    loss, abs_td = q_nstep_td_error_with_rescale(data, gamma=0.5)
    close(abs_td, [0.503], atol=1e-4)
    close(loss, 0.503**2, atol=1e-4)
    loss.backward()
    assert q.grad is not None and q.grad[0, 1] == 0.0

    # terminated: target = h(1) = sqrt(2) - 1 + 0.001 = 0.41521 -> |td| = 0.5 - 0.41521
    terminated = data._replace(terminated=t([1.0]))
    close(q_nstep_td_error_with_rescale(terminated, gamma=0.5)[1], [0.5 - (math.sqrt(2) - 1 + 0.001)])

    # double: next_action = 1 -> h^-1(1.003) = 3; target = h(1 + 0.25 * 3) = h(1.75)
    double = data._replace(next_action=t([1], dtype=torch.int64))
    expected = math.sqrt(2.75) - 1 + 0.00175 - 0.5
    close(q_nstep_td_error_with_rescale(double, gamma=0.5)[1], [expected], atol=1e-4)


# ---------------------------------------------------------------------------------------------------------
# State-value TD
# ---------------------------------------------------------------------------------------------------------


def test_v_1step_td_error():
    # gamma 0.9: target = [0.5 + 0.9 * 3, 1 (terminated)] = [3.2, 1]; v = [1, 2] -> td = [2.2, -1]
    v = t([1.0, 2.0], requires_grad=True)
    next_v = t([3.0, 4.0], requires_grad=True)
    data = VOneStepData(v, next_v, t([0.5, 1.0]), torch.tensor([False, True]))
    loss, abs_td = v_1step_td_error(data, gamma=0.9)
    close(abs_td, [2.2, 1.0])
    close(loss, (4.84 + 1.0) / 2)
    close(v_1step_td_error(data, gamma=0.9, loss_type="huber")[0], (1.7 + 0.5) / 2)
    close(v_1step_td_error(data._replace(weight=t([0.0, 4.0])), gamma=0.9)[0], 4.0 / 2)
    loss.backward()
    close(v.grad, [-2.2, 1.0])  # 2 * (v - target) / B
    assert next_v.grad is None


def test_v_nstep_td_error():
    # gamma 0.5, n=3, next_v = 10
    # sample 0: steps 3 -> 1 + 0.5 + 0.25 + 0.125 * 10 = 3.0
    # sample 1: truncated after 1 step -> 2 + 0.5 * 10 = 7.0
    data = VNStepData(
        v=t([0.0, 0.0], requires_grad=True),
        next_v=t([10.0, 10.0]),
        reward=t([[1.0, 1.0, 1.0], [2.0, 0.0, 0.0]]),
        terminated=t([0.0, 0.0]),
        steps=t([3, 1], dtype=torch.int64),
    )
    loss, abs_td = v_nstep_td_error(data, gamma=0.5)
    close(abs_td, [3.0, 7.0])
    close(loss, (9.0 + 49.0) / 2)
    # steps=None -> gamma^3 for sample 1 too: 2 + 0.125 * 10 = 3.25
    close(v_nstep_td_error(data._replace(steps=None), gamma=0.5)[1], [3.0, 3.25])
    # sample 1 terminated after 1 step -> 2
    close(v_nstep_td_error(data._replace(terminated=t([0.0, 1.0])), gamma=0.5)[1], [3.0, 2.0])


# ---------------------------------------------------------------------------------------------------------
# Lambda returns
# ---------------------------------------------------------------------------------------------------------


def test_generalized_lambda_returns_hand_example():
    # T=3, B=1, pcont 0.5, lambda 0.5, next-state values [4, 6, 8], bootstrap 8
    # G2 = 3 + 0.5 * 8                         = 7
    # G1 = 2 + 0.5 * (0.5 * 6 + 0.5 * 7)       = 5.25
    # G0 = 1 + 0.5 * (0.5 * 4 + 0.5 * 5.25)    = 3.3125
    rewards = t([[1.0], [2.0], [3.0]])
    pcont = torch.full((3, 1), 0.5)
    next_values = t([[4.0], [6.0], [8.0]])
    expected = [[3.3125], [5.25], [7.0]]
    close(generalized_lambda_returns(rewards, pcont, next_values, t([8.0]), 0.5), expected)
    close(generalized_lambda_returns(rewards, 0.5, next_values, None, 0.5), expected)
    close(generalized_lambda_returns(rewards, pcont, next_values, None, torch.full((3, 1), 0.5)), expected)


def test_generalized_lambda_returns_lambda_one_and_zero():
    rewards = t([[1.0], [2.0], [3.0]])
    next_values = t([[4.0], [6.0], [8.0]])
    # lambda 1, zero bootstrap: Monte-Carlo returns [1 + 0.5*2 + 0.25*3, 2 + 0.5*3, 3] = [2.75, 3.5, 3]
    close(generalized_lambda_returns(rewards, 0.5, next_values, t([0.0]), 1.0), [[2.75], [3.5], [3.0]])
    # lambda 0: one-step targets r + 0.5 * V(s') = [3, 5, 7]
    close(generalized_lambda_returns(rewards, 0.5, next_values, t([0.0]), 0.0), [[3.0], [5.0], [7.0]])
    # termination at t=1 (pcont 0): G1 = 2, and G0 = 1 + 0.5 * 2 = 2 with lambda 1
    pcont = t([[0.5], [0.0], [0.5]])
    close(generalized_lambda_returns(rewards, pcont, next_values, t([0.0]), 1.0), [[2.0], [2.0], [3.0]])


def forward_view_lambda_return(rewards, pcont, next_values, bootstrap, lambda_):
    """Plain-Python forward view: mix of n-step returns, the longest one bootstrapping from `bootstrap`."""
    time, batch = len(rewards), len(rewards[0])
    out = [[0.0] * batch for _ in range(time)]
    for b in range(batch):
        for start in range(time):
            horizon = time - start
            total, discounted_reward, discount = 0.0, 0.0, 1.0
            for n in range(1, horizon + 1):
                k = start + n - 1
                discounted_reward += discount * rewards[k][b]
                discount *= pcont[k][b]
                if n < horizon:
                    n_step_return = discounted_reward + discount * next_values[k][b]
                    total += (1 - lambda_) * lambda_ ** (n - 1) * n_step_return
                else:
                    # the last (T - t)-step return, weighted by lambda^(n-1); its (1 - lambda) share
                    # bootstraps on V(s_T) = next_values[-1], its lambda share on `bootstrap`
                    tail = (1 - lambda_) * next_values[k][b] + lambda_ * bootstrap[b]
                    total += lambda_ ** (n - 1) * (discounted_reward + discount * tail)
            out[start][b] = total
    return torch.tensor(out, dtype=torch.float64)


def test_generalized_lambda_returns_matches_python_loop_on_random_data():
    gen = torch.Generator().manual_seed(1)
    time, batch = 7, 4
    rewards = torch.randn(time, batch, generator=gen, dtype=torch.float64)
    pcont = 0.95 * (torch.rand(time, batch, generator=gen, dtype=torch.float64) > 0.2)
    next_values = torch.randn(time, batch, generator=gen, dtype=torch.float64)
    bootstrap = torch.randn(batch, generator=gen, dtype=torch.float64)
    for lambda_ in (0.0, 0.3, 0.95, 1.0):
        expected = forward_view_lambda_return(
            rewards.tolist(), pcont.tolist(), next_values.tolist(), bootstrap.tolist(), lambda_
        )
        actual = generalized_lambda_returns(rewards, pcont, next_values, bootstrap, lambda_)
        torch.testing.assert_close(actual, expected)

    # per-step lambda tensor vs the backward recursion written out element by element
    lambdas = torch.rand(time, batch, generator=gen, dtype=torch.float64)
    expected = torch.zeros(time, batch, dtype=torch.float64)
    for b in range(batch):
        following = bootstrap[b].item()
        for step in reversed(range(time)):
            lam = lambdas[step, b].item()
            mixed = (1 - lam) * next_values[step, b].item() + lam * following
            following = rewards[step, b].item() + pcont[step, b].item() * mixed
            expected[step, b] = following
    torch.testing.assert_close(
        generalized_lambda_returns(rewards, pcont, next_values, bootstrap, lambdas), expected
    )


def test_td_lambda_error_hand_example():
    # T=2, B=1, gamma 0.5, lambda 0.5; V(s0..s2) = [1, 2, 3], rewards [1, 1]
    # G1 = 1 + 0.5 * 3 = 2.5; G0 = 1 + 0.5 * (0.5 * 2 + 0.5 * 2.5) = 2.125
    # loss = 0.5 * mean([1.125^2, 0.5^2]) = 0.5 * (1.265625 + 0.25) / 2 = 0.37890625
    value = t([[1.0], [2.0], [3.0]], requires_grad=True)
    reward = t([[1.0], [1.0]])
    loss = td_lambda_error(TDLambdaData(value, reward), gamma=0.5, lambda_=0.5)
    close(loss, 0.37890625)
    loss.backward()
    # d loss / d V_t = 0.5 * (V_t - G_t) for t < T; the bootstrap row gets no gradient
    close(value.grad, [[-0.5625], [-0.25], [0.0]])

    # s1 terminal: pcont[0] = 0 -> G0 = 1 = V(s0); loss = 0.5 * (0 + 0.25) / 2
    terminated = torch.tensor([[True], [False]])
    close(td_lambda_error(TDLambdaData(value, reward, terminated=terminated), 0.5, 0.5), 0.0625)

    # weights (B,) broadcast over time: two identical columns with weights [1, 3] -> 2x the loss
    value2 = value.detach().repeat(1, 2)
    data = TDLambdaData(value2, reward.repeat(1, 2), weight=t([1.0, 3.0]))
    close(td_lambda_error(data, gamma=0.5, lambda_=0.5), 2 * 0.37890625)


# ---------------------------------------------------------------------------------------------------------
# C51
# ---------------------------------------------------------------------------------------------------------

# support linspace(-2, 2, 5) = [-2, -1, 0, 1, 2], spacing 1


def test_categorical_projection_splits_mass_between_atoms():
    # uniform 0.2 on the support, shifted by 0.5 + 0.5 * z = [-0.5, 0, 0.5, 1, 1.5]:
    #   -0.5 -> 0.1 to -1, 0.1 to 0;  0 -> 0.2 to 0 (exact);  0.5 -> 0.1 to 0, 0.1 to 1
    #    1   -> 0.2 to 1 (exact);     1.5 -> 0.1 to 1, 0.1 to 2
    projected = categorical_projection(torch.full((1, 5), 0.2), t([0.5]), t([0.5]), -2.0, 2.0)
    close(projected, [[0.0, 0.1, 0.4, 0.4, 0.1]])


def test_categorical_projection_exact_atom_and_clipping():
    next_dist = t([[0.1, 0.2, 0.3, 0.2, 0.2], [0.0, 0.0, 1.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.2, 0.2]] * 2)
    reward = t([1.0, 1.0, -10.0, 0.5, 10.0, 0.0])
    discount = t([1.0, 1.0, 1.0, 0.0, 0.5, 1.0])
    projected = categorical_projection(next_dist, reward, discount, -2.0, 2.0)
    expected = [
        [0.0, 0.1, 0.2, 0.3, 0.4],  # shift +1 lands exactly on atoms (l == u); 3 clipped to v_max
        [0.0, 0.0, 0.0, 1.0, 0.0],  # 0 + 1 lands exactly on atom 1
        [1.0, 0.0, 0.0, 0.0, 0.0],  # everything clipped to v_min
        [0.0, 0.0, 0.5, 0.5, 0.0],  # terminated: all mass at 0.5
        [0.0, 0.0, 0.0, 0.0, 1.0],  # everything clipped to v_max
        [0.1, 0.2, 0.3, 0.2, 0.2],  # identity
    ]
    close(projected, expected)


def test_categorical_projection_preserves_mass():
    gen = torch.Generator().manual_seed(2)
    next_dist = torch.softmax(torch.randn(256, 51, generator=gen), dim=-1)
    reward = torch.randn(256, generator=gen) * 5.0
    discount = torch.rand(256, generator=gen)
    discount[:32] = 1.0
    reward[:32] = torch.randint(-3, 4, (32,), generator=gen).float() * 0.4  # multiples of the spacing
    projected = categorical_projection(next_dist, reward, discount, -10.0, 10.0)
    close(projected.sum(-1), torch.ones(256))
    assert (projected >= 0).all()
    # the mean of the projection equals the clipped shifted mean when nothing is clipped
    support = torch.linspace(-10.0, 10.0, 51)
    inside = ((reward.unsqueeze(-1) + discount.unsqueeze(-1) * support).abs() <= 10.0).all(-1)
    shifted_mean = reward + discount * (next_dist * support).sum(-1)
    close((projected * support).sum(-1)[inside], shifted_mean[inside], atol=1e-4)


def test_dist_nstep_td_error():
    # B=1, A=2, N=5, gamma 0.5, reward [0.5, 0] with steps=1 -> shift 0.5 + 0.5 * z
    # next_action = 1 picks the uniform row -> target [0, 0.1, 0.4, 0.4, 0.1] (see the split test)
    # dist[action=0] = [0.1, 0.2, 0.3, 0.2, 0.2] -> CE = -(0.1 ln 0.2 + 0.4 ln 0.3 + 0.4 ln 0.2 + 0.1 ln 0.2)
    logits = torch.log(t([[[0.1, 0.2, 0.3, 0.2, 0.2], [0.2] * 5]])).requires_grad_()
    next_logits = torch.log(t([[[1.0, 1e-9, 1e-9, 1e-9, 1e-9], [0.2] * 5]])).requires_grad_()
    data = DistNStepData(
        dist=torch.softmax(logits, -1),
        next_dist=torch.softmax(next_logits, -1),
        action=t([0], dtype=torch.int64),
        next_action=t([1], dtype=torch.int64),
        reward=t([[0.5, 0.0]]),
        terminated=t([0.0]),
        steps=t([1], dtype=torch.int64),
    )
    expected_ce = -(0.6 * math.log(0.2) + 0.4 * math.log(0.3))
    loss, ce = dist_nstep_td_error(data, gamma=0.5, v_min=-2.0, v_max=2.0, n_atom=5)
    close(ce, [expected_ce])
    close(loss, expected_ce)
    loss.backward()
    assert logits.grad is not None and logits.grad[0, 1].abs().sum() == 0.0
    assert next_logits.grad is None
    assert not ce.requires_grad

    # weight scales the loss, not the per-sample cross-entropy
    loss_w, ce_w = dist_nstep_td_error(data._replace(weight=t([3.0])), 0.5, -2.0, 2.0, 5)
    close(loss_w, 3 * expected_ce)
    close(ce_w, [expected_ce])

    # terminated: target = delta at 0.5 -> [0, 0, 0.5, 0.5, 0]; CE = -(0.5 ln 0.3 + 0.5 ln 0.2)
    done = data._replace(terminated=t([1.0]))
    close(dist_nstep_td_error(done, 0.5, -2.0, 2.0, 5)[1], [-(0.5 * math.log(0.3) + 0.5 * math.log(0.2))])

    # a zero probability where the target has mass gives a finite (clamped) loss
    zero = data._replace(dist=t([[[0.0, 0.0, 0.5, 0.5, 0.0], [0.2] * 5]]))
    assert torch.isfinite(dist_nstep_td_error(zero, 0.5, -2.0, 2.0, 5)[0])


def test_qr_nstep_td_error():
    # B=1, A=2, N=2 quantiles at tau = [0.25, 0.75]; q[action=1] = [0, 2]; gamma 0.5, one step of reward 1
    # next_q[next_action=0] = [1, 3] -> target quantiles 1 + 0.5 * [1, 3] = [1.5, 2.5]
    # i=0 (q 0): u = [1.5, 2.5] > 0, weight 0.25, huber [1.0, 2.0] -> 0.25 * 1.5 = 0.375
    # i=1 (q 2): u = [-0.5, 0.5], weights [0.25, 0.75], huber 0.125 each -> (0.03125 + 0.09375) / 2 = 0.0625
    q = t([[[5.0, 5.0], [0.0, 2.0]]]).requires_grad_()
    next_q = t([[[1.0, 3.0], [0.0, 0.0]]]).requires_grad_()
    data = QNStepData(
        q=q,
        next_q=next_q,
        action=t([1], dtype=torch.int64),
        reward=t([[1.0]]),
        terminated=t([0.0]),
        next_action=t([0], dtype=torch.int64),
        steps=t([1], dtype=torch.int64),
    )
    loss, per_sample = qr_nstep_td_error(data, gamma=0.5, kappa=1.0)
    close(per_sample, [0.4375])
    close(loss, 0.4375)
    loss.backward()
    assert q.grad[0, 0].abs().sum() == 0.0 and q.grad[0, 1].abs().sum() > 0
    assert next_q.grad is None and not per_sample.requires_grad

    # kappa 0 is the plain quantile loss: 0.25 * mean(1.5, 2.5) + (0.25 * 0.5 + 0.75 * 0.5) / 2 = 0.75
    close(qr_nstep_td_error(data, 0.5, kappa=0.0)[1], [0.75])
    # next_action None: the argmax of the target quantiles' mean (action 0, mean 2 > 0): the same target
    close(qr_nstep_td_error(data._replace(next_action=None), 0.5)[1], [0.4375])
    # terminated: target [1, 1]; i=0: u = 1 -> 0.25 * 0.5; i=1: u = -1 -> 0.25 * 0.5; sum 0.25
    close(qr_nstep_td_error(data._replace(terminated=t([1.0])), 0.5)[1], [0.25])
    # weight scales the loss, not the priority
    loss_w, per_sample_w = qr_nstep_td_error(data._replace(weight=t([2.0])), 0.5)
    close(loss_w, 0.875)
    close(per_sample_w, [0.4375])
    with pytest.raises(ValueError, match="q"):
        qr_nstep_td_error(data._replace(q=q[0]), 0.5)


# ---------------------------------------------------------------------------------------------------------
# Argument validation
# ---------------------------------------------------------------------------------------------------------


def test_bad_arguments_raise_value_error_naming_the_argument():
    q_data = one_step_q_data()
    with pytest.raises(ValueError, match="gamma"):
        q_1step_td_error(q_data, gamma=1.5)
    with pytest.raises(ValueError, match="loss_type.*mse.*huber"):
        q_1step_td_error(q_data, gamma=0.9, loss_type="l1")
    with pytest.raises(ValueError, match="next_q"):
        q_1step_td_error(q_data._replace(next_q=torch.zeros(2, 3)), gamma=0.9)
    with pytest.raises(ValueError, match="weight"):
        q_1step_td_error(q_data._replace(weight=torch.ones(3)), gamma=0.9)
    with pytest.raises(ValueError, match="reward"):
        q_1step_td_error(q_data._replace(reward=torch.ones(2, 3)), gamma=0.9)
    with pytest.raises(ValueError, match="steps"):
        q_nstep_td_error(nstep_q_data(steps=torch.ones(3, dtype=torch.int64)), gamma=0.9)
    with pytest.raises(ValueError, match="reward"):
        q_nstep_td_error(nstep_q_data(reward=torch.ones(3, 3)), gamma=0.9)
    with pytest.raises(ValueError, match="gamma"):
        q_nstep_td_error_with_rescale(nstep_q_data(), gamma=-0.1)
    with pytest.raises(ValueError, match="eps"):
        value_transform(torch.ones(1), eps=-1.0)
    with pytest.raises(ValueError, match="next_v"):
        v_1step_td_error(VOneStepData(torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.zeros(2)), 0.9)
    with pytest.raises(ValueError, match="lambda_"):
        generalized_lambda_returns(torch.zeros(3, 2), 0.9, torch.zeros(3, 2), torch.zeros(2), 1.5)
    with pytest.raises(ValueError, match="state_values"):
        generalized_lambda_returns(torch.zeros(3, 2), 0.9, torch.zeros(4, 2), torch.zeros(2), 0.5)
    with pytest.raises(ValueError, match="value"):
        td_lambda_error(TDLambdaData(torch.zeros(3, 2), torch.zeros(3, 2)))
    with pytest.raises(ValueError, match="v_min"):
        categorical_projection(torch.full((1, 5), 0.2), torch.zeros(1), torch.ones(1), 2.0, -2.0)
    dist = torch.full((1, 2, 5), 0.2)
    data = DistNStepData(dist, dist, t([0], torch.int64), t([0], torch.int64), t([[0.0]]), t([0.0]))
    with pytest.raises(ValueError, match="n_atom"):
        dist_nstep_td_error(data, 0.9, -2.0, 2.0, n_atom=51)


def test_q_1step_weight_comes_in_the_data_or_as_nervex_third_argument():
    weight = t([2.0, 0.5])
    in_data, _ = q_1step_td_error(one_step_q_data(weight=weight), 0.9)
    as_argument, _ = q_1step_td_error(one_step_q_data(), 0.9, weight)
    close(in_data, as_argument)
    with pytest.raises(ValueError, match="weight is given twice"):
        q_1step_td_error(one_step_q_data(weight=weight), 0.9, weight)
