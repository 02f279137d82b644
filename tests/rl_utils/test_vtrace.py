"""Checks of V-trace (IMPALA) in ``lightning_rl.rl_utils.vtrace``."""

import math

import pytest
import torch
from tensor_helpers import close, column

from lightning_rl.rl_utils import VTraceData, VTraceLoss, VTraceReturns, gae, vtrace, vtrace_error


def tiny_chunk():
    """T=3, B=1, gamma 0.5: ratio pi/mu = [2, 0.5, 1], value = [1, 2, 3], next_value = [2, 3, 6], reward 1."""
    behaviour = column([-1.0, -0.5, -2.0])
    target = behaviour + torch.log(column([2.0, 0.5, 1.0]))
    return dict(
        target_log_prob=target,
        behaviour_log_prob=behaviour,
        reward=column([1.0, 1.0, 1.0]),
        value=column([1.0, 2.0, 3.0]),
        next_value=column([2.0, 3.0, 6.0]),
        terminated=torch.zeros(3, 1, dtype=torch.bool),
        truncated=None,
    )


def test_vtrace_hand_example_with_clipping():
    # rho = min(1, ratio) = [1, 0.5, 1], c = [1, 0.5, 1]
    # delta = rho * (r + 0.5 V' - V) = [1 * 1, 0.5 * 0.5, 1 * 1] = [1, 0.25, 1]
    # vs - V: [1 + 0.5 * 1 * 0.5, 0.25 + 0.5 * 0.5 * 1, 1] = [1.25, 0.5, 1] -> vs = [2.25, 2.5, 4]
    # pg = min(1, ratio) * (r + 0.5 * next_vs - V), next_vs = [2.5, 4, 6]: [1.25, 0.5 * 1, 1]
    out = vtrace(**tiny_chunk(), gamma=0.5)
    assert isinstance(out, VTraceReturns)
    close(out.vs, [[2.25], [2.5], [4.0]])
    close(out.pg_advantage, [[1.25], [0.5], [1.0]])

    # rho_clip 2, pg_rho_clip 1.5: rho = [2, 0.5, 1], c unchanged, pg rho = [1.5, 0.5, 1]
    # delta = [2, 0.25, 1]; vs - V = [2 + 0.5 * 0.5, 0.5, 1] -> vs = [3.25, 2.5, 4]
    # pg0 = 1.5 * (1 + 0.5 * 2.5 - 1) = 1.875
    out = vtrace(**tiny_chunk(), gamma=0.5, rho_clip=2.0, pg_rho_clip=1.5)
    close(out.vs, [[3.25], [2.5], [4.0]])
    close(out.pg_advantage, [[1.875], [0.5], [1.0]])

    # c_clip 0.25: c = [0.25, 0.25, 0.25]; vs - V = [1 + 0.5 * 0.25 * 0.375, 0.25 + 0.5 * 0.25 * 1, 1]
    out = vtrace(**tiny_chunk(), gamma=0.5, c_clip=0.25)
    close(out.vs, [[2.046875], [2.375], [4.0]])
    close(out.pg_advantage, [[1.0 + 0.5 * 2.375 - 1.0], [0.5 * (1.0 + 2.0 - 2.0)], [1.0]])

    # lambda 0.5: c = 0.5 * [1, 0.5, 1]; vs - V = [1 + 0.5 * 0.5 * 0.375, 0.25 + 0.5 * 0.25 * 1, 1]
    out = vtrace(**tiny_chunk(), gamma=0.5, lambda_=0.5)
    close(out.vs, [[2.09375], [2.375], [4.0]])
    close(out.pg_advantage[0], [1.0 + 0.5 * 2.375 - 1.0])


def test_vtrace_episode_boundaries():
    # terminated at step 0: delta0 = 1 * (1 - 1) = 0, no trace -> vs0 = V0 = 1; pg0 = 1 + 0 - 1 = 0
    chunk = tiny_chunk()
    chunk["terminated"] = torch.tensor([[True], [False], [False]])
    out = vtrace(**chunk, gamma=0.5)
    close(out.vs, [[1.0], [2.5], [4.0]])
    close(out.pg_advantage, [[0.0], [0.5], [1.0]])

    # truncated at step 1: the TD error still bootstraps from next_value (3), the trace is cut
    # vs1 = 2 + 0.25 = 2.25; pg1 = 0.5 * (1 + 0.5 * next_value=3 - 2) = 0.25 (not vs2 = 4)
    chunk = tiny_chunk()
    chunk["truncated"] = torch.tensor([[False], [True], [False]])
    out = vtrace(**chunk, gamma=0.5)
    close(out.vs, [[1.0 + 1.0 + 0.5 * 0.25], [2.25], [4.0]])
    close(out.pg_advantage, [[1.0 + 0.5 * 2.25 - 1.0], [0.25], [1.0]])


def random_chunk(gen, time, batch, consistent=False):
    value = torch.randn(time, batch, generator=gen, dtype=torch.float64)
    next_value = torch.randn(time, batch, generator=gen, dtype=torch.float64)
    terminated = torch.rand(time, batch, generator=gen) < 0.2
    truncated = (torch.rand(time, batch, generator=gen) < 0.2) & ~terminated
    if consistent:  # next_value[t] = V(s_{t+1}) = value[t + 1] inside an episode
        shifted = torch.cat([value[1:], next_value[-1:]])
        next_value = torch.where(terminated | truncated, next_value, shifted)
    return dict(
        target_log_prob=torch.randn(time, batch, generator=gen, dtype=torch.float64) * 0.7,
        behaviour_log_prob=torch.randn(time, batch, generator=gen, dtype=torch.float64) * 0.7,
        reward=torch.randn(time, batch, generator=gen, dtype=torch.float64),
        value=value,
        next_value=next_value,
        terminated=terminated,
        truncated=truncated,
    )


def reference_vtrace(chunk, gamma, lambda_, rho_clip, c_clip, pg_rho_clip):
    """The paper's forward sum, element by element:

    vs_s = V_s + sum_{t=s}^{end} gamma^(t-s) (prod_{i=s}^{t-1} c_i) rho_t (r_t + gamma V'_t - V_t),
    stopping after the first episode end; V'_t = 0 after a termination.
    """
    data = {k: v.tolist() for k, v in chunk.items()}
    time, batch = len(data["reward"]), len(data["reward"][0])
    vs = [[0.0] * batch for _ in range(time)]
    pg = [[0.0] * batch for _ in range(time)]

    def done(k, b):
        return data["terminated"][k][b] or data["truncated"][k][b]

    def bootstrap(k, b, next_state_value):
        return 0.0 if data["terminated"][k][b] else gamma * next_state_value

    for b in range(batch):
        ratio = [
            math.exp(data["target_log_prob"][k][b] - data["behaviour_log_prob"][k][b]) for k in range(time)
        ]
        for s in range(time):
            total, factor = 0.0, 1.0
            for k in range(s, time):
                td = data["reward"][k][b] + bootstrap(k, b, data["next_value"][k][b]) - data["value"][k][b]
                total += factor * min(rho_clip, ratio[k]) * td
                if done(k, b):
                    break
                factor *= gamma * lambda_ * min(c_clip, ratio[k])
            vs[s][b] = data["value"][s][b] + total
        for s in range(time):
            following = data["next_value"][s][b] if done(s, b) or s == time - 1 else vs[s + 1][b]
            target = data["reward"][s][b] + bootstrap(s, b, following)
            pg[s][b] = min(pg_rho_clip, ratio[s]) * (target - data["value"][s][b])
    return torch.tensor(vs, dtype=torch.float64), torch.tensor(pg, dtype=torch.float64)


@pytest.mark.parametrize("time,batch", [(1, 2), (6, 3), (15, 4)])
def test_vtrace_matches_python_reference_on_random_data(time, batch):
    gen = torch.Generator().manual_seed(10 * time + batch)
    chunk = random_chunk(gen, time, batch)
    for gamma, lambda_, rho_clip, c_clip, pg_rho_clip in (
        (0.99, 1.0, 1.0, 1.0, 1.0),
        (0.9, 0.8, 2.0, 0.5, 1.5),
        (1.0, 1.0, math.inf, math.inf, math.inf),
        (0.0, 0.5, 1.0, 1.0, 1.0),
    ):
        expected_vs, expected_pg = reference_vtrace(chunk, gamma, lambda_, rho_clip, c_clip, pg_rho_clip)
        vs, pg = vtrace(
            **chunk, gamma=gamma, lambda_=lambda_, rho_clip=rho_clip, c_clip=c_clip, pg_rho_clip=pg_rho_clip
        )
        torch.testing.assert_close(vs, expected_vs)
        torch.testing.assert_close(pg, expected_pg)


@pytest.mark.parametrize("lambda_", [0.0, 0.5, 0.95, 1.0])
def test_vtrace_on_policy_equals_gae_returns(lambda_):
    gen = torch.Generator().manual_seed(7)
    chunk = random_chunk(gen, 12, 5, consistent=True)
    chunk["behaviour_log_prob"] = chunk["target_log_prob"].clone()
    vs, pg = vtrace(**chunk, gamma=0.95, lambda_=lambda_)
    advantage, returns = gae(
        chunk["reward"],
        chunk["value"],
        chunk["next_value"],
        chunk["terminated"],
        chunk["truncated"],
        gamma=0.95,
        lambda_=lambda_,
    )
    torch.testing.assert_close(vs, returns)
    if lambda_ == 1.0:
        # with full traces vs_{t+1} is the lambda=1 return, so the pg advantage is the GAE(1) advantage
        torch.testing.assert_close(pg, advantage)
    if lambda_ == 0.0:
        # vs = one-step target, and pg advantage = r + gamma * vs_{t+1} - V: a two-step advantage
        one_step = chunk["reward"] + 0.95 * (~chunk["terminated"]) * chunk["next_value"]
        torch.testing.assert_close(vs, one_step)


def test_vtrace_no_gradient_and_float32():
    chunk = {
        k: (v.float() if v.is_floating_point() else v)
        for k, v in random_chunk(torch.Generator(), 4, 2).items()
    }
    chunk["value"].requires_grad_()
    chunk["target_log_prob"].requires_grad_()
    vs, pg = vtrace(**chunk, gamma=0.9)
    assert vs.dtype == torch.float32 and pg.dtype == torch.float32
    assert not vs.requires_grad and not pg.requires_grad


def test_vtrace_error_losses_and_gradients():
    chunk = tiny_chunk()
    target_log_prob = chunk["target_log_prob"].clone().requires_grad_()
    value = chunk["value"].clone().requires_grad_()
    next_value = chunk["next_value"].clone().requires_grad_()
    entropy = column([0.1, 0.2, 0.3]).requires_grad_()
    data = VTraceData(
        target_log_prob,
        chunk["behaviour_log_prob"],
        entropy,
        value,
        next_value,
        chunk["reward"],
        chunk["terminated"],
    )
    loss = vtrace_error(data, gamma=0.5)
    assert isinstance(loss, VTraceLoss)
    # vs = [2.25, 2.5, 4], pg = [1.25, 0.5, 1] (the hand example above)
    expected_policy = (
        -(1.25 * target_log_prob[0, 0] + 0.5 * target_log_prob[1, 0] + target_log_prob[2, 0]) / 3
    )
    close(loss.policy_loss, expected_policy.detach())
    close(loss.value_loss, 0.5 * (1.25**2 + 0.5**2 + 1.0**2) / 3)
    close(loss.entropy_loss, -0.2)
    (loss.policy_loss + loss.value_loss + loss.entropy_loss).backward()
    close(target_log_prob.grad, [[-1.25 / 3], [-0.5 / 3], [-1.0 / 3]])
    close(value.grad, [[-1.25 / 3], [-0.5 / 3], [-1.0 / 3]])  # (value - vs) / (T B)
    close(entropy.grad, torch.full((3, 1), -1.0 / 3))
    assert next_value.grad is None

    weighted = vtrace_error(data._replace(weight=column([1.0, 0.0, 2.0])), gamma=0.5)
    close(weighted.value_loss, 0.5 * (1.25**2 + 2.0) / 3)
    close(weighted.entropy_loss, -(0.1 + 0.6) / 3)


def test_vtrace_bad_arguments():
    chunk = tiny_chunk()
    with pytest.raises(ValueError, match="gamma"):
        vtrace(**chunk, gamma=2.0)
    with pytest.raises(ValueError, match="lambda_"):
        vtrace(**chunk, gamma=0.9, lambda_=1.5)
    with pytest.raises(ValueError, match="c_clip"):
        vtrace(**chunk, gamma=0.9, c_clip=0.0)
    with pytest.raises(ValueError, match="behaviour_log_prob"):
        vtrace(**{**chunk, "behaviour_log_prob": torch.zeros(3)}, gamma=0.9)
    data = VTraceData(
        *(chunk[k] for k in ("target_log_prob", "behaviour_log_prob")),
        torch.zeros(3, 2),
        chunk["value"],
        chunk["next_value"],
        chunk["reward"],
        chunk["terminated"],
    )
    with pytest.raises(ValueError, match="entropy"):
        vtrace_error(data, gamma=0.9)
